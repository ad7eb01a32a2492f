//! Per-CPU GDT, TSS (with IST stacks) and the IDT, plus the SYSCALL MSRs.
//!
//! Selector layout is fixed by SYSRET: STAR[63:48] = 0x10 gives user SS = 0x18|3 and user
//! CS = 0x20|3, so the user data segment must come right before the user code segment.

use super::entry::{self, IST_STACK_SIZE, KERNEL_CS, USER_CS, USER_SS};
use super::{cpu, percpu};
use alloc::boxed::Box;
use core::alloc::Layout;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

/// IST slots (1-based in the IDT, 0-based in the TSS).
const IST_DOUBLE_FAULT: u16 = 0;
const IST_NMI: u16 = 1;
const IST_MACHINE_CHECK: u16 = 2;
const IST_DEBUG: u16 = 3;

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// Sets up this CPU's descriptor tables, per-CPU block and SYSCALL, and returns the block.
pub fn init_cpu(cpu_id: u32) -> &'static percpu::PerCpu {
    let tss: &'static mut TaskStateSegment = Box::leak(Box::new(TaskStateSegment::new()));
    let ist_tops: [u64; 4] = core::array::from_fn(|_| alloc_ist_stack());
    for (i, top) in ist_tops.iter().enumerate() {
        tss.interrupt_stack_table[i] = VirtAddr::new(top - 16);
    }
    let tss_ptr: *const TaskStateSegment = tss;
    let pc = percpu::init(cpu_id, tss);
    for top in ist_tops {
        // The paranoid entry finds its per-CPU block in the top word of its IST stack.
        write_top_word(top, pc as *const _ as u64);
    }

    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let kcode = gdt.append(Descriptor::kernel_code_segment());
    let kdata = gdt.append(Descriptor::kernel_data_segment());
    let udata = gdt.append(Descriptor::user_data_segment());
    let ucode = gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS is leaked, so it lives as long as the GDT that points at it.
    let tss_sel = gdt.append(Descriptor::tss_segment(unsafe { &*tss_ptr }));
    assert_eq!(kcode.0 as u64, KERNEL_CS);
    assert_eq!(udata.0 as u64, USER_SS);
    assert_eq!(ucode.0 as u64, USER_CS);
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, with the right descriptor types.
    unsafe {
        CS::set_reg(kcode);
        SS::set_reg(kdata);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_sel);
    }

    IDT.call_once(build_idt).load();

    // SAFETY: STAR/LSTAR/FMASK describe the GDT above and our entry point; EFER.SCE turns
    // SYSCALL on. FMASK clears TF, DF, IF, IOPL, AC and NT on entry, as Linux.
    unsafe {
        cpu::wrmsr(cpu::MSR_STAR, (0x10u64 << 48) | (KERNEL_CS << 32));
        cpu::wrmsr(cpu::MSR_LSTAR, entry::syscall_entry_address());
        cpu::wrmsr(cpu::MSR_FMASK, 0x47700);
        cpu::wrmsr(cpu::MSR_EFER, cpu::rdmsr(cpu::MSR_EFER) | 1);
    }
    pc
}

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    for v in 0..=255u8 {
        let addr = VirtAddr::new(entry::stub_address(v));
        // SAFETY: each stub saves a TrapFrame and calls trap_entry, handling vectors with and
        // without an error code; IST indices name stacks set up in init_cpu.
        unsafe {
            let e = match v {
                0..=31 => idt_exception_entry(&mut idt, v),
                _ => &mut idt[v],
            };
            let opts = e.set_handler_addr(addr);
            match v {
                2 => {
                    opts.set_stack_index(IST_NMI);
                }
                8 => {
                    opts.set_stack_index(IST_DOUBLE_FAULT);
                }
                18 => {
                    opts.set_stack_index(IST_MACHINE_CHECK);
                }
                1 => {
                    opts.set_stack_index(IST_DEBUG);
                }
                // int3 and into are allowed from user mode, as on Linux.
                3 | 4 => {
                    opts.set_privilege_level(PrivilegeLevel::Ring3);
                }
                _ => {}
            }
        }
    }
    idt
}

/// The x86_64 crate types exception entries by handler signature; we install raw stubs, so
/// reach each one as a plain entry of the right vector.
///
/// # Safety
/// The caller installs a stub that matches the vector's error-code convention.
unsafe fn idt_exception_entry(
    idt: &mut InterruptDescriptorTable,
    v: u8,
) -> &mut x86_64::structures::idt::Entry<x86_64::structures::idt::HandlerFunc> {
    let slot: *mut InterruptDescriptorTable = idt;
    // SAFETY: all IDT entries have the same 16-byte layout regardless of the handler type
    // parameter, and the table has 256 of them.
    unsafe {
        &mut *(slot as *mut x86_64::structures::idt::Entry<x86_64::structures::idt::HandlerFunc>)
            .add(v as usize)
    }
}

fn alloc_ist_stack() -> u64 {
    let layout = Layout::from_size_align(IST_STACK_SIZE, IST_STACK_SIZE).expect("IST layout");
    // SAFETY: the layout is non-zero in size; the stack is leaked (per-CPU, forever).
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null(), "out of memory for IST stacks");
    p as u64 + IST_STACK_SIZE as u64
}

fn write_top_word(top: u64, v: u64) {
    // SAFETY: `top` is the end of an IST stack we just allocated; the top word is reserved
    // (the TSS points 16 bytes below it).
    unsafe { ((top - 8) as *mut u64).write(v) };
}
