//! The vDSO: found through AT_SYSINFO_EHDR, parsed once at startup ([`init`]), its functions
//! called through the pointers found then. Linux's vDSO has `__vdso_clock_gettime`,
//! `__vdso_getcpu`, ... (version `LINUX_2.6`); ktls's adds the KTLS accessors
//! `__vdso_gettid`, `__vdso_getpid`, `__vdso_getuid`, `__vdso_geteuid`, `__vdso_getgid`,
//! `__vdso_getegid` (version `KTLS_1`, spec/ktls.md section 10). Every function here returns
//! `None` when the vDSO or the symbol is not there, and the caller makes the system call.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ktls_abi::time::Timespec;

use crate::elf::{self, Dso};

/// Linux's vDSO symbol version.
pub const LINUX_2_6: &str = "LINUX_2.6";
/// ktls's KTLS accessors' symbol version.
pub const KTLS_1: &str = "KTLS_1";

/// The symbols the shim looks up at startup, in [`Sym`] order.
const SYMS: [(&str, &str); 11] = [
    ("__vdso_gettid", KTLS_1),
    ("__vdso_getpid", KTLS_1),
    ("__vdso_getuid", KTLS_1),
    ("__vdso_geteuid", KTLS_1),
    ("__vdso_getgid", KTLS_1),
    ("__vdso_getegid", KTLS_1),
    ("__vdso_getcpu", LINUX_2_6),
    ("__vdso_clock_gettime", LINUX_2_6),
    ("__vdso_clock_getres", LINUX_2_6),
    ("__vdso_gettimeofday", LINUX_2_6),
    ("__vdso_time", LINUX_2_6),
];

/// Index into the startup table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sym {
    Gettid = 0,
    Getpid,
    Getuid,
    Geteuid,
    Getgid,
    Getegid,
    Getcpu,
    ClockGettime,
    ClockGetres,
    Gettimeofday,
    Time,
}

impl Sym {
    pub fn name(self) -> &'static str {
        SYMS[self as usize].0
    }
    pub fn version(self) -> &'static str {
        SYMS[self as usize].1
    }
}

static BASE: AtomicUsize = AtomicUsize::new(0);
static LEN: AtomicUsize = AtomicUsize::new(0);
static FNS: [AtomicUsize; SYMS.len()] = [const { AtomicUsize::new(0) }; SYMS.len()];

/// The vDSO image at `base` (AT_SYSINFO_EHDR), as a byte slice.
mod image {
    use crate::elf;

    /// The mapped image of the vDSO whose ELF header is at `base`, or `None` if it does not
    /// look like one.
    ///
    /// # Safety
    /// `base` must be the AT_SYSINFO_EHDR the kernel passed: the start of a mapped, readable,
    /// never unmapped ELF image of at least one page (the kernel maps the vDSO whole).
    pub unsafe fn at(base: usize, page: usize) -> Option<&'static [u8]> {
        if base == 0 || !base.is_multiple_of(page) {
            return None;
        }
        // SAFETY: the vDSO is at least one readable page, per the caller.
        let head = unsafe { core::slice::from_raw_parts(base as *const u8, page) };
        let len = elf::mapped_len(head)?;
        // SAFETY: every PT_LOAD of the vDSO is mapped contiguously from its header (the kernel
        // maps the image as a whole), so the first `len` bytes are readable.
        Some(unsafe { core::slice::from_raw_parts(base as *const u8, len.max(page)) })
    }
}

/// Parses the vDSO at `base` and records the functions of [`Sym`]. Call once, before threads.
///
/// # Safety
/// As [`image::at`]: `base` is AT_SYSINFO_EHDR (or 0: no vDSO).
pub unsafe fn init(base: usize, page: usize) {
    // SAFETY: per this function's contract.
    let Some(data) = (unsafe { image::at(base, page) }) else {
        return;
    };
    let Some(dso) = Dso::parse(data) else {
        return;
    };
    BASE.store(base, Relaxed);
    LEN.store(data.len(), Relaxed);
    for (slot, (name, version)) in FNS.iter().zip(SYMS) {
        if let Some(off) = dso.lookup(name.as_bytes(), version.as_bytes()) {
            slot.store(base + off, Relaxed);
        }
    }
}

/// The vDSO's image, if [`init`] found one.
pub fn image() -> Option<&'static [u8]> {
    let (base, len) = (BASE.load(Relaxed), LEN.load(Relaxed));
    if base == 0 {
        return None;
    }
    // SAFETY: init checked this range is the mapped vDSO image, which stays mapped.
    Some(unsafe { core::slice::from_raw_parts(base as *const u8, len) })
}

/// Looks up any symbol of the vDSO: its address.
pub fn lookup(name: &[u8], version: &[u8]) -> Option<usize> {
    let data = image()?;
    let off = Dso::parse(data)?.lookup(name, version)?;
    Some(data.as_ptr() as usize + off)
}

/// Like [`lookup`], through one hash table only (for tests).
pub fn lookup_with(kind: elf::HashKind, name: &[u8], version: &[u8]) -> Option<usize> {
    let data = image()?;
    let off = Dso::parse(data)?.lookup_with(kind, name, version)?;
    Some(data.as_ptr() as usize + off)
}

/// The address of a startup symbol, if the vDSO has it.
pub fn addr(s: Sym) -> Option<usize> {
    match FNS[s as usize].load(Relaxed) {
        0 => None,
        a => Some(a),
    }
}

/// Calls to the vDSO's functions with their C signatures.
mod call {
    use super::{addr, Sym};
    use ktls_abi::time::Timespec;

    pub fn id(s: Sym) -> Option<u32> {
        let f = addr(s)?;
        // SAFETY: the KTLS accessors are `pid_t f(void)` / `uid_t f(void)` (spec/ktls.md
        // section 10), found under their names and version in the vDSO, which stays mapped.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(f) };
        Some(f())
    }

    pub fn getcpu() -> Option<(u32, u32, i32)> {
        let f = addr(Sym::Getcpu)?;
        // SAFETY: Linux's `long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)`.
        let f: extern "C" fn(*mut u32, *mut u32, *mut u8) -> i64 =
            unsafe { core::mem::transmute(f) };
        let (mut cpu, mut node) = (0u32, 0u32);
        let r = f(&mut cpu, &mut node, core::ptr::null_mut());
        Some((cpu, node, r as i32))
    }

    pub fn clock_gettime(clock: i32, ts: &mut Timespec) -> Option<i32> {
        let f = addr(Sym::ClockGettime)?;
        // SAFETY: Linux's `int __vdso_clock_gettime(clockid_t, struct __kernel_timespec *)`;
        // it writes one timespec (or, for a bad clock, returns -EINVAL and writes nothing).
        let f: extern "C" fn(i32, *mut Timespec) -> i64 = unsafe { core::mem::transmute(f) };
        Some(f(clock, ts) as i32)
    }
}

/// `__vdso_gettid()` etc.: one of the KTLS id accessors.
pub fn id(s: Sym) -> Option<u32> {
    debug_assert!((s as usize) <= Sym::Getegid as usize);
    call::id(s)
}

/// `__vdso_getcpu`: `Ok((cpu, node))`, or the negative errno it returned.
pub fn getcpu() -> Option<Result<(u32, u32), i32>> {
    let (cpu, node, r) = call::getcpu()?;
    Some(if r == 0 { Ok((cpu, node)) } else { Err(r) })
}

/// `__vdso_clock_gettime`: 0 or a negative errno.
pub fn clock_gettime(clock: i32, ts: &mut Timespec) -> Option<i32> {
    call::clock_gettime(clock, ts)
}
