//! Memory: the direct map of physical memory, frames, the heap, address spaces and the checked
//! user-memory copy layer.

pub mod addrspace;
pub mod frame;
pub mod heap;
pub mod uaccess;

use crate::arch::boot::{
    self, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, E820_RAM, PHYS_OFFSET,
};

pub const PAGE_SIZE: usize = 4096;
const HUGE_PAGE: u64 = 2 << 20;
/// The boot page tables map physical 0..4 GiB; RAM above that is mapped by `init`.
const BOOT_MAPPED: u64 = 4 << 30;

pub fn phys_to_virt(phys: u64) -> u64 {
    PHYS_OFFSET + phys
}

/// The 4 KiB of a frame, through the direct map.
pub fn frame_bytes_mut(f: frame::Frame) -> &'static mut [u8] {
    // SAFETY: a Frame is owned by whoever allocated it, and the direct map covers all RAM, so
    // this is the only live reference to those bytes while the owner uses it.
    unsafe { core::slice::from_raw_parts_mut(phys_to_virt(f.0) as *mut u8, PAGE_SIZE) }
}

/// Physical memory handed over at boot, as slices into the direct map.
pub fn phys_slice(phys: u64, len: usize) -> &'static [u8] {
    // SAFETY: used only for boot-time regions (initramfs, command line, start info) that are
    // reserved from the frame allocator and never written afterwards.
    unsafe { core::slice::from_raw_parts(phys_to_virt(phys) as *const u8, len) }
}

fn read_phys_u64(phys: u64) -> u64 {
    // SAFETY: only used by the frame allocator on frames it owns (free frames).
    unsafe { (phys_to_virt(phys) as *const u64).read() }
}

fn write_phys_u64(phys: u64, v: u64) {
    // SAFETY: as for read_phys_u64.
    unsafe { (phys_to_virt(phys) as *mut u64).write(v) }
}

/// What the kernel learns from the boot memory map and modules.
pub struct BootMemory {
    pub initrd: &'static [u8],
    pub cmdline: &'static str,
    pub ram_bytes: u64,
}

/// Sets up frames and heap from the PVH memory map, maps RAM above 4 GiB, and drops the
/// identity map of low memory so the lower half belongs to user space alone.
pub fn init(info: &HvmStartInfo) -> BootMemory {
    let (memmap_buf, nmem) =
        boot_array::<HvmMemmapEntry>(info.memmap_paddr, info.memmap_entries as usize);
    let (modules_buf, nmod) =
        boot_array::<HvmModlistEntry>(info.modlist_paddr, info.nr_modules as usize);
    let (memmap, modules) = (&memmap_buf[..nmem], &modules_buf[..nmod]);
    let initrd = modules
        .first()
        .map(|m| phys_slice(m.paddr, m.size as usize))
        .unwrap_or(&[]);
    let cmdline = if info.cmdline_paddr != 0 {
        let raw = phys_slice(info.cmdline_paddr, 4096);
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        core::str::from_utf8(&raw[..len]).unwrap_or("")
    } else {
        ""
    };

    // Reserved: everything below 1 MiB (start info, tables), the kernel image, the modules.
    let (kstart, kend) = boot::kernel_image_phys();
    let mut reserved: [(u64, u64); 10] = [(0, 0); 10];
    reserved[0] = (0, 1 << 20);
    reserved[1] = (kstart, kend);
    for (i, m) in modules.iter().take(8).enumerate() {
        reserved[2 + i] = (m.paddr, m.paddr + m.size);
    }

    let ram: u64 = memmap
        .iter()
        .filter(|e| e.kind == E820_RAM)
        .map(|e| e.size)
        .sum();
    let heap_size = heap_size_for(ram);
    let mut heap_start = None;
    let mut free_ranges: [(u64, u64); 64] = [(0, 0); 64];
    let mut nfree = 0;
    for e in memmap.iter().filter(|e| e.kind == E820_RAM) {
        let mut pieces = Pieces::new(e.addr, e.addr + e.size);
        for r in reserved.iter().filter(|r| r.1 > r.0) {
            pieces.subtract(*r);
        }
        for &(s, end) in pieces.as_slice() {
            let (mut s, end) = ((s + 4095) & !4095, end & !4095);
            let fits = end.saturating_sub(s) >= heap_size as u64 && end <= BOOT_MAPPED;
            if heap_start.is_none() && fits {
                heap_start = Some(s);
                s += heap_size as u64;
            }
            if end > s && nfree < free_ranges.len() {
                free_ranges[nfree] = (s, end);
                nfree += 1;
            }
        }
    }
    let heap_start = heap_start.expect("no RAM region large enough for the kernel heap");
    heap::init(phys_to_virt(heap_start), heap_size);
    let frames_end = free_ranges[..nfree].iter().map(|r| r.1).max().unwrap_or(0);
    frame::init_shares(frames_end);
    for &(s, e) in &free_ranges[..nfree] {
        let low_end = e.min(BOOT_MAPPED);
        if low_end > s {
            frame::add_region(s, low_end);
        }
    }
    // RAM above 4 GiB: extend the direct map with 2 MiB pages, then give it to the allocator.
    for &(s, e) in &free_ranges[..nfree] {
        if e > BOOT_MAPPED {
            let s = s.max(BOOT_MAPPED);
            map_direct_huge(s & !(HUGE_PAGE - 1), e);
            frame::add_region(s, e);
        }
    }
    addrspace::drop_identity_map();
    BootMemory {
        initrd,
        cmdline,
        ram_bytes: ram,
    }
}

