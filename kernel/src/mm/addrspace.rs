//! User address spaces: a PML4 whose upper half is the kernel's, and a set of VMAs (virtual
//! memory areas) describing what user space may touch. Pages are allocated on first touch
//! (demand paging): `mmap` only records a VMA and the page-fault handler fills it in, which
//! is also what lets the copy layer fault on a fresh page and continue.
//!
//! Every leaf entry in the lower half holds a reference to its frame (`frame::share` and
//! `frame::release`): MAP_SHARED memory keeps the same frames in parent and child after
//! fork, and private pages are shared copy-on-write (mapped read-only with `COW` set in both,
//! copied at the first write unless the writer is by then the only one left). Dropping an
//! address space releases everything below it.

use super::frame::{self, Frame};
use super::{phys_to_virt, PAGE_SIZE};
use crate::arch::{boot, cpu, tlb};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use ktls_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use ktls_abi::{Errno, USER_SPACE_END};
use x86_64::structures::paging::{
    mapper::TranslateResult, FrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags as F, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

const PAGE: u64 = PAGE_SIZE as u64;
/// Highest address user space may map (TASK_SIZE_MAX: the last page below 2^47 is a guard).
pub const USER_TOP: u64 = USER_SPACE_END - PAGE;
/// Lowest address user space may map (vm.mmap_min_addr).
pub const USER_BOTTOM: u64 = 0x10000;
/// Top of the initial stack and the size reserved for it (RLIMIT_STACK's default).
pub const STACK_TOP: u64 = 0x7fff_ffff_f000;
pub const STACK_SIZE: u64 = 8 << 20;
/// Where top-down mmap allocation starts: below the stack and a gap, as Linux's mmap_base.
pub const MMAP_BASE: u64 = STACK_TOP - STACK_SIZE - (128 << 20);
/// Where a static-PIE executable is loaded (Linux's ELF_ET_DYN_BASE without randomisation).
pub const PIE_BASE: u64 = 0x5555_5555_4000;

pub fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

pub fn page_up(a: u64) -> Option<u64> {
    a.checked_add(PAGE - 1).map(page_down)
}

#[derive(Clone, Debug)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// PROT_READ | PROT_WRITE | PROT_EXEC bits.
    pub prot: u64,
    pub kind: VmaKind,
    /// MAP_SHARED: the pages stay shared with the child across fork.
    pub shared: bool,
    /// Pages from this address on lie wholly past the end of the mapped file: touching them
    /// is SIGBUS (BUS_ADRERR), as on Linux. u64::MAX for memory that is not a file's.
    pub bus_from: u64,
    /// Where the pages come from, for MAP_SHARED anonymous memory and file mappings (a copy
    /// of the file's pages, mapped copy-on-write by private mappings), and the address page
    /// 0 of the object would have in this mapping (kept as VMAs split and move, like
    /// `bus_from`).
    pub shm: Option<Arc<SharedPages>>,
    pub shm_base: u64,
    /// mlock'd (Linux's VM_LOCKED): counts against RLIMIT_MEMLOCK. The pages stay resident,
    /// as all pages do here (there is no swap); MADV_DONTNEED refuses to drop them.
    pub locked: bool,
}

impl Vma {
    /// Private memory that is not a file's.
    pub const fn new(start: u64, end: u64, prot: u64, kind: VmaKind) -> Vma {
        Vma {
            start,
            end,
            prot,
            kind,
            shared: false,
            bus_from: u64::MAX,
            shm: None,
            shm_base: 0,
            locked: false,
        }
    }

    /// The VMA that this one's part from `old` becomes when moved to [new, end) (mremap):
    /// the same memory, with the end of the file and the object's pages where they were
    /// relative to it.
    pub fn moved(&self, old: u64, new: u64, end: u64) -> Vma {
        let bus_from = match self.bus_from {
            u64::MAX => u64::MAX,
            b => new.saturating_add(b.saturating_sub(old)),
        };
        Vma {
            start: new,
            end,
            bus_from,
            shm_base: self.shm_base.wrapping_add(new.wrapping_sub(old)),
            ..self.clone()
        }
    }
}

/// The pages behind a mapping: for MAP_SHARED anonymous memory, as Linux's shmem object;
/// for a file mapping, a copy of the file's pages as they were at mmap (there is no page
/// cache), which a private mapping maps copy-on-write, so that MADV_DONTNEED brings the
/// file's contents back. Every VMA made from the mapping (split by mprotect, copied by fork,
/// moved by mremap) names it, and a page first touched through any of them is the same
/// frame in all. The object holds a reference to each of its frames.
#[derive(Debug, Default)]
pub struct SharedPages {
    pages: spin::Mutex<BTreeMap<u64, Frame>>,
}

impl SharedPages {
    /// The frame of page `index` (a zeroed one if nobody touched the page yet), with a
    /// reference for the caller.
    fn frame(&self, index: u64) -> Option<Frame> {
        let mut pages = self.pages.lock();
        let f = match pages.get(&index) {
            Some(f) => *f,
            None => {
                let f = frame::alloc_zeroed()?;
                pages.insert(index, f);
                f
            }
        };
        frame::share(f);
        Some(f)
    }
}

