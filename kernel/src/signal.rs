//! Signals: pending sets with their siginfo, sending, and what happens at the return to user
//! space (default actions now; handler frames are built by `deliver_to_handler`).

use crate::arch::entry::TrapFrame;
use crate::process::{self, Process, Thread};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use ktls_abi::signal::*;
use spin::Mutex;

/// The information that comes with a signal (the fields of siginfo_t we fill).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: u32,
    pub code: i32,
    pub errno: i32,
    /// si_pid / si_addr / si_status / si_uid, depending on the signal.
    pub pid: u32,
    pub uid: u32,
    pub status: i32,
    pub addr: u64,
}

impl SigInfo {
    pub fn child(pid: u32, wstatus: u32) -> SigInfo {
        if wstatus & 0x7f == 0 {
            SigInfo::sigchld(pid, CLD_EXITED, ((wstatus >> 8) & 0xff) as i32)
        } else {
            SigInfo::sigchld(pid, CLD_KILLED, (wstatus & 0x7f) as i32)
        }
    }

    /// SIGCHLD's siginfo: what happened to child `pid` (a CLD_* code) and its status.
    pub fn sigchld(pid: u32, code: i32, status: i32) -> SigInfo {
        SigInfo {
            signo: SIGCHLD,
            code,
            pid,
            status,
            ..Default::default()
        }
    }

    pub fn user(sig: u32, code: i32, pid: u32, uid: u32) -> SigInfo {
        SigInfo {
            signo: sig,
            code,
            pid,
            uid,
            ..Default::default()
        }
    }

    pub fn fault(sig: u32, code: i32, addr: u64) -> SigInfo {
        SigInfo {
            signo: sig,
            code,
            addr,
            ..Default::default()
        }
    }
}

/// A set of pending signals with the siginfo of each (standard signals do not queue: one
/// pending instance each, as Linux).
pub struct Pending {
    set: AtomicU64,
    info: Mutex<[Option<SigInfo>; NSIG as usize]>,
}

impl Default for Pending {
    fn default() -> Self {
        Self::new()
    }
}

impl Pending {
    pub const fn new() -> Self {
        Pending {
            set: AtomicU64::new(0),
            info: Mutex::new([None; NSIG as usize]),
        }
    }

    pub fn set(&self) -> SigSet {
        self.set.load(Relaxed)
    }

    pub fn add(&self, sig: u32, info: Option<SigInfo>) {
        crate::arch::cpu::without_interrupts(|| {
            let mut i = self.info.lock();
            if self.set.load(Relaxed) & sig_bit(sig) == 0 {
                i[sig as usize - 1] = Some(info.unwrap_or(SigInfo {
                    signo: sig,
                    ..Default::default()
                }));
                self.set.fetch_or(sig_bit(sig), Relaxed);
            }
        });
    }

    /// Removes the signals of `set` without delivering them.
    pub fn discard(&self, set: SigSet) {
        crate::arch::cpu::without_interrupts(|| {
            let mut i = self.info.lock();
            let gone = self.set.fetch_and(!set, Relaxed) & set;
            for sig in (1..=NSIG).filter(|&s| gone & sig_bit(s) != 0) {
                i[sig as usize - 1] = None;
            }
        });
    }

    /// Removes and returns the lowest pending signal in `allowed`.
    pub fn take(&self, allowed: SigSet) -> Option<SigInfo> {
        crate::arch::cpu::without_interrupts(|| {
            let mut i = self.info.lock();
            let ready = self.set.load(Relaxed) & allowed;
            if ready == 0 {
                return None;
            }
            let sig = ready.trailing_zeros() + 1;
            self.set.fetch_and(!sig_bit(sig), Relaxed);
            Some(i[sig as usize - 1].take().unwrap_or(SigInfo {
                signo: sig,
                ..Default::default()
            }))
        })
    }
}

/// Signals that can stop the current syscall for this thread: pending and not blocked.
pub fn deliverable(t: &Thread) -> SigSet {
    let blocked = t.sigmask.load(Relaxed) & !UNBLOCKABLE;
    (t.pending.set() | t.process.shared_pending.set()) & !blocked
}

