//! Futexes: WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE and CMP_REQUEUE, with timeouts, and
//! what a thread's exit does to futexes (robust list, clear_child_tid).
//!
//! Waiters sit in one table keyed by (address space, user address), as Linux keys private
//! futexes and shared ones on private memory. A shared futex on MAP_SHARED memory, which
//! other processes may map elsewhere, is keyed by (frame, offset in the page) instead.

use crate::mm::addrspace::FaultResult;
use crate::mm::uaccess::{self, UserPtr};
use crate::mm::PAGE_SIZE;
use crate::process::{self, Thread};
use crate::sched::{self, State};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use ktls_abi::time::{Timespec, CLOCK_MONOTONIC, CLOCK_REALTIME};
use ktls_abi::Errno;
use spin::Mutex;

pub const FUTEX_WAIT: u64 = 0;
pub const FUTEX_WAKE: u64 = 1;
pub const FUTEX_REQUEUE: u64 = 3;
pub const FUTEX_CMP_REQUEUE: u64 = 4;
pub const FUTEX_WAIT_BITSET: u64 = 9;
pub const FUTEX_WAKE_BITSET: u64 = 10;
pub const FUTEX_PRIVATE_FLAG: u64 = 128;
pub const FUTEX_CLOCK_REALTIME: u64 = 256;
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Most entries walked in a robust list (ROBUST_LIST_LIMIT).
const ROBUST_LIST_LIMIT: usize = 2048;

/// (address space root, user address).
type Key = (u64, u64);

struct Waiter {
    thread: Arc<Thread>,
    key: Key,
    bitset: u32,
}

/// Waiters hashed by key into fixed buckets whose vectors keep their capacity, so waiting and
/// waking allocate nothing once warm.
const BUCKETS: usize = 64;
static TABLE: [Mutex<Vec<Waiter>>; BUCKETS] = [const { Mutex::new(Vec::new()) }; BUCKETS];

fn bucket_index(k: Key) -> usize {
    ((k.1 >> 2) ^ (k.0 >> 12)) as usize % BUCKETS
}

/// The key of the futex word at `addr`. A private futex is named by its address alone, as
/// Linux's (which does not look at the memory). A shared one needs the page mapped and
/// accessible, as Linux's get_futex_key (EFAULT otherwise).
fn key(addr: u64, shared: bool) -> Result<Key, Errno> {
    // Linux's access_ok, for private futexes too.
    if !uaccess::is_user_range(addr, 4) {
        return Err(Errno::EFAULT);
    }
    let p = &process::current().process;
    if shared {
        let mm = p.mm();
        let mut mm = mm.lock();
        let vma = mm.find_vma(addr).cloned().ok_or(Errno::EFAULT)?;
        if vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
            return Err(Errno::EFAULT);
        }
        if vma.shared {
            // MAP_SHARED memory may be mapped by other processes, at other addresses: the
            // word is named by its frame (odd, unlike a page-table root) and offset.
            if mm.frame_of(addr).is_none()
                && mm.handle_fault(addr, false, false) != FaultResult::Handled
            {
                return Err(Errno::EFAULT);
            }
            let frame = mm.frame_of(addr).ok_or(Errno::EFAULT)?;
            return Ok((frame.0 | 1, addr & (PAGE_SIZE as u64 - 1)));
        }
    }
    Ok((p.mm_root.load(Relaxed), addr))
}

fn with_bucket<R>(k: Key, f: impl FnOnce(&mut Vec<Waiter>) -> R) -> R {
    crate::arch::cpu::without_interrupts(|| f(&mut TABLE[bucket_index(k)].lock()))
}

pub fn futex(
    uaddr: u64,
    op: u64,
    val: u64,
    timeout: u64,
    uaddr2: u64,
    val3: u64,
) -> Result<u64, Errno> {
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let shared = op & FUTEX_PRIVATE_FLAG == 0;
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(Errno::ENOSYS);
    }
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    // Linux's get_futex_key: an address outside user space is EFAULT for every command.
    if !crate::mm::uaccess::is_user_range(uaddr, 4) {
        return Err(Errno::EFAULT);
    }
    match cmd {
        FUTEX_WAIT => {
            let deadline = relative_deadline(timeout)?;
            wait(uaddr, shared, val as u32, FUTEX_BITSET_MATCH_ANY, deadline)
        }
        FUTEX_WAIT_BITSET => {
            if val3 as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            let clock = if op & FUTEX_CLOCK_REALTIME != 0 {
                CLOCK_REALTIME
            } else {
                CLOCK_MONOTONIC
            };
            let deadline = absolute_deadline(timeout, clock)?;
            wait(uaddr, shared, val as u32, val3 as u32, deadline)
        }
        FUTEX_WAKE => wake(uaddr, shared, val as usize, FUTEX_BITSET_MATCH_ANY),
        FUTEX_WAKE_BITSET => {
            if val3 as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            wake(uaddr, shared, val as usize, val3 as u32)
        }
        FUTEX_REQUEUE => requeue(uaddr, uaddr2, shared, val as usize, timeout as usize, None),
        FUTEX_CMP_REQUEUE => requeue(
            uaddr,
            uaddr2,
            shared,
            val as usize,
            timeout as usize,
            Some(val3 as u32),
        ),
        _ => crate::syscall::unimplemented_op("futex", cmd),
    }
}

