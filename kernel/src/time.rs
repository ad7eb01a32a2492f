//! Clocks: the TSC since boot for the monotonic clocks, plus the RTC's reading at boot for
//! the real-time clock.
//!
//! TSC ticks become nanoseconds with a multiplier and shift, by the vvar page's formula
//! (`ktls_abi::vvar::tsc_to_ns`), and the vDSO computes time from the same numbers
//! ([`clock_data`], published in every vvar page): a clock read in the vDSO and one through
//! the system call agree to the nanosecond.

use crate::arch::{apic, cpu, rtc};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use ktls_abi::time::NSEC_PER_SEC;
use ktls_abi::vvar::tsc_to_ns;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TSC_MULT: AtomicU64 = AtomicU64::new(0);
static REALTIME_AT_BOOT_NS: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// The shift of the TSC-to-ns conversion: with 32 bits of fraction the multiplier is exact to
/// better than a nanosecond per second at any TSC rate, and the 128-bit product cannot
/// overflow.
const TSC_SHIFT: u32 = 32;

/// Starts the clocks; after `apic::init`, which measures the TSC's rate.
pub fn init() {
    let hz = apic::tsc_hz().max(1);
    TSC_MULT.store(
        (((NSEC_PER_SEC as u128) << TSC_SHIFT) / hz as u128) as u64,
        Relaxed,
    );
    TSC_AT_BOOT.store(cpu::rdtsc(), Relaxed);
    let secs = rtc::unix_time().unwrap_or(0);
    REALTIME_AT_BOOT_NS.store(secs * NSEC_PER_SEC, Relaxed);
}

/// Nanoseconds since boot (CLOCK_MONOTONIC, CLOCK_BOOTTIME).
pub fn monotonic_ns() -> u64 {
    tsc_to_ns(
        cpu::rdtsc(),
        TSC_AT_BOOT.load(Relaxed),
        TSC_MULT.load(Relaxed),
        TSC_SHIFT,
        0,
    )
}

/// The clock as the vvar page describes it.
#[derive(Clone, Copy, Debug)]
pub struct ClockData {
    pub mult: u64,
    pub shift: u32,
    pub base_tsc: u64,
    pub base_mono_ns: u64,
    pub realtime_offset_ns: i64,
}

/// The clock for the vvar page: `None` before `init` or without a measured TSC rate, which
/// tells the vDSO to make the system calls.
pub fn clock_data() -> Option<ClockData> {
    let mult = TSC_MULT.load(Relaxed);
    (mult != 0 && apic::tsc_hz() != 0).then(|| ClockData {
        mult,
        shift: TSC_SHIFT,
        base_tsc: TSC_AT_BOOT.load(Relaxed),
        base_mono_ns: 0,
        realtime_offset_ns: REALTIME_AT_BOOT_NS.load(Relaxed) as i64,
    })
}

/// Nanoseconds since the epoch (CLOCK_REALTIME).
pub fn realtime_ns() -> u64 {
    REALTIME_AT_BOOT_NS.load(Relaxed) + monotonic_ns()
}

pub fn tick() {
    TICKS.fetch_add(1, Relaxed);
}

/// Resolution reported by clock_getres: the TSC clocks are nanosecond-resolution, the coarse
/// clocks tick with the timer.
pub fn resolution_ns(coarse: bool) -> u64 {
    if coarse {
        NSEC_PER_SEC / apic::HZ
    } else {
        1
    }
}
