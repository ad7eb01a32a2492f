//! Identity, limits, signal state, arch_prctl and other per-process calls.

use super::SysResult;
use crate::arch::cpu;
use crate::mm::uaccess::{copy_to_user_partial, UserPtr};
use crate::process::{self as proc, current};
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::mm::{Rlimit, RLIMIT_NLIMITS};
use ktls_abi::prctl::*;
use ktls_abi::signal::*;
use ktls_abi::uts::{uts_field, Utsname};
use ktls_abi::Errno;

/// exit: ends the calling thread; the process ends with its last thread.
pub fn exit(code: u64) -> SysResult {
    proc::exit_thread(code as u8 as i32)
}

pub fn exit_group(code: u64) -> SysResult {
    proc::exit_group(wstatus_exited(code as u8))
}

pub fn umask(mask: u64) -> u64 {
    current().process.umask.swap(mask as u32 & 0o777, Relaxed) as u64
}

pub fn uname(buf: u64) -> SysResult {
    // "Linux" and a current release: programs and libcs check these to pick syscalls.
    let u = Utsname {
        sysname: uts_field("Linux"),
        nodename: uts_field("ktls"),
        release: uts_field("6.12.0-ktls"),
        version: uts_field("#1 SMP ktls"),
        machine: uts_field("x86_64"),
        domainname: uts_field("(none)"),
    };
    UserPtr::<Utsname>::new(buf).write(&u)?;
    Ok(0)
}

pub fn set_tid_address(ptr: u64) -> SysResult {
    let t = current();
    t.clear_child_tid.store(ptr, Relaxed);
    Ok(t.tid as u64)
}

/// sizeof(struct robust_list_head) on x86_64.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

pub fn set_robust_list(head: u64, len: u64) -> SysResult {
    if len != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    let t = current();
    t.robust_list.store(head, Relaxed);
    t.robust_list_len.store(len, Relaxed);
    Ok(0)
}

pub fn prlimit64(pid: u64, resource: u64, new: u64, old: u64) -> SysResult {
    let t = current();
    if pid != 0 && pid as u32 != t.process.pid {
        return Err(Errno::ESRCH);
    }
    if resource >= RLIMIT_NLIMITS as u64 {
        return Err(Errno::EINVAL);
    }
    let new_limit = if new != 0 {
        let r = UserPtr::<Rlimit>::new(new).read()?;
        if r.rlim_cur > r.rlim_max {
            return Err(Errno::EINVAL);
        }
        Some(r)
    } else {
        None
    };
    let mut limits = t.process.rlimits.lock();
    let prev = limits[resource as usize];
    if let Some(r) = new_limit {
        // Raising the hard limit needs CAP_SYS_RESOURCE, which only root has.
        if r.rlim_max > prev.rlim_max && t.process.creds.lock().euid != 0 {
            return Err(Errno::EPERM);
        }
        if resource == ktls_abi::mm::RLIMIT_NOFILE as u64
            && r.rlim_cur > ktls_abi::fs::NR_OPEN as u64
        {
            return Err(Errno::EPERM);
        }
        limits[resource as usize] = r;
        match resource as u32 {
            ktls_abi::mm::RLIMIT_AS => t.process.mm().lock().as_limit = r.rlim_cur,
            ktls_abi::mm::RLIMIT_NOFILE => {
                let n = r.rlim_cur.min(ktls_abi::fs::NR_OPEN as u64) as usize;
                t.process.files().lock().set_limit(n)?
            }
            _ => {}
        }
    }
    drop(limits);
    if old != 0 {
        UserPtr::<Rlimit>::new(old).write(&prev)?;
    }
    Ok(0)
}

