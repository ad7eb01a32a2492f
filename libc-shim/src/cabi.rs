//! The C functions the shim exports (declared in include/ktls.h): thin wrappers that turn the
//! Rust API's results into C's conventions (-1 and `errno`).
//!
//! In the host tests these are ordinary Rust functions with the same bodies: exporting `read`,
//! `malloc` or `exit` there would replace glibc's in the test process.

use core::arch::global_asm;
use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

use ktls_abi::time::Timespec;
use ktls_abi::Errno;

use crate::{auxv, ids, malloc, sys, thread};

/// Sets the calling thread's `errno`.
pub fn set_errno(e: Errno) {
    #[cfg(not(test))]
    if crate::rt::get().is_some() {
        // SAFETY: after startup every thread's FS points at one of our TCBs.
        unsafe { crate::tp::store_u32(crate::layout::tcb::ERRNO as isize, e.0 as u32) };
    }
    #[cfg(test)]
    // SAFETY: glibc's errno of the calling thread.
    unsafe {
        *libc::__errno_location() = e.0
    };
}

/// `int *__errno_location(void)`: where the calling thread's `errno` lives (in its TCB).
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn __errno_location() -> *mut c_int {
    (crate::tp::tp() + crate::layout::tcb::ERRNO) as *mut c_int
}

fn ret_ssize(r: Result<usize, Errno>) -> isize {
    r.map_or_else(
        |e| {
            set_errno(e);
            -1
        },
        |n| n as isize,
    )
}

/// # Safety
/// `buf` is writable for `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize {
    // SAFETY: the kernel writes at most n bytes to buf (per the caller); an empty or bad
    // buffer is the kernel's to reject with EFAULT, never dereferenced here.
    ret_ssize(sys::result(unsafe {
        sys::syscall6(
            ktls_abi::syscall::SYS_READ,
            [fd as usize, buf as usize, n, 0, 0, 0],
        )
    }))
}

/// # Safety
/// `buf` is readable for `n` bytes.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: usize) -> isize {
    // SAFETY: as for read; the kernel only reads the buffer.
    ret_ssize(sys::result(unsafe {
        sys::syscall6(
            ktls_abi::syscall::SYS_WRITE,
            [fd as usize, buf as usize, n, 0, 0, 0],
        )
    }))
}

/// `exit`: runs the program's destructors, then ends the process.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn exit(status: c_int) -> ! {
    crate::start::exit(status)
}

/// `_exit` / `_Exit`: ends the process at once.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn _exit(status: c_int) -> ! {
    sys::exit_group(status)
}

#[cfg_attr(not(test), export_name = "_Exit")]
pub extern "C" fn exit_immediately(status: c_int) -> ! {
    sys::exit_group(status)
}

/// `abort`: SIGABRT, and should that be caught or ignored, exit status 134 anyway.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn abort() -> ! {
    sys::raise(ktls_abi::signal::SIGABRT);
    sys::exit_group(128 + ktls_abi::signal::SIGABRT as i32)
}

/// Called by code built with `-fstack-protector` when the canary at `%fs:0x28` changed.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn __stack_chk_fail() -> ! {
    let _ = sys::write_all(2, b"*** stack smashing detected ***: terminated\n");
    abort()
}

#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn getpid() -> c_int {
    ids::getpid()
}
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn gettid() -> c_int {
    ids::gettid()
}
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn getuid() -> c_uint {
    ids::getuid()
}
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn geteuid() -> c_uint {
    ids::geteuid()
}
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn getgid() -> c_uint {
    ids::getgid()
}
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn getegid() -> c_uint {
    ids::getegid()
}

/// `int sched_getcpu(void)`: the vDSO's `__vdso_getcpu` when there, else getcpu(2).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn sched_getcpu() -> c_int {
    match ids::sched_getcpu() {
        Ok(cpu) => cpu as c_int,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `int clock_gettime(clockid_t, struct timespec *)`: the vDSO when there, else the syscall.
///
/// # Safety
/// `ts` is writable for one `struct timespec`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int {
    if ts.is_null() {
        set_errno(Errno::EFAULT);
        return -1;
    }
    // SAFETY: per the caller.
    match ids::clock_gettime(clock, unsafe { &mut *ts }) {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// `unsigned long getauxval(unsigned long)`: 0 (and ENOENT) for a key the kernel did not send.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn getauxval(key: c_ulong) -> c_ulong {
    auxv::get(key).unwrap_or_else(|| {
        set_errno(Errno::ENOENT);
        0
    })
}

#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let p = malloc::malloc(size);
    if p.is_null() {
        set_errno(Errno::ENOMEM);
    }
    p.cast()
}

/// # Safety
/// `p` is null or a live block of this allocator, not used afterwards.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: per the caller.
    unsafe { malloc::free(p.cast()) }
}

#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let p = malloc::calloc(n, size);
    if p.is_null() {
        set_errno(Errno::ENOMEM);
    }
    p.cast()
}

