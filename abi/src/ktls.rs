//! KTLS, Kernel Thread Local Storage: a per-thread area at a fixed offset from the thread
//! pointer that the kernel keeps current and user space reads without a syscall. KTLS ABI
//! version 1; the normative text is spec/ktls.md, this module is its machine-readable half.
//!
//! A KTLS area starts with a complete Linux `struct rseq` ([`Rseq`], 64 bytes), so the one
//! registration that makes the area live also registers the thread for rseq; the KTLS fields
//! follow at [`KTLS_BASE`] and are only ever appended. Every field has a level; the feature
//! size of a level is the end of its last field ([`feature_size`]), and a field is present in
//! an area iff the size the kernel fills reaches the field's end ([`fields_present`]).
//!
//! Why the KTLS fields start at 64 and not right after the rseq feature size: since Linux 7.0
//! the rseq feature size is 33 and Linux reserves the bytes after it for its next rseq field.
//! Placing KTLS after `sizeof(struct rseq)` keeps the head a complete `struct rseq` of the
//! newest Linux and leaves Linux room to grow into the reserved tail (up to 64 bytes).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::errno::Errno;
use crate::rseq::{self, Registration, Rseq, RseqFlags};

/// The version of the ABI this module and spec/ktls.md describe.
pub const KTLS_ABI_VERSION: u32 = 1;

/// rseq(2) flag of ours: register (or, with RSEQ_FLAG_UNREGISTER, unregister) a KTLS area.
///
/// Bit 16: Linux allocates rseq flags upward from bit 0 and uses bits 0 and 1 (7.0); bit 16
/// leaves it fourteen more. Linux rejects every unknown bit with EINVAL before looking at
/// anything else, so the flag can never make Linux register a plain rseq area by mistake.
pub const RSEQ_FLAG_KTLS: u32 = 1 << 16;

/// Alignment of a KTLS area, advertised in AT_KTLS_ALIGN: Linux 7.0's AT_RSEQ_ALIGN, which
/// Linux requires of every rseq registration longer than 32 bytes.
pub const KTLS_ALIGN: u32 = rseq::RSEQ_ALLOC_ALIGN;

/// Offset of the first KTLS field: `sizeof(struct rseq)`.
pub const KTLS_BASE: u32 = core::mem::size_of::<Rseq>() as u32;

/// The highest level this ABI version defines.
pub const MAX_LEVEL: u32 = 2;

/// The value the kernel stores in `ktls_live` while it keeps the area current.
pub const KTLS_LIVE: u32 = 1;

/// The kernel command-line word that caps the level: `ktls_level=K`, K in 1..=[`MAX_LEVEL`].
pub const KTLS_LEVEL_OPTION: &str = "ktls_level";

/// A whole KTLS area of ABI version 1, level [`MAX_LEVEL`]. All fields are little-endian.
/// Memory beyond the filled size (see [`filled_size`]) belongs to user space.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KtlsArea {
    /// The thread's rseq area (Linux rules apply unchanged).
    pub rseq: Rseq,
    /// Level 1: [`KTLS_LIVE`] while the kernel keeps this area current, 0 otherwise.
    pub ktls_live: u32,
    /// Level 1: the thread id (gettid).
    pub tid: u32,
    /// Level 1: the process id (getpid).
    pub pid: u32,
    /// Level 2: real user id.
    pub uid: u32,
    /// Level 2: effective user id.
    pub euid: u32,
    /// Level 2: real group id.
    pub gid: u32,
    /// Level 2: effective group id.
    pub egid: u32,
    /// Level 2, user-written: nonzero defers asynchronous signals.
    pub sig_defer: u32,
    /// Level 2: nonzero when the kernel holds back a signal because of `sig_defer`.
    pub sig_pending: u32,
    /// Up to the alignment; not part of ABI version 1 (future levels go here first).
    pub _pad: [u8; 28],
}
crate::assert_layout!(
    KtlsArea,
    size = 128,
    rseq = 0,
    ktls_live = 64,
    tid = 68,
    pid = 72,
    uid = 76,
    euid = 80,
    gid = 84,
    egid = 88,
    sig_defer = 92,
    sig_pending = 96,
    _pad = 100,
);

