//! The KTLS getters (symbol version `KTLS_1`) and `getcpu`.
//!
//! `__vdso_X()` reads the field of the calling thread's KTLS area, `__vdso_ktls_X(area)` that
//! of the area the caller names; both make the system call when the field is not there to read
//! (spec/ktls.md, section 10). The ids are u32 in the area and `pid_t`/`uid_t`/`gid_t` in C.

use crate::sys::{syscall0, syscall3};
use crate::vvar::{field, named_area, own_area, read_area_u32};
use core::ffi::{c_int, c_uint, c_void};
use ktls_abi::rseq::RSEQ_CPU_ID_UNINITIALIZED;
use ktls_abi::syscall::*;

macro_rules! getters {
    ($($own:ident, $explicit:ident, $field:ident, $nr:expr, $ty:ty;)*) => {$(
        #[doc = concat!("`", stringify!($field), "` from the calling thread's KTLS area, or the system call.")]
        #[no_mangle]
        pub extern "C" fn $own() -> $ty {
            let (off, end) = field!($field);
            match own_area(end) {
                Some(a) => read_area_u32(a + off as u64) as $ty,
                None => syscall0($nr) as $ty,
            }
        }

        #[doc = concat!("`", stringify!($field), "` from the live KTLS area at `area`, or the system call.")]
        #[no_mangle]
        pub extern "C" fn $explicit(area: *const c_void) -> $ty {
            let (off, end) = field!($field);
            match named_area(area as u64, end) {
                Some(a) => read_area_u32(a + off as u64) as $ty,
                None => syscall0($nr) as $ty,
            }
        }
    )*};
}

getters! {
    __vdso_gettid, __vdso_ktls_gettid, tid, SYS_GETTID, c_int;
    __vdso_getpid, __vdso_ktls_getpid, pid, SYS_GETPID, c_int;
    __vdso_getuid, __vdso_ktls_getuid, uid, SYS_GETUID, c_uint;
    __vdso_geteuid, __vdso_ktls_geteuid, euid, SYS_GETEUID, c_uint;
    __vdso_getgid, __vdso_ktls_getgid, gid, SYS_GETGID, c_uint;
    __vdso_getegid, __vdso_ktls_getegid, egid, SYS_GETEGID, c_uint;
}

/// getcpu(2): the CPU and NUMA node from the calling thread's live KTLS area (its rseq
/// `cpu_id` and `node_id`, current whenever the thread runs in user space), else the system
/// call. RDPID/RDTSCP are not used: they need the kernel to program TSC_AUX.
///
/// # Safety
///
/// `cpu` and `node` are null or valid for writing a `c_uint`, as for getcpu(2).
#[no_mangle]
pub unsafe extern "C" fn __vdso_getcpu(
    cpu: *mut c_uint,
    node: *mut c_uint,
    tcache: *mut c_void,
) -> c_int {
    let (cpu_off, _) = field!(rseq.cpu_id);
    let (node_off, node_end) = field!(rseq.node_id);
    if let Some(area) = own_area(node_end) {
        let c = read_area_u32(area + cpu_off as u64);
        let n = read_area_u32(area + node_off as u64);
        if c != RSEQ_CPU_ID_UNINITIALIZED {
            if !cpu.is_null() {
                // SAFETY: the caller's pointer (see above).
                unsafe { cpu.write(c) };
            }
            if !node.is_null() {
                // SAFETY: as above.
                unsafe { node.write(n) };
            }
            return 0;
        }
    }
    syscall3(SYS_GETCPU, cpu as u64, node as u64, tcache as u64) as c_int
}
