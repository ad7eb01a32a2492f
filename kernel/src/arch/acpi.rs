//! Just enough ACPI to find the CPUs: RSDP → RSDT/XSDT → MADT, and the enabled local APICs
//! listed there.
//!
//! Firmware tables are input, not truth: every table is bounds-checked (it must lie in the
//! 4 GiB the boot page tables map) and checksummed before it is believed, and anything odd
//! makes the lookup give up (`None`) rather than panic.

use super::boot::PHYS_OFFSET;

/// The boot direct map covers physical 0..4 GiB (see arch/boot.rs); tables must lie inside.
const MAPPED_END: u64 = 4 << 30;
/// No sane table we read is larger (a MADT for 255 CPUs is about 2 KiB).
const MAX_TABLE_LEN: u32 = 1 << 20;
/// Size of the common table header (signature, length, revision, checksum, OEM fields).
const HEADER_LEN: usize = 36;
/// Where legacy firmware keeps the RSDP when the boot loader does not name it.
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);

/// APIC IDs of usable CPUs, in MADT order.
pub struct CpuList {
    ids: [u32; super::smp::MAX_CPUS],
    len: usize,
    /// Enabled CPUs beyond what the kernel supports.
    pub dropped: usize,
}

impl CpuList {
    fn push(&mut self, id: u32) {
        if self.ids[..self.len].contains(&id) {
            return;
        }
        if self.len < self.ids.len() {
            self.ids[self.len] = id;
            self.len += 1;
        } else {
            self.dropped += 1;
        }
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}

/// Physical memory as bytes, if the range is inside the boot direct map.
fn phys_bytes(phys: u64, len: usize) -> Option<&'static [u8]> {
    let end = phys.checked_add(len as u64)?;
    if phys == 0 || end > MAPPED_END {
        return None;
    }
    // SAFETY: [phys, end) lies in physical 0..4 GiB, which the boot tables map at PHYS_OFFSET
    // for the kernel's whole life (RAM or device holes; reading either is harmless). Firmware
    // tables are read only at boot, before anything else could write that memory.
    Some(unsafe { core::slice::from_raw_parts((PHYS_OFFSET + phys) as *const u8, len) })
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A system description table with a valid header, length and checksum.
fn table(phys: u64) -> Option<&'static [u8]> {
    let header = phys_bytes(phys, HEADER_LEN)?;
    let len = u32_at(header, 4)?;
    if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
        return None;
    }
    let t = phys_bytes(phys, len as usize)?;
    checksum_ok(t).then_some(t)
}

/// The RSDT or XSDT address from a valid RSDP: (address, entry size).
fn root_table(rsdp_phys: u64) -> Option<(u64, usize)> {
    let v1 = phys_bytes(rsdp_phys, 20)?;
    if &v1[..8] != b"RSD PTR " || !checksum_ok(v1) {
        return None;
    }
    if v1[15] >= 2 {
        let len = u32_at(phys_bytes(rsdp_phys, 36)?, 20)?;
        let v2 = phys_bytes(rsdp_phys, len.clamp(36, 4096) as usize)?;
        let xsdt = u64_at(v2, 24)?;
        if len >= 36 && checksum_ok(v2) && xsdt != 0 {
            return Some((xsdt, 8));
        }
    }
    Some((u32_at(v1, 16)? as u64, 4))
}

/// Searches the BIOS area for the RSDP (16-byte aligned, valid checksum).
fn find_rsdp_in_bios() -> Option<u64> {
    (BIOS_AREA.0..BIOS_AREA.1)
        .step_by(16)
        .find(|&p| root_table(p).is_some())
}

/// The table with `signature` listed in the RSDT/XSDT.
fn find_table(rsdp_phys: u64, signature: &[u8; 4]) -> Option<&'static [u8]> {
    let (root_phys, entry_size) = root_table(rsdp_phys)?;
    let root = table(root_phys)?;
    let expected: &[u8; 4] = if entry_size == 8 { b"XSDT" } else { b"RSDT" };
    if &root[..4] != expected {
        return None;
    }
    root[HEADER_LEN..]
        .chunks_exact(entry_size)
        .filter_map(|e| {
            if entry_size == 8 {
                u64_at(e, 0)
            } else {
                u32_at(e, 0).map(u64::from)
            }
        })
        .filter_map(table)
        .find(|t| &t[..4] == signature)
}

/// The enabled CPUs the MADT lists, or None if there is no valid RSDP or MADT.
/// `rsdp_phys` is the boot loader's pointer (0 if it gave none: the BIOS area is searched).
pub fn cpus(rsdp_phys: u64) -> Option<CpuList> {
    let rsdp = if rsdp_phys != 0 {
        rsdp_phys
    } else {
        find_rsdp_in_bios()?
    };
    let madt = find_table(rsdp, b"APIC")?;
    let mut list = CpuList {
        ids: [0; super::smp::MAX_CPUS],
        len: 0,
        dropped: 0,
    };
    // After the header: the local APIC address (4 bytes) and flags (4), then the entries,
    // each starting with its type and length.
    let mut off = HEADER_LEN + 8;
    while off + 2 <= madt.len() {
        let (kind, len) = (madt[off], madt[off + 1] as usize);
        if len < 2 || off + len > madt.len() {
            break;
        }
        let entry = &madt[off..off + len];
        match kind {
            // Processor Local APIC: ACPI id, APIC id, flags (bit 0: enabled).
            0 if len >= 8 && u32_at(entry, 4)? & 1 != 0 => list.push(entry[3] as u32),
            // Processor Local x2APIC: usable here only with an ID an xAPIC can address.
            9 if len >= 16 => {
                let id = u32_at(entry, 4)?;
                if u32_at(entry, 8)? & 1 != 0 && id < 0xff {
                    list.push(id);
                }
            }
            _ => {}
        }
        off += len;
    }
    Some(list)
}
