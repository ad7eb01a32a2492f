//! brk, mmap, munmap, mprotect, mremap and madvise, with Linux's argument checks.

use super::SysResult;
use crate::mm::addrspace::{
    page_down, page_up, AddressSpace, FutureLock, SharedPages, Vma, VmaKind, USER_BOTTOM, USER_TOP,
};
use crate::process::current;
use alloc::sync::Arc;
use ktls_abi::mm::*;
use ktls_abi::Errno;

const PAGE: u64 = ktls_abi::PAGE_SIZE as u64;

pub fn brk(addr: u64) -> SysResult {
    // Short of kernel memory, the break stays where it is (brk's way of failing).
    let addr = if crate::mm::heap::admit().is_ok() {
        addr
    } else {
        0
    };
    let memlock = memlock_limit();
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    // After mlockall(MCL_FUTURE) the new heap is locked: it must fit under RLIMIT_MEMLOCK.
    if mm.future_lock != FutureLock::Off && !lock_fits(&mm, mm.brk_growth(addr), memlock) {
        return Ok(mm.brk(0));
    }
    Ok(mm.brk(addr))
}

fn check_prot(prot: u64) -> Result<u64, Errno> {
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(prot)
}

/// Page-rounds a length: EINVAL for 0 (callers that allow it check first), ENOMEM when it
/// overflows or cannot fit in user space.
fn page_len(len: u64) -> Result<u64, Errno> {
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    if len > USER_TOP {
        return Err(Errno::ENOMEM);
    }
    Ok(len)
}

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: u64, offset: u64) -> SysResult {
    crate::mm::heap::admit()?;
    if !offset.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_len(len)?;
    if offset.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
        return Err(Errno::EOVERFLOW);
    }
    match flags & MAP_TYPE {
        MAP_SHARED | MAP_PRIVATE | MAP_SHARED_VALIDATE => {}
        _ => return Err(Errno::EINVAL),
    }
    let prot = check_prot(prot)?;
    let file = if flags & MAP_ANONYMOUS == 0 {
        Some(super::fs::mappable_file(fd, prot, flags)?)
    } else {
        None
    };
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if flags & MAP_LOCKED != 0 {
        may_lock()?;
    }
    let memlock = memlock_limit();
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    let start = if fixed {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        if addr > USER_TOP - len {
            return Err(Errno::ENOMEM);
        }
        if addr < USER_BOTTOM {
            return Err(Errno::EPERM);
        }
        if flags & MAP_FIXED == 0 && !mm.is_free(addr, addr + len) {
            return Err(Errno::EEXIST);
        }
        addr
    } else {
        let hint = page_down(addr);
        if hint != 0 && hint <= USER_TOP - len && mm.is_free(hint, hint + len) {
            hint
        } else {
            mm.find_free(len).ok_or(Errno::ENOMEM)?
        }
    };
    if mm.total_vm().saturating_add(len) > mm.as_limit {
        return Err(Errno::ENOMEM);
    }
    mm.check_map(start, start + len)?;
    let kind = if flags & MAP_STACK != 0 || flags & MAP_GROWSDOWN != 0 {
        VmaKind::Stack
    } else {
        VmaKind::Anonymous
    };
    let mut vma = Vma::new(start, start + len, prot, kind);
    vma.locked = flags & MAP_LOCKED != 0 || mm.future_lock != FutureLock::Off;
    if vma.locked && !lock_fits(&mm, len, memlock) {
        return Err(Errno::EAGAIN);
    }
    vma.shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
    if vma.shared && file.is_none() {
        vma.shm = Some(Arc::new(SharedPages::default()));
        vma.shm_base = start;
    }
    if let Some(contents) = &file {
        // Pages wholly past the end of the file (its size rounded up to a page) are SIGBUS.
        let data = contents.bytes();
        let size = data.len() as u64;
        let file_pages = page_up(size.saturating_sub(offset)).unwrap_or(u64::MAX);
        vma.bus_from = start.saturating_add(file_pages);
        // The mapping's pages are a copy of the file's as they are now (there is no page
        // cache); the rest of the last page reads zeros.
        let from = (offset as usize).min(data.len());
        let to = (offset.saturating_add(len) as usize).min(data.len());
        let pages = SharedPages::from_bytes(&data[from..to]).ok_or(Errno::ENOMEM)?;
        vma.shm = Some(Arc::new(pages));
        vma.shm_base = start;
    }
    let fault_in_now = vma.locked && mm.future_lock != FutureLock::OnFault;
    mm.add_mapping(vma);
    if flags & MAP_POPULATE != 0 || fault_in_now {
        // Prefault, as Linux does; a page that cannot be had is left for the first touch.
        mm.populate_range(start, start + len);
    }
    Ok(start)
}

