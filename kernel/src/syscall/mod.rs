//! System calls: Linux x86_64 numbers and semantics.
//!
//! `syscall_entry` is called by the SYSCALL entry asm with the saved user context. Arguments
//! are in RDI, RSI, RDX, R10, R8, R9; the result (or -errno) goes back in RAX. Each family
//! lives in its own file; every handler is safe Rust that reaches user memory only through
//! `mm::uaccess`. A number we do not implement gets ENOSYS and one log line naming it.

mod creds;
mod fs;
mod info;
mod membarrier;
mod mm;
mod process;
mod strace;
mod task;
mod time;
pub use time::RestartSleep;

use crate::arch::entry::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use ktls_abi::syscall::*;
use ktls_abi::Errno;

pub type SysResult = Result<u64, Errno>;

/// `strace` on the kernel command line.
pub static STRACE: AtomicBool = AtomicBool::new(false);

/// Called from the SYSCALL entry; returns nonzero when the return to user space must restore
/// the full context with iretq (the entry asm adds the cases SYSRET cannot handle). Kept
/// small: the common path is the dispatch, one store of the result and a few flag tests.
#[no_mangle]
pub extern "C" fn syscall_entry(frame: &mut TrapFrame) -> u64 {
    // The entry also keeps the number in `error_code` (Linux's orig_ax), so that an
    // interrupted call can be restarted.
    let nr = frame.rax as usize;
    let result = if STRACE.load(Relaxed) {
        traced_dispatch(nr, frame)
    } else {
        dispatch(nr, frame)
    };
    let thread = crate::process::current();
    // execve and rt_sigreturn set the whole context, and return the RAX they set.
    frame.rax = match result {
        Ok(v) => v,
        Err(e) => e.to_return(),
    };
    // They, and signal delivery, ask for iretq, which restores every register; only the slow
    // path does any of them (execve and rt_sigreturn note return work). The entry checks the
    // other reasons for iretq itself: a RIP SYSRET cannot return to, TF or RF.
    if exit_to_user(frame, thread) && thread.full_restore.load(Relaxed) {
        thread.full_restore.store(false, Relaxed);
        return 1;
    }
    0
}

#[inline(never)]
fn traced_dispatch(nr: usize, frame: &mut TrapFrame) -> SysResult {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let call = strace::format_call(nr, &args);
    if nr == SYS_EXIT || nr == SYS_EXIT_GROUP {
        crate::log::write_line(format_args!("@strace {call} = ?"));
    }
    let result = dispatch(nr, frame);
    strace::record(nr, &call, &args, result);
    result
}

/// The work done before any return to user space: switch if our slice is over, then act on
/// signals (which may end the thread, or divert it to a handler), fix up an interrupted
/// syscall's result, and refresh rseq. The common case is a few loads and no call.
/// Returns whether it took the slow path.
#[inline(always)]
pub fn exit_to_user(frame: &mut TrapFrame, t: &crate::process::Thread) -> bool {
    let slow = interrupted(frame) || crate::sched::need_resched() || t.return_work.load(Relaxed);
    if slow {
        exit_to_user_slow(frame);
    }
    slow
}

/// Whether RAX holds -ERESTARTSYS (-512) ..= -ERESTART_RESTARTBLOCK (-516): an interrupted
/// syscall, which the slow path restarts or turns into EINTR.
#[inline(always)]
fn interrupted(frame: &TrapFrame) -> bool {
    (-516..=-512).contains(&(frame.rax as i64))
}

#[inline(never)]
fn exit_to_user_slow(frame: &mut TrapFrame) {
    crate::sched::preempt_point();
    let t = crate::process::current();
    // Clear before looking (xchg is a full barrier): work made from here on sets it again.
    t.return_work.swap(false, SeqCst);
    if interrupted(frame) || crate::signal::sources_pending(t) {
        crate::signal::on_return_to_user(frame);
    }
    crate::rseq::on_return_to_user(frame);
    // Blocked signals stay pending: look at every return until they are gone (the slow path
    // sorts out what is deliverable).
    if crate::signal::sources_pending(t) {
        t.return_work.store(true, Relaxed);
    }
}

