//! The one way the kernel touches user memory.
//!
//! Every access goes through `copy_raw`: a range check against user space, then a `rep movsb`
//! inside STAC/CLAC (SMAP), listed in an exception table. A page fault on that instruction is
//! first offered to the address space (demand paging); if the address is bad, the fault
//! handler resumes at the fixup, which reports how many bytes were left, and the caller turns
//! that into EFAULT. So a bad, kernel or unmapped pointer is an error, never a kernel fault.

use core::arch::global_asm;
use core::mem::size_of;
use core::sync::atomic::{AtomicBool, Ordering};
use ktls_abi::{Errno, USER_SPACE_END};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Whether STAC/CLAC are executed (only when the CPU has SMAP; they are #UD otherwise).
#[no_mangle]
static KTLS_UACCESS_SMAP: AtomicBool = AtomicBool::new(false);

global_asm!(
    r#"
    .pushsection .text.uaccess, "ax"
    .global ktls_copy_user
    // rdi = destination, rsi = source, rdx = length; returns bytes not copied in rax.
ktls_copy_user:
    mov rcx, rdx
    cmp byte ptr [rip + {smap}], 0
    je 2f
    stac
2:
ktls_copy_user_insn:
    rep movsb
    xor eax, eax
    jmp 3f
ktls_copy_user_fixup:
    mov rax, rcx
3:
    cmp byte ptr [rip + {smap}], 0
    je 4f
    clac
4:
    ret
    .popsection

    // rdi = user address (4-aligned), esi = expected, edx = new value, rcx = where to store
    // the value found; returns 0 on success (stored or not), 1 on a fault.
    .global ktls_cmpxchg_user_u32
ktls_cmpxchg_user_u32:
    mov eax, esi
    cmp byte ptr [rip + {smap}], 0
    je 5f
    stac
5:
ktls_cmpxchg_user_insn:
    lock cmpxchg dword ptr [rdi], edx
    mov dword ptr [rcx], eax
    xor eax, eax
    jmp 6f
ktls_cmpxchg_user_fixup:
    mov eax, 1
6:
    cmp byte ptr [rip + {smap}], 0
    je 7f
    clac
7:
    ret

    .pushsection .ex_table, "a"
    .balign 8
    .quad ktls_copy_user_insn
    .quad ktls_copy_user_fixup
    .quad ktls_cmpxchg_user_insn
    .quad ktls_cmpxchg_user_fixup
    .popsection
    "#,
    smap = sym KTLS_UACCESS_SMAP,
);

// The SMAP self-test's probe: a plain load from user memory, deliberately without STAC, with
// its own resume address (not in the exception table, so it is never mistaken for the copy
// layer). Returns 0 if the load faulted, 1 if it completed.
global_asm!(
    r#"
    .pushsection .text.uaccess, "ax"
    .global ktls_smap_probe
ktls_smap_probe:
    mov al, byte ptr [rdi]
    mov eax, 1
    ret
    .global ktls_smap_probe_resume
ktls_smap_probe_resume:
    xor eax, eax
    ret
    .popsection
    "#
);

extern "C" {
    fn ktls_smap_probe(addr: u64) -> u32;
    fn ktls_smap_probe_resume();
}

/// If `rip` is the self-test probe's load, where to resume it (as a caught fault).
pub fn selftest_fault(rip: u64) -> Option<u64> {
    (rip == ktls_smap_probe as *const () as u64)
        .then_some(ktls_smap_probe_resume as *const () as u64)
}

/// Debug-build self-test: a kernel load from a mapped user page outside the copy layer must
/// fault when SMAP is on. Returns whether it faulted.
pub fn smap_selftest(user_addr: u64) -> bool {
    // SAFETY: the probe reads one byte at a user address; if SMAP stops it, the page-fault
    // handler resumes at the probe's resume label (see `selftest_fault`) and nothing is read.
    unsafe { ktls_smap_probe(user_addr) == 0 }
}

extern "C" {
    fn ktls_copy_user(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn ktls_cmpxchg_user_u32(addr: u64, expected: u32, new: u32, found: *mut u32) -> u32;
    static __ex_table_start: [u64; 0];
    static __ex_table_end: [u64; 0];
}

pub fn init(smap: bool) {
    KTLS_UACCESS_SMAP.store(smap, Ordering::Relaxed);
}

/// The fixup address for a fault at `rip`, if `rip` is a listed user-access instruction.
pub fn fixup_for(rip: u64) -> Option<u64> {
    // SAFETY: the linker script brackets .ex_table with these symbols; entries are pairs of
    // addresses written by the asm above.
    let table = unsafe {
        let start = core::ptr::addr_of!(__ex_table_start) as *const u64;
        let end = core::ptr::addr_of!(__ex_table_end) as *const u64;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    };
    table.chunks_exact(2).find(|e| e[0] == rip).map(|e| e[1])
}

/// Whether [addr, addr + len) lies wholly in user space.
pub fn is_user_range(addr: u64, len: usize) -> bool {
    addr.checked_add(len as u64)
        .is_some_and(|end| end <= USER_SPACE_END)
}

/// Copies user -> kernel or kernel -> user. Returns Err(EFAULT) if any byte could not be
/// copied; `done` reports how many were (for short reads/writes).
fn copy_raw(dst: *mut u8, src: *const u8, len: usize) -> Result<(), usize> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: callers pass a kernel buffer of `len` bytes on one side and a range checked by
    // is_user_range on the other; faults on the user side are caught by the exception table.
    let left = unsafe { ktls_copy_user(dst, src, len) };
    if left == 0 {
        Ok(())
    } else {
        Err(len - left)
    }
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), Errno> {
    if !is_user_range(src, dst.len()) {
        return Err(Errno::EFAULT);
    }
    copy_raw(dst.as_mut_ptr(), src as *const u8, dst.len()).map_err(|_| Errno::EFAULT)
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), Errno> {
    if !is_user_range(dst, src.len()) {
        return Err(Errno::EFAULT);
    }
    copy_raw(dst as *mut u8, src.as_ptr(), src.len()).map_err(|_| Errno::EFAULT)
}

/// Copies as much of `src` to `dst` as possible; returns how many bytes landed (a short
/// count when the user buffer ends in an unmapped page, as Linux's copy_to_user does).
pub fn copy_to_user_partial(dst: u64, src: &[u8]) -> usize {
    if !is_user_range(dst, src.len()) {
        return 0;
    }
    match copy_raw(dst as *mut u8, src.as_ptr(), src.len()) {
        Ok(()) => src.len(),
        Err(done) => done,
    }
}

/// Copies as much of user memory at `src` into `dst` as possible; returns the count.
pub fn copy_from_user_partial(dst: &mut [u8], src: u64) -> usize {
    if !is_user_range(src, dst.len()) {
        return 0;
    }
    match copy_raw(dst.as_mut_ptr(), src as *const u8, dst.len()) {
        Ok(()) => dst.len(),
        Err(done) => done,
    }
}

/// Atomically replaces the u32 at user address `addr` with `new` if it holds `expected`;
/// returns the value found there (equal to `expected` when the swap happened).
pub fn cmpxchg_user_u32(addr: u64, expected: u32, new: u32) -> Result<u32, Errno> {
    if !addr.is_multiple_of(4) || !is_user_range(addr, 4) {
        return Err(Errno::EFAULT);
    }
    let mut found = 0u32;
    // SAFETY: the address is a checked, aligned user address; a fault on it is caught by the
    // exception table and reported as 1; `found` is a kernel local.
    let faulted = unsafe { ktls_cmpxchg_user_u32(addr, expected, new, &mut found) };
    if faulted != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(found)
}

/// Whether every page of [addr, addr + len) can be written, found without changing it: a
/// locked compare-exchange writes each page's first word back with its own value, so it takes
/// a write fault exactly where a copy would. Used before taking data that cannot be put back
/// (pipes, terminals), so a bad buffer fails with nothing consumed, as on Linux.
pub fn probe_writable(addr: u64, len: usize) -> Result<(), Errno> {
    if !is_user_range(addr, len) {
        return Err(Errno::EFAULT);
    }
    if len == 0 {
        return Ok(());
    }
    let mut page = addr & !3;
    let end = addr + len as u64;
    while page < end {
        let word = page.max(addr & !3);
        let cur = cmpxchg_user_u32(word, 0, 0)?;
        if cur != 0 {
            cmpxchg_user_u32(word, cur, cur)?;
        }
        page = (page & !4095) + 4096;
    }
    Ok(())
}

/// A typed user pointer: reads and writes whole values through the copy layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPtr<T> {
    addr: u64,
    _t: core::marker::PhantomData<*const T>,
}

