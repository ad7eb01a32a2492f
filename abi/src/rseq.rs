//! Restartable sequences: Linux's rseq ABI (include/uapi/linux/rseq.h, kernel/rseq.c) and
//! membarrier commands (include/uapi/linux/membarrier.h), as current Linux (7.x) has them.
//!
//! # Layout history (what user space may meet)
//!
//! | Linux | fields (end offset) | AT_RSEQ_FEATURE_SIZE | AT_RSEQ_ALIGN |
//! |---|---|---|---|
//! | 4.18 - 6.2 | cpu_id_start, cpu_id, rseq_cs, flags (20); registered as 32 bytes | (no auxv) | (no auxv) |
//! | 6.3 - 6.19 | + node_id, mm_cid (28) | 28 | 32 |
//! | 7.0 | + slice_ctrl (32), + one reserved byte (33) | 33 | 64 |
//!
//! The 7.0 development cycle first added `slice_ctrl` alone, which made the feature size exactly
//! 32. That value is ambiguous: glibc 2.35 - 2.39 export `__rseq_size = 32` for a 20-byte active
//! area. Before the release, Linux appended a one-byte reserved field (`__reserved`, offset 32)
//! so the feature size became 33, `sizeof(struct rseq)` became 64, and AT_RSEQ_ALIGN changed
//! from `__alignof__(struct rseq)` (32) to the feature size rounded up to a power of two (64,
//! `rseq_alloc_align()`). The next field Linux adds replaces that reserved byte. ktls follows
//! the 7.0 layout: [`RSEQ_FEATURE_SIZE`] = 33, [`RSEQ_ALLOC_ALIGN`] = 64.
//!
//! # Registration rules
//!
//! [`check_register`] is sys_rseq's argument validation in Linux's order; the kernel then does
//! the access check ([`access_ok`]) and the writes, either of which can fail with EFAULT.
//! A 32-byte registration ([`ORIG_RSEQ_SIZE`]) needs only 32-byte alignment; any other length
//! must be at least [`RSEQ_FEATURE_SIZE`] and aligned to [`RSEQ_ALLOC_ALIGN`].
//!
//! Since 2026, Linux discusses (as a fix for a 6.19 regression) treating 32-byte registrations
//! as a "legacy" mode that rewrites the ids on every context switch, and registrations of at
//! least the feature size as an "optimized" mode with strictly read-only id fields and time
//! slice extensions. Layouts, numbers and error codes are the same in both modes.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::errno::Errno;

/// The abort signature on x86 (tools/testing/selftests/rseq/rseq-x86-abi.h): the four bytes
/// before every abort handler, and the `sig` argument of rseq(2).
pub const RSEQ_SIG: u32 = 0x5305_3053;

/// The original registration length: `sizeof(struct rseq)` before the ABI became extensible.
/// Linux still accepts it with 32-byte alignment (ORIG_RSEQ_SIZE in kernel/rseq.c).
pub const ORIG_RSEQ_SIZE: u32 = 32;

/// `cpu_id` before the first registration (enum rseq_cpu_id_state: -1 as u32).
pub const RSEQ_CPU_ID_UNINITIALIZED: u32 = -1i32 as u32;
/// `cpu_id` a libc stores when registration failed (-2 as u32).
pub const RSEQ_CPU_ID_REGISTRATION_FAILED: u32 = -2i32 as u32;

/// First address at or above which the kernel rejects user pointers: x86_64 TASK_SIZE_MAX with
/// 4-level paging, `(1 << 47) - PAGE_SIZE` (the top user page is a guard page).
pub const TASK_SIZE: u64 = crate::USER_SPACE_END - crate::PAGE_SIZE as u64;

bitflags! {
    /// The `flags` argument of rseq(2) (enum rseq_flags).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RseqFlags: u32 {
        /// Unregister the calling thread's area.
        const UNREGISTER = 1 << 0;
        /// Linux 7.0: turn time slice extensions on for this thread at registration (only
        /// effective where the kernel supports them; accepted and ignored otherwise).
        const SLICE_EXT_DEFAULT_ON = 1 << 1;
    }
}

/// Flag bits sys_rseq accepts on a registration (RSEQ_FLAGS_SUPPORTED in kernel/rseq.c). An
/// unregistration accepts [`RseqFlags::UNREGISTER`] alone.
pub const RSEQ_FLAGS_SUPPORTED: u32 = RseqFlags::SLICE_EXT_DEFAULT_ON.bits();

