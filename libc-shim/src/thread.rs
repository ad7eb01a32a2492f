//! Threads: `ktls_thread_create` / `ktls_thread_join`.
//!
//! Each thread gets one mapping: a guard page, its stack, its block (TLS image copy, TCB,
//! KTLS area) and its control block [`Thread`]. It is created with clone3 and CLONE_VM |
//! CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
//! CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID, plus CLONE_RSEQ_KTLS when the process uses KTLS,
//! so the kernel registers and fills the area before the thread's first instruction. When the
//! kernel refuses the flag (EINVAL: a kernel without it; ENOSYS: clone3 filtered), the thread is
//! created without it (clone3, or clone(2) if clone3 is ENOSYS) and registers its area itself
//! first thing. On Linux (no KTLS) every thread registers a plain rseq area. Joining waits on
//! the tid word, which the kernel clears and wakes at the thread's exit (CLONE_CHILD_CLEARTID),
//! then unmaps the thread's memory.

use core::arch::global_asm;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use ktls_abi::clone::{CloneArgs, CloneFlags, CLONE_ARGS_SIZE_VER0};
use ktls_abi::Errno;

use crate::layout::{self, align_up, tcb, Registration};
use crate::rt::{self, Runtime};
use crate::{sys, tls, tp};

/// Stack size of a new thread (the mapping is lazy; the kernel backs what is touched).
pub const STACK_SIZE: usize = 512 * 1024;

/// The entry function of a thread: C's `void *(*)(void *)`.
pub type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;

/// A thread's control block (`ktls_thread_t` points at it), at the end of its mapping.
#[repr(C)]
pub struct Thread {
    /// The thread's id while it runs: set by the kernel (CLONE_PARENT_SETTID) before clone3
    /// returns in the creator, cleared and futex-woken by the kernel when the thread has
    /// exited (CLONE_CHILD_CLEARTID).
    tid: AtomicU32,
    /// A [`Registration`]: what the new thread does about its area, then what it got.
    registration: AtomicU32,
    start: StartFn,
    arg: *mut c_void,
    ret: AtomicUsize,
    map: usize,
    map_len: usize,
}

/// Whether clone3 takes CLONE_RSEQ_KTLS; cleared at the first EINVAL or ENOSYS.
static CLONE_RSEQ_KTLS_OK: AtomicBool = AtomicBool::new(true);
/// Makes every thread register its own area with rseq(2) instead of asking clone3 for
/// CLONE_RSEQ_KTLS: what happens on a KTLS kernel without the flag. Startup calls it when the
/// environment has `KTLS_SHIM_NO_CLONE_RSEQ_KTLS=1` (to exercise that path on ktls).
pub fn disable_clone_rseq_ktls() {
    CLONE_RSEQ_KTLS_OK.store(false, Ordering::Relaxed);
}

/// Whether clone3 exists; cleared at the first ENOSYS (then clone(2) is used).
static CLONE3_OK: AtomicBool = AtomicBool::new(true);

const BASE_FLAGS: u64 = CloneFlags::VM.bits()
    | CloneFlags::FS.bits()
    | CloneFlags::FILES.bits()
    | CloneFlags::SIGHAND.bits()
    | CloneFlags::THREAD.bits()
    | CloneFlags::SYSVSEM.bits()
    | CloneFlags::SETTLS.bits()
    | CloneFlags::PARENT_SETTID.bits()
    | CloneFlags::CHILD_CLEARTID.bits();

// The raw clone calls. In the child (RAX = 0) they continue on the new stack, whose top word
// is the Thread pointer, into `thread_entry`; in the creator they return RAX.
//
//   long __ktls_clone3_raw(struct clone_args *args, size_t size)
//   long __ktls_clone_raw(unsigned long flags, void *sp, int *ptid, int *ctid, unsigned long tls)
global_asm!(
    ".globl __ktls_clone3_raw",
    ".type __ktls_clone3_raw,@function",
    "__ktls_clone3_raw:",
    "mov $435, %eax",
    "syscall",
    "test %rax, %rax",
    "jz 1f",
    "ret",
    ".size __ktls_clone3_raw, .-__ktls_clone3_raw",
    ".globl __ktls_clone_raw",
    ".type __ktls_clone_raw,@function",
    "__ktls_clone_raw:",
    "mov %rcx, %r10",
    "mov $56, %eax",
    "syscall",
    "test %rax, %rax",
    "jz 1f",
    "ret",
    ".size __ktls_clone_raw, .-__ktls_clone_raw",
    // The child: no frame to return to; the stack top holds the Thread pointer and is 16-byte
    // aligned, so the call leaves the ABI's alignment for the callee.
    "1:",
    "xor %ebp, %ebp",
    "mov (%rsp), %rdi",
    "call {entry}",
    "ud2",
    entry = sym thread_entry,
    options(att_syntax),
);