/// Who stores to a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Only the kernel; user space reads.
    Kernel,
    /// Only user space; the kernel reads.
    User,
    /// Both (the rseq fields `rseq_cs` and `slice_ctrl`), by the rules in `when`.
    Both,
}

/// One row of the KTLS field table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    pub name: &'static str,
    /// Byte offset from the start of the area.
    pub offset: u32,
    /// Size in bytes (all fields are naturally aligned little-endian integers).
    pub size: u32,
    /// The level that introduced the field.
    pub level: u32,
    pub writer: Writer,
    /// When the kernel writes the field.
    pub when: &'static str,
}

impl FieldDesc {
    /// Offset of the first byte after the field.
    pub const fn end(&self) -> u32 {
        self.offset + self.size
    }
}

/// The KTLS field table: every field of ABI version 1 in offset order. spec/ktls.md carries
/// the same table; abi/tests/spec_table.rs keeps the two equal.
pub const FIELDS: &[FieldDesc] = &[
    FieldDesc {
        name: "cpu_id_start",
        offset: 0,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "registration and child creation, then before a return to user space whenever the thread's CPU changed; 0 at unregistration",
    },
    FieldDesc {
        name: "cpu_id",
        offset: 4,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "as cpu_id_start; RSEQ_CPU_ID_UNINITIALIZED at unregistration",
    },
    FieldDesc {
        name: "rseq_cs",
        offset: 8,
        size: 8,
        level: 1,
        writer: Writer::Both,
        when: "registration and child creation (0); 0 when the kernel finds the thread outside the critical section it names, or aborts the section (user space sets it)",
    },
    FieldDesc {
        name: "flags",
        offset: 16,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "registration and child creation (rseq feature flags; 0 while ktls offers no time slice extensions)",
    },
    FieldDesc {
        name: "node_id",
        offset: 20,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "as cpu_id_start; 0 at unregistration",
    },
    FieldDesc {
        name: "mm_cid",
        offset: 24,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "as cpu_id_start, and whenever the concurrency id changed; 0 at unregistration",
    },
    FieldDesc {
        name: "slice_ctrl",
        offset: 28,
        size: 4,
        level: 1,
        writer: Writer::Both,
        when: "registration and child creation (0); its granted byte by Linux's time slice extension rules (user space sets request)",
    },
    FieldDesc {
        name: "ktls_live",
        offset: 64,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "registration and child creation (KTLS_LIVE); unregistration (0)",
    },
    FieldDesc {
        name: "tid",
        offset: 68,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "registration, child creation, and the parent's return from vfork",
    },
    FieldDesc {
        name: "pid",
        offset: 72,
        size: 4,
        level: 1,
        writer: Writer::Kernel,
        when: "registration, child creation, and the parent's return from vfork",
    },
    FieldDesc {
        name: "uid",
        offset: 76,
        size: 4,
        level: 2,
        writer: Writer::Kernel,
        when: "registration, child creation, the parent's return from vfork, and in every live area of the process before a credential change returns",
    },
    FieldDesc {
        name: "euid",
        offset: 80,
        size: 4,
        level: 2,
        writer: Writer::Kernel,
        when: "as uid",
    },
    FieldDesc {
        name: "gid",
        offset: 84,
        size: 4,
        level: 2,
        writer: Writer::Kernel,
        when: "as uid",
    },
    FieldDesc {
        name: "egid",
        offset: 88,
        size: 4,
        level: 2,
        writer: Writer::Kernel,
        when: "as uid",
    },
    FieldDesc {
        name: "sig_defer",
        offset: 92,
        size: 4,
        level: 2,
        writer: Writer::User,
        when: "never (user space writes it, the kernel reads it)",
    },
    FieldDesc {
        name: "sig_pending",
        offset: 96,
        size: 4,
        level: 2,
        writer: Writer::Kernel,
        when: "registration and child creation (0); 1 when it holds back a signal because of sig_defer; 0 on a return to user space without deferral once no held-back signal is left",
    },
];

