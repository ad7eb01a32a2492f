//! Linux's clock functions (symbol version `LINUX_2.6`), computed from the TSC and the vvar
//! page's clock data with the kernel's own formula (`ktls_abi::vvar::tsc_to_ns`), so a read
//! here and one through the system call agree.
//!
//! Served: CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME and the two
//! coarse clocks, which on ktls read the same time as their precise siblings (as the kernel's
//! clock_gettime does). Every other clock, and every clock while the page says there is no
//! usable TSC clock, is the system call, which also gives EINVAL for unknown clocks.

use crate::sys::syscall3;
use crate::vvar::{self, read_u32, read_u64};
use core::ffi::c_int;
use ktls_abi::syscall::*;
use ktls_abi::time::*;
use ktls_abi::vvar::{tsc_to_ns, VCLOCK_TSC};

/// The TSC, read after every load before it: LFENCE keeps RDTSC from running ahead of the
/// seqlock read, as Linux's rdtsc_ordered.
#[inline(always)]
fn rdtsc_ordered() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: LFENCE and RDTSC are unprivileged (the kernel leaves CR4.TSD clear) and have no
    // effect besides their outputs.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            out("eax") lo,
            out("edx") hi,
            options(nomem, nostack, preserves_flags)
        )
    };
    (hi as u64) << 32 | lo as u64
}

/// CLOCK_MONOTONIC (or CLOCK_REALTIME) in nanoseconds, or `None` when the vvar page has no TSC
/// clock. The clock data is read under the seqlock: retry while the kernel is writing
/// (`seq` odd) or wrote meanwhile (`seq` changed).
#[inline(always)]
fn now_ns(realtime: bool) -> Option<u64> {
    loop {
        let seq = read_u32(vvar::SEQ);
        if seq & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        if read_u32(vvar::CLOCK_MODE) != VCLOCK_TSC {
            return None;
        }
        let shift = read_u32(vvar::TSC_SHIFT);
        let mult = read_u64(vvar::TSC_MULT);
        let base_tsc = read_u64(vvar::BASE_TSC);
        let base_ns = read_u64(vvar::BASE_MONO_NS);
        let offset = if realtime {
            read_u64(vvar::REALTIME_OFFSET_NS)
        } else {
            0
        };
        let tsc = rdtsc_ordered();
        if read_u32(vvar::SEQ) == seq {
            return Some(tsc_to_ns(tsc, base_tsc, mult, shift, base_ns).wrapping_add(offset));
        }
    }
}

/// Whether the vDSO serves `clk`, and if so whether it is a real-time clock.
#[inline(always)]
fn served(clk: c_int) -> Option<bool> {
    match clk as u64 {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Some(true),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Some(false)
        }
        _ => None,
    }
}

/// The clock id as the kernel takes it: an `int`, sign-extended (the upper half of the
/// register is not the caller's to define).
#[inline(always)]
fn clock_arg(clk: c_int) -> u64 {
    clk as i64 as u64
}

/// clock_gettime(2).
///
/// # Safety
///
/// `ts` is valid for writing a `struct timespec` (as on Linux, the vDSO does not turn a bad
/// pointer into EFAULT).
#[no_mangle]
pub unsafe extern "C" fn __vdso_clock_gettime(clk: c_int, ts: *mut Timespec) -> c_int {
    if let Some(ns) = served(clk).and_then(now_ns) {
        let t = Timespec {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_nsec: (ns % NSEC_PER_SEC) as i64,
        };
        // SAFETY: the caller's pointer (see above).
        unsafe { ts.write(t) };
        return 0;
    }
    syscall3(SYS_CLOCK_GETTIME, clock_arg(clk), ts as u64, 0) as c_int
}

/// gettimeofday(2). The time zone is all zeros, as the kernel's gettimeofday reports it.
///
/// # Safety
///
/// `tv` and `tz` are null or valid for writing a `struct timeval` / `struct timezone`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_gettimeofday(tv: *mut Timeval, tz: *mut Timezone) -> c_int {
    if !tv.is_null() {
        let Some(ns) = now_ns(true) else {
            return syscall3(SYS_GETTIMEOFDAY, tv as u64, tz as u64, 0) as c_int;
        };
        let t = Timeval {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_usec: ((ns % NSEC_PER_SEC) / 1000) as i64,
        };
        // SAFETY: the caller's pointer (see above).
        unsafe { tv.write(t) };
    }
    if !tz.is_null() {
        // SAFETY: as above.
        unsafe { tz.write(Timezone::default()) };
    }
    0
}

/// time(2).
///
/// # Safety
///
/// `t` is null or valid for writing a `time_t`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_time(t: *mut i64) -> i64 {
    let Some(ns) = now_ns(true) else {
        return syscall3(SYS_TIME, t as u64, 0, 0);
    };
    let secs = (ns / NSEC_PER_SEC) as i64;
    if !t.is_null() {
        // SAFETY: the caller's pointer (see above).
        unsafe { t.write(secs) };
    }
    secs
}

/// clock_getres(2): 1 ns for the TSC clocks, as the kernel reports; the coarse clocks' tick and
/// every other clock come from the system call.
///
/// # Safety
///
/// `res` is null or valid for writing a `struct timespec`.
#[no_mangle]
pub unsafe extern "C" fn __vdso_clock_getres(clk: c_int, res: *mut Timespec) -> c_int {
    match clk as u64 {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_BOOTTIME => {
            if !res.is_null() {
                // SAFETY: the caller's pointer (see above).
                unsafe {
                    res.write(Timespec {
                        tv_sec: 0,
                        tv_nsec: 1,
                    })
                };
            }
            0
        }
        _ => syscall3(SYS_CLOCK_GETRES, clock_arg(clk), res as u64, 0) as c_int,
    }
}