extern "C" {
    fn __ktls_clone3_raw(args: *mut CloneArgs, size: usize) -> isize;
    fn __ktls_clone_raw(flags: u64, sp: usize, ptid: *mut u32, ctid: *mut u32, tls: usize)
        -> isize;
}

/// The new thread's first Rust code, on its own stack with its own thread pointer.
extern "C" fn thread_entry(t: *mut Thread) -> ! {
    // SAFETY: the creator passed its live control block, which stays mapped until joined.
    let t = unsafe { &*t };
    let rt = rt::get().expect("threads exist only after startup");
    let want = Registration::from_u32(t.registration.load(Ordering::Relaxed));
    let got = match want {
        Registration::KtlsClone3 if crate::ids::read(crate::ids::off::KTLS_LIVE).is_some() => {
            Registration::KtlsClone3
        }
        // A kernel that took the flag but left the area unregistered: register it here.
        Registration::KtlsClone3 => unsafe_register(rt, Registration::KtlsRseq),
        other => unsafe_register(rt, other),
    };
    t.registration.store(got as u32, Ordering::Relaxed);
    // SAFETY: the TCB slot is this thread's own.
    unsafe { tp::store_u32(tcb::REGISTRATION as isize, got as u32) };
    let ret = (t.start)(t.arg);
    t.ret.store(ret as usize, Ordering::Release);
    sys::exit_thread(0)
}

fn unsafe_register(rt: &Runtime, mode: Registration) -> Registration {
    // SAFETY: this thread's FS points at the block the creator built from `rt`; its area is
    // zeroed and stays mapped until the thread has exited and been joined.
    unsafe { rt::register_self(rt, mode) }
}

/// Creates a thread running `start(arg)`; returns its control block.
pub fn spawn(start: StartFn, arg: *mut c_void) -> Result<*mut Thread, Errno> {
    let rt = rt::get().ok_or(Errno::EAGAIN)?;
    let map = layout::thread_map(
        &rt.block,
        STACK_SIZE,
        rt.page,
        core::mem::size_of::<Thread>(),
    );
    let base = sys::mmap_anon(map.len)? as usize;
    let stack_top = base + map.stack_top;
    let block = align_up(stack_top, rt.block.tp_align);
    let ctl = align_up(block + rt.block.size, 64);
    let sp = stack_top - 16;
    // SAFETY: all of it is inside the fresh mapping, which belongs to the new thread: the
    // guard page is given up, the block is zeroed memory of the right size and alignment, the
    // control block and the initial stack word are ours to write.
    let (tp, t) = unsafe {
        let _ = sys::mprotect_none(base as *mut u8, map.guard);
        let tp = tls::init_block(rt, block, ctl);
        let t = ctl as *mut Thread;
        t.write(Thread {
            tid: AtomicU32::new(0),
            registration: AtomicU32::new(0),
            start,
            arg,
            ret: AtomicUsize::new(0),
            map: base,
            map_len: map.len,
        });
        (sp as *mut usize).write(ctl);
        (tp, t)
    };
    // SAFETY: t was just written.
    let tr = unsafe { &*t };
    let tid_ptr = tr.tid.as_ptr();
    let self_reg = match rt.mode {
        Registration::KtlsRseq | Registration::KtlsClone3 => Registration::KtlsRseq,
        other => other,
    };
    let mut result = Err(Errno::ENOSYS);
    if rt.mode == Registration::KtlsRseq
        && CLONE3_OK.load(Ordering::Relaxed)
        && CLONE_RSEQ_KTLS_OK.load(Ordering::Relaxed)
    {
        tr.registration
            .store(Registration::KtlsClone3 as u32, Ordering::Relaxed);
        result = clone3(
            BASE_FLAGS | CloneFlags::RSEQ_KTLS.bits(),
            base,
            map.guard,
            sp,
            tp,
            tid_ptr,
        );
        if let Err(Errno::EINVAL | Errno::ENOSYS) = result {
            CLONE_RSEQ_KTLS_OK.store(false, Ordering::Relaxed);
        }
    }
    if let Err(Errno::EINVAL | Errno::ENOSYS) = result {
        tr.registration.store(self_reg as u32, Ordering::Relaxed);
        if CLONE3_OK.load(Ordering::Relaxed) {
            result = clone3(BASE_FLAGS, base, map.guard, sp, tp, tid_ptr);
            if result == Err(Errno::ENOSYS) {
                CLONE3_OK.store(false, Ordering::Relaxed);
            }
        }
        if result == Err(Errno::ENOSYS) {
            // SAFETY: a thread on the prepared stack and block, as for clone3.
            result = sys::result(unsafe { __ktls_clone_raw(BASE_FLAGS, sp, tid_ptr, tid_ptr, tp) })
                .map(|_| ());
        }
    }
    match result {
        Ok(()) => Ok(t),
        Err(e) => {
            // SAFETY: no thread was created; the mapping is still only ours.
            let _ = unsafe { sys::munmap(base as *mut u8, map.len) };
            Err(e)
        }
    }
}