/// Linux's restart rules for a syscall frame whose result is one of the ERESTART codes:
/// `handler` is the action of the signal whose handler is about to run, if any.
pub fn restart_fixup(frame: &mut TrapFrame, handler: Option<&ktls_abi::signal::KSigaction>) {
    if frame.vector != crate::arch::entry::SYSCALL_VECTOR {
        return;
    }
    let Some(e) = Errno::from_return(frame.rax) else {
        return;
    };
    if handler.is_some() {
        // A handler runs: a later restart_syscall has nothing to go on with (Linux resets
        // the restart block at sigreturn).
        *crate::process::current().restart.lock() = None;
    }
    let restart = match (e, handler) {
        (Errno::ERESTARTNOINTR, _) => true,
        (Errno::ERESTARTSYS, Some(act)) => act.flags & ktls_abi::signal::SA_RESTART != 0,
        (Errno::ERESTARTSYS | Errno::ERESTARTNOHAND | Errno::ERESTART_RESTARTBLOCK, None) => true,
        (Errno::ERESTARTNOHAND | Errno::ERESTART_RESTARTBLOCK, Some(_)) => false,
        _ => return,
    };
    if restart {
        // The same call again, or for ERESTART_RESTARTBLOCK restart_syscall, which goes on
        // from where the call stopped (the thread's `restart`).
        frame.rax = if e == Errno::ERESTART_RESTARTBLOCK {
            SYS_RESTART_SYSCALL as u64
        } else {
            frame.error_code
        };
        frame.rip -= 2; // back over the 2-byte SYSCALL instruction
    } else {
        frame.rax = Errno::EINTR.to_return();
    }
}

