//! The process's runtime state: the exported `__ktls_*` / `__rseq_*` variables, the layout
//! every thread uses, and registering a thread's area with the kernel.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU8, Ordering};

use ktls_abi::ktls::RSEQ_FLAG_KTLS;
use ktls_abi::rseq::{RSEQ_CPU_ID_REGISTRATION_FAILED, RSEQ_FEATURE_SIZE_ORIG, RSEQ_SIG};

use crate::layout::{self, Block, KernelInfo, Plan, Registration, TlsImage};
use crate::{sys, tp};

// The variables C programs read, as glibc exports `__rseq_offset`, `__rseq_size` and
// `__rseq_flags` (spec/ktls.md section 11). Written once at startup, before `main` and before
// any thread exists; read-only afterwards. Atomics only to avoid `static mut`: they have the
// layout of the plain integers the header declares. Not exported under these names in the host
// tests, where glibc's `__rseq_*` are the real ones.

/// `const ptrdiff_t __ktls_offset`: the KTLS area's offset from the thread pointer.
#[cfg_attr(not(test), export_name = "__ktls_offset")]
pub static KTLS_OFFSET: AtomicI64 = AtomicI64::new(0);
/// `const unsigned int __ktls_size`: the filled size, 0 when no KTLS area is registered.
#[cfg_attr(not(test), export_name = "__ktls_size")]
pub static KTLS_SIZE: AtomicU32 = AtomicU32::new(0);
/// `const unsigned int __ktls_flags`: 0 (reserved).
#[cfg_attr(not(test), export_name = "__ktls_flags")]
pub static KTLS_FLAGS: AtomicU32 = AtomicU32::new(0);
/// `const ptrdiff_t __rseq_offset`: the rseq area's offset (the KTLS area's head).
#[cfg_attr(not(test), export_name = "__rseq_offset")]
pub static RSEQ_OFFSET: AtomicI64 = AtomicI64::new(0);
/// `const unsigned int __rseq_size`: the rseq feature size, 0 when rseq is not registered.
#[cfg_attr(not(test), export_name = "__rseq_size")]
pub static RSEQ_SIZE: AtomicU32 = AtomicU32::new(0);
/// `const unsigned int __rseq_flags`: 0.
#[cfg_attr(not(test), export_name = "__rseq_flags")]
pub static RSEQ_FLAGS: AtomicU32 = AtomicU32::new(0);

/// What every thread of the process shares, fixed at startup.
#[derive(Clone, Copy, Debug)]
pub struct Runtime {
    pub kernel: KernelInfo,
    pub plan: Plan,
    pub block: Block,
    pub image: Option<TlsImage>,
    pub page: usize,
    /// The stack protector canary and the pointer guard, copied into every TCB.
    pub guards: [u64; 2],
    /// How the main thread registered: KtlsRseq (the process uses KTLS), Rseq or None.
    pub mode: Registration,
}

/// A value written once, then shared read-only.
struct Once<T> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the value is written once by the thread that wins `state` 0 -> 1 and published by
// the release store of 2; readers read it only after an acquire load of 2.
unsafe impl<T: Sync + Send> Sync for Once<T> {}

impl<T> Once<T> {
    const fn new() -> Self {
        Once {
            state: AtomicU8::new(0),
            value: UnsafeCell::new(None),
        }
    }

    fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == 2 {
            // SAFETY: state 2 means the value was written and is never written again.
            unsafe { (*self.value.get()).as_ref() }
        } else {
            None
        }
    }

    /// Stores `v` if nothing was stored yet; returns the stored value either way (spinning
    /// while another thread is storing).
    fn set(&self, v: T) -> &T {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: state 1 gives this thread exclusive access until it stores 2.
            unsafe { *self.value.get() = Some(v) };
            self.state.store(2, Ordering::Release);
        }
        loop {
            if let Some(v) = self.get() {
                return v;
            }
            core::hint::spin_loop();
        }
    }
}

static RUNTIME: Once<Runtime> = Once::new();

/// The runtime, once startup set it up (`None` in the host tests' process, which glibc
/// started).
pub fn get() -> Option<&'static Runtime> {
    RUNTIME.get()
}

pub fn set(rt: Runtime) -> &'static Runtime {
    RUNTIME.set(rt)
}

/// Builds the runtime for a kernel and a program (pure: startup then applies it).
pub fn runtime(
    kernel: KernelInfo,
    image: Option<TlsImage>,
    page: usize,
    random: [u8; 16],
) -> Runtime {
    let plan = layout::plan(&kernel);
    let block = layout::block(image.as_ref(), &plan);
    let mut guard = u64::from_le_bytes(random[..8].try_into().unwrap());
    // As glibc: the canary's lowest byte is 0, so string functions stop at it.
    guard &= !0xff;
    Runtime {
        kernel,
        plan,
        block,
        image,
        page,
        guards: [guard, u64::from_le_bytes(random[8..].try_into().unwrap())],
        mode: Registration::None,
    }
}

/// Offset of the rseq `cpu_id` field in the area.
const CPU_ID: isize = 4;

/// Registers the calling thread's area (at `tp + area_offset`) the way the process does:
/// KTLS if `mode` is KtlsRseq, falling back to plain rseq; plain rseq if `mode` is Rseq.
/// Returns how it went, which the caller records in the TCB.
///
/// # Safety
/// The calling thread's FS must point at a TCB built from `rt` whose area is zeroed and stays
/// reserved until the thread exits.
pub unsafe fn register_self(rt: &Runtime, mode: Registration) -> Registration {
    let area = tp::tp() + rt.plan.area_offset;
    if mode == Registration::KtlsRseq {
        if let Some(k) = rt.plan.ktls {
            // SAFETY: the area is reserved for the kernel for the thread's lifetime (caller).
            if unsafe { sys::rseq(area, k.len, RSEQ_FLAG_KTLS, RSEQ_SIG) }.is_ok() {
                return Registration::KtlsRseq;
            }
        }
    }
    if mode != Registration::None {
        // SAFETY: as above; a plain registration uses the head of the same area.
        if unsafe { sys::rseq(area, rt.plan.rseq_len, 0, RSEQ_SIG) }.is_ok() {
            return Registration::Rseq;
        }
    }
    // As glibc: mark the head so a reader of cpu_id sees no CPU.
    // SAFETY: the area is the thread's own memory (caller).
    unsafe {
        tp::store_u32(
            rt.plan.area_offset as isize + CPU_ID,
            RSEQ_CPU_ID_REGISTRATION_FAILED,
        )
    };
    Registration::None
}

/// Publishes the main thread's registration in the exported variables.
pub fn publish(rt: &Runtime, main: Registration) {
    KTLS_OFFSET.store(rt.plan.area_offset as i64, Ordering::Relaxed);
    RSEQ_OFFSET.store(rt.plan.area_offset as i64, Ordering::Relaxed);
    let filled = match (main, rt.plan.ktls) {
        (Registration::KtlsRseq, Some(k)) => k.filled,
        _ => 0,
    };
    KTLS_SIZE.store(filled, Ordering::Relaxed);
    let rseq_size = match main {
        Registration::None => 0,
        _ if rt.kernel.rseq_feature_size != 0 => rt.kernel.rseq_feature_size,
        _ => RSEQ_FEATURE_SIZE_ORIG,
    };
    RSEQ_SIZE.store(rseq_size, Ordering::Relaxed);
}