fn clone3(
    flags: u64,
    base: usize,
    guard: usize,
    sp: usize,
    tp: usize,
    tid: *mut u32,
) -> Result<(), Errno> {
    let mut args = CloneArgs {
        flags,
        child_tid: tid as u64,
        parent_tid: tid as u64,
        stack: (base + guard) as u64,
        stack_size: (sp - base - guard) as u64,
        tls: tp as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the new thread starts on the prepared stack (sp = stack + stack_size holds its
    // Thread pointer) with the prepared thread pointer, and jumps straight to thread_entry; it
    // shares nothing with this frame.
    sys::result(unsafe { __ktls_clone3_raw(&mut args, CLONE_ARGS_SIZE_VER0) }).map(|_| ())
}

/// Waits for the thread to exit, frees its memory and returns what its function returned.
///
/// # Safety
/// `t` came from [`spawn`] and is joined once.
pub unsafe fn join(t: *mut Thread) -> *mut c_void {
    // SAFETY: per the caller, t is live until we unmap it below.
    let tr = unsafe { &*t };
    loop {
        let tid = tr.tid.load(Ordering::Acquire);
        if tid == 0 {
            break;
        }
        sys::futex_wait(&tr.tid, tid);
    }
    let ret = tr.ret.load(Ordering::Acquire) as *mut c_void;
    let (map, len) = (tr.map, tr.map_len);
    // SAFETY: the thread has exited (the kernel cleared its tid word after it stopped using
    // its stack and dropped its area's registration); nobody uses the mapping any more.
    let _ = unsafe { sys::munmap(map as *mut u8, len) };
    ret
}

/// How the given thread's area was registered (after it started).
pub fn registration_of(t: &Thread) -> Registration {
    Registration::from_u32(t.registration.load(Ordering::Relaxed))
}

/// How the calling thread's area was registered.
pub fn current_registration() -> Registration {
    if rt::get().is_none() {
        return Registration::None;
    }
    // SAFETY: after startup every thread's FS points at one of our TCBs.
    Registration::from_u32(unsafe { tp::load_u32(tcb::REGISTRATION as isize) })
}

/// The calling thread's control block (null for the main thread).
pub fn current() -> *mut Thread {
    if rt::get().is_none() {
        return core::ptr::null_mut();
    }
    // SAFETY: as in current_registration.
    unsafe { tp::load_u64(tcb::THREAD as isize) as *mut Thread }
}

/// Ends the calling thread with `ret` as its result (the main thread ends the process).
pub fn exit(ret: *mut c_void) -> ! {
    let t = current();
    if t.is_null() {
        sys::exit_group(0);
    }
    // SAFETY: a thread's own control block lives until it is joined, after this exit.
    unsafe { (*t).ret.store(ret as usize, Ordering::Release) };
    sys::exit_thread(0)
}
