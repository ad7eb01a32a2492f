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

use crate::arch::entry::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use ktls_abi::syscall::*;
use ktls_abi::Errno;

pub type SysResult = Result<u64, Errno>;

/// `strace` on the kernel command line.
pub static STRACE: AtomicBool = AtomicBool::new(false);

/// Called from the SYSCALL entry; returns nonzero when the return to user space must restore
/// the full context with iretq (see `needs_iret`). Kept small: the common path is the
/// dispatch, one store of the result and a handful of flag tests.
#[no_mangle]
pub extern "C" fn syscall_entry(frame: &mut TrapFrame) -> u64 {
    let nr = frame.rax as usize;
    // The entry pushed 0 as the "error code": keep the syscall number there, as Linux keeps
    // orig_ax, so an interrupted call can be restarted.
    frame.error_code = nr as u64;
    let result = if STRACE.load(Relaxed) {
        traced_dispatch(nr, frame)
    } else {
        dispatch(nr, frame)
    };
    let thread = crate::process::current();
    // execve and rt_sigreturn set the whole context, RAX included.
    let full = thread.full_restore.load(Relaxed);
    if !full {
        frame.rax = match result {
            Ok(v) => v,
            Err(e) => e.to_return(),
        };
    }
    exit_to_user(frame, thread);
    if full || thread.full_restore.load(Relaxed) {
        thread.full_restore.store(false, Relaxed);
        return 1;
    }
    needs_iret(frame) as u64
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
#[inline(always)]
pub fn exit_to_user(frame: &mut TrapFrame, t: &crate::process::Thread) {
    // -ERESTARTSYS (-512) ..= -ERESTART_RESTARTBLOCK (-516): an interrupted syscall.
    let restart = (-516..=-512).contains(&(frame.rax as i64));
    if restart
        || crate::sched::need_resched()
        || crate::signal::work_pending(t)
        || crate::rseq::work_pending(t)
    {
        exit_to_user_slow(frame);
    }
}

#[inline(never)]
fn exit_to_user_slow(frame: &mut TrapFrame) {
    crate::sched::preempt_point();
    let t = crate::process::current();
    let restart = (-516..=-512).contains(&(frame.rax as i64));
    if restart || crate::signal::work_pending(t) {
        crate::signal::on_return_to_user(frame);
    }
    crate::rseq::on_return_to_user(frame);
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
    let restart = match (e, handler) {
        (Errno::ERESTARTNOINTR, _) => true,
        (Errno::ERESTARTSYS, Some(act)) => act.flags & ktls_abi::signal::SA_RESTART != 0,
        (Errno::ERESTARTSYS | Errno::ERESTARTNOHAND | Errno::ERESTART_RESTARTBLOCK, None) => true,
        (Errno::ERESTARTNOHAND | Errno::ERESTART_RESTARTBLOCK, Some(_)) => false,
        _ => return,
    };
    if restart {
        frame.rax = frame.error_code;
        frame.rip -= 2; // back over the 2-byte SYSCALL instruction
    } else {
        frame.rax = Errno::EINTR.to_return();
    }
}

/// SYSRET is only safe for a canonical user RIP (else it faults in ring 0 on Intel) and
/// without TF/RF, which iretq restores faithfully.
fn needs_iret(frame: &TrapFrame) -> bool {
    const TF: u64 = 1 << 8;
    const RF: u64 = 1 << 16;
    frame.rip >= crate::mm::addrspace::USER_TOP || frame.rflags & (TF | RF) != 0
}

/// Inlined into `syscall_entry` (its one fast caller): the call and the `SysResult` passed
/// through memory cost a tenth of a no-op system call.
#[inline(always)]
fn dispatch(nr: usize, frame: &mut TrapFrame) -> SysResult {
    let a = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    match nr {
        SYS_READ => fs::read(a[0], a[1], a[2]),
        SYS_WRITE => fs::write(a[0], a[1], a[2]),
        SYS_OPEN => fs::openat(ktls_abi::fs::AT_FDCWD as u64, a[0], a[1], a[2]),
        SYS_CLOSE => fs::close(a[0]),
        SYS_STAT => fs::fstatat(ktls_abi::fs::AT_FDCWD as u64, a[0], a[1], 0),
        SYS_FSTAT => fs::fstat(a[0], a[1]),
        SYS_LSTAT => fs::fstatat(
            ktls_abi::fs::AT_FDCWD as u64,
            a[0],
            a[1],
            ktls_abi::fs::AT_SYMLINK_NOFOLLOW,
        ),
        SYS_POLL => fs::poll(a[0], a[1], a[2] as i32 as i64),
        SYS_LSEEK => fs::lseek(a[0], a[1], a[2]),
        SYS_MMAP => mm::mmap(a[0], a[1], a[2], a[3], a[4], a[5]),
        SYS_MPROTECT => mm::mprotect(a[0], a[1], a[2]),
        SYS_MUNMAP => mm::munmap(a[0], a[1]),
        SYS_BRK => mm::brk(a[0]),
        SYS_RT_SIGACTION => process::rt_sigaction(a[0], a[1], a[2], a[3]),
        SYS_RT_SIGPROCMASK => process::rt_sigprocmask(a[0], a[1], a[2], a[3]),
        SYS_RT_SIGRETURN => task::rt_sigreturn(frame),
        SYS_RT_SIGPENDING => task::rt_sigpending(a[0], a[1]),
        SYS_RT_SIGSUSPEND => task::rt_sigsuspend(a[0], a[1]),
        SYS_RT_SIGTIMEDWAIT => task::rt_sigtimedwait(a[0], a[1], a[2], a[3]),
        SYS_CLONE => task::clone(frame, a[0], a[1], a[2], a[3], a[4]),
        SYS_CLONE3 => task::clone3(frame, a[0], a[1]),
        SYS_FORK => task::fork(frame),
        SYS_VFORK => task::vfork(frame),
        SYS_EXECVE => task::execve(frame, a[0], a[1], a[2]),
        SYS_WAIT4 => task::wait4(a[0], a[1], a[2], a[3]),
        SYS_WAITID => task::waitid(a[0], a[1], a[2], a[3], a[4]),
        SYS_KILL => task::kill(a[0], a[1]),
        SYS_TKILL => task::tkill(a[0], a[1]),
        SYS_TGKILL => task::tgkill(a[0], a[1], a[2]),
        SYS_MEMBARRIER => membarrier::membarrier(a[0], a[1], a[2]),
        SYS_FUTEX => crate::futex::futex(a[0], a[1], a[2], a[3], a[4], a[5]),
        SYS_SCHED_SETAFFINITY => task::sched_setaffinity(a[0], a[1], a[2]),
        SYS_GETPGID => task::getpgid(a[0]),
        SYS_GETPGRP => task::getpgid(0),
        SYS_SETPGID => task::setpgid(a[0], a[1]),
        SYS_GETSID => task::getsid(a[0]),
        SYS_SYSINFO => info::sysinfo(a[0]),
        SYS_GETRUSAGE => info::getrusage(a[0], a[1]),
        SYS_TIMES => info::times(a[0]),
        SYS_PRCTL => info::prctl(a[0], a[1], a[2], a[3], a[4]),
        SYS_SELECT => fs::select(a[0], a[1], a[2], a[3], a[4], None),
        SYS_PSELECT6 => fs::pselect6(a[0], a[1], a[2], a[3], a[4], a[5]),
        SYS_SCHED_GETSCHEDULER => task::sched_getscheduler(a[0]),
        SYS_SCHED_SETSCHEDULER => task::sched_setscheduler(a[0], a[1], a[2]),
        SYS_SCHED_GETPARAM => task::sched_getparam(a[0], a[1]),
        SYS_SCHED_SETPARAM => task::sched_setparam(a[0], a[1]),
        SYS_SCHED_GET_PRIORITY_MAX => task::sched_get_priority_max(a[0]),
        SYS_SCHED_GET_PRIORITY_MIN => task::sched_get_priority_min(a[0]),
        SYS_SCHED_RR_GET_INTERVAL => task::sched_rr_get_interval(a[0], a[1]),
        SYS_GETPRIORITY => task::getpriority(a[0], a[1]),
        SYS_SETPRIORITY => task::setpriority(a[0], a[1], a[2]),
        SYS_SETSID => task::setsid(),
        SYS_IOCTL => fs::ioctl(a[0], a[1], a[2]),
        SYS_PREAD64 => fs::pread(a[0], a[1], a[2], a[3]),
        SYS_PWRITE64 => fs::pwrite(a[0], a[1], a[2], a[3]),
        SYS_READV => fs::readv(a[0], a[1], a[2]),
        SYS_WRITEV => fs::writev(a[0], a[1], a[2]),
        SYS_ACCESS => fs::faccessat(ktls_abi::fs::AT_FDCWD as u64, a[0], a[1], 0),
        SYS_PIPE => fs::pipe2(a[0], 0),
        SYS_SCHED_YIELD => task::sched_yield(),
        SYS_MREMAP => mm::mremap(a[0], a[1], a[2], a[3], a[4]),
        SYS_MADVISE => mm::madvise(a[0], a[1], a[2]),
        SYS_DUP => fs::dup(a[0]),
        SYS_DUP2 => fs::dup2(a[0], a[1]),
        SYS_NANOSLEEP => time::nanosleep(a[0], a[1]),
        SYS_GETPID => Ok(crate::process::current().process.pid as u64),
        SYS_EXIT => process::exit(a[0]),
        SYS_UNAME => process::uname(a[0]),
        SYS_FCNTL => fs::fcntl(a[0], a[1], a[2]),
        SYS_GETCWD => fs::getcwd(a[0], a[1]),
        SYS_TRUNCATE => fs::truncate(a[0], a[1]),
        SYS_FTRUNCATE => fs::ftruncate(a[0], a[1]),
        SYS_CHDIR => fs::chdir(a[0]),
        SYS_FCHDIR => fs::fchdir(a[0]),
        SYS_RENAME => fs::renameat(
            ktls_abi::fs::AT_FDCWD as u64,
            a[0],
            ktls_abi::fs::AT_FDCWD as u64,
            a[1],
        ),
        SYS_MKDIR => fs::mkdirat(ktls_abi::fs::AT_FDCWD as u64, a[0], a[1]),
        SYS_RMDIR => fs::unlinkat(
            ktls_abi::fs::AT_FDCWD as u64,
            a[0],
            ktls_abi::fs::AT_REMOVEDIR,
        ),
        SYS_UNLINK => fs::unlinkat(ktls_abi::fs::AT_FDCWD as u64, a[0], 0),
        SYS_SYMLINK => fs::symlinkat(a[0], ktls_abi::fs::AT_FDCWD as u64, a[1]),
        SYS_READLINK => fs::readlinkat(ktls_abi::fs::AT_FDCWD as u64, a[0], a[1], a[2]),
        SYS_UMASK => Ok(process::umask(a[0])),
        SYS_GETTIMEOFDAY => time::gettimeofday(a[0], a[1]),
        SYS_GETRLIMIT => process::prlimit64(0, a[0], 0, a[1]),
        SYS_SETRLIMIT => process::prlimit64(0, a[0], a[1], 0),
        SYS_SETUID => creds::setuid(a[0]),
        SYS_SETGID => creds::setgid(a[0]),
        SYS_SETREUID => creds::setreuid(a[0], a[1]),
        SYS_SETREGID => creds::setregid(a[0], a[1]),
        SYS_SETRESUID => creds::setresuid(a[0], a[1], a[2]),
        SYS_SETRESGID => creds::setresgid(a[0], a[1], a[2]),
        SYS_GETRESUID => creds::getresuid(a[0], a[1], a[2]),
        SYS_GETRESGID => creds::getresgid(a[0], a[1], a[2]),
        SYS_GETGROUPS => creds::getgroups(a[0], a[1]),
        SYS_SETFSUID => creds::setfsuid(a[0]),
        SYS_SETFSGID => creds::setfsgid(a[0]),
        SYS_GETUID => Ok(crate::process::current().process.creds.lock().uid as u64),
        SYS_GETGID => Ok(crate::process::current().process.creds.lock().gid as u64),
        SYS_GETEUID => Ok(crate::process::current().process.creds.lock().euid as u64),
        SYS_GETEGID => Ok(crate::process::current().process.creds.lock().egid as u64),
        SYS_GETPPID => Ok(crate::process::current().process.ppid.load(Relaxed) as u64),
        SYS_SIGALTSTACK => process::sigaltstack(a[0], a[1], frame.rsp),
        SYS_ARCH_PRCTL => process::arch_prctl(a[0], a[1]),
        SYS_GETTID => Ok(crate::process::current().tid as u64),
        SYS_TIME => time::time(a[0]),
        SYS_SCHED_GETAFFINITY => task::sched_getaffinity(a[0], a[1], a[2]),
        SYS_GETDENTS64 => fs::getdents64(a[0], a[1], a[2]),
        SYS_SET_TID_ADDRESS => process::set_tid_address(a[0]),
        SYS_CLOCK_GETTIME => time::clock_gettime(a[0], a[1]),
        SYS_CLOCK_GETRES => time::clock_getres(a[0], a[1]),
        SYS_CLOCK_NANOSLEEP => time::clock_nanosleep(a[0], a[1], a[2], a[3]),
        SYS_EXIT_GROUP => process::exit_group(a[0]),
        SYS_OPENAT => fs::openat(a[0], a[1], a[2], a[3]),
        SYS_MKDIRAT => fs::mkdirat(a[0], a[1], a[2]),
        SYS_NEWFSTATAT => fs::fstatat(a[0], a[1], a[2], a[3]),
        SYS_UNLINKAT => fs::unlinkat(a[0], a[1], a[2]),
        SYS_RENAMEAT => fs::renameat(a[0], a[1], a[2], a[3]),
        SYS_SYMLINKAT => fs::symlinkat(a[0], a[1], a[2]),
        SYS_READLINKAT => fs::readlinkat(a[0], a[1], a[2], a[3]),
        SYS_FACCESSAT => fs::faccessat(a[0], a[1], a[2], 0),
        SYS_FACCESSAT2 => fs::faccessat(a[0], a[1], a[2], a[3]),
        SYS_PPOLL => fs::ppoll(a[0], a[1], a[2], a[3], a[4]),
        SYS_SET_ROBUST_LIST => process::set_robust_list(a[0], a[1]),
        SYS_DUP3 => fs::dup3(a[0], a[1], a[2]),
        SYS_PIPE2 => fs::pipe2(a[0], a[1]),
        SYS_PRLIMIT64 => process::prlimit64(a[0], a[1], a[2], a[3]),
        SYS_GETCPU => process::getcpu(a[0], a[1]),
        SYS_GETRANDOM => process::getrandom(a[0], a[1], a[2]),
        SYS_STATX => fs::statx(a[0], a[1], a[2], a[3], a[4]),
        SYS_RENAMEAT2 => fs::renameat2(a[0], a[1], a[2], a[3], a[4]),
        SYS_CLOSE_RANGE => fs::close_range(a[0], a[1], a[2]),
        SYS_RSEQ => crate::rseq::sys_rseq(a[0], a[1], a[2], a[3]),
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
    let key = (what.as_ptr() as u64, op);
    if crate::arch::cpu::without_interrupts(|| SEEN.lock().insert(key)) {
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
