//! The hang report (spec/boot-protocol.md, *Hang reports*): when a run times out, the runner
//! injects an NMI into every CPU. An NMI that is not a TLB shootdown makes each CPU write what
//! it was doing, and the first one also the run queues and the thread table, between
//! `@ktls hang` and `@ktls end` on the log port; then the kernel runs on.
//!
//! This runs in an NMI, in the middle of anything: it allocates nothing, takes no lock that
//! the interrupted code may hold (tables are read with `try_lock`, and a held one is shown
//! as `(locked)`), writes with the log's unlocked writer, and bounds every wait, so a CPU
//! that never answers cannot hold up the others. One CPU writes at a time (`TURN`); the
//! others stay in their NMI until the report ends, so that the tables show the machine as
//! the CPU parts do.

use crate::arch::entry::{self, LastEntry, TrapFrame};
use crate::arch::percpu;
use crate::log::write_unlocked as w;
use crate::process::{self, Thread};
use crate::sched::{self, State, MAX_CPUS};
use crate::time::monotonic_ns;
use core::sync::atomic::{
    AtomicBool, AtomicU32,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};

/// Threads listed at most.
const MAX_THREADS: usize = 200;
/// Queued threads listed per CPU at most.
const MAX_QUEUED: usize = 32;
/// How long a CPU waits for its turn to write (then it writes anyway: interleaved lines are
/// better than none).
const TURN_WAIT_NS: u64 = 2_000_000_000;
/// How long the first CPU waits for the others' parts before it ends the report.
const OTHERS_WAIT_NS: u64 = 1_000_000_000;
/// How long the other CPUs wait for the end of the report before they run on regardless.
const END_WAIT_NS: u64 = 2_000_000_000;

/// Held by the CPU that is writing.
static TURN: AtomicBool = AtomicBool::new(false);
/// A report is open: its `@ktls hang` line is out, its `@ktls end` not yet.
static OPEN: AtomicBool = AtomicBool::new(false);
/// CPU parts written in the open report.
static PARTS: AtomicU32 = AtomicU32::new(0);

/// The NMI handler's work for an NMI that was not a TLB shootdown.
pub fn on_nmi(frame: &TrapFrame) {
    let first = {
        let _turn = Turn::take();
        let first = !OPEN.swap(true, SeqCst);
        if first {
            PARTS.store(0, SeqCst);
            w(format_args!("\n@ktls hang\n"));
        }
        write_cpu_part(frame);
        PARTS.fetch_add(1, SeqCst);
        first
    };
    if !first {
        let deadline = monotonic_ns() + END_WAIT_NS;
        while OPEN.load(SeqCst) && monotonic_ns() < deadline {
            core::hint::spin_loop();
        }
        return;
    }
    let cpus = cpus_up();
    let deadline = monotonic_ns() + OTHERS_WAIT_NS;
    while PARTS.load(SeqCst) < cpus && monotonic_ns() < deadline {
        core::hint::spin_loop();
    }
    let _turn = Turn::take();
    let parts = PARTS.load(SeqCst);
    if parts < cpus {
        w(format_args!(
            "(only {parts} of {cpus} CPUs answered the NMI within {} ms)\n",
            OTHERS_WAIT_NS / 1_000_000
        ));
    }
    write_run_queues();
    write_threads();
    w(format_args!("@ktls end\n"));
    OPEN.store(false, SeqCst);
}

/// The right to write, given back when dropped.
struct Turn {
    held: bool,
}

