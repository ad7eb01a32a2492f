//! The per-CPU block, reached through GS while in the kernel.
//!
//! Its first field points to itself, so `get()` is one `mov rax, gs:[0]`; the entry asm reads
//! `user_rsp` and `kernel_stack_top` at fixed offsets (asserted below). Fields are atomics used
//! with relaxed ordering: they compile to plain moves and make the block safely shareable,
//! though only its own CPU ever writes it.

use super::cpu;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::Relaxed};

/// Every CPU's block, by CPU index, so one CPU can flag work for another.
static ALL: [AtomicPtr<PerCpu>; 64] = [const { AtomicPtr::new(core::ptr::null_mut()) }; 64];

/// CPU `cpu`'s block, if that CPU is up.
pub fn of(cpu: usize) -> Option<&'static PerCpu> {
    let p = ALL.get(cpu)?.load(Relaxed);
    // SAFETY: entries are set once from leaked, never-freed PerCpu blocks.
    (!p.is_null()).then(|| unsafe { &*p })
}
use x86_64::structures::tss::TaskStateSegment;

#[repr(C)]
pub struct PerCpu {
    self_ptr: AtomicPtr<PerCpu>,
    /// Scratch slot for the user RSP during SYSCALL entry.
    user_rsp: AtomicU64,
    /// Top of the running thread's kernel stack (also TSS.RSP0).
    kernel_stack_top: AtomicU64,
    /// The running thread (`*const Thread`), owned by the scheduler.
    current: AtomicU64,
    cpu_id: AtomicU64,
    tss: AtomicPtr<TaskStateSegment>,
    /// The running thread should give up the CPU at its next return to user space.
    need_resched: AtomicBool,
}

pub const OFFSET_USER_RSP: usize = 8;
pub const OFFSET_KERNEL_STACK_TOP: usize = 16;

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, self_ptr) == 0);
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == OFFSET_USER_RSP);
    assert!(core::mem::offset_of!(PerCpu, kernel_stack_top) == OFFSET_KERNEL_STACK_TOP);
};

/// Allocates this CPU's block and points GS at it.
pub fn init(cpu_id: u32, tss: &'static mut TaskStateSegment) -> &'static PerCpu {
    let pc: &'static mut PerCpu = Box::leak(Box::new(PerCpu {
        self_ptr: AtomicPtr::new(core::ptr::null_mut()),
        user_rsp: AtomicU64::new(0),
        kernel_stack_top: AtomicU64::new(0),
        current: AtomicU64::new(0),
        cpu_id: AtomicU64::new(cpu_id as u64),
        tss: AtomicPtr::new(tss),
        need_resched: AtomicBool::new(false),
    }));
    ALL[cpu_id as usize].store(&mut *pc as *mut PerCpu, Relaxed);
    let ptr: *mut PerCpu = pc;
    pc.self_ptr.store(ptr, Relaxed);
    // SAFETY: GS_BASE now points at a leaked (never freed) PerCpu; the user's GS base lives in
    // KERNEL_GS_BASE until the first swapgs to user mode.
    unsafe {
        cpu::wrmsr(cpu::MSR_GS_BASE, ptr as u64);
        cpu::wrmsr(cpu::MSR_KERNEL_GS_BASE, 0);
    }
    pc
}

/// This CPU's running thread (`PerCpu::current_raw`) in one GS-relative load: the fast path
/// of `process::current`, which every system call takes.
#[inline(always)]
pub fn current_raw() -> u64 {
    let v: u64;
    // SAFETY: as for `get`: GS_BASE points at this CPU's PerCpu, whose `current` field is at
    // this offset (repr(C)); the load is one instruction, so no migration can split it.
    unsafe {
        core::arch::asm!(
            "mov {}, gs:[{off}]",
            out(reg) v,
            off = const core::mem::offset_of!(PerCpu, current),
            options(nostack, readonly, preserves_flags)
        )
    };
    v
}

/// This CPU's `need_resched` in one GS-relative load, for the return-to-user fast path.
#[inline(always)]
pub fn need_resched_here() -> bool {
    let v: u8;
    // SAFETY: as for `current_raw`; `need_resched` is an AtomicBool (one byte, 0 or 1).
    unsafe {
        core::arch::asm!(
            "mov {}, byte ptr gs:[{off}]",
            out(reg_byte) v,
            off = const core::mem::offset_of!(PerCpu, need_resched),
            options(nostack, readonly, preserves_flags)
        )
    };
    v != 0
}

/// This CPU's block.
#[inline(always)]
pub fn get() -> &'static PerCpu {
    let p: *const PerCpu;
    // SAFETY: GS_BASE points at this CPU's PerCpu whenever kernel code runs (entry code swaps
    // it in before calling Rust), and PerCpu blocks are never freed.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags));
        &*p
    }
}

impl PerCpu {
    pub fn cpu_id(&self) -> u32 {
        self.cpu_id.load(Relaxed) as u32
    }

    /// Sets the stack the CPU switches to on entry from ring 3 (SYSCALL and TSS.RSP0).
    pub fn set_kernel_stack(&self, top: u64) {
        self.kernel_stack_top.store(top, Relaxed);
        let tss = self.tss.load(Relaxed);
        // SAFETY: the TSS is this CPU's, leaked at init; the CPU reads RSP0 only on a
        // privilege change, which cannot happen while we write it.
        unsafe { (*tss).privilege_stack_table[0] = x86_64::VirtAddr::new(top) };
    }

    pub fn need_resched(&self) -> bool {
        self.need_resched.load(Relaxed)
    }

    pub fn set_need_resched(&self, v: bool) {
        self.need_resched.store(v, Relaxed);
    }

    pub fn current_raw(&self) -> u64 {
        self.current.load(Relaxed)
    }

    pub fn set_current_raw(&self, t: u64) {
        self.current.store(t, Relaxed);
    }
}