// The table and the struct must agree, field by field, and levels must be appended only.
const _: () = {
    use core::mem::offset_of;
    let expect: [(usize, usize); 16] = [
        (
            offset_of!(KtlsArea, rseq) + offset_of!(Rseq, cpu_id_start),
            4,
        ),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, cpu_id), 4),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, rseq_cs), 8),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, flags), 4),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, node_id), 4),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, mm_cid), 4),
        (offset_of!(KtlsArea, rseq) + offset_of!(Rseq, slice_ctrl), 4),
        (offset_of!(KtlsArea, ktls_live), 4),
        (offset_of!(KtlsArea, tid), 4),
        (offset_of!(KtlsArea, pid), 4),
        (offset_of!(KtlsArea, uid), 4),
        (offset_of!(KtlsArea, euid), 4),
        (offset_of!(KtlsArea, gid), 4),
        (offset_of!(KtlsArea, egid), 4),
        (offset_of!(KtlsArea, sig_defer), 4),
        (offset_of!(KtlsArea, sig_pending), 4),
    ];
    assert!(FIELDS.len() == expect.len());
    let mut i = 0;
    while i < FIELDS.len() {
        let f = &FIELDS[i];
        assert!(f.offset as usize == expect[i].0 && f.size as usize == expect[i].1);
        assert!(f.offset.is_multiple_of(f.size));
        assert!(f.level >= 1 && f.level <= MAX_LEVEL);
        if i > 0 {
            let prev = &FIELDS[i - 1];
            assert!(prev.end() <= f.offset);
            assert!(prev.level <= f.level);
            // A level's KTLS fields start where the previous level's feature size ends.
            if f.level != prev.level {
                assert!(f.offset == prev.end());
            }
        }
        i += 1;
    }
    assert!(FIELDS[7].offset == KTLS_BASE);
    assert!(feature_size(1) == 76);
    assert!(feature_size(2) == 100);
    assert!(feature_size(MAX_LEVEL) as usize <= core::mem::size_of::<KtlsArea>());
    assert!(core::mem::size_of::<KtlsArea>().is_multiple_of(KTLS_ALIGN as usize));
    assert!(core::mem::align_of::<KtlsArea>() == KTLS_ALIGN as usize);
};

/// The feature size of `level`: the end of the last field of that level or below. Level 0 is
/// 0; levels above [`MAX_LEVEL`] are [`MAX_LEVEL`]'s (this ABI version knows no more).
pub const fn feature_size(level: u32) -> u32 {
    let mut size = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        let f = &FIELDS[i];
        if f.level <= level && f.end() > size {
            size = f.end();
        }
        i += 1;
    }
    size
}

/// The extension rule: the fields present in an area of which the kernel fills
/// `feature_size` bytes (a field is present iff `feature_size` reaches its end).
pub fn fields_present(feature_size: u32) -> impl Iterator<Item = &'static FieldDesc> {
    FIELDS.iter().filter(move |f| f.end() <= feature_size)
}

/// The field called `name`.
pub fn field(name: &str) -> Option<&'static FieldDesc> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The highest level all of whose fields fit in `size` bytes (0 if not even level 1's).
pub const fn level_for_size(size: u32) -> u32 {
    let mut level = 0;
    while level < MAX_LEVEL && feature_size(level + 1) <= size {
        level += 1;
    }
    level
}

/// How many bytes of an area the kernel fills: the registered length capped by the feature
/// size the kernel advertises (AT_KTLS_FEATURE_SIZE).
pub const fn filled_size(len: u32, advertised: u32) -> u32 {
    if len < advertised {
        len
    } else {
        advertised
    }
}

/// How many bytes a libc reserves per thread: the larger of the advertised feature size and
/// the feature size of the highest level it knows, rounded up to the advertised alignment
/// (`align` must be a power of two; 0 means [`KTLS_ALIGN`]).
pub const fn alloc_size(advertised: u32, known_level: u32, align: u32) -> u32 {
    let align = if align == 0 { KTLS_ALIGN } else { align };
    let known = feature_size(known_level);
    let size = if advertised > known {
        advertised
    } else {
        known
    };
    (size + align - 1) & !(align - 1)
}

/// Parses the value of `ktls_level=K`: K in 1..=[`MAX_LEVEL`], decimal.
pub fn parse_level_option(value: &str) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(k) if (1..=MAX_LEVEL).contains(&k) => Some(k),
        _ => None,
    }
}

