//! Kernel panics and kernel-mode faults: a report on the log port between `@ktls panic` and
//! `@ktls end` (message, registers, a frame-pointer backtrace), then QEMU exits with the panic
//! status (spec/boot-protocol.md). The runner symbolizes the backtrace addresses.

use crate::arch::entry::TrapFrame;
use crate::arch::{backtrace, cpu};
use crate::log::write_unlocked as w;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

fn begin() {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A fault while reporting a fault: give up on the report.
        w(format_args!(
            "\n(nested fault while reporting)\n@ktls end\n"
        ));
        cpu::qemu_exit(1);
    }
    w(format_args!("\n@ktls panic\n"));
}

fn end() -> ! {
    w(format_args!("@ktls end\n"));
    cpu::qemu_exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    begin();
    w(format_args!("kernel panic: {}\n", info.message()));
    if let Some(loc) = info.location() {
        w(format_args!(
            "  at {}:{}:{}\n",
            loc.file(),
            loc.line(),
            loc.column()
        ));
    }
    write_backtrace(None, backtrace::frame_pointer());
    end()
}

/// Reports an exception taken in kernel mode and stops the machine.
pub fn fault_report(what: &str, f: &TrapFrame, cr2: Option<u64>) -> ! {
    begin();
    w(format_args!(
        "kernel fault: {what} (vector {}) at rip {:#018x}, error code {:#x}\n",
        f.vector, f.rip, f.error_code
    ));
    if let Some(a) = cr2 {
        w(format_args!("  faulting address (cr2) {a:#018x}\n"));
    }
    w(format_args!(
        "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n",
        f.rax, f.rbx, f.rcx, f.rdx
    ));
    w(format_args!(
        "  rsi {:#018x} rdi {:#018x} rbp {:#018x} rsp {:#018x}\n",
        f.rsi, f.rdi, f.rbp, f.rsp
    ));
    w(format_args!(
        "  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n",
        f.r8, f.r9, f.r10, f.r11
    ));
    w(format_args!(
        "  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n",
        f.r12, f.r13, f.r14, f.r15
    ));
    w(format_args!(
        "  cs {:#x} ss {:#x} rflags {:#x} cr3 {:#x} cr4 {:#x}\n",
        f.cs,
        f.ss,
        f.rflags,
        cpu::read_cr3(),
        cpu::cr4()
    ));
    write_backtrace(Some(f.rip), f.rbp);
    end()
}

/// Writes `backtrace:` and its frames: `#0` the interrupted instruction `rip` (if given),
/// `#1` and up the return addresses of the frame chain at `rbp` (the spec's format, which the
/// runner symbolizes). Also used by the hang report.
pub fn write_backtrace(rip: Option<u64>, rbp: u64) {
    w(format_args!("backtrace:\n"));
    if let Some(rip) = rip {
        w(format_args!("  #0 {rip:#018x}\n"));
    }
    for (i, ret) in backtrace::return_addresses(rbp).enumerate() {
        w(format_args!("  #{} {ret:#018x}\n", i + 1));
    }
}
