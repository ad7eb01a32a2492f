//! Where everything of a thread goes: the static TLS block (x86_64 TLS variant II), the TCB at
//! the thread pointer, and the KTLS area; and how big the area is on a given kernel. Pure
//! arithmetic, so it is host-tested directly.
//!
//! One thread's block, addresses growing to the right:
//!
//! ```text
//!  block start (tp_align-aligned)          tp = FS base (tp_align-aligned)
//!  |                                       |
//!  | pad | PT_TLS image (.tdata, .tbss)    | TCB (128 bytes)  | KTLS area (reserve bytes) |
//!        ^ tp - tls_offset                                    ^ tp + area_offset
//! ```
//!
//! **Where the KTLS area goes, and why above the TCB.** The area sits at
//! `tp + area_offset`, right after our 128-byte TCB (`area_offset` = 128 with the 64-byte
//! alignment every kernel so far asks for). The alternative, just below the program's TLS
//! image, gives an offset that depends on each binary's PT_TLS size and alignment. Above the
//! TCB the offset is the same for every program linked with the shim and on every kernel
//! (it only grows if a kernel ever advertises an alignment above 128), nothing the program's
//! TLS does can move it, and it never shares a cache line with program data. The TCB is 128
//! bytes rather than the 16 the psABI needs so that the fixed slots compilers and runtimes
//! know in glibc's `tcbhead_t` (stack guard at 0x28, pointer guard at 0x30, CET's feature_1 at
//! 0x48, libitm's slots at 0x50, split-stack's at 0x70) stay inside the TCB, well away from
//! the area.

use ktls_abi::ktls;
use ktls_abi::rseq::{ORIG_RSEQ_SIZE, RSEQ_STRUCT_ALIGN};

/// The highest KTLS level the shim was built for (`KTLS_LEVEL_BUILT_WITH`): level 1 with the
/// `level1` feature, else every level `ktls-abi` defines.
pub const LEVEL_BUILT_WITH: u32 = if cfg!(feature = "level1") {
    1
} else {
    ktls::MAX_LEVEL
};

/// Size of the TCB at the thread pointer (see the module documentation).
pub const TCB_SIZE: usize = 128;

/// Offsets of the TCB's slots from the thread pointer. The first ones are x86_64's psABI and
/// glibc's `tcbhead_t` (which GCC's `-fstack-protector` and the vDSO's `%fs:0` load rely on);
/// `ERRNO`, `REGISTRATION` and `THREAD` are the shim's own, in what glibc calls
/// `unused_vgetcpu_cache`.
pub mod tcb {
    /// The TCB's own address (the thread pointer): `%fs:0`.
    pub const SELF: usize = 0x00;
    /// The dynamic thread vector (0: static executables only).
    pub const DTV: usize = 0x08;
    /// The TCB's address again (glibc's `self`).
    pub const SELF2: usize = 0x10;
    /// The stack protector's canary: `%fs:0x28`.
    pub const STACK_GUARD: usize = 0x28;
    /// The pointer-mangling guard: `%fs:0x30`.
    pub const POINTER_GUARD: usize = 0x30;
    /// The thread's `errno` (an `int`).
    pub const ERRNO: usize = 0x38;
    /// How the thread's area was registered (a [`super::Registration`] as `u32`).
    pub const REGISTRATION: usize = 0x3c;
    /// The thread's `ktls_thread` control block (0 for the main thread).
    pub const THREAD: usize = 0x40;
}

/// How a thread's area got registered; kept in the TCB, reported by
/// `ktls_thread_registration()`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Not registered (rseq unavailable or refused).
    None = 0,
    /// A plain rseq area (no KTLS on this kernel).
    Rseq = 1,
    /// A KTLS area the thread registered itself with rseq(2) and RSEQ_FLAG_KTLS.
    KtlsRseq = 2,
    /// A KTLS area the kernel registered at clone3(CLONE_RSEQ_KTLS).
    KtlsClone3 = 3,
}

impl Registration {
    pub fn from_u32(v: u32) -> Registration {
        match v {
            1 => Registration::Rseq,
            2 => Registration::KtlsRseq,
            3 => Registration::KtlsClone3,
            _ => Registration::None,
        }
    }
}

/// What the auxiliary vector says about rseq and KTLS (0 for absent keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelInfo {
    /// AT_KTLS_FEATURE_SIZE.
    pub ktls_feature_size: u32,
    /// AT_KTLS_ALIGN.
    pub ktls_align: u32,
    /// AT_RSEQ_FEATURE_SIZE (absent before Linux 6.3).
    pub rseq_feature_size: u32,
    /// AT_RSEQ_ALIGN.
    pub rseq_align: u32,
}

/// The KTLS registration the shim makes when the kernel advertises KTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KtlsPlan {
    /// The registered length: `ktls::alloc_size(advertised, LEVEL_BUILT_WITH, align)`.
    pub len: u32,
    /// What the kernel fills, exported as `__ktls_size` once registered.
    pub filled: u32,
}

/// Where the area goes and how it is registered, per thread and the same for all threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The area's offset from the thread pointer: `__ktls_offset` and `__rseq_offset`.
    pub area_offset: usize,
    /// Alignment of the area (a power of two).
    pub area_align: usize,
    /// Bytes reserved for the area in every thread (a multiple of `area_align`).
    pub reserve: usize,
    /// `Some` when the auxiliary vector advertises KTLS.
    pub ktls: Option<KtlsPlan>,
    /// The length of a plain rseq registration (the fallback, and all there is on Linux):
    /// 32, or the rseq feature size rounded up to AT_RSEQ_ALIGN when it is above 32.
    pub rseq_len: u32,
}