pub fn munmap(addr: u64, len: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    if addr > USER_TOP || len > USER_TOP - addr {
        return Err(Errno::EINVAL);
    }
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    mm.check_unmap(addr, addr + len)?;
    mm.remove_range(addr, addr + len);
    Ok(0)
}

pub fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    crate::mm::heap::admit()?;
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let prot = check_prot(prot & !(PROT_GROWSDOWN | PROT_GROWSUP))?;
    if len == 0 {
        return Ok(0);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    if end > USER_TOP {
        return Err(Errno::ENOMEM);
    }
    current().process.mm().lock().protect(addr, end, prot)?;
    Ok(0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    crate::mm::heap::admit()?;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 || !old.is_multiple_of(PAGE)
    {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_DONTUNMAP != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::EINVAL);
    }
    let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
    let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
    // Lengths beyond user space (a wrapped negative length) are EINVAL, as Linux.
    if old_len > USER_TOP || new_len > USER_TOP {
        return Err(Errno::EINVAL);
    }
    if new_len == 0 || old_len == 0 {
        // old_len 0 duplicates a shared mapping, which private memory cannot do.
        return Err(Errno::EINVAL);
    }
    let fixed_end = if flags & MREMAP_FIXED != 0 {
        // Linux checks the target before it looks at the old range: aligned, inside user
        // space, not overlapping the old range.
        let target_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
        if !new_addr.is_multiple_of(PAGE) || new_addr < USER_BOTTOM || target_end > USER_TOP {
            return Err(Errno::EINVAL);
        }
        if new_addr < old.saturating_add(old_len) && old < target_end {
            return Err(Errno::EINVAL);
        }
        Some(target_end)
    } else {
        None
    };
    // An old range that is not all user space cannot be mapped: EFAULT, as Linux's VMA lookup.
    if old.checked_add(old_len).is_none_or(|e| e > USER_TOP) {
        return Err(Errno::EFAULT);
    }
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    let vma = mm.find_vma(old).cloned().ok_or(Errno::EFAULT)?;
    if old + old_len > vma.end {
        return Err(Errno::EFAULT);
    }
    if let Some(target_end) = fixed_end {
        mm.check_move()?;
        let keep = old_len.min(new_len);
        mm.add_mapping(vma.moved(old, new_addr, target_end));
        mm.move_pages(old, new_addr, keep)?;
        if flags & MREMAP_DONTUNMAP == 0 {
            mm.remove_range(old, old + old_len);
        }
        return Ok(new_addr);
    }
    if new_len <= old_len {
        mm.check_unmap(old + new_len, old + old_len)?;
        mm.remove_range(old + new_len, old + old_len);
        return Ok(old);
    }
    let grow_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
    if mm.total_vm().saturating_add(new_len - old_len) > mm.as_limit {
        return Err(Errno::ENOMEM);
    }
    if old + old_len == vma.end && grow_end <= USER_TOP && mm.is_free(vma.end, grow_end) {
        mm.add_mapping(Vma {
            start: vma.end,
            end: grow_end,
            ..vma
        });
        return Ok(old);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::ENOMEM);
    }
    let new = mm.find_free(new_len).ok_or(Errno::ENOMEM)?;
    mm.check_move()?;
    mm.add_mapping(vma.moved(old, new, new + new_len));
    mm.move_pages(old, new, old_len)?;
    if flags & MREMAP_DONTUNMAP == 0 {
        mm.remove_range(old, old + old_len);
    }
    Ok(new)
}