bitflags! {
    /// Bits of `struct rseq_cs::flags` and `struct rseq::flags` (enum rseq_cs_flags).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RseqCsFlags: u32 {
        /// Deprecated: once meant "do not restart on preemption". Any descriptor carrying it
        /// is invalid (the thread gets SIGSEGV).
        const NO_RESTART_ON_PREEMPT = 1 << 0;
        /// Deprecated: once meant "do not restart on signal delivery".
        const NO_RESTART_ON_SIGNAL = 1 << 1;
        /// Deprecated: once meant "do not restart on migration".
        const NO_RESTART_ON_MIGRATE = 1 << 2;
        // Bit 3 is left free on purpose so the feature bits start a new byte.
        /// Linux 7.0, in `struct rseq::flags` only, kernel-written: the kernel offers time
        /// slice extensions to this registration.
        const SLICE_EXT_AVAILABLE = 1 << 4;
        /// Linux 7.0, in `struct rseq::flags` only, kernel-written: time slice extensions are
        /// on for this thread.
        const SLICE_EXT_ENABLED = 1 << 5;
    }
}

/// The three historical bits that make a critical-section descriptor invalid.
pub const RSEQ_CS_DEPRECATED_FLAGS: u32 = RseqCsFlags::NO_RESTART_ON_PREEMPT.bits()
    | RseqCsFlags::NO_RESTART_ON_SIGNAL.bits()
    | RseqCsFlags::NO_RESTART_ON_MIGRATE.bits();

/// `struct rseq` as Linux 7.0 defines it. Aligned to 32 bytes (the attribute on the C struct),
/// so `size_of` is 64; the active part ends at [`RSEQ_FEATURE_SIZE`].
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Rseq {
    /// Kernel-written: the CPU the thread last ran on; always a possible CPU number.
    pub cpu_id_start: u32,
    /// Kernel-written: the current CPU, or [`RSEQ_CPU_ID_UNINITIALIZED`] /
    /// [`RSEQ_CPU_ID_REGISTRATION_FAILED`].
    pub cpu_id: u32,
    /// User-written pointer to the active [`RseqCs`] (0 when none); the kernel clears it.
    pub rseq_cs: u64,
    /// Before 7.0: user-written, the deprecated [`RseqCsFlags`] bits must be 0. Since 7.0:
    /// kernel-written feature flags ([`RseqCsFlags::SLICE_EXT_AVAILABLE`], `_ENABLED`).
    pub flags: u32,
    /// Kernel-written (6.3+): the NUMA node of `cpu_id`.
    pub node_id: u32,
    /// Kernel-written (6.3+): the memory-map concurrency id.
    pub mm_cid: u32,
    /// 7.0+: the time slice extension control word (`struct rseq_slice_ctrl`, a union of
    /// `__u32 all` with `__u8 request` (user-set), `__u8 granted` (kernel-set) and
    /// `__u16 __reserved`); see [`SLICE_CTRL_REQUEST`] / [`SLICE_CTRL_GRANTED`].
    pub slice_ctrl: u32,
    /// 7.0+: `__reserved`, a byte that only exists so the feature size is 33, not 32.
    pub reserved: u8,
    /// Tail padding from the 32-byte alignment (not part of Linux's named fields).
    pub _pad: [u8; 31],
}
crate::assert_layout!(
    Rseq,
    size = 64,
    cpu_id = 4,
    rseq_cs = 8,
    flags = 16,
    node_id = 20,
    mm_cid = 24,
    slice_ctrl = 28,
    reserved = 32,
    _pad = 33,
);

/// `slice_ctrl` byte masks on little-endian x86: `request` is byte 0, `granted` byte 1.
pub const SLICE_CTRL_REQUEST: u32 = 0x0000_00ff;
pub const SLICE_CTRL_GRANTED: u32 = 0x0000_ff00;

/// `offsetof(struct rseq, end)` in Linux 7.0: what the kernel reports in AT_RSEQ_FEATURE_SIZE.
pub const RSEQ_FEATURE_SIZE: u32 = 33;
/// The feature size of Linux 6.3 - 6.19 (the area ended after `mm_cid`).
pub const RSEQ_FEATURE_SIZE_6_3: u32 = 28;
/// The active area of Linux before 6.3 (ended after `flags`).
pub const RSEQ_FEATURE_SIZE_ORIG: u32 = 20;

