//! PVH entry: from QEMU's 32-bit protected mode to `kmain` in the higher half.
//!
//! QEMU finds `pvh_start` through the Xen ELF note (XEN_ELFNOTE_PHYS32_ENTRY) and jumps to it
//! with paging off and EBX holding the physical address of `struct hvm_start_info`. The early
//! page tables below are static data: four page directories of 2 MiB pages cover physical
//! 0..4 GiB and are shared by three views of memory:
//! - identity (PML4[0]), only until `kmain` removes it;
//! - the direct map at `PHYS_OFFSET` (PML4[256]);
//! - the kernel image at `KERNEL_VMA` (PML4[511], PDPT[510..512] = physical 0..2 GiB).

use core::arch::global_asm;

/// Where the kernel image is linked (see linker.ld).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// Where all physical memory is mapped.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Size of the boot stack `kmain` runs on.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .set KVMA, 0xffffffff80000000

    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start - KVMA
    .balign 4
    .popsection

    .pushsection .boot.data, "aw"
    .balign 4096
    .global boot_pml4
boot_pml4:
    .quad boot_pdpt_low - KVMA + 0x3
    .fill 255, 8, 0
    .quad boot_pdpt_dmap - KVMA + 0x3
    .fill 254, 8, 0
    .quad boot_pdpt_kernel - KVMA + 0x3
boot_pdpt_low:
    .quad boot_pd0 - KVMA + 0x3
    .quad boot_pd1 - KVMA + 0x3
    .quad boot_pd2 - KVMA + 0x3
    .quad boot_pd3 - KVMA + 0x3
    .fill 508, 8, 0
boot_pdpt_dmap:
    .quad boot_pd0 - KVMA + 0x3
    .quad boot_pd1 - KVMA + 0x3
    .quad boot_pd2 - KVMA + 0x3
    .quad boot_pd3 - KVMA + 0x3
    .fill 508, 8, 0
boot_pdpt_kernel:
    .fill 510, 8, 0
    .quad boot_pd0 - KVMA + 0x3
    .quad boot_pd1 - KVMA + 0x3
    .set page, 0
boot_pd0:
    .rept 2048
    .quad (page << 21) | 0x83
    .set page, page + 1
    .endr
    .set boot_pd1, boot_pd0 + 4096
    .set boot_pd2, boot_pd0 + 8192
    .set boot_pd3, boot_pd0 + 12288

    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt - KVMA
    .popsection

    .pushsection .boot.bss, "aw", @nobits
    .balign 16
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .popsection

    .pushsection .boot.text, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi
    mov $(boot_pml4 - KVMA), %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $0xC0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0
    lgdt (boot_gdtr - KVMA)
    ljmp $0x08, $(pvh_long_mode - KVMA)

    .code64
pvh_long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $pvh_higher_half, %rax
    jmp *%rax
pvh_higher_half:
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi
    call kmain
1:  hlt
    jmp 1b
    .popsection
    "#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);

/// The start info QEMU passes (xen/include/public/arch-x86/hvm/start_info.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HvmStartInfo {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}

pub const HVM_START_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmModlistEntry {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
    pub reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmMemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
    pub reserved: u32,
}

pub const E820_RAM: u32 = 1;

extern "C" {
    static boot_pml4: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Physical address of the boot PML4, which stays the kernel's master page table.
pub fn boot_pml4_phys() -> u64 {
    // Only the symbol's address is taken (defined in the asm above), which is safe.
    core::ptr::addr_of!(boot_pml4) as u64 - KERNEL_VMA
}

/// Physical range the kernel image occupies (text, data, bss).
pub fn kernel_image_phys() -> (u64, u64) {
    // Linker-defined symbols: only their addresses are used.
    let (s, e) = (
        core::ptr::addr_of!(__kernel_start),
        core::ptr::addr_of!(__kernel_end),
    );
    (s as u64 - KERNEL_VMA, e as u64 - KERNEL_VMA)
}
