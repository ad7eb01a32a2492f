//! Host tests: the shim's functions called natively next to glibc's (through the `libc`
//! crate), its pure parts (layout, ELF lookup, formatting), the C header against `ktls-abi`,
//! and C programs built with the shim, run natively and on ktls.
//!
//! In this test process glibc owns the thread pointer and rseq, so the shim runs without its
//! startup: no KTLS area (`__ktls_size` 0), the host's vDSO and auxiliary vector installed by
//! [`host_init`]. Everything that needs the shim's own startup and threads is covered by the C
//! programs.

mod c_programs;
mod elf_lookup;
mod format;
mod header;
mod layout;
mod malloc;
mod mem;
mod rust_program;
mod system;

use std::sync::Once;

/// Installs the host's auxiliary vector and vDSO in the shim (once per process).
pub fn host_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let raw = std::fs::read("/proc/self/auxv").expect("/proc/self/auxv");
        let words: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let words: &'static [u64] = Box::leak(words.into_boxed_slice());
        // SAFETY: a leaked copy of the vector, AT_NULL-terminated, readable forever.
        unsafe { crate::auxv::set(words.as_ptr().cast()) };
        // SAFETY: the host kernel's vDSO, mapped for the life of the process.
        unsafe {
            crate::vdso::init(
                libc::getauxval(libc::AT_SYSINFO_EHDR) as usize,
                crate::layout::align_up(4096, 4096),
            )
        };
    });
}