fn check_sigsetsize(size: u64) -> Result<(), Errno> {
    if size as usize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

pub fn rt_sigaction(sig: u64, act: u64, oact: u64, sigsetsize: u64) -> SysResult {
    check_sigsetsize(sigsetsize)?;
    if sig == 0 || sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    let sig = sig as u32;
    let new = if act != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        Some(UserPtr::<KSigaction>::new(act).read()?)
    } else {
        None
    };
    let t = current();
    let old = {
        let actions = t.process.sigactions();
        let mut actions = actions.lock();
        let old = actions[sig as usize - 1];
        if let Some(mut a) = new {
            a.mask &= !UNBLOCKABLE;
            actions[sig as usize - 1] = a;
        }
        old
    };
    if oact != 0 {
        UserPtr::<KSigaction>::new(oact).write(&old)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(how: u64, set: u64, oset: u64, sigsetsize: u64) -> SysResult {
    check_sigsetsize(sigsetsize)?;
    let t = current();
    let old = t.sigmask.load(Relaxed);
    if set != 0 {
        let s = UserPtr::<SigSet>::new(set).read()?;
        let new = match how {
            SIG_BLOCK => old | s,
            SIG_UNBLOCK => old & !s,
            SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        t.sigmask.store(new & !UNBLOCKABLE, Relaxed);
    }
    if oset != 0 {
        UserPtr::<SigSet>::new(oset).write(&old)?;
    }
    Ok(0)
}

/// `user_sp` is the caller's stack pointer, to tell whether it is running on the stack.
pub fn sigaltstack(ss: u64, old_ss: u64, user_sp: u64) -> SysResult {
    let t = current();
    let mut alt = t.altstack.lock();
    let on_stack =
        alt.ss_flags & SS_DISABLE == 0 && user_sp > alt.ss_sp && user_sp - alt.ss_sp <= alt.ss_size;
    let mut old = *alt;
    old.ss_flags = if on_stack {
        SS_ONSTACK
    } else {
        alt.ss_flags & (SS_DISABLE | SS_AUTODISARM)
    };
    if alt.ss_flags & SS_DISABLE != 0 {
        old = StackT {
            ss_flags: SS_DISABLE,
            ..Default::default()
        };
    }
    if ss != 0 {
        let new = UserPtr::<StackT>::new(ss).read()?;
        if on_stack {
            return Err(Errno::EPERM);
        }
        let mode = new.ss_flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            *alt = StackT {
                ss_flags: SS_DISABLE,
                ..Default::default()
            };
        } else {
            if new.ss_size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            *alt = StackT {
                ss_flags: new.ss_flags & SS_AUTODISARM,
                ..new
            };
        }
    }
    drop(alt);
    if old_ss != 0 {
        UserPtr::<StackT>::new(old_ss).write(&old)?;
    }
    Ok(0)
}

/// The highest address a user FS/GS base may hold (TASK_SIZE_MAX, as Linux checks).
const TASK_SIZE_MAX: u64 = crate::mm::addrspace::USER_TOP;

pub fn arch_prctl(code: u64, addr: u64) -> SysResult {
    match code {
        ARCH_SET_FS | ARCH_SET_GS if addr >= TASK_SIZE_MAX => Err(Errno::EPERM),
        ARCH_SET_FS => {
            cpu::set_user_fs_base(addr);
            Ok(0)
        }
        ARCH_SET_GS => {
            cpu::set_user_gs_base(addr);
            Ok(0)
        }
        ARCH_GET_FS => UserPtr::<u64>::new(addr)
            .write(&cpu::user_fs_base())
            .map(|_| 0),
        ARCH_GET_GS => UserPtr::<u64>::new(addr)
            .write(&cpu::user_gs_base())
            .map(|_| 0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn getcpu(cpu_ptr: u64, node_ptr: u64) -> SysResult {
    let cpu = crate::arch::percpu::get().cpu_id();
    if cpu_ptr != 0 {
        UserPtr::<u32>::new(cpu_ptr).write(&cpu)?;
    }
    if node_ptr != 0 {
        UserPtr::<u32>::new(node_ptr).write(&0)?;
    }
    Ok(0)
}

/// Linux caps one read at MAX_RW_COUNT (INT_MAX rounded down to a page).
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;

pub fn getrandom(buf: u64, len: u64, flags: u64) -> SysResult {
    use ktls_abi::mm::{GRND_INSECURE, GRND_NONBLOCK, GRND_RANDOM};
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE)
    {
        return Err(Errno::EINVAL);
    }
    let len = len.min(MAX_RW_COUNT);
    let mut done = 0u64;
    let mut chunk = [0u8; 256];
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        crate::random::fill(&mut chunk[..n]);
        let copied = copy_to_user_partial(buf + done, &chunk[..n]);
        done += copied as u64;
        if copied < n {
            return if done == 0 {
                Err(Errno::EFAULT)
            } else {
                Ok(done)
            };
        }
    }
    Ok(done)
}
