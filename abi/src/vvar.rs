//! The vvar page: one 4 KiB page of kernel-written data the vDSO reads, mapped read-only into
//! every process immediately below the vDSO image, so the vDSO finds it at a fixed negative
//! offset from its own load address ([`VVAR_OFFSET_FROM_VDSO`]).
//!
//! The page is per process (its KTLS fields are per process). The kernel writes the clock
//! fields of every process's page when the clock parameters change, and the KTLS fields when
//! the process fixes its KTLS parameters; execve starts from a fresh page.
//!
//! Every read goes through the seqlock `seq`: the kernel makes `seq` odd, writes, then makes it
//! even again (with store ordering in between); a reader loads `seq`, retries while it is odd,
//! loads the fields it needs, and retries if `seq` changed meanwhile.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The layout version in `Vvar::version`.
pub const VVAR_VERSION: u32 = 1;

/// Size of the vvar area: one page.
pub const VVAR_SIZE: usize = crate::PAGE_SIZE;

/// Where the vvar page starts relative to the vDSO's load address (AT_SYSINFO_EHDR).
pub const VVAR_OFFSET_FROM_VDSO: i64 = -(VVAR_SIZE as i64);

/// `clock_mode`: no usable clock source; the vDSO must make the syscall.
pub const VCLOCK_NONE: u32 = 0;
/// `clock_mode`: derive time from RDTSC with `tsc_mult`/`tsc_shift`.
pub const VCLOCK_TSC: u32 = 1;

/// The vvar page.
#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Vvar {
    /// Seqlock: odd while the kernel is writing.
    pub seq: u32,
    /// [`VVAR_VERSION`].
    pub version: u32,
    /// [`VCLOCK_NONE`] or [`VCLOCK_TSC`].
    pub clock_mode: u32,
    /// Right shift of the TSC-to-ns conversion.
    pub tsc_shift: u32,
    /// Multiplier of the TSC-to-ns conversion:
    /// `ns = base_mono_ns + (((tsc - base_tsc) as u128 * tsc_mult as u128) >> tsc_shift)`.
    pub tsc_mult: u64,
    /// TSC value at `base_mono_ns`.
    pub base_tsc: u64,
    /// CLOCK_MONOTONIC at `base_tsc`, in nanoseconds.
    pub base_mono_ns: u64,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds.
    pub realtime_offset_ns: i64,
    /// The process's KTLS offset (area address minus thread pointer); valid when
    /// `ktls_enabled` is nonzero.
    pub ktls_offset: i64,
    /// How many bytes of each area the kernel fills: min(registered length, advertised
    /// feature size). A field is usable iff this reaches its end. 0 when not enabled.
    pub ktls_feature_size: u32,
    /// Nonzero once the process has fixed its KTLS parameters (first KTLS registration).
    pub ktls_enabled: u32,
    /// The level `ktls_feature_size` covers entirely (`ktls::level_for_size`); 0 when not
    /// enabled.
    pub ktls_level: u32,
    /// AT_HWCAP2 as the process got it; bit [`crate::auxv::HWCAP2_FSGSBASE`] tells the vDSO
    /// that RDFSBASE works.
    pub hwcap2: u32,
    /// Zero; for later versions.
    pub _reserved: [u8; 4096 - 72],
}
crate::assert_layout!(
    Vvar,
    size = VVAR_SIZE,
    version = 4,
    clock_mode = 8,
    tsc_shift = 12,
    tsc_mult = 16,
    base_tsc = 24,
    base_mono_ns = 32,
    realtime_offset_ns = 40,
    ktls_offset = 48,
    ktls_feature_size = 56,
    ktls_enabled = 60,
    ktls_level = 64,
    hwcap2 = 68,
    _reserved = 72,
);

/// The TSC-to-nanoseconds formula of the vvar page: `base_ns + ((tsc - base_tsc) * mult) >>
/// shift`, the product in 128 bits. The kernel's own clocks, the vDSO and the tests all compute
/// time with this one function, so a clock read through the vDSO and one through the syscall
/// agree to the nanosecond and never run backwards relative to each other.
pub const fn tsc_to_ns(tsc: u64, base_tsc: u64, mult: u64, shift: u32, base_ns: u64) -> u64 {
    let delta = tsc.wrapping_sub(base_tsc) as u128;
    base_ns.wrapping_add((delta * mult as u128).wrapping_shr(shift) as u64)
}

impl Vvar {
    /// CLOCK_MONOTONIC in nanoseconds at TSC value `tsc` (the vDSO's computation).
    pub const fn mono_ns(&self, tsc: u64) -> u64 {
        tsc_to_ns(
            tsc,
            self.base_tsc,
            self.tsc_mult,
            self.tsc_shift,
            self.base_mono_ns,
        )
    }

    /// CLOCK_REALTIME in nanoseconds at TSC value `tsc`.
    pub const fn realtime_ns(&self, tsc: u64) -> u64 {
        self.mono_ns(tsc)
            .wrapping_add(self.realtime_offset_ns as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn clock_math() {
        let mut v = Vvar::new_zeroed();
        v.clock_mode = VCLOCK_TSC;
        // 2 GHz: 0.5 ns per tick = mult 1 << 31, shift 32.
        v.tsc_mult = 1 << 31;
        v.tsc_shift = 32;
        v.base_tsc = 1000;
        v.base_mono_ns = 5_000;
        v.realtime_offset_ns = 1_700_000_000_000_000_000;
        assert_eq!(v.mono_ns(1000), 5_000);
        assert_eq!(v.mono_ns(3000), 6_000);
        assert_eq!(v.realtime_ns(3000), 1_700_000_000_000_006_000);
        // No overflow on a large delta.
        assert_eq!(v.mono_ns(1000 + (1 << 60)), 5_000 + (1 << 59));
        assert_eq!(VVAR_OFFSET_FROM_VDSO, -4096);
    }
}