/// Whether an interruptible wait must end: a signal to take, the thread being killed, or its
/// group stopping (Linux's signal_pending).
pub fn pending(t: &Thread) -> bool {
    deliverable(t) != 0 || being_killed(t) || t.job.stop_asked()
}

/// Whether `t` must end without running user code again: its group is exiting, it must exit,
/// or SIGKILL is pending. What ends a stop (Linux's TASK_WAKEKILL wake-ups).
pub fn being_killed(t: &Thread) -> bool {
    t.process.is_exiting()
        || t.must_exit.load(Relaxed)
        || (t.pending.set() | t.process.shared_pending.set()) & sig_bit(SIGKILL) != 0
}

/// Whether `t` is being killed: its group is exiting, it must exit, or a signal that ends the
/// process is pending and not blocked (SIGKILL, or one whose action is the default and the
/// default terminates), which is what ends a killable wait (Linux's fatal_signal_pending,
/// where such signals have become SIGKILL at sending).
pub fn fatal_pending(t: &Thread) -> bool {
    if being_killed(t) {
        return true;
    }
    let deliverable = deliverable(t);
    if deliverable == 0 {
        return false;
    }
    let actions = t.process.sigactions();
    let actions = actions.lock();
    (1..=NSIG).any(|sig| {
        deliverable & sig_bit(sig) != 0
            && actions[sig as usize - 1].handler == SIG_DFL
            && default_action(sig) == Default_::Terminate
    })
}

/// What a signal does when its action is SIG_DFL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Default_ {
    Terminate,
    Ignore,
    Stop,
    Continue,
}

fn default_action(sig: u32) -> Default_ {
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => Default_::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => Default_::Stop,
        SIGCONT => Default_::Continue,
        _ => Default_::Terminate,
    }
}

/// Whether `sig` would be discarded on arrival (ignored, explicitly or by default).
fn ignored(p: &Process, sig: u32) -> bool {
    let act = p.sigactions().lock()[sig as usize - 1];
    act.handler == SIG_IGN || (act.handler == SIG_DFL && default_action(sig) == Default_::Ignore)
}

/// Sends a process-directed signal (kill): pending on the process, and one thread that does
/// not block it is woken to take it. Job-control signals act on the group first, even when
/// the signal itself is then ignored (SIGCONT continues a stopped group regardless).
pub fn send_to_process(p: &Arc<Process>, sig: u32, info: Option<SigInfo>) {
    if sig == 0 {
        return;
    }
    crate::job_control::on_send(p, sig);
    if sig != SIGKILL && ignored(p, sig) {
        return;
    }
    p.shared_pending.add(sig, info);
    let threads = p.threads.lock().clone();
    // Any thread may take it: every one looks at its next return to user space.
    for t in &threads {
        t.note_return_work();
    }
    let target = threads
        .iter()
        .find(|t| t.sigmask.load(Relaxed) & sig_bit(sig) == 0)
        .or(threads.first());
    if let Some(t) = target {
        crate::sched::wake(t);
        crate::arch::apic::kick_cpu(t.cpu.load(Relaxed));
    }
}

/// Sends a thread-directed signal (tgkill, faults).
pub fn send_to_thread(t: &Arc<Thread>, sig: u32, info: Option<SigInfo>) {
    if sig == 0 {
        return;
    }
    crate::job_control::on_send(&t.process, sig);
    if sig != SIGKILL && ignored(&t.process, sig) {
        return;
    }
    t.pending.add(sig, info);
    t.note_return_work();
    crate::sched::wake(t);
    crate::arch::apic::kick_cpu(t.cpu.load(Relaxed));
}

/// Runs at the return to user space when `sources_pending` (or an interrupted syscall's
/// restart code) says so: ends the thread if its process is exiting, and acts on deliverable
/// signals (default actions here; handlers get a frame on the user stack).
pub fn on_return_to_user(frame: &mut TrapFrame) {
    deliver_pending(frame, true);
}