/// A relative timeout as a monotonic deadline (ns); None = forever.
fn relative_deadline(timeout: u64) -> Result<Option<u64>, Errno> {
    if timeout == 0 {
        return Ok(None);
    }
    let ts = UserPtr::<Timespec>::new(timeout).read()?;
    if !ts.is_valid() {
        return Err(Errno::EINVAL);
    }
    Ok(Some(
        crate::time::monotonic_ns().saturating_add(ts.to_nanos()),
    ))
}

/// An absolute timeout on `clock`, converted to a monotonic deadline.
fn absolute_deadline(timeout: u64, clock: u64) -> Result<Option<u64>, Errno> {
    if timeout == 0 {
        return Ok(None);
    }
    let ts = UserPtr::<Timespec>::new(timeout).read()?;
    if !ts.is_valid() {
        return Err(Errno::EINVAL);
    }
    let abs = ts.to_nanos();
    Ok(Some(if clock == CLOCK_REALTIME {
        let now_rt = crate::time::realtime_ns();
        crate::time::monotonic_ns().saturating_add(abs.saturating_sub(now_rt))
    } else {
        abs
    }))
}

fn wait(
    uaddr: u64,
    shared: bool,
    expected: u32,
    bitset: u32,
    deadline: Option<u64>,
) -> Result<u64, Errno> {
    // Read the word before taking the bucket lock (the read may fault in a page), then check
    // it again under the lock so a waker that changed it and found no waiter is not missed.
    UserPtr::<u32>::new(uaddr).read()?;
    let k = key(uaddr, shared)?;
    let t = process::current_arc();
    t.futex_woken.store(false, Relaxed);
    with_bucket(k, |b| {
        if UserPtr::<u32>::new(uaddr).read()? != expected {
            return Err(Errno::EAGAIN);
        }
        t.set_state(State::Blocked);
        b.push(Waiter {
            thread: t.clone(),
            key: k,
            bitset,
        });
        Ok(())
    })?;
    // A signal (SIGKILL, a group exit) sent since the syscall began found us not Blocked and
    // did not wake us: look once more, after the mark.
    sched::block_unless(deadline, || crate::signal::pending(&t));
    if t.futex_woken.load(Relaxed) {
        return Ok(0);
    }
    // Not woken by a FUTEX_WAKE: leave the table (a requeue may have moved us to another
    // key, so look in every bucket; this is the rare path).
    let mut removed = false;
    for b in TABLE.iter() {
        crate::arch::cpu::without_interrupts(|| {
            let mut b = b.lock();
            if let Some(i) = b.iter().position(|w| Arc::ptr_eq(&w.thread, &t)) {
                b.swap_remove(i);
                removed = true;
            }
        });
    }
    if !removed || t.futex_woken.load(Relaxed) {
        return Ok(0);
    }
    if deadline.is_some_and(|d| crate::time::monotonic_ns() >= d) {
        return Err(Errno::ETIMEDOUT);
    }
    Err(Errno::ERESTARTSYS)
}

/// Takes up to `n` waiters on `k` whose bitset matches from a bucket, in arrival order.
fn take_waiters(b: &mut Vec<Waiter>, k: Key, n: usize, bitset: u32, out: &mut Vec<Arc<Thread>>) {
    let mut i = 0;
    while i < b.len() && out.len() < n {
        if b[i].key == k && b[i].bitset & bitset != 0 {
            let w = b.remove(i);
            w.thread.futex_woken.store(true, Relaxed);
            out.push(w.thread);
        } else {
            i += 1;
        }
    }
}