/// Inlined into `syscall_entry` (its one fast caller): the call and the `SysResult` passed
/// through memory cost a tenth of a no-op system call.
#[inline(always)]
fn dispatch(nr: usize, frame: &mut TrapFrame) -> SysResult {
    // Each arm reads the argument registers it uses from the frame (rdi, rsi, rdx, r10, r8,
    // r9): loading all six up front cost every call, the no-op ones too.
    match nr {
        SYS_READ => fs::read(frame.rdi, frame.rsi, frame.rdx),
        SYS_WRITE => fs::write(frame.rdi, frame.rsi, frame.rdx),
        SYS_OPEN => fs::openat(
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rdi,
            frame.rsi,
            frame.rdx,
        ),
        SYS_CLOSE => fs::close(frame.rdi),
        SYS_STAT => fs::fstatat(ktls_abi::fs::AT_FDCWD as u64, frame.rdi, frame.rsi, 0),
        SYS_FSTAT => fs::fstat(frame.rdi, frame.rsi),
        SYS_LSTAT => fs::fstatat(
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rdi,
            frame.rsi,
            ktls_abi::fs::AT_SYMLINK_NOFOLLOW,
        ),
        SYS_POLL => fs::poll(frame.rdi, frame.rsi, frame.rdx as i32 as i64),
        SYS_LSEEK => fs::lseek(frame.rdi, frame.rsi, frame.rdx),
        SYS_MMAP => mm::mmap(
            frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
        ),
        SYS_MPROTECT => mm::mprotect(frame.rdi, frame.rsi, frame.rdx),
        SYS_MUNMAP => mm::munmap(frame.rdi, frame.rsi),
        SYS_BRK => mm::brk(frame.rdi),
        SYS_RT_SIGACTION => process::rt_sigaction(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_RT_SIGPROCMASK => process::rt_sigprocmask(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_RT_SIGRETURN => task::rt_sigreturn(frame),
        SYS_RT_SIGPENDING => task::rt_sigpending(frame.rdi, frame.rsi),
        SYS_RT_SIGSUSPEND => task::rt_sigsuspend(frame.rdi, frame.rsi),
        SYS_PAUSE => task::pause(),
        SYS_RT_SIGTIMEDWAIT => task::rt_sigtimedwait(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_CLONE => task::clone(frame, frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_CLONE3 => task::clone3(frame, frame.rdi, frame.rsi),
        SYS_FORK => task::fork(frame),
        SYS_VFORK => task::vfork(frame),
        SYS_EXECVE => task::execve(frame, frame.rdi, frame.rsi, frame.rdx),
        SYS_WAIT4 => task::wait4(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_WAITID => task::waitid(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_KILL => task::kill(frame.rdi, frame.rsi),
        SYS_TKILL => task::tkill(frame.rdi, frame.rsi),
        SYS_TGKILL => task::tgkill(frame.rdi, frame.rsi, frame.rdx),
        SYS_MEMBARRIER => membarrier::membarrier(frame.rdi, frame.rsi, frame.rdx),
        SYS_FUTEX => crate::futex::futex(
            frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
        ),
        SYS_SCHED_SETAFFINITY => task::sched_setaffinity(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETPGID => task::getpgid(frame.rdi),
        SYS_GETPGRP => task::getpgid(0),
        SYS_SETPGID => task::setpgid(frame.rdi, frame.rsi),
        SYS_GETSID => task::getsid(frame.rdi),
        SYS_SYSINFO => info::sysinfo(frame.rdi),
        SYS_GETRUSAGE => info::getrusage(frame.rdi, frame.rsi),
        SYS_TIMES => info::times(frame.rdi),
        SYS_PRCTL => info::prctl(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_SELECT => fs::select(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, None),
        SYS_PSELECT6 => fs::pselect6(
            frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
        ),
        SYS_SCHED_GETSCHEDULER => task::sched_getscheduler(frame.rdi),
        SYS_SCHED_SETSCHEDULER => task::sched_setscheduler(frame.rdi, frame.rsi, frame.rdx),
        SYS_SCHED_GETPARAM => task::sched_getparam(frame.rdi, frame.rsi),
        SYS_SCHED_SETPARAM => task::sched_setparam(frame.rdi, frame.rsi),
        SYS_SCHED_GET_PRIORITY_MAX => task::sched_get_priority_max(frame.rdi),
        SYS_SCHED_GET_PRIORITY_MIN => task::sched_get_priority_min(frame.rdi),
        SYS_SCHED_RR_GET_INTERVAL => task::sched_rr_get_interval(frame.rdi, frame.rsi),
        SYS_GETPRIORITY => task::getpriority(frame.rdi, frame.rsi),
        SYS_SETPRIORITY => task::setpriority(frame.rdi, frame.rsi, frame.rdx),
        SYS_SETSID => task::setsid(),
        SYS_IOCTL => fs::ioctl(frame.rdi, frame.rsi, frame.rdx),
        SYS_PREAD64 => fs::pread(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_PWRITE64 => fs::pwrite(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_READV => fs::readv(frame.rdi, frame.rsi, frame.rdx),
        SYS_WRITEV => fs::writev(frame.rdi, frame.rsi, frame.rdx),
        SYS_ACCESS => fs::faccessat(ktls_abi::fs::AT_FDCWD as u64, frame.rdi, frame.rsi, 0),
        SYS_PIPE => fs::pipe2(frame.rdi, 0),
        SYS_SCHED_YIELD => task::sched_yield(),
        SYS_MREMAP => mm::mremap(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_MADVISE => mm::madvise(frame.rdi, frame.rsi, frame.rdx),
        SYS_MSYNC => mm::msync(frame.rdi, frame.rsi, frame.rdx),
        SYS_MLOCK => mm::mlock(frame.rdi, frame.rsi),
        SYS_MLOCK2 => mm::mlock2(frame.rdi, frame.rsi, frame.rdx),
        SYS_MUNLOCK => mm::munlock(frame.rdi, frame.rsi),
        SYS_MLOCKALL => mm::mlockall(frame.rdi),
        SYS_MUNLOCKALL => mm::munlockall(),
        SYS_MINCORE => mm::mincore(frame.rdi, frame.rsi, frame.rdx),
        SYS_DUP => fs::dup(frame.rdi),
        SYS_DUP2 => fs::dup2(frame.rdi, frame.rsi),
        SYS_NANOSLEEP => time::nanosleep(frame.rdi, frame.rsi),
        SYS_RESTART_SYSCALL => time::restart_syscall(),
        SYS_GETPID => Ok(crate::process::current().process.pid as u64),
        SYS_EXIT => process::exit(frame.rdi),
        SYS_UNAME => process::uname(frame.rdi),
        SYS_FCNTL => fs::fcntl(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETCWD => fs::getcwd(frame.rdi, frame.rsi),
        SYS_TRUNCATE => fs::truncate(frame.rdi, frame.rsi),
        SYS_FTRUNCATE => fs::ftruncate(frame.rdi, frame.rsi),
        SYS_CHDIR => fs::chdir(frame.rdi),
        SYS_FCHDIR => fs::fchdir(frame.rdi),
        SYS_RENAME => fs::renameat(
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rdi,
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rsi,
        ),
        SYS_MKDIR => fs::mkdirat(ktls_abi::fs::AT_FDCWD as u64, frame.rdi, frame.rsi),
        SYS_RMDIR => fs::unlinkat(
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rdi,
            ktls_abi::fs::AT_REMOVEDIR,
        ),
        SYS_UNLINK => fs::unlinkat(ktls_abi::fs::AT_FDCWD as u64, frame.rdi, 0),
        SYS_SYMLINK => fs::symlinkat(frame.rdi, ktls_abi::fs::AT_FDCWD as u64, frame.rsi),
        SYS_READLINK => fs::readlinkat(
            ktls_abi::fs::AT_FDCWD as u64,
            frame.rdi,
            frame.rsi,
            frame.rdx,
        ),
        SYS_UMASK => Ok(process::umask(frame.rdi)),
        SYS_GETTIMEOFDAY => time::gettimeofday(frame.rdi, frame.rsi),
        SYS_GETRLIMIT => process::prlimit64(0, frame.rdi, 0, frame.rsi),
        SYS_SETRLIMIT => process::prlimit64(0, frame.rdi, frame.rsi, 0),
        SYS_SETUID => creds::setuid(frame.rdi),
        SYS_SETGID => creds::setgid(frame.rdi),
        SYS_SETREUID => creds::setreuid(frame.rdi, frame.rsi),
        SYS_SETREGID => creds::setregid(frame.rdi, frame.rsi),
        SYS_SETRESUID => creds::setresuid(frame.rdi, frame.rsi, frame.rdx),
        SYS_SETRESGID => creds::setresgid(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETRESUID => creds::getresuid(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETRESGID => creds::getresgid(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETGROUPS => creds::getgroups(frame.rdi, frame.rsi),
        SYS_SETFSUID => creds::setfsuid(frame.rdi),
        SYS_SETFSGID => creds::setfsgid(frame.rdi),
        SYS_GETUID => Ok(crate::process::current().process.creds.lock().uid as u64),
        SYS_GETGID => Ok(crate::process::current().process.creds.lock().gid as u64),
        SYS_GETEUID => Ok(crate::process::current().process.creds.lock().euid as u64),
        SYS_GETEGID => Ok(crate::process::current().process.creds.lock().egid as u64),
        SYS_GETPPID => Ok(crate::process::current().process.ppid.load(Relaxed) as u64),
        SYS_SIGALTSTACK => process::sigaltstack(frame.rdi, frame.rsi, frame.rsp),
        SYS_ARCH_PRCTL => process::arch_prctl(frame.rdi, frame.rsi),
        SYS_GETTID => Ok(crate::process::current().tid as u64),
        SYS_TIME => time::time(frame.rdi),
        SYS_SCHED_GETAFFINITY => task::sched_getaffinity(frame.rdi, frame.rsi, frame.rdx),
        SYS_GETDENTS64 => fs::getdents64(frame.rdi, frame.rsi, frame.rdx),
        SYS_SET_TID_ADDRESS => process::set_tid_address(frame.rdi),
        SYS_CLOCK_GETTIME => time::clock_gettime(frame.rdi, frame.rsi),
        SYS_CLOCK_GETRES => time::clock_getres(frame.rdi, frame.rsi),
        SYS_CLOCK_NANOSLEEP => time::clock_nanosleep(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_EXIT_GROUP => process::exit_group(frame.rdi),
        SYS_OPENAT => fs::openat(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_MKDIRAT => fs::mkdirat(frame.rdi, frame.rsi, frame.rdx),
        SYS_NEWFSTATAT => fs::fstatat(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_UNLINKAT => fs::unlinkat(frame.rdi, frame.rsi, frame.rdx),
        SYS_RENAMEAT => fs::renameat(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_SYMLINKAT => fs::symlinkat(frame.rdi, frame.rsi, frame.rdx),
        SYS_READLINKAT => fs::readlinkat(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_FACCESSAT => fs::faccessat(frame.rdi, frame.rsi, frame.rdx, 0),
        SYS_FACCESSAT2 => fs::faccessat(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_PPOLL => fs::ppoll(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_SET_ROBUST_LIST => process::set_robust_list(frame.rdi, frame.rsi),
        SYS_DUP3 => fs::dup3(frame.rdi, frame.rsi, frame.rdx),
        SYS_PIPE2 => fs::pipe2(frame.rdi, frame.rsi),
        SYS_PRLIMIT64 => process::prlimit64(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_GETCPU => process::getcpu(frame.rdi, frame.rsi),
        SYS_GETRANDOM => process::getrandom(frame.rdi, frame.rsi, frame.rdx),
        SYS_STATX => fs::statx(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_RENAMEAT2 => fs::renameat2(frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8),
        SYS_CLOSE_RANGE => fs::close_range(frame.rdi, frame.rsi, frame.rdx),
        SYS_RSEQ => crate::rseq::sys_rseq(frame.rdi, frame.rsi, frame.rdx, frame.r10),
        SYS_PIDFD_OPEN => task::pidfd_open(frame.rdi, frame.rsi),
        SYS_PIDFD_SEND_SIGNAL => {
            task::pidfd_send_signal(frame.rdi, frame.rsi, frame.rdx, frame.r10)
        }
        _ => unimplemented_syscall(nr),
    }
}

/// Whether a number beyond the table has been reported (once for all of them).
static REPORTED_OUT_OF_RANGE: AtomicBool = AtomicBool::new(false);
/// Syscall numbers already reported as unimplemented (one log line each).
static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// An operation of a syscall we do not implement (e.g. a futex command): ENOSYS, logged once
/// per (name, op).
pub fn unimplemented_op(what: &str, op: u64) -> SysResult {
    static SEEN: spin::Mutex<alloc::collections::BTreeSet<(u64, u64)>> =
        spin::Mutex::new(alloc::collections::BTreeSet::new());
    // The op comes from user space: the set is bounded, so it cannot eat the heap (beyond
    // that many distinct pairs, further ones are not logged).
    const MAX_SEEN: usize = 256;
    let key = (what.as_ptr() as u64, op);
    let first = crate::arch::cpu::without_interrupts(|| {
        let mut seen = SEEN.lock();
        seen.len() < MAX_SEEN && seen.insert(key)
    });
    if first {
        info!("{what} ({op:#x}) is not implemented: ENOSYS");
    }
    Err(Errno::ENOSYS)
}

pub fn unimplemented_syscall(nr: usize) -> SysResult {
    let (word, bit) = (nr / 64, 1u64 << (nr % 64));
    let first = match REPORTED.get(word) {
        Some(w) => w.fetch_or(bit, Relaxed) & bit == 0,
        None => !REPORTED_OUT_OF_RANGE.swap(true, Relaxed),
    };
    if first {
        info!(
            "syscall {} ({nr}) is not implemented: ENOSYS",
            name(nr).unwrap_or("unknown")
        );
    }
    Err(Errno::ENOSYS)
}
