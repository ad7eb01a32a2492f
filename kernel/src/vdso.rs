//! The vDSO and the vvar page (spec/ktls.md, section 10).
//!
//! The vDSO image (the `vdso/` crate, built by build.rs) is embedded here and copied into
//! every new address space at exec, read+execute, with one vvar page right below it, read-only
//! for user space. Both are ordinary pages of the address space, so fork's copy gives the child
//! its own vvar page with the parent's contents, and exec starts from a fresh one.
//!
//! The kernel writes a vvar page through the direct map, under the seqlock (`seq` odd while
//! writing) and with the address space locked, which also keeps two writers apart:
//! * at exec: version, the clock (`time::clock_data`) and `hwcap2`;
//! * when the process fixes its KTLS parameters (rseq.rs): offset, filled size, level and
//!   enabled, the offset first, because the vDSO reads these without the seqlock (they change
//!   once in a page's life; see vdso/src/vvar.rs).

use crate::mm::addrspace::{page_up, AddressSpace, VmaKind};
use crate::mm::frame::Frame;
use crate::mm::phys_to_virt;
use crate::process::Process;
use core::mem::offset_of;
use core::sync::atomic::{fence, Ordering};
use ktls_abi::ktls::{self, ProcessKtls};
use ktls_abi::mm::{PROT_EXEC, PROT_READ};
use ktls_abi::vvar::{
    Vvar, VCLOCK_NONE, VCLOCK_TSC, VVAR_OFFSET_FROM_VDSO, VVAR_SIZE, VVAR_VERSION,
};
use ktls_abi::{Errno, PAGE_SIZE};

/// The vDSO image: a prelinked shared object that runs wherever it is mapped.
static IMAGE: &[u8] = include_bytes!(env!("KTLS_VDSO_IMAGE"));

const _: () = assert!(VVAR_SIZE == PAGE_SIZE && VVAR_OFFSET_FROM_VDSO == -(PAGE_SIZE as i64));

include!(concat!(env!("OUT_DIR"), "/vdso_extable.rs"));

/// Where a user fault at `rip` resumes, if `rip` is one of the vDSO's marked loads (the KTLS
/// getters read through FS, which may point anywhere: vdso/src/ktls.rs). The caller then
/// resumes there instead of signalling, as Linux's `fixup_vdso_exception`.
pub fn fixup(mm: &AddressSpace, rip: u64) -> Option<u64> {
    let vma = mm.find_kind(VmaKind::Vdso)?;
    let offset = rip.checked_sub(vma.start)?;
    let i = EXTABLE
        .binary_search_by_key(&offset, |&(load, _)| load)
        .ok()?;
    Some(vma.start + EXTABLE[i].1)
}

/// Maps the vvar page and the vDSO into a new address space (exec) and returns the vDSO's
/// address, for AT_SYSINFO_EHDR. They go where the first mmap would, as on Linux.
pub fn map(mm: &mut AddressSpace, hwcap2: u64) -> Result<u64, Errno> {
    let image_len = page_up(IMAGE.len() as u64).ok_or(Errno::ENOMEM)?;
    let vvar = mm
        .find_free(VVAR_SIZE as u64 + image_len)
        .ok_or(Errno::ENOMEM)?;
    let base = vvar + VVAR_SIZE as u64;
    mm.add_vma(vvar, base, PROT_READ, VmaKind::Vvar);
    mm.add_vma(base, base + image_len, PROT_READ | PROT_EXEC, VmaKind::Vdso);
    mm.write_bytes(base, IMAGE)?;
    // Fault the vvar page in (zeroed) so that it has a frame to write through.
    mm.write_bytes(vvar, &[0])?;
    let page = VvarPage::of(mm).ok_or(Errno::ENOMEM)?;
    let clock = crate::time::clock_data();
    page.update(|w| {
        w.put(offset_of!(Vvar, version), VVAR_VERSION);
        match clock {
            Some(c) => {
                w.put(offset_of!(Vvar, tsc_shift), c.shift);
                w.put(offset_of!(Vvar, tsc_mult), c.mult);
                w.put(offset_of!(Vvar, base_tsc), c.base_tsc);
                w.put(offset_of!(Vvar, base_mono_ns), c.base_mono_ns);
                w.put(offset_of!(Vvar, realtime_offset_ns), c.realtime_offset_ns);
                w.put(offset_of!(Vvar, clock_mode), VCLOCK_TSC);
            }
            None => w.put(offset_of!(Vvar, clock_mode), VCLOCK_NONE),
        }
        w.put(offset_of!(Vvar, hwcap2), hwcap2 as u32);
    });
    Ok(base)
}

/// Publishes the KTLS parameters process `p` just fixed in its vvar page, with `filled` the
/// size the kernel fills in each of its areas. (They are reset only by exec, which brings a
/// new page.) A process that unmapped its vvar page gets nothing: its vDSO is gone or makes
/// the system calls.
pub fn publish_ktls(p: &Process, params: ProcessKtls, filled: u32) {
    let mm = p.mm();
    let mm = mm.lock();
    let Some(page) = VvarPage::of(&mm) else {
        return;
    };
    page.update(|w| {
        // The offset (and level) before the size and the flag: see the module comment.
        w.put(offset_of!(Vvar, ktls_offset), params.offset);
        w.put(offset_of!(Vvar, ktls_level), ktls::level_for_size(filled));
        fence(Ordering::Release);
        w.put(offset_of!(Vvar, ktls_feature_size), filled);
        w.put(offset_of!(Vvar, ktls_enabled), 1u32);
    });
}

/// The frame of an address space's vvar page, through the direct map.
struct VvarPage(*mut u8);

impl VvarPage {
    /// The vvar page of `mm`, if it still has one mapped.
    fn of(mm: &AddressSpace) -> Option<VvarPage> {
        let vma = mm.find_kind(VmaKind::Vvar)?;
        let Frame(phys) = mm.frame_of(vma.start)?;
        Some(VvarPage(phys_to_virt(phys) as *mut u8))
    }

    /// Runs `f` with the seqlock held: `seq` odd before the first store, even again (and
    /// different from before) after the last. x86 keeps stores in order; the fences keep the
    /// compiler from moving the field stores out of the odd window.
    fn update(&self, f: impl FnOnce(&Self)) {
        let seq = self.get_u32(offset_of!(Vvar, seq));
        self.put(offset_of!(Vvar, seq), seq.wrapping_add(1) | 1);
        fence(Ordering::Release);
        f(self);
        fence(Ordering::Release);
        self.put(offset_of!(Vvar, seq), (seq | 1).wrapping_add(1));
    }

    fn get_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is a u32 field offset of `Vvar` inside the page; see `put`.
        unsafe { self.0.add(off).cast::<u32>().read_volatile() }
    }

    fn put<T: Copy>(&self, off: usize, v: T) {
        debug_assert!(off + size_of::<T>() <= PAGE_SIZE && off.is_multiple_of(align_of::<T>()));
        // SAFETY: the page is a frame of the locked address space that only the kernel
        // writes (it is read-only for user space), `off` is the offset of a field of type `T`
        // in `Vvar`, and volatile stores keep their order for user space reading concurrently.
        unsafe { self.0.add(off).cast::<T>().write_volatile(v) }
    }
}