/// `rseq_alloc_align()`: the feature size rounded up to a power of two. Linux 7.0 reports it
/// in AT_RSEQ_ALIGN and requires it of every registration whose length is not 32. Linux 6.3 -
/// 6.19 reported and required `__alignof__(struct rseq)` = 32 instead.
pub const RSEQ_ALLOC_ALIGN: u32 = RSEQ_FEATURE_SIZE.next_power_of_two();
/// `__alignof__(struct rseq)`: 32 in every Linux version.
pub const RSEQ_STRUCT_ALIGN: u32 = 32;

const _: () = {
    assert!(RSEQ_FEATURE_SIZE as usize == core::mem::offset_of!(Rseq, reserved) + 1);
    assert!(RSEQ_ALLOC_ALIGN == 64);
    assert!(core::mem::align_of::<Rseq>() == RSEQ_STRUCT_ALIGN as usize);
};

/// `struct rseq_cs`: a critical-section descriptor, normally constant data.
#[repr(C, align(32))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct RseqCs {
    /// Must be 0.
    pub version: u32,
    /// Must be 0 (the only defined bits are the deprecated [`RSEQ_CS_DEPRECATED_FLAGS`]).
    pub flags: u32,
    /// First instruction of the critical section.
    pub start_ip: u64,
    /// Length of the critical section: it covers `[start_ip, start_ip + post_commit_offset)`.
    pub post_commit_offset: u64,
    /// Where the kernel sends the thread when it aborts the section; the four bytes before it
    /// must hold the registered signature.
    pub abort_ip: u64,
}
crate::assert_layout!(
    RseqCs,
    size = 32,
    flags = 4,
    start_ip = 8,
    post_commit_offset = 16,
    abort_ip = 24,
);

/// A thread's current rseq registration, as sys_rseq compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    pub addr: u64,
    pub len: u32,
    pub sig: u32,
}

/// What a valid rseq(2) call asks the kernel to do once the access check passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Register `addr`/`len`/`sig` for the calling thread.
    Register {
        /// [`RseqFlags::SLICE_EXT_DEFAULT_ON`] was given.
        slice_ext_default_on: bool,
    },
    /// Drop the calling thread's registration (after resetting the id fields: cpu_id_start 0,
    /// cpu_id [`RSEQ_CPU_ID_UNINITIALIZED`], node_id 0, mm_cid 0).
    Unregister,
}

/// Whether `len` is a valid registration length for an area at `addr` (rseq_length_valid).
pub const fn length_valid(addr: u64, len: u32) -> bool {
    if len < ORIG_RSEQ_SIZE {
        return false;
    }
    if len == ORIG_RSEQ_SIZE {
        return addr.is_multiple_of(ORIG_RSEQ_SIZE as u64);
    }
    addr.is_multiple_of(RSEQ_ALLOC_ALIGN as u64) && len >= RSEQ_FEATURE_SIZE
}

/// sys_rseq's checks before any memory access, in Linux's order:
///
/// 1. [`RseqFlags::UNREGISTER`] set: any other flag bit -> EINVAL; no registration, or `addr`
///    differs -> EINVAL; `len` differs -> EINVAL; `sig` differs -> EPERM; else unregister.
/// 2. A flag bit outside [`RSEQ_FLAGS_SUPPORTED`] -> EINVAL.
/// 3. Already registered: `addr` or `len` differs -> EINVAL; `sig` differs -> EPERM; the same
///    registration again -> EBUSY.
/// 4. [`length_valid`] fails (this covers `rseq(NULL, 0, 0, 0)`) -> EINVAL.
///
/// The kernel then checks [`access_ok`] (EFAULT) and writes the area (EFAULT on a fault).
pub fn check_register(
    addr: u64,
    len: u32,
    flags: u32,
    sig: u32,
    current: Option<Registration>,
) -> Result<Action, Errno> {
    if flags & RseqFlags::UNREGISTER.bits() != 0 {
        if flags & !RseqFlags::UNREGISTER.bits() != 0 {
            return Err(Errno::EINVAL);
        }
        let cur = match current {
            Some(cur) if cur.addr == addr => cur,
            _ => return Err(Errno::EINVAL),
        };
        if cur.len != len {
            return Err(Errno::EINVAL);
        }
        if cur.sig != sig {
            return Err(Errno::EPERM);
        }
        return Ok(Action::Unregister);
    }
    if flags & !RSEQ_FLAGS_SUPPORTED != 0 {
        return Err(Errno::EINVAL);
    }
    if let Some(cur) = current {
        return Err(check_reregister(cur, addr, len, sig));
    }
    if !length_valid(addr, len) {
        return Err(Errno::EINVAL);
    }
    Ok(Action::Register {
        slice_ext_default_on: flags & RseqFlags::SLICE_EXT_DEFAULT_ON.bits() != 0,
    })
}

