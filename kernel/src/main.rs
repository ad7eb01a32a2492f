//! ktls: an x86_64 kernel that runs unmodified static Linux executables in ring 3, keeps all
//! of its own state behind GS, and leaves FS to the application.
//!
//! Layout: `arch` (the machine: boot, descriptor tables, entry asm, per-CPU block, timers) and
//! `mm` (frames, heap, address spaces, the user-copy layer) hold the unsafe code; everything
//! else (`process`, `exec`, `syscall`, `trap`, `console`, `time`) is safe Rust on top.
#![no_std]
#![no_main]

extern crate alloc;

#[macro_use]
mod log;
mod arch;
mod boot;
mod console;
mod exec;
mod fs;
mod futex;
mod hang;
mod job_control;
mod mm;
mod panic;
mod pidfd;
mod process;
mod random;
mod rseq;
mod sched;
mod signal;
mod signal_frame;
mod syscall;
mod time;
mod trap;
mod vdso;

use arch::boot::{HvmStartInfo, HVM_START_MAGIC, PHYS_OFFSET};
use arch::{apic, cpu, gdt};

/// Boot protocol version announced in `@ktls boot` (spec/boot-protocol.md).
const BOOT_PROTOCOL_VERSION: u32 = 1;

#[no_mangle]
extern "C" fn kmain(start_info_phys: u32) -> ! {
    for port in [
        arch::serial::CONSOLE,
        arch::serial::STDERR,
        arch::serial::LOG,
    ] {
        port.init();
    }
    log::write_line(format_args!("@ktls boot {BOOT_PROTOCOL_VERSION}"));
    let info = start_info(start_info_phys);
    let memory = mm::init(&info);
    let options = boot::Options::parse(memory.cmdline);

    let features = cpu::features();
    cpu::enable_features(&features, options.fsgsbase);
    mm::uaccess::init(features.smap);
    arch::switch::init_fpu(&features);
    gdt::init_cpu(0);
    apic::init();
    arch::smp::init(&info, start_info_phys as u64, &features, options.fsgsbase);
    time::init();
    random::init(&features);
    info!(
        "ktls: {} MiB RAM, {} free frames, heap {} MiB; tsc {} MHz; smep {} smap {} fsgsbase {}",
        memory.ram_bytes >> 20,
        mm::frame::free_count(),
        mm::heap::size() >> 20,
        apic::tsc_hz() / 1_000_000,
        features.smep,
        features.smap,
        cpu::fsgsbase_enabled()
    );

    boot::start(memory.initrd)
}

fn start_info(phys: u32) -> HvmStartInfo {
    let ptr = (PHYS_OFFSET + phys as u64) as *const HvmStartInfo;
    // SAFETY: QEMU's PVH loader passes the physical address of a valid hvm_start_info in EBX
    // and all of low memory is in the boot direct map.
    let info = unsafe { ptr.read_unaligned() };
    if info.magic != HVM_START_MAGIC {
        panic!("bad PVH start info magic {:#x}", info.magic);
    }
    info
}
