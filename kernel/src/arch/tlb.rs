//! TLB shootdown: when a mapping is removed or restricted, CPUs that have the address space
//! loaded may still hold the old translation, so they are told to flush before the change
//! counts as done (and before the freed frames can be reused).
//!
//! Each CPU records the page table it has loaded (`set_active`, called before loading CR3).
//! The initiator changes the page tables, then asks every other CPU whose recorded table
//! is the one changed, and waits until each has answered. The record is written before CR3
//! and the page tables before the record is read (both SeqCst), so a CPU the initiator skips
//! loads CR3 after the change and cannot see the old entries.
//!
//! The request is an NMI, not a fixed-vector interrupt: the initiator holds the address
//! space's lock while it waits, and a target may be spinning on that very lock with
//! interrupts masked (the page-fault path, the scheduler's switch). An NMI is taken anyway,
//! and the handler touches only atomics and the TLB, so it cannot deadlock.

use super::{cpu, percpu, smp::MAX_CPUS};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use spin::Mutex;

/// Up to this many pages are flushed one by one; larger ranges reload CR3.
const MAX_PAGES_BY_ONE: u64 = 32;
const PAGE: u64 = 4096;

/// Physical address of the PML4 each CPU has loaded (0: none yet).
static ACTIVE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Set by the initiator for each target, cleared by the target once it has flushed.
static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// The request being served: one at a time, so a target never mixes up two requests.
struct Request {
    pml4: AtomicU64,
    start: AtomicU64,
    end: AtomicU64,
}

static REQUEST: Request = Request {
    pml4: AtomicU64::new(0),
    start: AtomicU64::new(0),
    end: AtomicU64::new(0),
};
static REQUEST_LOCK: Mutex<()> = Mutex::new(());

fn this_cpu() -> usize {
    percpu::get().cpu_id() as usize
}

/// Records that this CPU is about to load the page table at `pml4_phys` into CR3.
pub fn set_active(pml4_phys: u64) {
    ACTIVE[this_cpu()].store(pml4_phys, SeqCst);
}

fn others_using(pml4_phys: u64) -> impl Iterator<Item = usize> {
    let me = this_cpu();
    (0..MAX_CPUS).filter(move |&c| c != me && ACTIVE[c].load(SeqCst) == pml4_phys)
}

/// Makes every other CPU that has `pml4_phys` loaded drop its translations of the user range
/// [start, end) (page aligned), and waits until they have. This CPU flushes its own TLB
/// itself (the page-table code does as it changes each entry).
pub fn shootdown(pml4_phys: u64, start: u64, end: u64) {
    if end <= start {
        return;
    }
    // Orders the page-table writes before the reads of ACTIVE (see the module comment).
    core::sync::atomic::fence(SeqCst);
    if others_using(pml4_phys).next().is_none() {
        return;
    }
    let _one_at_a_time = REQUEST_LOCK.lock();
    REQUEST.pml4.store(pml4_phys, SeqCst);
    REQUEST.start.store(start, SeqCst);
    REQUEST.end.store(end, SeqCst);
    let mut targets = 0u64;
    for c in others_using(pml4_phys) {
        PENDING[c].store(true, SeqCst);
        targets |= 1 << c;
        super::apic::send_nmi(c as u32);
    }
    for c in (0..MAX_CPUS).filter(|&c| targets & (1 << c) != 0) {
        while PENDING[c].load(SeqCst) {
            core::hint::spin_loop();
        }
    }
}

/// Waits until no other CPU has `pml4_phys` loaded: the page tables are about to be freed.
/// Whoever runs there is a thread on its way out (its address space was replaced by execve
/// and it was told to exit), and it leaves the address space at its next switch.
pub fn wait_until_unused(pml4_phys: u64) {
    core::sync::atomic::fence(SeqCst);
    while others_using(pml4_phys).next().is_some() {
        core::hint::spin_loop();
    }
}

/// The NMI handler's part: serves a pending shootdown for this CPU. Returns false if there
/// was none (the NMI came from elsewhere).
pub fn handle_nmi() -> bool {
    let c = this_cpu();
    if !PENDING[c].load(SeqCst) {
        return false;
    }
    let pml4 = REQUEST.pml4.load(SeqCst);
    let (start, end) = (REQUEST.start.load(SeqCst), REQUEST.end.load(SeqCst));
    // A CPU that has switched to another table since has flushed these entries already.
    if cpu::read_cr3() & !0xfff == pml4 {
        if (end - start) / PAGE <= MAX_PAGES_BY_ONE {
            for page in (start..end).step_by(PAGE as usize) {
                cpu::flush_tlb_page(page);
            }
        } else {
            // SAFETY: reloading the loaded page table only flushes the TLB.
            unsafe { cpu::write_cr3(cpu::read_cr3()) };
        }
    }
    PENDING[c].store(false, SeqCst);
    true
}
