//! Raw Linux x86_64 system calls, and typed wrappers for the ones the shim makes.
//!
//! The only unsafe code here is the `syscall` instruction itself and the wrappers whose
//! arguments are addresses the kernel will read or write; each says what it needs.

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use ktls_abi::syscall::*;
use ktls_abi::time::Timespec;
use ktls_abi::Errno;

/// FUTEX_WAIT and FUTEX_WAKE (include/uapi/linux/futex.h; not in `ktls-abi`). Not the
/// `_PRIVATE` variants: the kernel wakes a CLONE_CHILD_CLEARTID word with a shared FUTEX_WAKE,
/// and Linux keys private and shared waits on anonymous memory differently.
pub const FUTEX_WAIT: usize = 0;
pub const FUTEX_WAKE: usize = 1;

/// A raw system call with up to six arguments; returns RAX (`-errno` on failure).
///
/// # Safety
/// The call must be sound for its number and arguments: pointers the kernel dereferences must
/// be valid for what the call does with them, and calls that change the address space, the
/// thread pointer or the process (munmap, arch_prctl, clone, exit...) must not break what the
/// caller's Rust code relies on.
#[inline(always)]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the call; the syscall instruction clobbers RCX and R11 and
    // returns in RAX; the kernel preserves every other register and does not touch our stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Turns a raw return value into `Ok(value)` or `Err(errno)` by Linux's convention (values in
/// `-4095..=-1` are errors).
pub fn result(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// A system call without pointer arguments, which cannot break memory safety.
fn plain(nr: usize, a: [usize; 6]) -> isize {
    // SAFETY: only used below for calls whose arguments are plain numbers (ids, fds with no
    // buffer, flags) and which do not change the address space or the thread pointer.
    unsafe { syscall6(nr, a) }
}

pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads at most buf.len() bytes from buf.
    result(unsafe {
        syscall6(
            SYS_WRITE,
            [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
        )
    })
}

/// Writes all of `buf` (retrying short writes and EINTR), as a diagnostic helper.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes to buf.
    result(unsafe {
        syscall6(
            SYS_READ,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    })
}

/// Ends the whole process (exit_group).
pub fn exit_group(status: i32) -> ! {
    plain(SYS_EXIT_GROUP, [status as usize, 0, 0, 0, 0, 0]);
    // exit_group does not return; should it, the plain exit ends at least this thread.
    exit_thread(status)
}

/// Ends the calling thread only (exit). The kernel then clears and wakes the thread's
/// CLONE_CHILD_CLEARTID word.
pub fn exit_thread(status: i32) -> ! {
    loop {
        plain(SYS_EXIT, [status as usize, 0, 0, 0, 0, 0]);
    }
}

pub fn getpid() -> i32 {
    plain(SYS_GETPID, [0; 6]) as i32
}
pub fn gettid() -> i32 {
    plain(SYS_GETTID, [0; 6]) as i32
}
pub fn getuid() -> u32 {
    plain(SYS_GETUID, [0; 6]) as u32
}
pub fn geteuid() -> u32 {
    plain(SYS_GETEUID, [0; 6]) as u32
}
pub fn getgid() -> u32 {
    plain(SYS_GETGID, [0; 6]) as u32
}
pub fn getegid() -> u32 {
    plain(SYS_GETEGID, [0; 6]) as u32
}
pub fn sched_yield() {
    plain(SYS_SCHED_YIELD, [0; 6]);
}

/// getcpu(2): the CPU and NUMA node the thread runs on.
pub fn getcpu() -> Result<(u32, u32), Errno> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: the kernel writes one u32 to each pointer; the third (the unused cache) is NULL.
    let r = unsafe {
        syscall6(
            SYS_GETCPU,
            [
                &mut cpu as *mut u32 as usize,
                &mut node as *mut u32 as usize,
                0,
                0,
                0,
                0,
            ],
        )
    };
    result(r).map(|_| (cpu, node))
}

pub fn clock_gettime(clock: i32, ts: &mut Timespec) -> Result<(), Errno> {
    // SAFETY: the kernel writes one struct timespec to ts.
    result(unsafe {
        syscall6(
            SYS_CLOCK_GETTIME,
            [
                clock as isize as usize,
                ts as *mut Timespec as usize,
                0,
                0,
                0,
                0,
            ],
        )
    })
    .map(|_| ())
}

/// Anonymous private read-write memory of `len` bytes (zeroed, page-aligned).
pub fn mmap_anon(len: usize) -> Result<*mut u8, Errno> {
    use ktls_abi::mm::*;
    let flags = (MAP_PRIVATE | MAP_ANONYMOUS) as usize;
    let prot = (PROT_READ | PROT_WRITE) as usize;
    // SAFETY: a new anonymous mapping at an address the kernel chooses cannot overlap memory
    // the program uses.
    result(unsafe { syscall6(SYS_MMAP, [0, len, prot, flags, usize::MAX, 0]) })
        .map(|a| a as *mut u8)
}

/// # Safety
/// Nothing may use `[addr, addr + len)` afterwards.
pub unsafe fn munmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller gives the range up.
    result(unsafe { syscall6(SYS_MUNMAP, [addr as usize, len, 0, 0, 0, 0]) }).map(|_| ())
}

/// Makes `[addr, addr + len)` inaccessible (a stack guard page).
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn mprotect_none(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller gives the range up.
    result(unsafe {
        syscall6(
            SYS_MPROTECT,
            [
                addr as usize,
                len,
                ktls_abi::mm::PROT_NONE as usize,
                0,
                0,
                0,
            ],
        )
    })
    .map(|_| ())
}

/// arch_prctl(ARCH_SET_FS, base): sets the calling thread's thread pointer.
///
/// # Safety
/// `base` must point at a TCB that stays valid as long as the thread uses its TLS.
pub unsafe fn set_fs_base(base: usize) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the new thread pointer.
    result(unsafe {
        syscall6(
            SYS_ARCH_PRCTL,
            [ktls_abi::prctl::ARCH_SET_FS as usize, base, 0, 0, 0, 0],
        )
    })
    .map(|_| ())
}

/// rseq(2), plain or with RSEQ_FLAG_KTLS.
///
/// # Safety
/// On success the kernel writes `[area, area + len)` until the thread exits or unregisters:
/// the range must stay reserved for it that long.
pub unsafe fn rseq(area: usize, len: u32, flags: u32, sig: u32) -> Result<(), Errno> {
    // SAFETY: the caller reserves the area for the kernel.
    result(unsafe {
        syscall6(
            SYS_RSEQ,
            [area, len as usize, flags as usize, sig as usize, 0, 0],
        )
    })
    .map(|_| ())
}

/// Waits while `*word == val` (FUTEX_WAIT without timeout). Spurious wake-ups happen.
pub fn futex_wait(word: &AtomicU32, val: u32) {
    // SAFETY: the kernel only reads the u32 behind the reference.
    unsafe {
        syscall6(
            SYS_FUTEX,
            [word.as_ptr() as usize, FUTEX_WAIT, val as usize, 0, 0, 0],
        );
    }
}

/// Wakes up to `n` waiters on `word`.
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE does not access the word's memory, only its address.
    unsafe {
        syscall6(
            SYS_FUTEX,
            [word.as_ptr() as usize, FUTEX_WAKE, n as usize, 0, 0, 0],
        );
    }
}

/// tgkill(getpid(), gettid(), sig).
pub fn raise(sig: u32) {
    plain(
        SYS_TGKILL,
        [getpid() as usize, gettid() as usize, sig as usize, 0, 0, 0],
    );
}