pub const fn align_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

fn pow2_or(v: u32, default: u32) -> u32 {
    if v.is_power_of_two() {
        v
    } else {
        default
    }
}

/// The plan for a kernel (see the libc contract in spec/ktls.md, section 11).
///
/// * KTLS advertised (both keys nonzero, a power-of-two alignment): reserve and register
///   `alloc_size(advertised, LEVEL_BUILT_WITH, align)` bytes; the kernel fills
///   `min(len, advertised)`.
/// * Plain rseq (Linux's rules): a 32-byte registration needs 32-byte alignment; a longer one
///   needs at least the feature size and AT_RSEQ_ALIGN alignment. The shim registers 32 bytes
///   while the feature size fits in them (Linux before 7.0, or no AT_RSEQ_* keys at all), else
///   the feature size rounded up to the alignment.
/// * The area is reserved (and placed) the same way whether or not KTLS is there, so the
///   layout of a program does not depend on the kernel: at least the shim's own KTLS size.
pub fn plan(k: &KernelInfo) -> Plan {
    let ktls_on = k.ktls_feature_size != 0 && k.ktls_align.is_power_of_two();
    let rseq_align = pow2_or(k.rseq_align, RSEQ_STRUCT_ALIGN).max(RSEQ_STRUCT_ALIGN);
    let rseq_len = if k.rseq_feature_size <= ORIG_RSEQ_SIZE {
        ORIG_RSEQ_SIZE
    } else {
        align_up(k.rseq_feature_size as usize, rseq_align as usize) as u32
    };
    let ktls_align = if ktls_on {
        k.ktls_align
    } else {
        ktls::KTLS_ALIGN
    };
    let area_align = ktls_align.max(rseq_align).max(ktls::KTLS_ALIGN) as usize;
    let ktls = ktls_on.then(|| {
        let len = ktls::alloc_size(k.ktls_feature_size, LEVEL_BUILT_WITH, k.ktls_align);
        KtlsPlan {
            len,
            filled: ktls::filled_size(len, k.ktls_feature_size),
        }
    });
    let own = ktls::alloc_size(0, LEVEL_BUILT_WITH, area_align as u32) as usize;
    let reserve = align_up(
        own.max(rseq_len as usize)
            .max(ktls.map_or(0, |p| p.len as usize)),
        area_align,
    );
    Plan {
        area_offset: align_up(TCB_SIZE, area_align),
        area_align,
        reserve,
        ktls,
        rseq_len,
    }
}

/// The program's PT_TLS segment (addresses already relocated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsImage {
    /// Address of the initialisation image (`.tdata`).
    pub addr: usize,
    /// Bytes to copy from the image.
    pub filesz: usize,
    /// Bytes of the block (the rest, `.tbss`, is zero).
    pub memsz: usize,
    /// PT_TLS `p_align` (0 or 1: none).
    pub align: usize,
}

/// The layout of one thread's block (module documentation's picture).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Alignment of the block start and of the thread pointer.
    pub tp_align: usize,
    /// The TLS image starts at `tp - tls_offset` (what the linker's TPOFF relocations assume).
    pub tls_offset: usize,
    /// Bytes from the block start to the thread pointer (`tls_offset` rounded up).
    pub below: usize,
    /// Bytes of the whole block.
    pub size: usize,
}

/// The block layout for a program's TLS segment (or none) and an area plan.
///
/// The image offset is Variant II's: the smallest `off >= memsz` with
/// `tp - off ≡ addr (mod align)` for an aligned `tp`, which is what GNU ld and lld assume for
/// local-exec accesses in a static executable and what glibc and musl compute.
pub fn block(img: Option<&TlsImage>, plan: &Plan) -> Block {
    let (memsz, addr, align) = match img {
        Some(i) => (i.memsz, i.addr, i.align.max(1)),
        None => (0, 0, 1),
    };
    let align = if align.is_power_of_two() { align } else { 1 };
    let tls_offset = memsz + (0usize.wrapping_sub(memsz).wrapping_sub(addr) & (align - 1));
    let tp_align = align.max(plan.area_align).max(64);
    let below = align_up(tls_offset, tp_align);
    Block {
        tp_align,
        tls_offset,
        below,
        size: below + plan.area_offset + plan.reserve,
    }
}

/// One thread's mapping: a guard page, the stack, the block and the thread's control block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadMap {
    /// Bytes to map.
    pub len: usize,
    /// The guard page's length (at the start of the mapping).
    pub guard: usize,
    /// The top of the stack, as an offset into the mapping (16-byte aligned).
    pub stack_top: usize,
}

/// The mapping of a new thread with `stack` bytes of stack (rounded up to pages). The block
/// and control block follow the stack; the caller aligns them at run time (the mapping has
/// room for it), because the block's alignment may exceed the page alignment of the mapping.
pub fn thread_map(block: &Block, stack: usize, page: usize, ctl_size: usize) -> ThreadMap {
    let stack = align_up(stack.max(page), page);
    let guard = page;
    let len = guard + stack + (block.tp_align - 1) + block.size + 63 + ctl_size;
    ThreadMap {
        len: align_up(len, page),
        guard,
        stack_top: guard + stack,
    }
}