impl SharedPages {
    /// An object holding a copy of `data` (a file's bytes), zeros after it to the end of
    /// its last page; None if there is no memory for it.
    pub fn from_bytes(data: &[u8]) -> Option<SharedPages> {
        let obj = SharedPages::default();
        {
            let mut pages = obj.pages.lock();
            for (i, chunk) in data.chunks(PAGE_SIZE).enumerate() {
                let f = frame::alloc_zeroed()?;
                super::frame_bytes_mut(f)[..chunk.len()].copy_from_slice(chunk);
                pages.insert(i as u64, f);
            }
        }
        Some(obj)
    }

    /// Whether page `index` has been touched (has a frame).
    fn has(&self, index: u64) -> bool {
        self.pages.lock().contains_key(&index)
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        for f in self.pages.get_mut().values() {
            frame::release(*f);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    Anonymous,
    Program,
    Heap,
    Stack,
    /// The vvar page (read-only for user space; the kernel writes it, see `vdso`).
    Vvar,
    /// The vDSO image.
    Vdso,
}

/// How a page fault was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResult {
    /// A page was mapped (or already was, by a racing fault): retry the access.
    Handled,
    /// No VMA covers the address: SIGSEGV with SEGV_MAPERR.
    Unmapped,
    /// A VMA covers it but forbids the access: SIGSEGV with SEGV_ACCERR.
    Forbidden,
    /// The page lies past the end of the mapped file: SIGBUS with BUS_ADRERR.
    PastEof,
    /// No memory for the page.
    OutOfMemory,
}

/// The most VMAs one address space may have: Linux's default `vm.max_map_count`. Each VMA
/// costs kernel heap, and unmapping or reprotecting a page in the middle of an area splits it,
/// so without a cap a process could take the whole heap one page at a time.
pub const MAX_MAP_COUNT: usize = 65530;

/// About what one VMA costs on the heap: the entry and its share of a B-tree node.
const VMA_HEAP_COST: usize = 128;

/// What mlockall(MCL_FUTURE) asked for the mappings made from then on (Linux's def_flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutureLock {
    Off,
    /// Locked and faulted in at once.
    Locked,
    /// Locked, faulted in as touched (MCL_ONFAULT).
    OnFault,
}

pub struct AddressSpace {
    pml4: Frame,
    vmas: BTreeMap<u64, Vma>,
    brk_start: u64,
    brk: u64,
    /// RLIMIT_AS, mirrored here so brk can check it (set by the syscall layer).
    pub as_limit: u64,
    /// mlockall(MCL_FUTURE): new mappings are locked.
    pub future_lock: FutureLock,
}

struct FramePool;

// SAFETY: frames from the frame allocator are unused until handed out here, and the crate
// zeroes the page-table frames it takes from us.
unsafe impl FrameAllocator<Size4KiB> for FramePool {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        frame::alloc().map(|f| PhysFrame::containing_address(PhysAddr::new(f.0)))
    }
}

/// Marks a private page whose frame may be shared with another address space: it is mapped
/// read-only whatever its protection, and the first write copies it (see `break_cow`).
const COW: F = F::BIT_10;

/// PTE flags for a protection. PROT_NONE pages are not present (so every access faults, the
/// copy layer's too) but keep their frame in the entry, so mprotect can make them accessible
/// again with their contents; BIT_9 marks such "kept" entries.
fn pte_flags(prot: u64) -> F {
    if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) == 0 {
        return F::USER_ACCESSIBLE | F::NO_EXECUTE | F::BIT_9;
    }
    let mut f = F::PRESENT | F::USER_ACCESSIBLE;
    if prot & PROT_WRITE != 0 {
        f |= F::WRITABLE;
    }
    if prot & PROT_EXEC == 0 {
        f |= F::NO_EXECUTE;
    }
    f
}

/// The flags of an entry with flags `old` given protection `prot`: a copy-on-write page
/// stays read-only (and copy-on-write) until written.
fn reprotected(old: F, prot: u64) -> F {
    let flags = pte_flags(prot);
    if old.contains(COW) {
        (flags - F::WRITABLE) | COW
    } else {
        flags
    }
}

fn table_at(phys: u64) -> &'static mut PageTable {
    // SAFETY: `phys` is a page-table frame of an address space we own (or the kernel's master
    // table); the direct map covers it, and page tables are only changed with the owning
    // address space locked.
    unsafe { &mut *(phys_to_virt(phys) as *mut PageTable) }
}

impl AddressSpace {
    /// An empty user address space sharing the kernel's upper half.
    pub fn new() -> Result<Self, Errno> {
        let pml4 = frame::alloc_zeroed().ok_or(Errno::ENOMEM)?;
        let master = table_at(boot::boot_pml4_phys());
        let table = table_at(pml4.0);
        for i in 256..512 {
            table[i] = master[i].clone();
        }
        Ok(AddressSpace {
            pml4,
            vmas: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            as_limit: u64::MAX,
            future_lock: FutureLock::Off,
        })
    }

    /// Physical address of the top-level table (what CR3 holds while this space is active).
    pub fn root_phys(&self) -> u64 {
        self.pml4.0
    }

    /// Makes this the address space the CPU uses.
    pub fn activate(&self) {
        tlb::set_active(self.pml4.0);
        if cpu::read_cr3() & !0xfff != self.pml4.0 {
            // SAFETY: the upper half of every address space is the kernel's master half.
            unsafe { cpu::write_cr3(self.pml4.0) };
        }
    }

    fn is_active(&self) -> bool {
        cpu::read_cr3() & !0xfff == self.pml4.0
    }