/// The verdict on a registration attempt by a thread that already has one (rseq_reregister):
/// EINVAL for another area or length, EPERM for another signature, EBUSY otherwise.
pub const fn check_reregister(cur: Registration, addr: u64, len: u32, sig: u32) -> Errno {
    if cur.addr != addr || cur.len != len {
        Errno::EINVAL
    } else if cur.sig != sig {
        Errno::EPERM
    } else {
        Errno::EBUSY
    }
}

/// x86_64 `access_ok`: the whole range lies below [`TASK_SIZE`] (a range check only; whether
/// the pages are mapped is found out by the access itself).
pub const fn access_ok(addr: u64, len: u64) -> bool {
    len <= TASK_SIZE && addr <= TASK_SIZE - len
}

/// Why a critical-section descriptor is invalid. The kernel kills the thread with SIGSEGV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsError {
    /// `rseq_cs` points at or above [`TASK_SIZE`].
    CsAddress,
    /// `start_ip` at or above [`TASK_SIZE`].
    StartIp,
    /// `start_ip + post_commit_offset` wraps or reaches [`TASK_SIZE`].
    End,
    /// `abort_ip` at or above [`TASK_SIZE`], or below 4 (no room for the signature).
    AbortIp,
    /// `abort_ip` lies inside the critical section.
    AbortInside,
    /// `version` is not 0.
    Version,
    /// `flags` has one of the deprecated [`RSEQ_CS_DEPRECATED_FLAGS`].
    DeprecatedFlags,
    /// `flags` has another bit set (Linux 7.x requires the whole word to be 0).
    UnknownFlags,
    /// The four bytes before `abort_ip` are not the registered signature.
    Signature,
}

/// What the kernel does with a thread's critical section at a preemption, signal delivery or
/// migration point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsAction {
    /// The thread is outside the section: store 0 to `rseq_cs`.
    Clear,
    /// The thread is inside: read the u32 at `abort_ip - 4`, check it with
    /// [`check_abort_signature`], store 0 to `rseq_cs` and resume the thread at `abort_ip`.
    Abort { abort_ip: u64 },
}

/// Checks the `rseq_cs` pointer itself (done before reading the descriptor).
pub const fn check_cs_addr(cs_addr: u64) -> Result<(), CsError> {
    if cs_addr >= TASK_SIZE {
        Err(CsError::CsAddress)
    } else {
        Ok(())
    }
}

/// Whether `ip` lies in `[start_ip, start_ip + post_commit_offset)` (Linux's unsigned
/// `ip - start_ip < post_commit_offset`).
pub const fn in_critical_section(ip: u64, cs: &RseqCs) -> bool {
    ip.wrapping_sub(cs.start_ip) < cs.post_commit_offset
}

/// Every ip-independent check of a descriptor (the full validation Linux performed before
/// 6.19 on every descriptor it looked at, and performs in debug mode).
pub const fn check_cs(cs: &RseqCs) -> Result<(), CsError> {
    if cs.start_ip >= TASK_SIZE {
        return Err(CsError::StartIp);
    }
    match cs.start_ip.checked_add(cs.post_commit_offset) {
        Some(end) if end < TASK_SIZE => {}
        _ => return Err(CsError::End),
    }
    if cs.abort_ip >= TASK_SIZE || cs.abort_ip < 4 {
        return Err(CsError::AbortIp);
    }
    if cs.abort_ip.wrapping_sub(cs.start_ip) < cs.post_commit_offset {
        return Err(CsError::AbortInside);
    }
    check_cs_head(cs)
}