/// A process's fixed KTLS parameters: set by its first successful KTLS registration, kept until
/// execve (fork copies them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessKtls {
    /// Area address minus thread pointer (FS base); negative for the usual TLS layout, where
    /// the TLS blocks lie below the thread pointer.
    pub offset: i64,
    /// The registered length every area of the process has.
    pub len: u32,
    /// The rseq signature every area of the process is registered with.
    pub sig: u32,
}

/// A thread's current rseq registration and whether it is a KTLS area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadReg {
    pub reg: Registration,
    pub ktls: bool,
}

/// What the kernel knows about the calling thread at an rseq(2) call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The thread's FS base (its thread pointer).
    pub fs_base: u64,
    /// Threads in the calling thread's process, the caller included.
    pub threads: u32,
}

/// What a valid rseq(2) call asks of the kernel, once [`rseq::access_ok`] passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RseqCall {
    /// A call without RSEQ_FLAG_KTLS: Linux's semantics.
    Linux(rseq::Action),
    /// Register a KTLS area; `fix` is set on the first registration of the process, which
    /// fixes the process's parameters when the registration succeeds.
    RegisterKtls { fix: Option<ProcessKtls> },
    /// Unregister the calling thread's KTLS area (write 0 to `ktls_live`, reset the rseq ids).
    UnregisterKtls,
}

/// Flag bits a KTLS call may carry.
pub const KTLS_CALL_FLAGS: u32 =
    RSEQ_FLAG_KTLS | RseqFlags::UNREGISTER.bits() | RseqFlags::SLICE_EXT_DEFAULT_ON.bits();

/// sys_rseq's argument checks on ktls, in order. Without [`RSEQ_FLAG_KTLS`] the call is
/// Linux's ([`rseq::check_register`]), except that RSEQ_FLAG_UNREGISTER alone cannot drop a
/// KTLS registration (EINVAL after Linux's checks pass). With it:
///
/// 1. a flag outside [`KTLS_CALL_FLAGS`] -> EINVAL;
/// 2. RSEQ_FLAG_UNREGISTER: flags other than exactly UNREGISTER|KTLS -> EINVAL; no KTLS
///    registration, or another `addr` -> EINVAL; another `len` -> EINVAL; another `sig` ->
///    EPERM; else unregister;
/// 3. the thread is already registered (rseq or KTLS): Linux's verdict, EINVAL for another
///    `addr`/`len`, EPERM for another `sig`, EBUSY for the same registration;
/// 4. `len` below level 1's feature size -> EINVAL; `addr` not [`KTLS_ALIGN`]-aligned -> EINVAL;
/// 5. the thread pointer (FS base) is 0 -> EINVAL;
/// 6. the process has fixed parameters: `addr` is not FS base + offset -> EINVAL; `len`
///    differs -> EINVAL; `sig` differs -> EPERM. It has none: more than one thread -> EBUSY.
///
/// The kernel then checks [`rseq::access_ok`]`(addr, len)` and writes the area; either failing
/// is EFAULT, and the process's parameters stay unfixed.
pub fn check_rseq_call(
    addr: u64,
    len: u32,
    flags: u32,
    sig: u32,
    thread: Option<ThreadReg>,
    process: Option<ProcessKtls>,
    caller: Caller,
) -> Result<RseqCall, Errno> {
    if flags & RSEQ_FLAG_KTLS == 0 {
        let action = rseq::check_register(addr, len, flags, sig, thread.map(|t| t.reg))?;
        if action == rseq::Action::Unregister && thread.is_some_and(|t| t.ktls) {
            return Err(Errno::EINVAL);
        }
        return Ok(RseqCall::Linux(action));
    }
    if flags & !KTLS_CALL_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & RseqFlags::UNREGISTER.bits() != 0 {
        if flags != RseqFlags::UNREGISTER.bits() | RSEQ_FLAG_KTLS {
            return Err(Errno::EINVAL);
        }
        let cur = match thread {
            Some(t) if t.ktls && t.reg.addr == addr => t.reg,
            _ => return Err(Errno::EINVAL),
        };
        if cur.len != len {
            return Err(Errno::EINVAL);
        }
        if cur.sig != sig {
            return Err(Errno::EPERM);
        }
        return Ok(RseqCall::UnregisterKtls);
    }
    if let Some(t) = thread {
        return Err(rseq::check_reregister(t.reg, addr, len, sig));
    }
    if len < feature_size(1) || !addr.is_multiple_of(KTLS_ALIGN as u64) {
        return Err(Errno::EINVAL);
    }
    if caller.fs_base == 0 {
        return Err(Errno::EINVAL);
    }
    match process {
        Some(p) => {
            if addr != caller.fs_base.wrapping_add(p.offset as u64) || len != p.len {
                return Err(Errno::EINVAL);
            }
            if sig != p.sig {
                return Err(Errno::EPERM);
            }
            Ok(RseqCall::RegisterKtls { fix: None })
        }
        None => {
            if caller.threads > 1 {
                return Err(Errno::EBUSY);
            }
            Ok(RseqCall::RegisterKtls {
                fix: Some(ProcessKtls {
                    offset: addr.wrapping_sub(caller.fs_base) as i64,
                    len,
                    sig,
                }),
            })
        }
    }
}

