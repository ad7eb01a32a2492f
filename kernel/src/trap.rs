//! What happens on an interrupt or exception: timer ticks, console input, page faults (demand
//! paging, the copy layer's fixups), and faults that end a user process or panic the kernel.

use crate::arch::apic;
use crate::arch::entry::TrapFrame;
use crate::mm::addrspace::FaultResult;
use crate::mm::uaccess;
use crate::signal::{self, SigInfo};
use crate::{console, process, time};
use ktls_abi::signal::{
    BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP,
};

const PF_WRITE: u64 = 1 << 1;
const PF_USER: u64 = 1 << 2;
const PF_FETCH: u64 = 1 << 4;

#[no_mangle]
pub extern "C" fn trap_entry(frame: &mut TrapFrame) {
    dispatch(frame);
    // An NMI runs on its IST stack with NMIs blocked until its iretq: never switch threads
    // or deliver signals from there (the next kernel entry will).
    if frame.came_from_user() && frame.vector != 2 {
        crate::syscall::exit_to_user(frame, process::current());
    }
}

fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        14 => page_fault(frame),
        v if v == apic::TIMER_VECTOR as u64 => {
            time::tick();
            apic::eoi();
            crate::sched::tick(time::monotonic_ns());
        }
        v if v == apic::RESCHED_VECTOR as u64 => {
            apic::ipi_received();
            apic::eoi();
        }
        v if v == apic::CONSOLE_VECTOR as u64 => {
            console::on_interrupt();
            apic::eoi();
            crate::fs::console_input_arrived();
        }
        v if v == apic::SPURIOUS_VECTOR as u64 => {}
        2 => {
            // Any other NMI is the runner asking what the kernel is doing (a timeout).
            if !crate::arch::tlb::handle_nmi() {
                crate::hang::on_nmi(frame);
            }
        }
        v if v < 32 => exception(frame),
        v => {
            warn!("unexpected interrupt vector {v}");
            apic::eoi();
        }
    }
}

fn page_fault(frame: &mut TrapFrame) {
    let addr = crate::arch::cpu::read_cr2();
    let err = frame.error_code;
    let mut result = FaultResult::Unmapped;
    let user_addr = uaccess::is_user_range(addr, 1);
    let in_copy_layer = uaccess::fixup_for(frame.rip).is_some();
    // As in Linux, the interrupted CS says who faulted, not PF_USER: QEMU's TCG pops an
    // `iretq` frame with supervisor accesses even at CPL 3, so a ring-3 `iretq` whose stack
    // is a user page takes a SMAP fault without PF_USER. That is the program's fault
    // (SIGSEGV, as on Linux), and retrying it would fault forever.
    let from_user = frame.came_from_user();
    if from_user && err & PF_USER == 0 {
        signal::force_fault(SIGSEGV, SigInfo::fault(SIGSEGV, SEGV_ACCERR, addr), frame);
        return;
    }
    if user_addr && err & PF_USER == 0 && !in_copy_layer {
        // The kernel touched user memory outside the copy layer: SMAP (or, for a fetch,
        // SMEP) caught a bug. The self-test's probe expects exactly this.
        if let Some(resume) = uaccess::selftest_fault(frame.rip) {
            frame.rip = resume;
            return;
        }
        let what = if err & PF_FETCH != 0 {
            "kernel executed user memory (SMEP)"
        } else {
            "kernel accessed user memory outside the copy layer (SMAP)"
        };
        crate::panic::fault_report(what, frame, Some(addr));
    }
    if user_addr {
        if let Some(t) = process::try_current() {
            let mm = t.process.mm();
            result = mm
                .lock()
                .handle_fault(addr, err & PF_WRITE != 0, err & PF_FETCH != 0);
            if result == FaultResult::Handled {
                return;
            }
            if result == FaultResult::OutOfMemory {
                // Linux's OOM killer, simplified: the process that needed the page dies of
                // SIGKILL at its return to user space (never here, where the interrupted kernel
                // code may hold locks). A kernel copy fails with EFAULT meanwhile.
                warn!("out of memory: killing process {}", t.process.pid);
                signal::send_to_process(&t.process, ktls_abi::signal::SIGKILL, None);
                if err & PF_USER != 0 {
                    return;
                }
            }
        }
    }
    if err & PF_USER != 0 && result == FaultResult::PastEof {
        let info = SigInfo::fault(SIGBUS, BUS_ADRERR, addr);
        user_fault(SIGBUS, info, frame);
        return;
    }
    if err & PF_USER != 0 {
        let code = if result == FaultResult::Forbidden {
            SEGV_ACCERR
        } else {
            SEGV_MAPERR
        };
        user_fault(SIGSEGV, SigInfo::fault(SIGSEGV, code, addr), frame);
        return;
    }
    if let Some(fixup) = uaccess::fixup_for(frame.rip) {
        frame.rip = fixup;
        return;
    }
    crate::panic::fault_report("page fault", frame, Some(addr));
}

fn exception(frame: &mut TrapFrame) {
    let sig = match frame.vector {
        0 | 16 | 19 => SIGFPE, // #DE, #MF, #XM
        1 | 3 => SIGTRAP,      // #DB, #BP
        4 | 5 => SIGSEGV,      // #OF, #BR
        6 => SIGILL,           // #UD
        7 => SIGSEGV,          // #NM: the FPU is always enabled, so this is unexpected
        10..=13 => SIGSEGV,
        17 => SIGBUS, // #AC
        _ => 0,
    };
    if frame.came_from_user() && sig != 0 {
        // si_code for the common cases: SEGV_MAPERR-ish 0 means "sent by the kernel" here.
        let info = SigInfo {
            signo: sig,
            code: 0x80,
            addr: frame.rip,
            ..Default::default()
        };
        user_fault(sig, info, frame);
        return;
    }
    crate::panic::fault_report(exception_name(frame.vector), frame, None);
}

/// A fault of user code: one of the vDSO's marked loads (a KTLS getter reading through FS,
/// which may point anywhere) resumes at its fixup, the system call; anything else is signal
/// `sig` for the thread.
fn user_fault(sig: u32, info: SigInfo, frame: &mut TrapFrame) {
    if let Some(t) = process::try_current() {
        let mm = t.process.mm();
        let resume = crate::vdso::fixup(&mm.lock(), frame.rip);
        if let Some(rip) = resume {
            frame.rip = rip;
            return;
        }
    }
    signal::force_fault(sig, info, frame);
}

pub fn exception_name(v: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "NMI",
        "breakpoint",
        "overflow",
        "bound range",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor overrun",
        "invalid TSS",
        "segment not present",
        "stack fault",
        "general protection fault",
        "page fault",
        "reserved",
        "x87 floating point",
        "alignment check",
        "machine check",
        "SIMD floating point",
        "virtualization",
        "control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "hypervisor injection",
        "VMM communication",
        "security",
        "reserved",
    ];
    NAMES.get(v as usize).copied().unwrap_or("interrupt")
}
