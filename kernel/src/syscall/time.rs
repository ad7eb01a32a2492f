//! Clocks and sleeping.

use super::SysResult;
use crate::mm::uaccess::UserPtr;
use crate::time as clock;
use ktls_abi::time::*;
use ktls_abi::Errno;

/// The clock's current value in nanoseconds, or EINVAL for a clock Linux does not have.
fn now_ns(clk: u64) -> Result<u64, Errno> {
    match clk {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            Ok(clock::realtime_ns())
        }
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM => Ok(clock::monotonic_ns()),
        CLOCK_PROCESS_CPUTIME_ID => Ok(crate::process::current().process.cpu_time_ns()),
        CLOCK_THREAD_CPUTIME_ID => Ok(crate::process::current().cpu_time_ns()),
        _ => Err(Errno::EINVAL),
    }
}

pub fn clock_gettime(clk: u64, tp: u64) -> SysResult {
    let ns = now_ns(clk)?;
    UserPtr::<Timespec>::new(tp).write(&Timespec::from_nanos(ns))?;
    Ok(0)
}

pub fn clock_getres(clk: u64, res: u64) -> SysResult {
    now_ns(clk)?;
    let coarse = matches!(clk, CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE);
    if res != 0 {
        UserPtr::<Timespec>::new(res).write(&Timespec::from_nanos(clock::resolution_ns(coarse)))?;
    }
    Ok(0)
}

pub fn gettimeofday(tv: u64, tz: u64) -> SysResult {
    if tv != 0 {
        let ns = clock::realtime_ns();
        let v = Timeval {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_usec: ((ns % NSEC_PER_SEC) / 1000) as i64,
        };
        UserPtr::<Timeval>::new(tv).write(&v)?;
    }
    if tz != 0 {
        UserPtr::<Timezone>::new(tz).write(&Timezone::default())?;
    }
    Ok(0)
}

pub fn time(tloc: u64) -> SysResult {
    let secs = clock::realtime_ns() / NSEC_PER_SEC;
    if tloc != 0 {
        UserPtr::<i64>::new(tloc).write(&(secs as i64))?;
    }
    Ok(secs)
}

fn read_timespec(p: u64) -> Result<Timespec, Errno> {
    let ts = UserPtr::<Timespec>::new(p).read()?;
    if !ts.is_valid() {
        return Err(Errno::EINVAL);
    }
    Ok(ts)
}

pub fn nanosleep(req: u64, rem: u64) -> SysResult {
    let ts = read_timespec(req)?;
    let deadline = clock::monotonic_ns().saturating_add(ts.to_nanos());
    sleep(CLOCK_MONOTONIC, deadline, Some(rem))
}

/// A relative sleep to go on with after an interruption: the clock and the absolute deadline
/// the first call computed, and where the time left goes.
#[derive(Clone, Copy, Debug)]
pub struct RestartSleep {
    clk: u64,
    deadline: u64,
    rem: u64,
}

/// Sleeps until `clk` reaches `deadline`. A signal ends the sleep, as Linux's nanosleep: a
/// relative sleep writes the time left to `rem` and returns ERESTART_RESTARTBLOCK, which
/// becomes EINTR when a handler runs and else restart_syscall, which sleeps on to the same
/// deadline (a stop and continue do not shorten a sleep); an absolute sleep (`rem` None)
/// returns ERESTARTNOHAND, restarted with the same arguments.
fn sleep(clk: u64, deadline: u64, rem: Option<u64>) -> SysResult {
    let t = crate::process::current();
    loop {
        let now = now_ns(clk)?;
        if now >= deadline {
            return Ok(0);
        }
        if crate::signal::pending(t) {
            let Some(rem) = rem else {
                return Err(Errno::ERESTARTNOHAND);
            };
            if rem != 0 {
                UserPtr::<Timespec>::new(rem).write(&Timespec::from_nanos(deadline - now))?;
            }
            *t.restart.lock() = Some(RestartSleep { clk, deadline, rem });
            return Err(Errno::ERESTART_RESTARTBLOCK);
        }
        // Sleep on the monotonic clock; a realtime deadline is re-checked after waking.
        let mono_deadline = clock::monotonic_ns().saturating_add(deadline - now);
        crate::sched::sleep_unless(Some(mono_deadline), || crate::signal::pending(t));
    }
}

/// restart_syscall: goes on with the interrupted sleep; EINTR if there is none (Linux's
/// do_no_restart_syscall).
pub fn restart_syscall() -> SysResult {
    let restart = crate::process::current().restart.lock().take();
    match restart {
        Some(r) => sleep(r.clk, r.deadline, Some(r.rem)),
        None => Err(Errno::EINTR),
    }
}

pub fn clock_nanosleep(clk: u64, flags: u64, req: u64, rem: u64) -> SysResult {
    match clk {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_TAI => {}
        CLOCK_THREAD_CPUTIME_ID => return Err(Errno::EINVAL),
        CLOCK_PROCESS_CPUTIME_ID => {}
        _ => {
            return Err(if now_ns(clk).is_ok() {
                Errno::EOPNOTSUPP
            } else {
                Errno::EINVAL
            })
        }
    }
    let ts = read_timespec(req)?;
    let now = now_ns(clk)?;
    if flags & TIMER_ABSTIME != 0 {
        sleep(clk, ts.to_nanos(), None)
    } else {
        sleep(clk, now.saturating_add(ts.to_nanos()), Some(rem))
    }
}