const fn check_cs_head(cs: &RseqCs) -> Result<(), CsError> {
    if cs.version != 0 {
        Err(CsError::Version)
    } else if cs.flags & RSEQ_CS_DEPRECATED_FLAGS != 0 {
        Err(CsError::DeprecatedFlags)
    } else if cs.flags != 0 {
        Err(CsError::UnknownFlags)
    } else {
        Ok(())
    }
}

/// The decision for a thread interrupted at `ip` with descriptor `cs`, in the order of Linux
/// 7.x's fully checking path (rseq_debug_update_user_cs): start_ip; outside before the start
/// -> clear; end; outside after the end -> clear; abort_ip; abort_ip inside; version and flags.
/// A thread outside its section only needs a sane `start_ip` (and end, when past the start).
pub const fn cs_action(ip: u64, cs: &RseqCs) -> Result<CsAction, CsError> {
    if cs.start_ip >= TASK_SIZE {
        return Err(CsError::StartIp);
    }
    if ip < cs.start_ip {
        return Ok(CsAction::Clear);
    }
    let end = match cs.start_ip.checked_add(cs.post_commit_offset) {
        Some(end) if end < TASK_SIZE => end,
        _ => return Err(CsError::End),
    };
    if ip >= end {
        return Ok(CsAction::Clear);
    }
    if cs.abort_ip >= TASK_SIZE || cs.abort_ip < 4 {
        return Err(CsError::AbortIp);
    }
    if cs.abort_ip.wrapping_sub(cs.start_ip) < cs.post_commit_offset {
        return Err(CsError::AbortInside);
    }
    match check_cs_head(cs) {
        Ok(()) => Ok(CsAction::Abort {
            abort_ip: cs.abort_ip,
        }),
        Err(e) => Err(e),
    }
}

/// The last check before an abort: the u32 found at `abort_ip - 4` must be the signature the
/// thread registered with.
pub const fn check_abort_signature(found: u32, registered: u32) -> Result<(), CsError> {
    if found == registered {
        Ok(())
    } else {
        Err(CsError::Signature)
    }
}