/// Whether the return to user space has signal work: pending signals (blocked or not: the
/// slow path sorts them), a group exit, a group stop, or a mask to restore.
pub fn sources_pending(t: &Thread) -> bool {
    (t.pending.set() | t.process.shared_pending.set()) != 0
        || t.process.is_exiting()
        || t.must_exit.load(Relaxed)
        || t.job.stop_asked()
        || t.restore_sigmask_pending.load(Relaxed)
}

/// `may_defer`: asynchronous signals may be held back by the KTLS `sig_defer` word (not for
/// a fault the thread is being forced to take).
fn deliver_pending(frame: &mut TrapFrame, may_defer: bool) {
    let t = process::current();
    loop {
        // Stops here, in the kernel, if the group is stopping; a stop ends with SIGCONT (and
        // signals are taken as usual then) or with the thread being killed.
        crate::job_control::stop_if_asked(t);
        if t.process.is_exiting() || t.must_exit.load(Relaxed) {
            process::exit_thread(0);
        }
        let mut allowed = !(t.sigmask.load(Relaxed) & !UNBLOCKABLE);
        let waiting = (t.pending.set() | t.process.shared_pending.set()) & allowed & !UNBLOCKABLE;
        if may_defer && waiting != 0 && crate::rseq::defers_signals(t) {
            // Held back until user space clears sig_defer and enters the kernel again.
            allowed &= UNBLOCKABLE;
        }
        let continues = t.process.job.continues();
        let Some(info) = t
            .pending
            .take(allowed)
            .or_else(|| t.process.shared_pending.take(allowed))
        else {
            // No handler runs: an interrupted syscall restarts, and a mask saved by
            // sigsuspend comes back.
            crate::syscall::restart_fixup(frame, None);
            if let Some(m) = take_restore_mask(t) {
                t.sigmask.store(m, Relaxed);
            }
            return;
        };
        let sig = info.signo;
        let act = t.process.sigactions().lock()[sig as usize - 1];
        match act.handler {
            SIG_IGN if sig != SIGKILL => continue,
            SIG_DFL => match default_action(sig) {
                Default_::Ignore | Default_::Continue => continue,
                Default_::Stop => {
                    crate::job_control::start_stop(t, sig, continues);
                    continue;
                }
                Default_::Terminate => process::exit_group(wstatus_signaled(sig)),
            },
            _ if sig == SIGKILL => process::exit_group(wstatus_signaled(sig)),
            _ => {
                crate::syscall::restart_fixup(frame, Some(&act));
                let rseq_ok = crate::rseq::on_signal_delivery(frame).is_ok();
                if !rseq_ok || crate::signal_frame::deliver(t, frame, &info, &act).is_err() {
                    // No room for the frame on the user's stack: Linux forces SIGSEGV.
                    process::exit_group(wstatus_signaled(SIGSEGV));
                }
                return;
            }
        }
    }
}

/// A fault in user mode: send the signal to the thread and deliver it now (a blocked or
/// ignored synchronous fault signal kills the process, as Linux's force_sig does).
pub fn force_fault(sig: u32, info: SigInfo, frame: &mut TrapFrame) {
    // A borrowed reference, not a counted one: exit_group never returns, so a counted
    // reference held across it would never be released, and with it the thread, its process
    // and the whole address space.
    let t = process::current();
    let act = t.process.sigactions().lock()[sig as usize - 1];
    let blocked = t.sigmask.load(Relaxed) & sig_bit(sig) != 0;
    if blocked || act.handler == SIG_IGN || act.handler == SIG_DFL {
        process::exit_group(wstatus_signaled(sig));
    }
    t.pending.add(sig, Some(info));
    t.note_return_work();
    deliver_pending(frame, false);
}

/// sigsuspend (and friends) run with a temporary mask; the mask to go back to is recorded in
/// the signal frame of the handler that ends the wait.
pub fn set_restore_mask(t: &Thread, old: SigSet) {
    *t.restore_sigmask.lock() = Some(old);
    t.restore_sigmask_pending.store(true, Relaxed);
    t.note_return_work();
}

/// Takes the mask saved by `set_restore_mask`, if any.
pub fn take_restore_mask(t: &Thread) -> Option<SigSet> {
    t.restore_sigmask_pending.store(false, Relaxed);
    t.restore_sigmask.lock().take()
}