impl Turn {
    fn take() -> Turn {
        let deadline = monotonic_ns() + TURN_WAIT_NS;
        loop {
            if TURN
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_ok()
            {
                return Turn { held: true };
            }
            if monotonic_ns() > deadline {
                return Turn { held: false };
            }
            core::hint::spin_loop();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.held {
            TURN.store(false, Release);
        }
    }
}

/// CPUs that have their per-CPU block, i.e. that can take the NMI.
fn cpus_up() -> u32 {
    (0..MAX_CPUS).filter(|&c| percpu::of(c).is_some()).count() as u32
}

/// `cpu N: ...`: where this CPU was interrupted, its thread, and in the kernel a backtrace.
fn write_cpu_part(frame: &TrapFrame) {
    const RFLAGS_IF: u64 = 1 << 9;
    let cpu = percpu::get().cpu_id();
    if frame.came_from_user() {
        w(format_args!(
            "cpu {cpu}: user mode at rip {:#018x}, rsp {:#018x}, ",
            frame.rip, frame.rsp
        ));
    } else {
        let interrupts = if frame.rflags & RFLAGS_IF != 0 {
            "on"
        } else {
            "off"
        };
        w(format_args!(
            "cpu {cpu}: kernel mode, rsp {:#018x}, interrupts {interrupts}, ",
            frame.rsp
        ));
    }
    match process::try_current() {
        Some(t) if t.is_idle() => w(format_args!("idle thread\n")),
        Some(t) => {
            w(format_args!("thread tid={} pid={} ", t.tid, t.process.pid));
            write_comm(t);
            w(format_args!("\n"));
        }
        None => w(format_args!("no thread yet\n")),
    }
    if !frame.came_from_user() {
        crate::panic::write_backtrace(Some(frame.rip), frame.rbp);
    }
}

/// `comm="NAME"`, its bytes escaped as Rust escapes ASCII (PR_SET_NAME takes any bytes).
fn write_comm(t: &Thread) {
    match t.comm.try_lock() {
        Some(c) => w(format_args!("comm=\"{}\"", c.escape_ascii())),
        None => w(format_args!("comm=(locked)")),
    }
}

/// `run queues:` then one line per online CPU, then the sleepers.
fn write_run_queues() {
    w(format_args!("run queues:"));
    let sleepers = sched::try_for_each_cpu(|cpu, q| {
        let need_resched = percpu::of(cpu).is_some_and(|p| p.need_resched());
        w(format_args!(
            "\n  cpu {cpu}: halted={} need_resched={} current=",
            q.halted() as u8,
            need_resched as u8
        ));
        match q.current() {
            Some(t) if t.is_idle() => w(format_args!("idle")),
            Some(t) => w(format_args!("tid {}", t.tid)),
            None => w(format_args!("none")),
        }
        w(format_args!(" queued:"));
        let mut n = 0;
        for t in q.queued() {
            if n < MAX_QUEUED {
                w(format_args!(" {}", t.tid));
            }
            n += 1;
        }
        if n == 0 {
            w(format_args!(" none"));
        } else if n > MAX_QUEUED {
            w(format_args!(" ... ({n} in all)"));
        }
    });
    let Some(s) = sleepers else {
        w(format_args!(" (locked)\n"));
        return;
    };
    w(format_args!("\nsleepers: {}", s.count));
    if let Some(d) = s.next_deadline_ns {
        let now = monotonic_ns();
        if d >= now {
            w(format_args!(
                ", the next wakes in {} ms",
                (d - now) / 1_000_000
            ));
        } else {
            w(format_args!(
                ", the next is overdue by {} ms",
                (now - d) / 1_000_000
            ));
        }
    }
    w(format_args!("\n"));
}

/// `threads:` then one line per thread (see the spec for the fields).
fn write_threads() {
    w(format_args!("threads:\n"));
    match process::try_for_each_thread(MAX_THREADS, write_thread) {
        None => w(format_args!("  (locked)\n")),
        Some(n) if n > MAX_THREADS => {
            w(format_args!("  ... {} more\n", n - MAX_THREADS));
        }
        Some(_) => {}
    }
}

fn write_thread(t: &Thread) {
    let state = t.state();
    w(format_args!("  tid={} pid={} ", t.tid, t.process.pid));
    write_comm(t);
    w(format_args!(
        " state={state:?} on_cpu={} queued={} cpu={} pending={:#x} shared_pending={:#x} \
         blocked={:#x} must_exit={} exiting={} ",
        t.on_cpu.load(Relaxed) as u8,
        t.queued.load(Relaxed) as u8,
        t.cpu.load(Relaxed),
        t.pending.set(),
        t.process.shared_pending.set(),
        t.sigmask.load(Relaxed),
        t.must_exit.load(Relaxed) as u8,
        t.process.is_exiting() as u8,
    ));
    match entry::last_entry(t.kernel_stack_top()) {
        LastEntry::Syscall(nr) => {
            let name = ktls_abi::syscall::name(nr as usize).unwrap_or("?");
            w(format_args!("syscall={nr}({name})"));
        }
        LastEntry::Trap(v) => w(format_args!("trap={v}")),
    }
    if let Some(site) = t.wait_site.get() {
        let key = if state == State::Blocked {
            "wait"
        } else {
            "last_wait"
        };
        w(format_args!(
            " {key}={}:{}:{}",
            site.file(),
            site.line(),
            site.column()
        ));
    }
    w(format_args!("\n"));
}