/// membarrier(2) commands (enum membarrier_cmd). Every command is a single bit except QUERY.
pub const MEMBARRIER_CMD_QUERY: u32 = 0;
pub const MEMBARRIER_CMD_GLOBAL: u32 = 1 << 0;
pub const MEMBARRIER_CMD_GLOBAL_EXPEDITED: u32 = 1 << 1;
pub const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: u32 = 1 << 2;
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED: u32 = 1 << 3;
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: u32 = 1 << 4;
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 5;
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u32 = 1 << 6;
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: u32 = 1 << 7;
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ: u32 = 1 << 8;
pub const MEMBARRIER_CMD_GET_REGISTRATIONS: u32 = 1 << 9;
/// Old name of [`MEMBARRIER_CMD_GLOBAL`].
pub const MEMBARRIER_CMD_SHARED: u32 = MEMBARRIER_CMD_GLOBAL;
/// membarrier flag (enum membarrier_cmd_flag): `cpu_id` names the one CPU to interrupt
/// (PRIVATE_EXPEDITED_RSEQ only).
pub const MEMBARRIER_CMD_FLAG_CPU: u32 = 1 << 0;

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: u64 = 0x7000_0000_1000; // page aligned
    const SIG: u32 = RSEQ_SIG;

    fn reg(addr: u64, len: u32, sig: u32) -> Option<Registration> {
        Some(Registration { addr, len, sig })
    }

    const REGISTER: Result<Action, Errno> = Ok(Action::Register {
        slice_ext_default_on: false,
    });

    #[test]
    fn constants_match_linux() {
        assert_eq!(RSEQ_CPU_ID_UNINITIALIZED, 0xffff_ffff);
        assert_eq!(RSEQ_CPU_ID_REGISTRATION_FAILED, 0xffff_fffe);
        assert_eq!(TASK_SIZE, 0x7fff_ffff_f000);
        assert_eq!(RseqFlags::all().bits(), 3);
        assert_eq!(RSEQ_CS_DEPRECATED_FLAGS, 7);
        assert_eq!(MEMBARRIER_CMD_GET_REGISTRATIONS, 512);
    }

    #[test]
    fn fresh_registration_lengths_and_alignment() {
        assert_eq!(check_register(AREA, 32, 0, SIG, None), REGISTER);
        assert_eq!(check_register(AREA + 32, 32, 0, SIG, None), REGISTER);
        assert_eq!(
            check_register(AREA + 16, 32, 0, SIG, None),
            Err(Errno::EINVAL)
        );
        // Any other length needs the feature size and 64-byte alignment.
        assert_eq!(check_register(AREA, 33, 0, SIG, None), REGISTER);
        assert_eq!(check_register(AREA, 64, 0, SIG, None), REGISTER);
        assert_eq!(check_register(AREA, 1 << 20, 0, SIG, None), REGISTER);
        assert_eq!(
            check_register(AREA + 32, 33, 0, SIG, None),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_register(AREA + 32, 64, 0, SIG, None),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_register(AREA, 31, 0, SIG, None), Err(Errno::EINVAL));
        assert_eq!(check_register(AREA, 0, 0, SIG, None), Err(Errno::EINVAL));
        assert_eq!(check_register(AREA, 20, 0, SIG, None), Err(Errno::EINVAL));
        // rseq(NULL, 0, 0, 0)
        assert_eq!(check_register(0, 0, 0, 0, None), Err(Errno::EINVAL));
    }

    #[test]
    fn flags() {
        assert_eq!(
            check_register(AREA, 32, RseqFlags::SLICE_EXT_DEFAULT_ON.bits(), SIG, None),
            Ok(Action::Register {
                slice_ext_default_on: true
            })
        );
        assert_eq!(
            check_register(AREA, 32, 1 << 2, SIG, None),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_register(AREA, 32, 1 << 16, SIG, None),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_register(AREA, 32, 1 << 31, SIG, None),
            Err(Errno::EINVAL)
        );
        // The flag check comes before the length check and the re-registration check.
        assert_eq!(check_register(AREA, 0, 4, SIG, None), Err(Errno::EINVAL));
        let live = reg(AREA, 32, SIG);
        assert_eq!(check_register(AREA, 32, 4, SIG, live), Err(Errno::EINVAL));
        assert_eq!(check_register(AREA, 32, 0, SIG, live), Err(Errno::EBUSY));
    }

    #[test]
    fn reregistration() {
        let live = reg(AREA, 32, SIG);
        assert_eq!(check_register(AREA, 32, 0, SIG, live), Err(Errno::EBUSY));
        assert_eq!(check_register(AREA, 32, 2, SIG, live), Err(Errno::EBUSY));
        assert_eq!(
            check_register(AREA, 32, 0, SIG ^ 1, live),
            Err(Errno::EPERM)
        );
        assert_eq!(
            check_register(AREA + 64, 32, 0, SIG, live),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_register(AREA, 64, 0, SIG, live), Err(Errno::EINVAL));
        // Address mismatch wins over signature mismatch.
        assert_eq!(
            check_register(AREA + 64, 32, 0, 0, live),
            Err(Errno::EINVAL)
        );
        // The re-registration verdict precedes the length check.
        assert_eq!(check_register(0, 0, 0, 0, live), Err(Errno::EINVAL));
    }

    #[test]
    fn unregistration() {
        let u = RseqFlags::UNREGISTER.bits();
        let live = reg(AREA, 32, SIG);
        assert_eq!(
            check_register(AREA, 32, u, SIG, live),
            Ok(Action::Unregister)
        );
        assert_eq!(check_register(AREA, 32, u, SIG, None), Err(Errno::EINVAL));
        assert_eq!(check_register(0, 32, u, SIG, None), Err(Errno::EINVAL));
        assert_eq!(
            check_register(AREA + 64, 32, u, SIG, live),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_register(AREA, 64, u, SIG, live), Err(Errno::EINVAL));
        assert_eq!(
            check_register(AREA, 32, u, SIG ^ 1, live),
            Err(Errno::EPERM)
        );
        // Pointer before length before signature.
        assert_eq!(
            check_register(AREA + 64, 64, u, 0, live),
            Err(Errno::EINVAL)
        );
        assert_eq!(check_register(AREA, 64, u, 0, live), Err(Errno::EINVAL));
        // Only UNREGISTER may be set on the unregister path.
        assert_eq!(
            check_register(AREA, 32, u | 2, SIG, live),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_register(AREA, 32, u | (1 << 16), SIG, live),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn access_check() {
        assert!(access_ok(AREA, 64));
        assert!(access_ok(TASK_SIZE - 64, 64));
        assert!(!access_ok(TASK_SIZE - 32, 64));
        assert!(!access_ok(u64::MAX - 10, 64));
        assert!(!access_ok(0, TASK_SIZE + 1));
        assert!(access_ok(AREA, 1 << 20));
    }

    fn cs(start_ip: u64, len: u64, abort_ip: u64) -> RseqCs {
        RseqCs {
            version: 0,
            flags: 0,
            start_ip,
            post_commit_offset: len,
            abort_ip,
        }
    }

    #[test]
    fn critical_section_range() {
        let c = cs(0x1000, 0x20, 0x2004);
        assert!(!in_critical_section(0xfff, &c));
        assert!(in_critical_section(0x1000, &c));
        assert!(in_critical_section(0x101f, &c));
        assert!(!in_critical_section(0x1020, &c));
        assert!(!in_critical_section(0x1000, &cs(0x1000, 0, 0x2004)));
    }

    #[test]
    fn descriptor_checks() {
        assert_eq!(check_cs(&cs(0x1000, 0x20, 0x2004)), Ok(()));
        // Abort handler right after or right before the section is fine.
        assert_eq!(check_cs(&cs(0x1000, 0x20, 0x1020)), Ok(()));
        assert_eq!(check_cs(&cs(0x1000, 0x20, 0xfff)), Ok(()));
        assert_eq!(
            check_cs(&cs(0x1000, 0x20, 0x1000)),
            Err(CsError::AbortInside)
        );
        assert_eq!(
            check_cs(&cs(0x1000, 0x20, 0x101f)),
            Err(CsError::AbortInside)
        );
        assert_eq!(check_cs(&cs(TASK_SIZE, 0, 0x2004)), Err(CsError::StartIp));
        assert_eq!(check_cs(&cs(0x1000, TASK_SIZE, 0x4)), Err(CsError::End));
        assert_eq!(check_cs(&cs(0x1000, u64::MAX, 0x4)), Err(CsError::End));
        assert_eq!(
            check_cs(&cs(0x1000, 0x20, TASK_SIZE)),
            Err(CsError::AbortIp)
        );
        assert_eq!(check_cs(&cs(0x1000, 0x20, 3)), Err(CsError::AbortIp));
        let mut c = cs(0x1000, 0x20, 0x2004);
        c.version = 1;
        assert_eq!(check_cs(&c), Err(CsError::Version));
        c.version = 0;
        for bit in 0..3 {
            c.flags = 1 << bit;
            assert_eq!(check_cs(&c), Err(CsError::DeprecatedFlags));
        }
        c.flags = 1 << 4;
        assert_eq!(check_cs(&c), Err(CsError::UnknownFlags));
        assert_eq!(check_cs_addr(TASK_SIZE), Err(CsError::CsAddress));
        assert_eq!(check_cs_addr(TASK_SIZE - 32), Ok(()));
    }

    #[test]
    fn decisions_follow_linux_order() {
        let good = cs(0x1000, 0x20, 0x2004);
        assert_eq!(
            cs_action(0x1010, &good),
            Ok(CsAction::Abort { abort_ip: 0x2004 })
        );
        assert_eq!(cs_action(0xfff, &good), Ok(CsAction::Clear));
        assert_eq!(cs_action(0x1020, &good), Ok(CsAction::Clear));
        // Outside the section, a bad abort_ip or head is not looked at ...
        let mut bad = cs(0x1000, 0x20, 0x1010);
        bad.version = 3;
        assert_eq!(cs_action(0x2000, &bad), Ok(CsAction::Clear));
        assert_eq!(cs_action(0x1010, &bad), Err(CsError::AbortInside));
        bad.abort_ip = 0x2004;
        assert_eq!(cs_action(0x1010, &bad), Err(CsError::Version));
        // ... but start_ip always is, and the end is once ip passed the start.
        assert_eq!(cs_action(0, &cs(TASK_SIZE, 1, 4)), Err(CsError::StartIp));
        assert_eq!(
            cs_action(0xfff, &cs(0x1000, u64::MAX, 4)),
            Ok(CsAction::Clear)
        );
        assert_eq!(
            cs_action(0x1000, &cs(0x1000, u64::MAX, 4)),
            Err(CsError::End)
        );
        assert_eq!(check_abort_signature(RSEQ_SIG, RSEQ_SIG), Ok(()));
        assert_eq!(check_abort_signature(0, RSEQ_SIG), Err(CsError::Signature));
    }
}
