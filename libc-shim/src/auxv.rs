//! The auxiliary vector the kernel put above the initial stack: saved at startup, read by key.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ktls_abi::auxv::AT_NULL;

static AUXV: AtomicUsize = AtomicUsize::new(0);

/// Remembers the auxiliary vector.
///
/// # Safety
/// `auxv` points at `(key, value)` pairs of `u64` ending with `AT_NULL`, which stay readable
/// for the life of the process (the kernel's, above the initial stack, or a leaked copy).
pub unsafe fn set(auxv: *const [u64; 2]) {
    AUXV.store(auxv as usize, Relaxed);
}

/// The first entry with `key`, or `None` (getauxval returns 0 then).
pub fn get(key: u64) -> Option<u64> {
    let mut p = AUXV.load(Relaxed) as *const [u64; 2];
    if p.is_null() {
        return None;
    }
    loop {
        // SAFETY: `set` vouched for a readable vector up to and including AT_NULL.
        let [k, v] = unsafe { p.read() };
        if k == AT_NULL {
            return None;
        }
        if k == key {
            return Some(v);
        }
        // SAFETY: not yet at AT_NULL, so the next pair exists.
        p = unsafe { p.add(1) };
    }
}

/// `get` as a `u32` (0 when absent or out of range), for the size and alignment keys.
pub fn get_u32(key: u64) -> u32 {
    get(key).and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}