    fn mapper(&self) -> OffsetPageTable<'static> {
        // SAFETY: the PML4 frame is ours and the direct map is at PHYS_OFFSET.
        unsafe { OffsetPageTable::new(table_at(self.pml4.0), VirtAddr::new(boot::PHYS_OFFSET)) }
    }

    pub fn find_vma(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| addr < v.end)
    }

    /// The VMA containing `addr`, else the lowest one above it.
    pub fn vma_from(&self, addr: u64) -> Option<&Vma> {
        self.find_vma(addr)
            .or_else(|| self.vmas.range(addr..).next().map(|(_, v)| v))
    }

    /// mincore for the VMA containing `addr`: whether each page from `addr` has its memory
    /// (a frame in this address space, or in the MAP_SHARED object behind it), one byte per
    /// page into `out`, up to the end of the VMA. Returns the pages answered for, or None if
    /// no VMA contains `addr`.
    pub fn residency(&self, addr: u64, out: &mut [u8]) -> Option<usize> {
        let vma = self.find_vma(addr)?;
        let n = (((vma.end - addr) / PAGE) as usize).min(out.len());
        for (i, b) in out[..n].iter_mut().enumerate() {
            let a = addr + i as u64 * PAGE;
            let mapped = self.leaf_entry(a).is_some_and(|e| !e.is_unused());
            let shared = vma
                .shm
                .as_ref()
                .is_some_and(|s| s.has(a.wrapping_sub(vma.shm_base) / PAGE));
            *b = u8::from(mapped || shared);
        }
        Some(n)
    }

    /// Faults in the pages of [start, end) that the VMAs there allow some access to, as a
    /// read would (MAP_POPULATE); stops quietly at the first one that cannot be had.
    pub fn populate_range(&mut self, start: u64, end: u64) {
        let mut a = start;
        while a < end {
            let Some(v) = self.find_vma(a) else {
                return;
            };
            if v.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0
                && self.handle_fault(a, false, false) != FaultResult::Handled
            {
                return;
            }
            a += PAGE;
        }
    }

    /// Bytes of locked memory (what RLIMIT_MEMLOCK limits).
    pub fn locked_bytes(&self) -> u64 {
        self.vmas
            .values()
            .filter(|v| v.locked)
            .map(|v| v.end - v.start)
            .sum()
    }

    /// Bytes of [start, end) that are locked already.
    pub fn locked_in(&self, start: u64, end: u64) -> u64 {
        self.vmas
            .range(..end)
            .map(|(_, v)| v)
            .filter(|v| v.locked && v.end > start)
            .map(|v| v.end.min(end) - v.start.max(start))
            .sum()
    }

    /// Whether any page of [start, end) is locked.
    pub fn any_locked(&self, start: u64, end: u64) -> bool {
        self.locked_in(start, end) != 0
    }

    /// mlock/munlock of [start, end) (page aligned): ENOMEM if any page of it is not mapped
    /// or the splits do not fit. The vDSO and vvar pages are left as they are (Linux's
    /// special mappings ignore mlock too).
    pub fn set_locked(&mut self, start: u64, end: u64, locked: bool) -> Result<(), Errno> {
        self.split_range(start, end)?;
        for v in self.vmas.range_mut(start..end).map(|(_, v)| v) {
            if !matches!(v.kind, VmaKind::Vdso | VmaKind::Vvar) {
                v.locked = locked;
            }
        }
        self.merge_range(start, end);
        Ok(())
    }

    /// ENOMEM unless every page of [start, end) is mapped (as Linux's mprotect, mlock,
    /// madvise and msync answer a range with a hole).
    pub fn check_mapped(&self, start: u64, end: u64) -> Result<(), Errno> {
        let mut a = start;
        while a < end {
            a = self.find_vma(a).ok_or(Errno::ENOMEM)?.end;
        }
        Ok(())
    }

    /// Before a change of the VMAs of [start, end) (page aligned): ENOMEM if a page of it is
    /// not mapped or the splits do not fit under MAX_MAP_COUNT (Linux's split_vma says ENOMEM
    /// too); else splits the VMAs at `start` and `end` and returns the starts of the VMAs in
    /// between. `merge_range` joins what the change left alike.
    fn split_range(&mut self, start: u64, end: u64) -> Result<alloc::vec::Vec<u64>, Errno> {
        self.check_mapped(start, end)?;
        self.room_for(usize::from(self.splits(start)) + usize::from(self.splits(end)))?;
        self.split_at(start);
        self.split_at(end);
        Ok(self.vmas.range(start..end).map(|(k, _)| *k).collect())
    }

    /// Joins the VMAs in and at the edges of [start, end) that are alike (after
    /// `split_range` and a change).
    fn merge_range(&mut self, start: u64, end: u64) {
        let bounds: alloc::vec::Vec<u64> = self.vmas.range(start..=end).map(|(k, _)| *k).collect();
        for b in bounds.into_iter().rev() {
            self.merge_at(b);
        }
    }

    /// mlockall(MCL_CURRENT) / munlockall: locks or unlocks every mapping.
    pub fn set_all_locked(&mut self, locked: bool) {
        for v in self.vmas.values_mut() {
            if !matches!(v.kind, VmaKind::Vdso | VmaKind::Vvar) {
                v.locked = locked;
            }
        }
        let starts: alloc::vec::Vec<u64> = self.vmas.keys().copied().collect();
        for s in starts.into_iter().rev() {
            self.merge_at(s);
        }
    }

    /// Faults in every locked mapping (mlockall(MCL_CURRENT) without MCL_ONFAULT).
    pub fn populate_locked(&mut self) {
        let ranges: alloc::vec::Vec<(u64, u64)> = self
            .vmas
            .values()
            .filter(|v| v.locked)
            .map(|v| (v.start, v.end))
            .collect();
        for (s, e) in ranges {
            self.populate_range(s, e);
        }
    }

    /// The lowest VMA of `kind` (the vvar page and the vDSO have one each).
    pub fn find_kind(&self, kind: VmaKind) -> Option<&Vma> {
        self.vmas.values().find(|v| v.kind == kind)
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.vmas
            .range(..end)
            .next_back()
            .is_some_and(|(_, v)| v.end > start)
    }

    /// Whether `addr` falls strictly inside a VMA, so that a boundary there splits it.
    fn splits(&self, addr: u64) -> bool {
        self.find_vma(addr).is_some_and(|v| v.start < addr)
    }

    /// ENOMEM unless `extra` more VMAs fit under `MAX_MAP_COUNT` and above the heap's reserve.
    fn room_for(&self, extra: usize) -> Result<(), Errno> {
        if self.vmas.len() + extra > MAX_MAP_COUNT || !super::heap::can_spare(extra * VMA_HEAP_COST)
        {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// ENOMEM if mapping over [start, end) may not add its VMA: Linux refuses an mmap when the
    /// count is already past `MAX_MAP_COUNT`, and a split of a VMA it replaces part of when
    /// the count is at it.
    pub fn check_map(&self, start: u64, end: u64) -> Result<(), Errno> {
        if self.vmas.len() > MAX_MAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        match usize::from(self.splits(start)) + usize::from(self.splits(end)) {
            0 => Ok(()),
            splits => self.room_for(splits),
        }
    }

    /// ENOMEM if moving a mapping could pass `MAX_MAP_COUNT` (Linux's mremap keeps room for
    /// the three VMAs a move can add).
    pub fn check_move(&self) -> Result<(), Errno> {
        if self.vmas.len() + 3 > MAX_MAP_COUNT {
            return Err(Errno::ENOMEM);
        }
        self.room_for(3)
    }

    /// ENOMEM if unmapping [start, end) would cut a hole in one VMA (leaving one more) when the
    /// address space is at `MAX_MAP_COUNT` or the heap at its reserve, as Linux's munmap.
    /// Other unmaps never add VMAs, and may take the count past the cap no further.
    pub fn check_unmap(&self, start: u64, end: u64) -> Result<(), Errno> {
        match self.find_vma(start) {
            Some(v) if v.start < start && end < v.end => self.room_for(1),
            _ => Ok(()),
        }
    }

    /// Records a private VMA over [start, end) (page aligned), replacing whatever was there.
    pub fn add_vma(&mut self, start: u64, end: u64, prot: u64, kind: VmaKind) {
        self.add_mapping(Vma::new(start, end, prot, kind));
    }

    /// Records `vma` (page aligned), replacing whatever was there.
    pub fn add_mapping(&mut self, vma: Vma) {
        let (start, end) = (vma.start, vma.end);
        self.remove_range(start, end);
        self.vmas.insert(start, vma);
        self.merge_at(end);
        self.merge_at(start);
    }

    /// Joins the VMAs that meet at `addr` if they are the same kind of memory with the same
    /// attributes, as Linux merges them (so that, say, mprotect and back leaves one VMA that
    /// mremap can move whole).
    fn merge_at(&mut self, addr: u64) {
        let Some(b) = self.vmas.get(&addr) else {
            return;
        };
        let Some((_, a)) = self.vmas.range(..addr).next_back() else {
            return;
        };
        let same_object = match (&a.shm, &b.shm) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y) && a.shm_base == b.shm_base,
            _ => false,
        };
        if a.end == addr
            && same_object
            && a.prot == b.prot
            && a.kind == b.kind
            && a.shared == b.shared
            && a.bus_from == b.bus_from
            && a.locked == b.locked
        {
            let (a_start, end) = (a.start, b.end);
            self.vmas.remove(&addr);
            if let Some(a) = self.vmas.get_mut(&a_start) {
                a.end = end;
            }
        }
    }

    /// Splits VMAs so that `start` and `end` fall on VMA boundaries.
    fn split_at(&mut self, addr: u64) {
        if let Some(v) = self.find_vma(addr).cloned() {
            if v.start < addr {
                self.vmas.insert(
                    addr,
                    Vma {
                        start: addr,
                        ..v.clone()
                    },
                );
                self.vmas.insert(v.start, Vma { end: addr, ..v });
            }
        }
    }

    /// Unmaps [start, end): frees the pages and drops or trims the VMAs.
    pub fn remove_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.split_at(start);
        self.split_at(end);
        let keys: alloc::vec::Vec<u64> = self.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(v) = self.vmas.remove(&k) {
                self.unmap_pages(v.start, v.end);
            }
        }
    }

    /// The last-level entry for `addr`, if its page tables exist (the entry itself may be
    /// unused, present, or a kept PROT_NONE entry).
    fn leaf_entry(
        &self,
        addr: u64,
    ) -> Option<&'static mut x86_64::structures::paging::page_table::PageTableEntry> {
        self.leaf_or_next(addr).ok()
    }

    /// Like `leaf_entry`, but where a page table is missing, the first address past the range
    /// that table would cover: walks over a range skip what was never mapped, so a VMA of
    /// terabytes (mmap with MAP_NORESERVE, a wild brk) costs per table, not per page.
    fn leaf_or_next(
        &self,
        addr: u64,
    ) -> Result<&'static mut x86_64::structures::paging::page_table::PageTableEntry, u64> {
        let mut table = table_at(self.pml4.0);
        for shift in [39u64, 30, 21] {
            let e = &table[((addr >> shift) & 511) as usize];
            if !e.flags().contains(F::PRESENT) {
                return Err((addr | ((1u64 << shift) - 1)).saturating_add(1));
            }
            table = table_at(e.addr().as_u64());
        }
        Ok(&mut table[((addr >> 12) & 511) as usize])
    }

    fn unmap_pages(&mut self, start: u64, end: u64) {
        let active = self.is_active();
        let mut freed = alloc::vec::Vec::new();
        let mut addr = start;
        while addr < end {
            match self.leaf_or_next(addr) {
                Ok(e) => {
                    if !e.is_unused() {
                        freed.push(Frame(e.addr().as_u64()));
                        e.set_unused();
                        if active {
                            cpu::flush_tlb_page(addr);
                        }
                    }
                    addr += PAGE;
                }
                Err(next) => addr = next,
            }
        }
        // Another CPU may still reach these frames through its TLB until it has flushed.
        if !freed.is_empty() {
            tlb::shootdown(self.pml4.0, start, end);
        }
        for f in freed {
            frame::release(f);
        }
    }

    /// Maps a fresh zeroed page at `addr` with the VMA's protection.
    fn populate(&mut self, addr: u64, prot: u64) -> Result<Frame, Errno> {
        let f = frame::alloc_zeroed().ok_or(Errno::ENOMEM)?;
        self.map_frame(addr, f, pte_flags(prot))?;
        Ok(f)
    }

    /// Gives the untouched page at `addr` of `vma` its frame: a fresh zeroed one, or the
    /// object's (itself for shared memory, copy-on-write for a private file mapping).
    fn fill(&mut self, addr: u64, vma: &Vma) -> Result<Frame, Errno> {
        let addr = page_down(addr);
        let Some(shm) = &vma.shm else {
            return self.populate(addr, vma.prot);
        };
        let f = shm
            .frame(addr.wrapping_sub(vma.shm_base) / PAGE)
            .ok_or(Errno::ENOMEM)?;
        let flags = if vma.shared {
            pte_flags(vma.prot)
        } else {
            (pte_flags(vma.prot) - F::WRITABLE) | COW
        };
        self.map_frame(addr, f, flags)?;
        Ok(f)
    }

    /// Maps frame `f` at the unmapped user page `addr`, the entry taking over the caller's
    /// reference to `f` (released if the page tables cannot be allocated).
    fn map_frame(&mut self, addr: u64, f: Frame, flags: F) -> Result<(), Errno> {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr));
        let pf = PhysFrame::containing_address(PhysAddr::new(f.0));
        let parents = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        // SAFETY: the page is in user space and not mapped yet (callers check); the frame is
        // either fresh or one whose other mappings hold their own references to it.
        let r = unsafe {
            self.mapper()
                .map_to_with_table_flags(page, pf, flags, parents, &mut FramePool)
        };
        match r {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(_) => {
                frame::release(f);
                Err(Errno::ENOMEM)
            }
        }
    }

    /// The frame behind a user page, if mapped.
    pub fn frame_of(&self, addr: u64) -> Option<Frame> {
        match self.mapper().translate(VirtAddr::new(addr)) {
            TranslateResult::Mapped { frame, .. } => Some(Frame(frame.start_address().as_u64())),
            _ => None,
        }
    }

    /// Resolves a page fault at `addr` for a write and/or instruction fetch.
    pub fn handle_fault(&mut self, addr: u64, write: bool, exec: bool) -> FaultResult {
        let Some(vma) = self.find_vma(addr).cloned() else {
            return FaultResult::Unmapped;
        };
        let allowed = if exec {
            vma.prot & PROT_EXEC != 0
        } else if write {
            vma.prot & PROT_WRITE != 0
        } else {
            vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0
        };
        if !allowed {
            return FaultResult::Forbidden;
        }
        if page_down(addr) >= vma.bus_from {
            return FaultResult::PastEof;
        }
        let entry = self.leaf_entry(addr).filter(|e| !e.is_unused());
        let result = match entry {
            Some(e) if write && e.flags().contains(COW) => self.break_cow(addr, vma.prot),
            // Present with the VMA's permissions: the access must have raced a mapping change.
            Some(e) if e.flags().contains(F::PRESENT) => return FaultResult::Handled,
            // A kept PROT_NONE entry the VMA now allows (raced an mprotect): its protection.
            Some(e) => {
                e.set_flags(reprotected(e.flags(), vma.prot));
                return FaultResult::Handled;
            }
            None => self.fill(addr, &vma).map(|_| ()),
        };
        match result {
            Ok(()) => FaultResult::Handled,
            Err(_) => FaultResult::OutOfMemory,
        }
    }

    /// Gives the copy-on-write page at `addr` a frame of its own (a copy, unless no other
    /// address space holds the frame any more) and the VMA's protection `prot`.
    fn break_cow(&mut self, addr: u64, prot: u64) -> Result<(), Errno> {
        let addr = page_down(addr);
        let e = self.leaf_entry(addr).ok_or(Errno::EFAULT)?;
        let old = Frame(e.addr().as_u64());
        if frame::is_shared(old) {
            let new = frame::alloc().ok_or(Errno::ENOMEM)?;
            super::frame_bytes_mut(new).copy_from_slice(super::frame_bytes_mut(old));
            e.set_addr(PhysAddr::new(new.0), pte_flags(prot));
            self.flush_page(addr);
            // No CPU can reach the old frame through this address space any more.
            frame::release(old);
        } else {
            e.set_flags(pte_flags(prot));
            self.flush_page(addr);
        }
        Ok(())
    }

    /// Drops the translations of the page at `addr` on every CPU using this address space.
    fn flush_page(&self, addr: u64) {
        if self.is_active() {
            cpu::flush_tlb_page(addr);
        }
        tlb::shootdown(self.pml4.0, addr, addr + PAGE);
    }

    /// Writes `data` at user address `addr` through the direct map, mapping pages as needed,
    /// regardless of protection (the loader and the initial stack use this).
    pub fn write_bytes(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < data.len() {
            let a = addr + done as u64;
            let vma = self.find_vma(a).cloned().ok_or(Errno::EFAULT)?;
            if self.leaf_entry(a).is_none_or(|e| e.is_unused()) {
                self.fill(a, &vma)?;
            }
            if self
                .leaf_entry(a)
                .is_some_and(|e| !e.is_unused() && e.flags().contains(COW))
            {
                self.break_cow(a, vma.prot)?;
            }
            let f = self.frame_of(a).ok_or(Errno::EFAULT)?;
            let off = (a % PAGE) as usize;
            let n = (PAGE_SIZE - off).min(data.len() - done);
            super::frame_bytes_mut(f)[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Finds a free, page-aligned range of `len` bytes, top-down from MMAP_BASE.
    pub fn find_free(&self, len: u64) -> Option<u64> {
        let mut top = MMAP_BASE;
        for v in self.vmas.range(..MMAP_BASE).rev().map(|(_, v)| v) {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(v.start);
        }
        (top >= USER_BOTTOM + len).then(|| top - len)
    }

    /// Changes the protection of [start, end), splitting VMAs; ENOMEM if any page of the
    /// range is not mapped (as Linux).
    pub fn protect(&mut self, start: u64, end: u64, prot: u64) -> Result<(), Errno> {
        let keys = self.split_range(start, end)?;
        let active = self.is_active();
        for k in keys {
            let v = self.vmas.get_mut(&k).expect("vma just listed");
            v.prot = prot;
            let (vs, ve) = (v.start, v.end);
            let mut addr = vs;
            while addr < ve {
                match self.leaf_or_next(addr) {
                    Ok(e) => {
                        if !e.is_unused() {
                            e.set_flags(reprotected(e.flags(), prot));
                            if active {
                                cpu::flush_tlb_page(addr);
                            }
                        }
                        addr += PAGE;
                    }
                    Err(next) => addr = next,
                }
            }
        }
        tlb::shootdown(self.pml4.0, start, end);
        self.merge_range(start, end);
        Ok(())
    }

    /// Drops the private pages of [start, end) that are mapped, keeping the VMAs: the next
    /// touch gets zeros (MADV_DONTNEED on private anonymous memory). Shared memory keeps its
    /// contents, as Linux's shmem behind a MAP_SHARED mapping does.
    pub fn discard(&mut self, start: u64, end: u64) {
        let private: alloc::vec::Vec<(u64, u64)> = self
            .vmas
            .range(..end)
            .map(|(_, v)| v)
            .filter(|v| v.end > start && !v.shared)
            .map(|v| (v.start.max(start), v.end.min(end)))
            .collect();
        for (s, e) in private {
            self.unmap_pages(s, e);
        }
    }

    /// Moves the pages of [old, old + len) to [new, new + len) (no overlap, nothing mapped at
    /// the target), keeping contents, protections and copy-on-write state; kept PROT_NONE
    /// pages move too.
    pub fn move_pages(&mut self, old: u64, new: u64, len: u64) -> Result<(), Errno> {
        let active = self.is_active();
        let mut result = Ok(());
        let mut off = 0;
        while off < len {
            let from = match self.leaf_or_next(old + off) {
                Ok(e) => e,
                Err(next) => {
                    off = next - old;
                    continue;
                }
            };
            if !from.is_unused() {
                let Some(to) = self.leaf_entry_alloc(new + off) else {
                    // What moved so far stays moved; the rest stays where it was.
                    result = Err(Errno::ENOMEM);
                    break;
                };
                debug_assert!(to.is_unused());
                to.set_addr(from.addr(), from.flags());
                from.set_unused();
                if active {
                    cpu::flush_tlb_page(old + off);
                }
            }
            off += PAGE;
        }
        tlb::shootdown(self.pml4.0, old, old + len);
        result
    }

    /// The last-level entry for `addr`, with the page tables above it made as needed (None:
    /// no memory for one).
    fn leaf_entry_alloc(
        &mut self,
        addr: u64,
    ) -> Option<&'static mut x86_64::structures::paging::page_table::PageTableEntry> {
        let mut table = table_at(self.pml4.0);
        for shift in [39u64, 30, 21] {
            let e = &mut table[((addr >> shift) & 511) as usize];
            if !e.flags().contains(F::PRESENT) {
                let f = frame::alloc_zeroed()?;
                e.set_addr(
                    PhysAddr::new(f.0),
                    F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE,
                );
            }
            table = table_at(e.addr().as_u64());
        }
        Some(&mut table[((addr >> 12) & 511) as usize])
    }

    /// Every mapped user page: (address, frame, flags), found by walking only the present
    /// entries of the page tables.
    fn mapped_pages(&self) -> alloc::vec::Vec<(u64, Frame, F)> {
        let mut out = alloc::vec::Vec::new();
        let pml4 = table_at(self.pml4.0);
        for (i4, e4) in pml4.iter().enumerate().take(256) {
            if !e4.flags().contains(F::PRESENT) {
                continue;
            }
            for (i3, e3) in table_at(e4.addr().as_u64()).iter().enumerate() {
                if !e3.flags().contains(F::PRESENT) {
                    continue;
                }
                for (i2, e2) in table_at(e3.addr().as_u64()).iter().enumerate() {
                    if !e2.flags().contains(F::PRESENT) {
                        continue;
                    }
                    for (i1, e1) in table_at(e2.addr().as_u64()).iter().enumerate() {
                        if !e1.is_unused() {
                            let addr = ((i4 as u64) << 39)
                                | ((i3 as u64) << 30)
                                | ((i2 as u64) << 21)
                                | ((i1 as u64) << 12);
                            out.push((addr, Frame(e1.addr().as_u64()), e1.flags()));
                        }
                    }
                }
            }
        }
        out
    }

    /// A copy of this address space for fork: the same VMAs and break. MAP_SHARED memory is
    /// the same frames in both (and the same object, for pages neither side touched yet);
    /// private pages are shared copy-on-write (pages not yet touched stay demand-zero in
    /// both), except the vvar page, which the kernel writes for each process and which is
    /// copied.
    pub fn duplicate(&mut self) -> Result<AddressSpace, Errno> {
        // The copy of the VMA table is taken infallibly: it must fit above the heap's reserve.
        if !super::heap::can_spare(self.vmas.len() * VMA_HEAP_COST) {
            return Err(Errno::ENOMEM);
        }
        let mut new = AddressSpace::new()?;
        new.vmas = self.vmas.clone();
        // Memory locks are not inherited (fork(2)); nor is mlockall(MCL_FUTURE).
        for v in new.vmas.values_mut() {
            v.locked = false;
        }
        new.brk_start = self.brk_start;
        new.brk = self.brk;
        new.as_limit = self.as_limit;
        let parents = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        let mut made_cow = false;
        for (addr, frame, flags) in self.mapped_pages() {
            let vma = self.find_vma(addr);
            let (shared, kind) = vma.map_or((false, VmaKind::Anonymous), |v| (v.shared, v.kind));
            if kind == VmaKind::Vvar {
                let prot = vma.map_or(PROT_READ, |v| v.prot);
                let nf = new.populate(addr, prot)?;
                super::frame_bytes_mut(nf).copy_from_slice(super::frame_bytes_mut(frame));
                continue;
            }
            let flags = if shared {
                flags
            } else {
                let cow = (flags - F::WRITABLE) | COW;
                if cow != flags {
                    let e = self.leaf_entry(addr).expect("page just listed");
                    e.set_flags(cow);
                    made_cow = true;
                }
                cow
            };
            frame::share(frame);
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr));
            let pf = PhysFrame::containing_address(PhysAddr::new(frame.0));
            // SAFETY: `new` maps nothing at `addr` yet (it is being built from this space's
            // pages, each listed once), and the reference just taken is the entry's.
            let r = unsafe {
                new.mapper()
                    .map_to_with_table_flags(page, pf, flags, parents, &mut FramePool)
            };
            if r.is_err() {
                frame::release(frame);
                return Err(Errno::ENOMEM);
            }
        }
        if made_cow {
            // Pages this space may have written until now are read-only from here on.
            if self.is_active() {
                // SAFETY: reloading CR3 with the table already loaded only flushes the TLB.
                unsafe { cpu::write_cr3(self.pml4.0) };
            }
            tlb::shootdown(self.pml4.0, 0, USER_TOP);
        }
        Ok(new)
    }

    /// Bytes of address space mapped (what RLIMIT_AS limits).
    pub fn total_vm(&self) -> u64 {
        self.vmas.values().map(|v| v.end - v.start).sum()
    }

    pub fn is_free(&self, start: u64, end: u64) -> bool {
        start >= USER_BOTTOM && end <= USER_TOP && !self.overlaps(start, end)
    }

    pub fn set_brk_start(&mut self, start: u64) {
        self.brk_start = start;
        self.brk = start;
    }

    /// How many bytes of heap a break at `requested` would add (0 if it shrinks or stays).
    pub fn brk_growth(&self, requested: u64) -> u64 {
        match (page_up(self.brk), page_up(requested)) {
            (Some(old), Some(new)) => new.saturating_sub(old),
            _ => 0,
        }
    }

    /// brk(2): moves the program break; returns the break in force afterwards (the old one
    /// when the request cannot be met, as Linux does).
    pub fn brk(&mut self, requested: u64) -> u64 {
        if requested < self.brk_start || requested >= USER_TOP {
            return self.brk;
        }
        let (Some(old_end), Some(new_end)) = (page_up(self.brk), page_up(requested)) else {
            return self.brk;
        };
        if new_end > old_end {
            if self.overlaps(old_end, new_end)
                || self.total_vm() + (new_end - old_end) > self.as_limit
            {
                return self.brk;
            }
            // The new part of the heap, joined to the rest unless mprotect made that differ.
            let mut heap = Vma::new(old_end, new_end, PROT_READ | PROT_WRITE, VmaKind::Heap);
            heap.locked = self.future_lock != FutureLock::Off;
            self.vmas.insert(old_end, heap);
            self.merge_at(old_end);
            if self.future_lock == FutureLock::Locked {
                self.populate_range(old_end, new_end);
            }
        } else if new_end < old_end {
            self.remove_range(new_end, old_end);
        }
        self.brk = requested;
        self.brk
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if self.is_active() {
            tlb::set_active(boot::boot_pml4_phys());
            // SAFETY: the master table maps the kernel exactly as every address space does.
            unsafe { cpu::write_cr3(boot::boot_pml4_phys()) };
        }
        tlb::wait_until_unused(self.pml4.0);
        let pml4 = table_at(self.pml4.0);
        for i in 0..256 {
            free_table_tree(&pml4[i], 3);
        }
        frame::free(self.pml4);
    }
}

