//! Kernel context switch and per-thread user register state that the entry code does not save:
//! the FS and GS bases and the extended FPU state.
//!
//! `switch_stacks` saves the callee-saved registers on the old kernel stack, stores the stack
//! pointer, loads the new one and pops its registers: everything else is either caller-saved
//! (the Rust caller spilled it) or lives in the TrapFrame at the top of each kernel stack.

use super::cpu;
use core::arch::global_asm;
use core::arch::x86_64::__cpuid_count;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

global_asm!(
    r#"
    .section .text.switch, "ax"
    // rdi = where to store the old stack pointer, rsi = the new stack pointer.
    .global ktls_switch_stacks
ktls_switch_stacks:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    // First code a new thread runs: finish the switch that brought us here, then leave for
    // user space through the TrapFrame at the top of our kernel stack (rbx = that frame).
    .global ktls_thread_trampoline
ktls_thread_trampoline:
    mov rdi, rbx
    call {first_return}
    mov rdi, rbx
    jmp ktls_resume_frame
    "#,
    first_return = sym crate::sched::first_return_c,
);

extern "C" {
    fn ktls_switch_stacks(save_rsp: *mut u64, new_rsp: u64);
    fn ktls_thread_trampoline();
}

/// Saves the current kernel context into `*save_rsp` and resumes the one at `new_rsp`.
///
/// # Safety
/// `new_rsp` must be a stack pointer saved by this function (or built by `initial_stack`) for
/// a thread that is not running anywhere, and `save_rsp` must stay valid until this thread is
/// switched back to.
pub unsafe fn switch_stacks(save_rsp: *mut u64, new_rsp: u64) {
    // SAFETY: delegated to the caller.
    unsafe { ktls_switch_stacks(save_rsp, new_rsp) }
}

/// Prepares a new thread's kernel stack (ending at `kernel_stack_top`, not in use by anyone):
/// `frame` goes at the top, where entry code keeps the user context, and below it a switch
/// frame that makes the first switch to the thread run the trampoline, which enters user
/// space through `frame`. Returns the stack pointer to switch to.
pub fn new_thread_stack(kernel_stack_top: u64, frame: &super::entry::TrapFrame) -> u64 {
    let frame_addr = kernel_stack_top - core::mem::size_of::<super::entry::TrapFrame>() as u64;
    // Pop order: r15, r14, r13, r12, rbx (= the frame, for the trampoline), rbp, return address.
    let words: [u64; 7] = [
        0,
        0,
        0,
        0,
        frame_addr,
        0,
        ktls_thread_trampoline as *const () as usize as u64,
    ];
    let sp = frame_addr - (words.len() * 8) as u64;
    // SAFETY: the caller passes the top of a freshly allocated kernel stack that no CPU runs
    // on; the frame and the seven words below it fit in it and are 8-byte aligned.
    unsafe {
        (frame_addr as *mut super::entry::TrapFrame).write(*frame);
        core::ptr::copy_nonoverlapping(words.as_ptr(), sp as *mut u64, words.len());
    }
    sp
}

/// How the extended FPU state is saved: XSAVE where available, else FXSAVE.
static USE_XSAVE: AtomicBool = AtomicBool::new(false);
static FPU_AREA_SIZE: AtomicUsize = AtomicUsize::new(512);

pub fn init_fpu(features: &cpu::Features) {
    if features.xsave {
        // EBX of leaf 0xD, subleaf 0: bytes needed for the components enabled in XCR0.
        let size = __cpuid_count(0xd, 0).ebx as usize;
        FPU_AREA_SIZE.store(size.max(576), Relaxed);
        USE_XSAVE.store(true, Relaxed);
    }
}

/// A 64-byte aligned buffer for one thread's FPU/SSE/AVX state.
pub struct FpuState {
    buf: alloc::vec::Vec<u8>,
}

impl FpuState {
    /// The state of a fresh thread: the current one (called at boot before any user code ran,
    /// or from the parent in clone/fork, whose state the child inherits as Linux does).
    pub fn new_from_current() -> Self {
        let size = FPU_AREA_SIZE.load(Relaxed);
        let mut s = FpuState {
            buf: alloc::vec![0u8; size + 64],
        };
        s.save();
        s
    }

    fn area(&mut self) -> *mut u8 {
        let p = self.buf.as_mut_ptr() as usize;
        ((p + 63) & !63) as *mut u8
    }

    /// Saves this CPU's live FPU state here.
    pub fn save(&mut self) {
        let area = self.area();
        // SAFETY: `area` is 64-byte aligned with FPU_AREA_SIZE bytes, as XSAVE/FXSAVE need;
        // XSAVE with all components requested saves those enabled in XCR0.
        unsafe {
            if USE_XSAVE.load(Relaxed) {
                core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
            } else {
                core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack));
            }
        }
    }

    /// Loads this state into the CPU.
    pub fn restore(&mut self) {
        let area = self.area();
        // SAFETY: the area holds state saved by `save` (possibly edited by sigreturn, which
        // validates it), so XRSTOR/FXRSTOR cannot fault on reserved bits.
        unsafe {
            if USE_XSAVE.load(Relaxed) {
                core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
            } else {
                core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack));
            }
        }
    }

    /// The state of a freshly exec'd program: FNINIT/default MXCSR, saved from a clean CPU.
    pub fn reset(&mut self) {
        // SAFETY: FNINIT and LDMXCSR with the default value only reset the FPU of this thread,
        // which is the current one (execve runs on it).
        unsafe {
            let mxcsr: u32 = 0x1f80;
            core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack));
        }
        self.save();
    }

    /// The saved bytes (the legacy 512-byte FXSAVE region first), for signal frames.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let size = FPU_AREA_SIZE.load(Relaxed);
        let off = self.area() as usize - self.buf.as_ptr() as usize;
        &mut self.buf[off..off + size]
    }
}

pub fn fpu_area_size() -> usize {
    FPU_AREA_SIZE.load(Relaxed)
}
