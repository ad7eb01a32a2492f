//! Ids, CPU and clocks, each the fastest way available: a raw load from the thread's KTLS
//! area when the field is present (`__ktls_size` reaches its end) and the area is live, else
//! the vDSO, else the system call.

use core::mem::offset_of;
use core::sync::atomic::Ordering::Relaxed;

use ktls_abi::ktls::KtlsArea;
use ktls_abi::rseq::Rseq;
use ktls_abi::time::Timespec;
use ktls_abi::Errno;

use crate::rt::{KTLS_OFFSET, KTLS_SIZE, RSEQ_OFFSET, RSEQ_SIZE};
use crate::vdso::{self, Sym};
use crate::{sys, tp};

/// Offsets of the fields the readers use, from the `ktls-abi` crate.
pub mod off {
    use super::*;
    pub const CPU_ID: u32 = (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, cpu_id)) as u32;
    pub const KTLS_LIVE: u32 = offset_of!(KtlsArea, ktls_live) as u32;
    pub const TID: u32 = offset_of!(KtlsArea, tid) as u32;
    pub const PID: u32 = offset_of!(KtlsArea, pid) as u32;
    pub const UID: u32 = offset_of!(KtlsArea, uid) as u32;
    pub const EUID: u32 = offset_of!(KtlsArea, euid) as u32;
    pub const GID: u32 = offset_of!(KtlsArea, gid) as u32;
    pub const EGID: u32 = offset_of!(KtlsArea, egid) as u32;
    pub const SIG_DEFER: u32 = offset_of!(KtlsArea, sig_defer) as u32;
    pub const SIG_PENDING: u32 = offset_of!(KtlsArea, sig_pending) as u32;
}

/// `__ktls_size`: how many bytes of every area the kernel fills (0: no KTLS).
pub fn ktls_size() -> u32 {
    KTLS_SIZE.load(Relaxed)
}

/// `__ktls_offset`: the area's offset from the thread pointer.
pub fn ktls_offset() -> isize {
    KTLS_OFFSET.load(Relaxed) as isize
}

/// Whether the 4-byte field at `off` is present (the extension rule of spec/ktls.md
/// section 5).
pub fn has(off: u32) -> bool {
    ktls_size() >= off + 4
}

/// The raw KTLS load of the 4-byte field at `off`: `Some` when the field is present and the
/// calling thread's area is live (`ktls_live` != 0), else `None` (use another way).
pub fn read(off: u32) -> Option<u32> {
    if !has(off) || !has(off::KTLS_LIVE) {
        return None;
    }
    let base = ktls_offset();
    // SAFETY: __ktls_size is nonzero only after the shim registered the main thread's area,
    // and every thread the shim creates has its area (zeroed, then kernel-filled) at this
    // offset from its thread pointer; the field lies within the filled size.
    unsafe {
        if tp::load_u32(base + off::KTLS_LIVE as isize) == 0 {
            return None;
        }
        Some(tp::load_u32(base + off as isize))
    }
}

/// The rseq area's `cpu_id` (the same memory as a KTLS area's head): `Some` while the thread
/// is registered (plain rseq on Linux too).
pub fn rseq_cpu() -> Option<u32> {
    if RSEQ_SIZE.load(Relaxed) < off::CPU_ID + 4 {
        return None;
    }
    // SAFETY: __rseq_size is nonzero only after the main thread registered its rseq area at
    // __rseq_offset; every thread has that area reserved (registered or marked failed).
    let cpu = unsafe { tp::load_u32(RSEQ_OFFSET.load(Relaxed) as isize + off::CPU_ID as isize) };
    // RSEQ_CPU_ID_UNINITIALIZED (-1) and _REGISTRATION_FAILED (-2) are not CPUs.
    (cpu < 0x8000_0000).then_some(cpu)
}

fn id(off: u32, vdso: Sym, syscall: fn() -> u32) -> u32 {
    read(off).or_else(|| vdso::id(vdso)).unwrap_or_else(syscall)
}

pub fn gettid() -> i32 {
    id(off::TID, Sym::Gettid, || sys::gettid() as u32) as i32
}
pub fn getpid() -> i32 {
    id(off::PID, Sym::Getpid, || sys::getpid() as u32) as i32
}
pub fn getuid() -> u32 {
    id(off::UID, Sym::Getuid, sys::getuid)
}
pub fn geteuid() -> u32 {
    id(off::EUID, Sym::Geteuid, sys::geteuid)
}
pub fn getgid() -> u32 {
    id(off::GID, Sym::Getgid, sys::getgid)
}
pub fn getegid() -> u32 {
    id(off::EGID, Sym::Getegid, sys::getegid)
}

/// sched_getcpu: the vDSO's `__vdso_getcpu` when there, else getcpu(2).
pub fn sched_getcpu() -> Result<u32, Errno> {
    match vdso::getcpu() {
        Some(Ok((cpu, _))) => Ok(cpu),
        Some(Err(_)) | None => sys::getcpu().map(|(cpu, _)| cpu),
    }
}

/// The CPU from the KTLS area (`cpu_id`, present in every live area), else [`sched_getcpu`].
pub fn ktls_cpu() -> Result<u32, Errno> {
    match read(off::CPU_ID) {
        Some(cpu) => Ok(cpu),
        None => sched_getcpu(),
    }
}

/// clock_gettime: the vDSO's `__vdso_clock_gettime` when there, else the system call.
pub fn clock_gettime(clock: i32, ts: &mut Timespec) -> Result<(), Errno> {
    match vdso::clock_gettime(clock, ts) {
        Some(0) => Ok(()),
        Some(e) if e < 0 => Err(Errno(-e)),
        _ => sys::clock_gettime(clock, ts),
    }
}