pub fn madvise(addr: u64, len: u64, advice: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
    match advice {
        MADV_DONTNEED | MADV_FREE => {
            let t = current();
            let mm = t.process.mm();
            let mut mm = mm.lock();
            mm.check_mapped(addr, end)?;
            // Locked pages stay (Linux refuses to drop them).
            if mm.any_locked(addr, end) {
                return Err(Errno::EINVAL);
            }
            mm.discard(addr, end);
            Ok(0)
        }
        // Hints about access patterns, THP, fork behaviour and dumps: accepted, as they do
        // not change what the program observes.
        MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | 10..=17 | 20..=23 => {
            current().process.mm().lock().check_mapped(addr, end)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// RLIMIT_MEMLOCK, and whether the caller is exempt from it (CAP_IPC_LOCK, which root has).
fn memlock_limit() -> (u64, bool) {
    let t = current();
    let limit = t.process.rlimits.lock()[RLIMIT_MEMLOCK as usize].rlim_cur;
    (limit, t.process.creds.lock().euid == 0)
}

/// EPERM if the caller may lock nothing at all (Linux's can_do_mlock).
fn may_lock() -> Result<(), Errno> {
    match memlock_limit() {
        (0, false) => Err(Errno::EPERM),
        _ => Ok(()),
    }
}

/// Whether `more` bytes of locked memory fit under `memlock` (from `memlock_limit`, read
/// before the address space is locked: prlimit, and clone while it copies the parent's
/// limits and credentials into the new process, take those locks before the address
/// space's).
fn lock_fits(mm: &AddressSpace, more: u64, (limit, exempt): (u64, bool)) -> bool {
    exempt || mm.locked_bytes().saturating_add(more) <= limit
}

/// The page range mlock/munlock act on: from `addr` rounded down to a page, `len` (plus
/// that rounding) rounded up. None for an empty range (Linux returns 0 at once, even when
/// the rounding wraps); EINVAL when it runs past the end of the address space.
fn lock_range(addr: u64, len: u64) -> Result<Option<(u64, u64)>, Errno> {
    let start = page_down(addr);
    let len = len.wrapping_add(addr - start).wrapping_add(PAGE - 1) & !(PAGE - 1);
    let end = start.wrapping_add(len);
    if end < start {
        return Err(Errno::EINVAL);
    }
    Ok((end != start).then_some((start, end)))
}

pub fn mlock(addr: u64, len: u64) -> SysResult {
    mlock2(addr, len, 0)
}

/// mlock2: locks the pages of the range (all must be mapped), within RLIMIT_MEMLOCK unless
/// the caller is root, and faults them in unless MLOCK_ONFAULT.
pub fn mlock2(addr: u64, len: u64, flags: u64) -> SysResult {
    if flags & !MLOCK_ONFAULT != 0 {
        return Err(Errno::EINVAL);
    }
    may_lock()?;
    let Some((start, end)) = lock_range(addr, len)? else {
        return Ok(0);
    };
    let memlock = memlock_limit();
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    // Pages locked already do not count twice.
    if !lock_fits(&mm, (end - start) - mm.locked_in(start, end), memlock) {
        return Err(Errno::ENOMEM);
    }
    mm.set_locked(start, end, true)?;
    if flags & MLOCK_ONFAULT == 0 {
        mm.populate_range(start, end);
    }
    Ok(0)
}

pub fn munlock(addr: u64, len: u64) -> SysResult {
    let Some((start, end)) = lock_range(addr, len)? else {
        return Ok(0);
    };
    current()
        .process
        .mm()
        .lock()
        .set_locked(start, end, false)?;
    Ok(0)
}

/// mlockall: MCL_CURRENT locks every mapping (ENOMEM if they do not fit under
/// RLIMIT_MEMLOCK), MCL_FUTURE every mapping made from now on (mmap, brk), MCL_ONFAULT
/// defers the faulting in to the first touch.
pub fn mlockall(flags: u64) -> SysResult {
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT
    {
        return Err(Errno::EINVAL);
    }
    may_lock()?;
    let (limit, exempt) = memlock_limit();
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    if flags & MCL_CURRENT != 0 && !exempt && mm.total_vm() > limit {
        return Err(Errno::ENOMEM);
    }
    let on_fault = flags & MCL_ONFAULT != 0;
    mm.future_lock = match (flags & MCL_FUTURE != 0, on_fault) {
        (false, _) => FutureLock::Off,
        (true, false) => FutureLock::Locked,
        (true, true) => FutureLock::OnFault,
    };
    if flags & MCL_CURRENT != 0 {
        mm.set_all_locked(true);
        if !on_fault {
            mm.populate_locked();
        }
    }
    Ok(0)
}

pub fn munlockall() -> SysResult {
    let t = current();
    let mm = t.process.mm();
    let mut mm = mm.lock();
    mm.future_lock = FutureLock::Off;
    mm.set_all_locked(false);
    Ok(0)
}

/// msync: the mappings here have nothing to write back (file mappings are copies, and
/// shared ones are read-only), so what is left is Linux's checks: the flags, the alignment,
/// and ENOMEM for a range that is not all mapped.
pub fn msync(addr: u64, len: u64, flags: u64) -> SysResult {
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || !addr.is_multiple_of(PAGE)
        || (flags & MS_ASYNC != 0 && flags & MS_SYNC != 0)
    {
        return Err(Errno::EINVAL);
    }
    // Linux rounds with wrapping arithmetic: a length in the last page of the address
    // space rounds to 0.
    let len = len.wrapping_add(PAGE - 1) & !(PAGE - 1);
    let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
    if end == addr {
        return Ok(0);
    }
    let t = current();
    let mm = t.process.mm();
    let mm = mm.lock();
    let mut a = addr;
    let mut hole = false;
    while a < end {
        let v = mm.vma_from(a).ok_or(Errno::ENOMEM)?;
        if a < v.start {
            // Linux gives up at the first hole for MS_ASYNC alone, and otherwise goes on
            // and reports it at the end.
            if flags == MS_ASYNC || v.start >= end {
                return Err(Errno::ENOMEM);
            }
            hole = true;
        }
        a = v.end;
    }
    if hole {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

/// mincore: one byte per page of [addr, addr + len), 1 if the page has its memory. ENOMEM
/// for a range outside user space or not all mapped; the bytes for the VMAs before a hole
/// are written.
pub fn mincore(addr: u64, len: u64, vec: u64) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    if !crate::mm::uaccess::is_user_range(addr, len as usize) || addr + len > USER_TOP {
        return Err(Errno::ENOMEM);
    }
    let pages = len.div_ceil(PAGE);
    if !crate::mm::uaccess::is_user_range(vec, pages as usize) {
        return Err(Errno::EFAULT);
    }
    let (mut a, mut out, mut left) = (addr, vec, pages as usize);
    let mut buf = [0u8; 256];
    while left > 0 {
        let want = left.min(buf.len());
        // The answer is copied out after the address space is unlocked: the copy may fault.
        let n = {
            let t = current();
            let mm = t.process.mm();
            let mm = mm.lock();
            mm.residency(a, &mut buf[..want]).ok_or(Errno::ENOMEM)?
        };
        crate::mm::uaccess::copy_to_user(out, &buf[..n])?;
        a += n as u64 * PAGE;
        out += n as u64;
        left -= n;
    }
    Ok(0)
}