/// Frees a lower-half page-table subtree: `level` 3 = PDPT, 2 = PD, 1 = PT, 0 = a leaf frame.
fn free_table_tree(entry: &x86_64::structures::paging::page_table::PageTableEntry, level: u8) {
    // A leaf may be a kept PROT_NONE entry (not present, frame kept): it holds a reference to
    // its frame too.
    let owns = if level == 0 {
        !entry.is_unused()
    } else {
        entry.flags().contains(F::PRESENT)
    };
    if !owns {
        return;
    }
    let phys = entry.addr().as_u64();
    if level > 0 {
        let t = table_at(phys);
        for e in t.iter() {
            free_table_tree(e, level - 1);
        }
        frame::free(Frame(phys));
    } else {
        frame::release(Frame(phys));
    }
}

/// Switches to the address space whose root table `root` holds (a process's `mm_root`, kept
/// in step with its AddressSpace), unless the CPU already uses it: the context switch's
/// path, without locks. The root is published for TLB shootdowns (`tlb::set_active`) and
/// `root` read again: if execve replaced the address space in between, its new root is
/// taken, so a root is never loaded after the old space's drop saw it unused and freed it.
pub fn activate_root(root: &AtomicU64) {
    let mut r = root.load(SeqCst);
    loop {
        tlb::set_active(r);
        let again = root.load(SeqCst);
        if again == r {
            break;
        }
        r = again;
    }
    if cpu::read_cr3() & !0xfff != r {
        // SAFETY: `r` is the root of a live address space (see above: its drop waits while
        // any CPU has it published), and every address space maps the kernel's upper half.
        unsafe { cpu::write_cr3(r) };
    }
}

