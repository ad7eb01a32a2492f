//! Kernel entry and exit: SYSCALL, interrupts and exceptions all save a `TrapFrame` on the
//! current thread's kernel stack and call into Rust with a pointer to it.
//!
//! GS discipline: on every entry from ring 3 (SYSCALL, or an interrupt/exception whose saved
//! CS has RPL 3) we `swapgs`, and swap back on the way out; kernel code then finds its per-CPU
//! block at GS. NMI, #DB, #MC and #DF can arrive anywhere, even between a swapgs and the
//! instruction after it, so they do not trust that state ("paranoid" entry, as Linux): they
//! save the live GS base, load the kernel's from the top of their IST stack (each IST stack
//! is aligned to its size and holds its CPU's per-CPU pointer in its top word), and put the
//! saved value back on exit. FS is never touched: it is the user's, whatever it holds.

use core::arch::global_asm;

/// Saved user (or interrupted kernel) state. Field order is the push order in the asm below,
/// reversed; `vector` is `SYSCALL_VECTOR` for frames made by SYSCALL.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = {
    assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
    assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(core::mem::offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(core::mem::offset_of!(TrapFrame, cs) == 18 * 8);
};

pub const SYSCALL_VECTOR: u64 = 0x100;
pub const KERNEL_CS: u64 = 0x08;
pub const USER_SS: u64 = 0x1b;
pub const USER_CS: u64 = 0x23;
/// Size and alignment of an IST stack (see the paranoid entry).
pub const IST_STACK_SIZE: usize = 16 * 1024;

impl TrapFrame {
    pub fn came_from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// A frame that starts user code at `rip` with stack `rsp` and all registers zero.
    pub fn new_user(rip: u64, rsp: u64) -> Self {
        TrapFrame {
            rip,
            rsp,
            cs: USER_CS,
            ss: USER_SS,
            rflags: 0x202,
            ..Default::default()
        }
    }
}

/// How a thread last entered the kernel from user space, read from the TrapFrame at the top
/// of its kernel stack (where every entry from ring 3 saves one), for the hang report.
#[derive(Clone, Copy, Debug)]
pub enum LastEntry {
    /// SYSCALL with this number (the frame's orig RAX).
    Syscall(u64),
    /// An interrupt or exception with this vector.
    Trap(u64),
}

/// The last entry from user space of the thread whose kernel stack ends at
/// `kernel_stack_top`. While the thread runs in user space this is a past entry; while it is
/// in the kernel (blocked, queued, or running kernel code) it is the current one.
pub fn last_entry(kernel_stack_top: u64) -> LastEntry {
    let frame = (kernel_stack_top - core::mem::size_of::<TrapFrame>() as u64) as *const TrapFrame;
    // SAFETY: the frame lies inside the thread's kernel stack, which the caller's reference to
    // the thread keeps allocated; its owner may be writing it meanwhile, so the two aligned
    // words are read with volatile loads and only shown.
    let (vector, orig_rax) = unsafe {
        (
            core::ptr::addr_of!((*frame).vector).read_volatile(),
            core::ptr::addr_of!((*frame).error_code).read_volatile(),
        )
    };
    if vector == SYSCALL_VECTOR {
        LastEntry::Syscall(orig_rax)
    } else {
        LastEntry::Trap(vector)
    }
}

global_asm!(
    r#"
    .macro PUSH_REGS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    .endm

    .macro POP_REGS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    .endm

    .section .text.entry, "ax"

    // ---- SYSCALL ----
    .global ktls_syscall_entry
    .balign 16
ktls_syscall_entry:
    swapgs
    mov gs:[{pc_user_rsp}], rsp
    mov rsp, gs:[{pc_kstack}]
    push {user_ss}
    push qword ptr gs:[{pc_user_rsp}]
    push r11
    push {user_cs}
    push rcx
    push rax                // the "error code" slot keeps the number, as Linux's orig_ax
    push {syscall_vector}
    PUSH_REGS
    mov rdi, rsp
    xor ebp, ebp
    sti
    // No cld: FMASK clears DF on SYSCALL (arch/gdt.rs).
    call {syscall_handler}
    cli
    test eax, eax           // the handler rewrote the whole context: iretq
    jnz ktls_trap_return
    // SYSRET only to a canonical user RIP (else it faults in ring 0 on Intel) and without
    // TF/RF, which iretq restores faithfully.
    mov rcx, [rsp + {frame_rip}]
    shr rcx, 47
    jnz ktls_trap_return
    test dword ptr [rsp + {frame_rflags}], {tf_rf}
    jnz ktls_trap_return
    POP_REGS
    add rsp, 16
    mov rcx, [rsp]
    mov r11, [rsp + 16]
    mov rsp, [rsp + 24]
    swapgs
    sysretq

    // ---- interrupts and exceptions ----
    .balign 16
ktls_trap_common:
    test byte ptr [rsp + 24], 3
    jz 1f
    swapgs
1:
    PUSH_REGS
    mov rdi, rsp
    cld
    call {trap_handler}
    .global ktls_trap_return
ktls_trap_return:
    POP_REGS
    add rsp, 16
    test byte ptr [rsp + 8], 3
    jz 2f
    swapgs
2:
    iretq

    // NMI, #DB, #MC, #DF: see the module comment.
    .balign 16
ktls_paranoid_common:
    PUSH_REGS
    mov ecx, 0xc0000101
    rdmsr
    shl rdx, 32
    or rax, rdx
    push rax
    sub rsp, 8
    mov rax, rsp
    or rax, {ist_mask}
    mov rax, [rax - 7]
    mov rdx, rax
    shr rdx, 32
    mov ecx, 0xc0000101
    wrmsr
    lea rdi, [rsp + 16]
    cld
    call {trap_handler}
    add rsp, 8
    pop rax
    mov rdx, rax
    shr rdx, 32
    mov ecx, 0xc0000101
    wrmsr
    POP_REGS
    add rsp, 16
    iretq

    // One 16-byte stub per vector: push a dummy error code where the CPU pushes none,
    // push the vector number, and jump to the common path.
    .balign 16
    .global ktls_trap_stubs
ktls_trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    push 0
    .endif
    push vec
    .if (vec == 1) || (vec == 2) || (vec == 8) || (vec == 18)
    jmp ktls_paranoid_common
    .else
    jmp ktls_trap_common
    .endif
    .set vec, vec + 1
    .endr

    // Enter user mode (or resume any frame) from a TrapFrame: rdi = the frame.
    .global ktls_resume_frame
ktls_resume_frame:
    mov rsp, rdi
    jmp ktls_trap_return
    "#,
    pc_user_rsp = const super::percpu::OFFSET_USER_RSP,
    pc_kstack = const super::percpu::OFFSET_KERNEL_STACK_TOP,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    syscall_vector = const SYSCALL_VECTOR,
    ist_mask = const IST_STACK_SIZE - 1,
    syscall_handler = sym crate::syscall::syscall_entry,
    trap_handler = sym crate::trap::trap_entry,
    frame_rip = const core::mem::offset_of!(TrapFrame, rip),
    frame_rflags = const core::mem::offset_of!(TrapFrame, rflags),
    tf_rf = const (1 << 8) | (1 << 16),
);

extern "C" {
    static ktls_trap_stubs: [u8; 256 * 16];
    fn ktls_syscall_entry();
}

/// Address of the entry stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    core::ptr::addr_of!(ktls_trap_stubs) as u64 + vector as u64 * 16
}

pub fn syscall_entry_address() -> u64 {
    ktls_syscall_entry as *const () as usize as u64
}
