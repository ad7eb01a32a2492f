//! Auxiliary-vector keys (include/uapi/linux/auxvec.h) and the x86_64 hardware capabilities.

pub const AT_NULL: u64 = 0;
pub const AT_IGNORE: u64 = 1;
pub const AT_EXECFD: u64 = 2;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_NOTELF: u64 = 10;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_BASE_PLATFORM: u64 = 24;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_RSEQ_FEATURE_SIZE: u64 = 27;
pub const AT_RSEQ_ALIGN: u64 = 28;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
pub const AT_MINSIGSTKSZ: u64 = 51;

/// ktls: the KTLS feature size the kernel fills (spec/ktls.md). Absent on kernels without
/// KTLS, so getauxval() returns 0 there.
///
/// The keys are "KTL" in ASCII plus a small number, far above every Linux key (Linux's keys are
/// below 64; AT_MINSIGSTKSZ = 51 is the highest on x86_64), so Linux will not collide with
/// them. Libcs tolerate unknown keys: glibc's _dl_parse_auxv stores only keys up to
/// AT_MINSIGSTKSZ in its table and musl's __init_libc only keys below AUX_CNT (38); both
/// getauxval() implementations walk the whole vector and so do return these values.
pub const AT_KTLS_FEATURE_SIZE: u64 = 0x4b54_4c00 + 1;
/// ktls: the alignment a KTLS area needs (spec/ktls.md).
pub const AT_KTLS_ALIGN: u64 = 0x4b54_4c00 + 2;

/// AT_HWCAP2 bit: user space may use RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE.
pub const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// The clock tick Linux reports in AT_CLKTCK (USER_HZ).
pub const CLKTCK: u64 = 100;

/// AT_PLATFORM on x86_64.
pub const PLATFORM: &str = "x86_64";

/// Linux's x86_64 AT_MINSIGSTKSZ without AVX-512 state: the legacy MINSIGSTKSZ.
pub const MINSIGSTKSZ: u64 = 2048;