/// The boot identity map's PDPT, kept for `set_low_identity_map`.
static IDENTITY_PDPT: AtomicU64 = AtomicU64::new(0);

/// Removes the boot identity map of low memory from the master table.
pub fn drop_identity_map() {
    let master = table_at(boot::boot_pml4_phys());
    IDENTITY_PDPT.store(master[0].addr().as_u64(), Relaxed);
    master[0].set_unused();
    // SAFETY: reloading CR3 with the master table only flushes the TLB.
    unsafe { cpu::write_cr3(boot::boot_pml4_phys()) };
}

/// Puts the boot identity map back into the master table, or takes it out again: CPUs
/// starting up turn paging on while running at a low physical address (arch::smp). Only
/// the master table changes; user address spaces copy just its upper half. Removing it
/// flushes this CPU; the others must not be using the master table by then.
pub fn set_low_identity_map(on: bool) {
    let master = table_at(boot::boot_pml4_phys());
    let pdpt = IDENTITY_PDPT.load(Relaxed);
    if on && pdpt != 0 {
        master[0].set_addr(PhysAddr::new(pdpt), F::PRESENT | F::WRITABLE);
    } else {
        master[0].set_unused();
        if cpu::read_cr3() & !0xfff == boot::boot_pml4_phys() {
            // SAFETY: reloading CR3 with the master table only flushes the TLB.
            unsafe { cpu::write_cr3(boot::boot_pml4_phys()) };
        }
    }
}

/// Maps one 2 MiB page of the direct map (RAM above the 4 GiB the boot tables cover).
pub fn map_kernel_huge(virt: u64, phys: u64) {
    let master = table_at(boot::boot_pml4_phys());
    let l4 = ((virt >> 39) & 511) as usize;
    let l3 = ((virt >> 30) & 511) as usize;
    let l2 = ((virt >> 21) & 511) as usize;
    let pdpt = table_at(master[l4].addr().as_u64());
    if !pdpt[l3].flags().contains(F::PRESENT) {
        let f = frame::alloc_zeroed().expect("out of memory mapping RAM");
        pdpt[l3].set_addr(PhysAddr::new(f.0), F::PRESENT | F::WRITABLE);
    }
    let pd = table_at(pdpt[l3].addr().as_u64());
    pd[l2].set_addr(
        PhysAddr::new(phys),
        F::PRESENT | F::WRITABLE | F::HUGE_PAGE | F::NO_EXECUTE,
    );
}