/// Wakes up to `n` waiters on `uaddr` whose bitset matches. The scheduler is called with the
/// bucket locked (lock order: futex bucket, then scheduler), so nothing is collected.
fn wake(uaddr: u64, shared: bool, n: usize, bitset: u32) -> Result<u64, Errno> {
    let k = key(uaddr, shared)?;
    Ok(with_bucket(k, |b| {
        let mut count = 0;
        let mut i = 0;
        while i < b.len() && count < n {
            if b[i].key == k && b[i].bitset & bitset != 0 {
                let w = b.remove(i);
                w.thread.futex_woken.store(true, Relaxed);
                sched::wake(&w.thread);
                count += 1;
            } else {
                i += 1;
            }
        }
        count as u64
    }))
}

fn requeue(
    uaddr: u64,
    uaddr2: u64,
    shared: bool,
    nwake: usize,
    nrequeue: usize,
    cmp: Option<u32>,
) -> Result<u64, Errno> {
    if !uaddr2.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    if cmp.is_some() {
        // Fault the word in before the bucket lock (see `wait`).
        UserPtr::<u32>::new(uaddr).read()?;
    }
    let (k1, k2) = (key(uaddr, shared)?, key(uaddr2, shared)?);
    let (woken, moved) = crate::arch::cpu::without_interrupts(|| {
        // Both buckets, locked in index order.
        let (i1, i2) = (bucket_index(k1), bucket_index(k2));
        let mut first = TABLE[i1.min(i2)].lock();
        let mut second = (i1 != i2).then(|| TABLE[i1.max(i2)].lock());
        if let Some(expected) = cmp {
            if UserPtr::<u32>::new(uaddr).read()? != expected {
                return Err(Errno::EAGAIN);
            }
        }
        let mut woken = Vec::new();
        let src: &mut Vec<Waiter> = if i1 <= i2 {
            &mut first
        } else {
            second.as_mut().expect("two buckets")
        };
        take_waiters(src, k1, nwake, FUTEX_BITSET_MATCH_ANY, &mut woken);
        let mut moving = Vec::new();
        let mut i = 0;
        while i < src.len() && moving.len() < nrequeue {
            if src[i].key == k1 {
                let mut w = src.remove(i);
                w.key = k2;
                moving.push(w);
            } else {
                i += 1;
            }
        }
        let moved = moving.len();
        let dst: &mut Vec<Waiter> = if i2 <= i1 {
            &mut first
        } else {
            second.as_mut().expect("two buckets")
        };
        dst.extend(moving);
        Ok((woken, moved))
    })?;
    let n = woken.len() + moved;
    for t in woken {
        sched::wake(&t);
    }
    Ok(n as u64)
}

/// At thread exit: mark robust futexes the thread held as owner-died (waking a waiter), then
/// clear and wake the clear_child_tid word (what pthread_join waits on).
pub fn thread_exit_cleanup(t: &Arc<Thread>) {
    let head = t.robust_list.load(Relaxed);
    if head != 0 {
        walk_robust_list(t.tid, head);
    }
    let ctid = t.clear_child_tid.swap(0, Relaxed);
    if ctid != 0 && UserPtr::<u32>::new(ctid).write(&0).is_ok() {
        // A shared wake, as Linux's (pthread_join may wait either way).
        let _ = wake(ctid, true, 1, FUTEX_BITSET_MATCH_ANY);
    }
}

fn walk_robust_list(tid: u32, head: u64) {
    // struct robust_list_head { next; long futex_offset; list_op_pending; }
    let Ok(mut entry) = UserPtr::<u64>::new(head).read() else {
        return;
    };
    let Ok(offset) = UserPtr::<i64>::new(head + 8).read() else {
        return;
    };
    let Ok(pending) = UserPtr::<u64>::new(head + 16).read() else {
        return;
    };
    let mut n = 0;
    while entry != head && entry != 0 && n < ROBUST_LIST_LIMIT {
        let next = UserPtr::<u64>::new(entry).read().unwrap_or(head);
        if entry != pending {
            owner_died(tid, entry.wrapping_add(offset as u64));
        }
        entry = next;
        n += 1;
    }
    if pending != 0 {
        owner_died(tid, pending.wrapping_add(offset as u64));
    }
}

fn owner_died(tid: u32, uaddr: u64) {
    let Ok(mut val) = UserPtr::<u32>::new(uaddr).read() else {
        return;
    };
    loop {
        if val & FUTEX_TID_MASK != tid {
            return;
        }
        let new = (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        match uaccess::cmpxchg_user_u32(uaddr, val, new) {
            Ok(found) if found == val => break,
            Ok(found) => val = found,
            Err(_) => return,
        }
    }
    if val & FUTEX_WAITERS != 0 {
        let _ = wake(uaddr, true, 1, FUTEX_BITSET_MATCH_ANY);
    }
}