impl<T: FromBytes + IntoBytes + Immutable> UserPtr<T> {
    pub fn new(addr: u64) -> Self {
        UserPtr {
            addr,
            _t: core::marker::PhantomData,
        }
    }

    /// The pointer `n` elements on (for arrays of T in user memory).
    pub fn add(self, n: usize) -> Self {
        Self::new(self.addr.wrapping_add((n * size_of::<T>()) as u64))
    }

    pub fn read(self) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        copy_from_user(v.as_mut_bytes(), self.addr)?;
        Ok(v)
    }

    pub fn write(self, v: &T) -> Result<(), Errno> {
        copy_to_user(self.addr, v.as_bytes())
    }
}

/// Reads a NUL-terminated string of at most `max` bytes (terminator included) from user
/// memory: EFAULT for a bad pointer, ENAMETOOLONG when no NUL comes within `max`.
pub fn read_cstr(addr: u64, max: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    read_cstr_upto(addr, max.clamp(1, ktls_abi::fs::PATH_MAX * 64), false)
}

/// Reads a C string of at most `max - 1` bytes: without NUL within `max` bytes, the first
/// `max - 1` bytes (strncpy_from_user with a size, as prctl(PR_SET_NAME) reads).
pub fn read_cstr_truncated(addr: u64, max: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    read_cstr_upto(addr, max.max(1), true)
}

fn read_cstr_upto(addr: u64, max: usize, truncate: bool) -> Result<alloc::vec::Vec<u8>, Errno> {
    let mut out = alloc::vec::Vec::new();
    let mut a = addr;
    loop {
        // Copy up to the end of the current page, so we never touch a page past the NUL.
        let chunk = (4096 - (a % 4096) as usize).min(max - out.len());
        let start = out.len();
        out.resize(start + chunk, 0);
        copy_from_user(&mut out[start..], a)?;
        if let Some(p) = out[start..].iter().position(|&b| b == 0) {
            out.truncate(start + p);
            return Ok(out);
        }
        if out.len() >= max {
            if truncate {
                out.truncate(max - 1);
                return Ok(out);
            }
            return Err(Errno::ENAMETOOLONG);
        }
        a += chunk as u64;
    }
}
