//! Clocks and time structs (uapi/linux/time.h).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const CLOCK_REALTIME: u64 = 0;
pub const CLOCK_MONOTONIC: u64 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
pub const CLOCK_MONOTONIC_RAW: u64 = 4;
pub const CLOCK_REALTIME_COARSE: u64 = 5;
pub const CLOCK_MONOTONIC_COARSE: u64 = 6;
pub const CLOCK_BOOTTIME: u64 = 7;
pub const CLOCK_REALTIME_ALARM: u64 = 8;
pub const CLOCK_BOOTTIME_ALARM: u64 = 9;
pub const CLOCK_TAI: u64 = 11;

pub const TIMER_ABSTIME: u64 = 1;
pub const NSEC_PER_SEC: u64 = 1_000_000_000;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}
crate::assert_layout!(Timespec, size = 16, tv_nsec = 8);

impl Timespec {
    /// Linux's timespec64_valid: a non-negative second count and 0 <= nsec < 1e9.
    pub fn is_valid(&self) -> bool {
        self.tv_sec >= 0 && (0..NSEC_PER_SEC as i64).contains(&self.tv_nsec)
    }

    pub fn from_nanos(ns: u64) -> Self {
        Timespec {
            tv_sec: (ns / NSEC_PER_SEC) as i64,
            tv_nsec: (ns % NSEC_PER_SEC) as i64,
        }
    }

    /// Total nanoseconds, saturating (only meaningful for a valid timespec).
    pub fn to_nanos(&self) -> u64 {
        (self.tv_sec as u64)
            .saturating_mul(NSEC_PER_SEC)
            .saturating_add(self.tv_nsec as u64)
    }
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}
crate::assert_layout!(Timeval, size = 16, tv_usec = 8);

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Timezone {
    pub tz_minuteswest: i32,
    pub tz_dsttime: i32,
}
crate::assert_layout!(Timezone, size = 8);