/// A quarter of RAM, at least 8 MiB and at most 512 MiB: kernel stacks, file data in tmpfs
/// and page-table bookkeeping come from here; user pages come from the frame pool.
fn heap_size_for(ram: u64) -> usize {
    ((ram / 4).clamp(8 << 20, 512 << 20) as usize) & !(PAGE_SIZE - 1)
}

/// Most entries read from a boot table (memory map, module list): this runs before the heap.
const MAX_BOOT_ENTRIES: usize = 64;

/// Copies up to MAX_BOOT_ENTRIES entries of a boot table, which QEMU does not necessarily
/// align for T, with unaligned reads.
fn boot_array<T: Copy + Default>(phys: u64, n: usize) -> ([T; MAX_BOOT_ENTRIES], usize) {
    let mut out = [T::default(); MAX_BOOT_ENTRIES];
    let n = if phys == 0 {
        0
    } else {
        n.min(MAX_BOOT_ENTRIES)
    };
    let base = phys_to_virt(phys) as *const T;
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        // SAFETY: QEMU's start info describes `n` entries at `phys`, in reserved low memory
        // mapped by the boot page tables; T is a plain repr(C) struct valid for any bits, and
        // read_unaligned has no alignment requirement.
        *slot = unsafe { base.add(i).read_unaligned() };
    }
    (out, n)
}

/// A RAM range minus reserved ranges, in a fixed array: this runs before the heap exists.
struct Pieces {
    items: [(u64, u64); 16],
    len: usize,
}

impl Pieces {
    fn new(a: u64, b: u64) -> Self {
        let mut items = [(0, 0); 16];
        items[0] = (a, b);
        Pieces { items, len: 1 }
    }

    fn subtract(&mut self, r: (u64, u64)) {
        let mut out = [(0, 0); 16];
        let mut n = 0;
        for &(a, b) in self.as_slice() {
            let mut push = |p: (u64, u64)| {
                if p.1 > p.0 && n < out.len() {
                    out[n] = p;
                    n += 1;
                }
            };
            if r.1 <= a || r.0 >= b {
                push((a, b));
            } else {
                push((a, r.0));
                push((r.1, b));
            }
        }
        self.items = out;
        self.len = n;
    }

    fn as_slice(&self) -> &[(u64, u64)] {
        &self.items[..self.len]
    }
}

fn map_direct_huge(start: u64, end: u64) {
    let mut addr = start;
    while addr < end {
        addrspace::map_kernel_huge(phys_to_virt(addr), addr);
        addr += HUGE_PAGE;
    }
}
