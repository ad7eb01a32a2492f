//! Clocks: the TSC since boot for the monotonic clocks, plus the RTC's reading at boot for
//! the real-time clock.

use crate::arch::{apic, cpu, rtc};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use ktls_abi::time::NSEC_PER_SEC;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static REALTIME_AT_BOOT_NS: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    TSC_AT_BOOT.store(cpu::rdtsc(), Relaxed);
    let secs = rtc::unix_time().unwrap_or(0);
    REALTIME_AT_BOOT_NS.store(secs * NSEC_PER_SEC, Relaxed);
}

/// Nanoseconds since boot (CLOCK_MONOTONIC, CLOCK_BOOTTIME).
pub fn monotonic_ns() -> u64 {
    let hz = apic::tsc_hz().max(1);
    let delta = cpu::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Relaxed));
    ((delta as u128 * NSEC_PER_SEC as u128) / hz as u128) as u64
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