/// # Safety
/// As [`free`] for `p`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: per the caller.
    let q = unsafe { malloc::realloc(p.cast(), size) };
    if q.is_null() && size != 0 {
        set_errno(Errno::ENOMEM);
    }
    q.cast()
}

#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    let p = malloc::aligned_alloc(align, size);
    if p.is_null() {
        set_errno(if align.is_power_of_two() {
            Errno::ENOMEM
        } else {
            Errno::EINVAL
        });
    }
    p.cast()
}

/// # Safety
/// `out` is writable.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align < core::mem::size_of::<usize>() {
        return Errno::EINVAL.0;
    }
    let p = malloc::aligned_alloc(align, size);
    if p.is_null() {
        return Errno::ENOMEM.0;
    }
    // SAFETY: per the caller.
    unsafe { *out = p.cast() };
    0
}

/// # Safety
/// `p` is null or a live block of this allocator.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        0
    } else {
        // SAFETY: per the caller.
        unsafe { malloc::usable_size(p.cast()) }
    }
}

/// `int ktls_thread_create(ktls_thread_t *out, void *(*fn)(void *), void *arg)`: 0, or an
/// errno value (as pthread_create).
///
/// # Safety
/// `out` is writable.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ktls_thread_create(
    out: *mut *mut thread::Thread,
    start: thread::StartFn,
    arg: *mut c_void,
) -> c_int {
    match thread::spawn(start, arg) {
        Ok(t) => {
            // SAFETY: per the caller.
            unsafe { *out = t };
            0
        }
        Err(e) => e.0,
    }
}

/// `int ktls_thread_join(ktls_thread_t t, void **ret)`: waits for `t`; stores what its
/// function returned in `*ret` unless `ret` is null; 0.
///
/// # Safety
/// `t` came from ktls_thread_create and is joined once; `ret` is null or writable.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ktls_thread_join(t: *mut thread::Thread, ret: *mut *mut c_void) -> c_int {
    if t.is_null() {
        return Errno::EINVAL.0;
    }
    // SAFETY: per the caller.
    let r = unsafe { thread::join(t) };
    if !ret.is_null() {
        // SAFETY: per the caller.
        unsafe { *ret = r };
    }
    0
}

/// `void ktls_thread_exit(void *ret)`: ends the calling thread (the process, in main).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn ktls_thread_exit(ret: *mut c_void) -> ! {
    thread::exit(ret)
}

/// `ktls_thread_t ktls_thread_self(void)`: the calling thread's handle, NULL in main.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn ktls_thread_self() -> *mut thread::Thread {
    thread::current()
}

/// `int ktls_thread_registration(void)`: how the calling thread's area was registered
/// (`KTLS_REG_*`).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn ktls_thread_registration() -> c_int {
    thread::current_registration() as c_int
}

/// `void *ktls_vdso_sym(const char *name, const char *version)`: a vDSO symbol's address,
/// NULL if there is no vDSO or no such symbol of that version.
///
/// # Safety
/// Both are C strings.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ktls_vdso_sym(name: *const c_char, version: *const c_char) -> *mut c_void {
    // SAFETY: per the caller.
    let (n, v) = unsafe {
        (
            crate::printf::cstr(name.cast()),
            crate::printf::cstr(version.cast()),
        )
    };
    crate::vdso::lookup(n, v).map_or(core::ptr::null_mut(), |a| a as *mut c_void)
}

/// `unsigned ktls_level_built_with(void)`: the KTLS level the library was built for.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn ktls_level_built_with() -> c_uint {
    crate::layout::LEVEL_BUILT_WITH
}

/// Sets errno from a failed raw system call and returns -1 (for `syscall` below).
extern "C" fn syscall_error(ret: c_long) -> c_long {
    set_errno(Errno(-ret as i32));
    -1
}

// `long ktls_syscall(long nr, ...)`, and `syscall` outside the host tests: glibc's and musl's
// `syscall(3)`: number and up to six arguments in, -1 and errno on failure.
global_asm!(
    ".globl ktls_syscall",
    ".type ktls_syscall,@function",
    "ktls_syscall:",
    "mov %rdi, %rax",
    "mov %rsi, %rdi",
    "mov %rdx, %rsi",
    "mov %rcx, %rdx",
    "mov %r8, %r10",
    "mov %r9, %r8",
    "mov 8(%rsp), %r9",
    "syscall",
    "cmp $-4095, %rax",
    "jae 1f",
    "ret",
    "1:",
    "mov %rax, %rdi",
    "jmp {err}",
    ".size ktls_syscall, .-ktls_syscall",
    err = sym syscall_error,
    options(att_syntax),
);

#[cfg(not(test))]
global_asm!(
    ".globl syscall",
    ".type syscall,@function",
    ".set syscall, ktls_syscall",
    options(att_syntax)
);