/// Whether a plain rseq registration survives into a child (Linux's rseq_fork): not for
/// CLONE_VM children. A KTLS registration also survives into a CLONE_VFORK child (see
/// [`ktls_inherited`]).
pub const fn rseq_inherited(clone_flags: u64) -> bool {
    clone_flags & crate::clone::CloneFlags::VM.bits() == 0
}

/// Whether a child inherits its parent's KTLS registration (same address, in its copy of or in
/// the shared address space): fork-like children do (no CLONE_VM), and so do CLONE_VFORK
/// children, whose area the parent's area is; the parent's area is rewritten when the parent
/// resumes. Other CLONE_VM children do not; with CLONE_RSEQ_KTLS they get their own area.
pub const fn ktls_inherited(clone_flags: u64) -> bool {
    use crate::clone::CloneFlags;
    clone_flags & CloneFlags::VM.bits() == 0 || clone_flags & CloneFlags::VFORK.bits() != 0
}

/// Whether signal `sig` can be held back by `sig_defer`. `forced` means the kernel raises it
/// for a fault of the thread's own instruction (or an rseq abort failure), which Linux
/// delivers even when blocked. SIGKILL and SIGSTOP are never held back.
pub const fn deferrable(sig: u32, forced: bool) -> bool {
    !forced && sig != crate::signal::SIGKILL && sig != crate::signal::SIGSTOP
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::rseq::RSEQ_SIG;

    const TP: u64 = 0x7f00_0000_1000;
    const OFF: i64 = -128;
    const AREA: u64 = TP - 128;
    const LEN: u32 = 128;
    const K: u32 = RSEQ_FLAG_KTLS;
    const U: u32 = 1; // RSEQ_FLAG_UNREGISTER

    fn one() -> Caller {
        Caller {
            fs_base: TP,
            threads: 1,
        }
    }
    fn many() -> Caller {
        Caller {
            fs_base: TP,
            threads: 3,
        }
    }
    fn fixed() -> Option<ProcessKtls> {
        Some(ProcessKtls {
            offset: OFF,
            len: LEN,
            sig: RSEQ_SIG,
        })
    }
    fn ktls_reg(addr: u64, len: u32) -> Option<ThreadReg> {
        Some(ThreadReg {
            reg: Registration {
                addr,
                len,
                sig: RSEQ_SIG,
            },
            ktls: true,
        })
    }

    #[test]
    fn levels_and_extension_rule() {
        assert_eq!(KTLS_BASE, 64);
        assert_eq!(KTLS_ALIGN, 64);
        assert_eq!(feature_size(0), 0);
        assert_eq!(feature_size(1), 76);
        assert_eq!(feature_size(2), 100);
        assert_eq!(feature_size(9), 100);
        let names = |size| fields_present(size).map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(names(0), Vec::<&str>::new());
        assert_eq!(
            names(76),
            [
                "cpu_id_start",
                "cpu_id",
                "rseq_cs",
                "flags",
                "node_id",
                "mm_cid",
                "slice_ctrl",
                "ktls_live",
                "tid",
                "pid"
            ]
        );
        assert_eq!(names(75).len(), 9);
        assert_eq!(names(100).len(), FIELDS.len());
        // A size inside a level has the fields that fit: uid, euid but not gid.
        assert_eq!(names(84).last(), Some(&"euid"));
        assert_eq!(names(4096).len(), FIELDS.len());
        assert_eq!(level_for_size(0), 0);
        assert_eq!(level_for_size(75), 0);
        assert_eq!(level_for_size(76), 1);
        assert_eq!(level_for_size(99), 1);
        assert_eq!(level_for_size(100), 2);
        assert_eq!(level_for_size(128), 2);
        assert_eq!(field("sig_pending").map(|f| f.offset), Some(96));
        assert_eq!(field("sig_defer").map(|f| f.writer), Some(Writer::User));
        assert_eq!(field("nope"), None);
    }

    #[test]
    fn sizes_for_old_and_new_partners() {
        assert_eq!(filled_size(128, 100), 100);
        assert_eq!(filled_size(76, 100), 76); // old libc, new kernel
        assert_eq!(filled_size(128, 76), 76); // new libc, kernel booted with ktls_level=1
        assert_eq!(alloc_size(100, 2, 64), 128);
        assert_eq!(alloc_size(76, 2, 64), 128);
        assert_eq!(alloc_size(76, 1, 64), 128);
        assert_eq!(alloc_size(140, 1, 64), 192); // a future level the libc does not know
        assert_eq!(alloc_size(100, 2, 0), 128);
        assert_eq!(parse_level_option("1"), Some(1));
        assert_eq!(parse_level_option("2"), Some(2));
        assert_eq!(parse_level_option("0"), None);
        assert_eq!(parse_level_option("3"), None);
        assert_eq!(parse_level_option("x"), None);
    }

    #[test]
    fn first_registration_fixes_the_process() {
        let r = check_rseq_call(AREA, LEN, K, RSEQ_SIG, None, None, one());
        assert_eq!(
            r,
            Ok(RseqCall::RegisterKtls {
                fix: Some(ProcessKtls {
                    offset: OFF,
                    len: LEN,
                    sig: RSEQ_SIG
                })
            })
        );
        // Slice extensions may be requested alongside.
        assert!(check_rseq_call(AREA, LEN, K | 2, RSEQ_SIG, None, None, one()).is_ok());
        // Multi-threaded first registration.
        assert_eq!(
            check_rseq_call(AREA, LEN, K, RSEQ_SIG, None, None, many()),
            Err(Errno::EBUSY)
        );
        // Old libc: level 1 only.
        assert!(check_rseq_call(AREA, 76, K, RSEQ_SIG, None, None, one()).is_ok());
        assert_eq!(
            check_rseq_call(AREA, 75, K, RSEQ_SIG, None, None, one()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA, 32, K, RSEQ_SIG, None, None, one()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA + 32, LEN, K, RSEQ_SIG, None, None, one()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(0, 0, K, 0, None, None, one()),
            Err(Errno::EINVAL)
        );
        let no_tp = Caller {
            fs_base: 0,
            threads: 1,
        };
        assert_eq!(
            check_rseq_call(AREA, LEN, K, RSEQ_SIG, None, None, no_tp),
            Err(Errno::EINVAL)
        );
        // A positive offset is as good as a negative one.
        let r = check_rseq_call(TP + 64, LEN, K, RSEQ_SIG, None, None, one());
        assert_eq!(
            r,
            Ok(RseqCall::RegisterKtls {
                fix: Some(ProcessKtls {
                    offset: 64,
                    len: LEN,
                    sig: RSEQ_SIG
                })
            })
        );
    }

    #[test]
    fn later_registrations_follow_the_process() {
        let other = Caller {
            fs_base: TP + 0x10_0000,
            threads: 3,
        };
        let area = other.fs_base - 128;
        assert_eq!(
            check_rseq_call(area, LEN, K, RSEQ_SIG, None, fixed(), other),
            Ok(RseqCall::RegisterKtls { fix: None })
        );
        assert_eq!(
            check_rseq_call(area - 64, LEN, K, RSEQ_SIG, None, fixed(), other),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(area, LEN + 64, K, RSEQ_SIG, None, fixed(), other),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(area, LEN, K, RSEQ_SIG ^ 1, None, fixed(), other),
            Err(Errno::EPERM)
        );
        // The address check comes before the signature check.
        assert_eq!(
            check_rseq_call(area - 64, LEN, K, 0, None, fixed(), other),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn already_registered() {
        let live = ktls_reg(AREA, LEN);
        assert_eq!(
            check_rseq_call(AREA, LEN, K, RSEQ_SIG, live, fixed(), one()),
            Err(Errno::EBUSY)
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, K, RSEQ_SIG ^ 1, live, fixed(), one()),
            Err(Errno::EPERM)
        );
        assert_eq!(
            check_rseq_call(AREA + 64, LEN, K, RSEQ_SIG, live, fixed(), one()),
            Err(Errno::EINVAL)
        );
        // A plain rseq registration blocks a KTLS one, by Linux's rule.
        let plain = Some(ThreadReg {
            reg: Registration {
                addr: 0x5000_0000,
                len: 32,
                sig: RSEQ_SIG,
            },
            ktls: false,
        });
        assert_eq!(
            check_rseq_call(AREA, LEN, K, RSEQ_SIG, plain, None, one()),
            Err(Errno::EINVAL)
        );
        // And a KTLS registration blocks a plain one.
        assert_eq!(
            check_rseq_call(AREA, LEN, 0, RSEQ_SIG, live, fixed(), one()),
            Err(Errno::EBUSY)
        );
        assert_eq!(
            check_rseq_call(0x5000_0000, 32, 0, RSEQ_SIG, live, fixed(), one()),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn unregistration() {
        let live = ktls_reg(AREA, LEN);
        assert_eq!(
            check_rseq_call(AREA, LEN, U | K, RSEQ_SIG, live, fixed(), many()),
            Ok(RseqCall::UnregisterKtls)
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, U | K, RSEQ_SIG, None, fixed(), many()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA + 64, LEN, U | K, RSEQ_SIG, live, fixed(), many()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA, 76, U | K, RSEQ_SIG, live, fixed(), many()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, U | K, 0, live, fixed(), many()),
            Err(Errno::EPERM)
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, U | K | 2, RSEQ_SIG, live, fixed(), many()),
            Err(Errno::EINVAL)
        );
        // UNREGISTER alone passes Linux's checks but cannot drop a KTLS registration ...
        assert_eq!(
            check_rseq_call(AREA, LEN, U, RSEQ_SIG, live, fixed(), many()),
            Err(Errno::EINVAL)
        );
        // ... and UNREGISTER|KTLS cannot drop a plain one.
        let plain = Some(ThreadReg {
            reg: Registration {
                addr: AREA,
                len: LEN,
                sig: RSEQ_SIG,
            },
            ktls: false,
        });
        assert_eq!(
            check_rseq_call(AREA, LEN, U, RSEQ_SIG, plain, None, one()),
            Ok(RseqCall::Linux(rseq::Action::Unregister))
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, U | K, RSEQ_SIG, plain, None, one()),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn unknown_flags_with_ktls() {
        assert_eq!(
            check_rseq_call(AREA, LEN, K | 4, RSEQ_SIG, None, None, one()),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_rseq_call(AREA, LEN, K | (1 << 17), RSEQ_SIG, None, None, one()),
            Err(Errno::EINVAL)
        );
        // Without our flag, the call is exactly Linux's.
        assert_eq!(
            check_rseq_call(AREA, 32, 0, RSEQ_SIG, None, None, one()),
            Ok(RseqCall::Linux(rseq::Action::Register {
                slice_ext_default_on: false
            }))
        );
    }

    #[test]
    fn inheritance_and_signals() {
        use crate::clone::CloneFlags as F;
        assert!(rseq_inherited(0));
        assert!(ktls_inherited(0));
        let vfork = (F::VM | F::VFORK).bits();
        assert!(!rseq_inherited(vfork));
        assert!(ktls_inherited(vfork));
        let thread = (F::VM | F::SIGHAND | F::THREAD | F::SETTLS).bits();
        assert!(!rseq_inherited(thread));
        assert!(!ktls_inherited(thread));
        assert!(deferrable(crate::signal::SIGTERM, false));
        assert!(deferrable(crate::signal::SIGSEGV, false)); // sent with kill(): asynchronous
        assert!(!deferrable(crate::signal::SIGSEGV, true));
        assert!(!deferrable(crate::signal::SIGKILL, false));
        assert!(!deferrable(crate::signal::SIGSTOP, false));
    }
}
