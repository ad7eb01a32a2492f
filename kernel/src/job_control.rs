//! Job control: a stop signal stops the whole thread group, SIGCONT continues it, and the
//! parent hears of both (SIGCHLD with CLD_STOPPED / CLD_CONTINUED, and wait4/waitid with
//! WUNTRACED / WCONTINUED). Modelled on Linux's kernel/signal.c: prepare_signal,
//! do_signal_stop, do_notify_parent_cldstop, wait_task_stopped and wait_task_continued.
//!
//! How a group stops: the thread that takes a stop signal (at its return to user space) asks
//! every thread of its group to stop and wakes them; each one stops at its own next return to
//! user space (a thread in an interruptible wait leaves it, as for a signal), and the last to
//! stop tells the parent. A stopped thread sleeps in the kernel, killable, until SIGCONT
//! continues the group or SIGKILL (or a group exit) ends it.
//!
//! Every change of the group's state and of its threads' `ThreadJob` is made under the
//! group's `JobControl` lock; reading a thread's state without it is only a hint (the return
//! path's quick look), and whoever changes it wakes the thread afterwards.

use crate::process::{self, Process, Thread};
use crate::sched;
use crate::signal::SigInfo;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};
use ktls_abi::signal::*;
use spin::Mutex;

/// The signals whose default action stops the group.
pub const STOP_SIGNALS: SigSet =
    sig_bit(SIGSTOP) | sig_bit(SIGTSTP) | sig_bit(SIGTTIN) | sig_bit(SIGTTOU);

pub fn is_stop_signal(sig: u32) -> bool {
    (1..=NSIG).contains(&sig) && STOP_SIGNALS & sig_bit(sig) != 0
}

/// A thread group's job-control state (what Linux keeps in its signal_struct).
#[derive(Default)]
struct GroupState {
    /// Threads asked to stop that have not stopped yet (Linux's group_stop_count).
    stopping: usize,
    /// Every thread has stopped, and no SIGCONT came since (SIGNAL_STOP_STOPPED).
    stopped: bool,
    /// The signal that stopped the group, until a WUNTRACED wait reports it; 0 once reported
    /// (Linux's group_exit_code).
    unreported_stop: u32,
    /// Continued since a WCONTINUED wait last reported it (SIGNAL_STOP_CONTINUED).
    unreported_continue: bool,
}

/// The job-control part of a process.
#[derive(Default)]
pub struct JobControl {
    state: Mutex<GroupState>,
    /// SIGCONTs sent so far: a stop signal taken before a SIGCONT that would have discarded
    /// it must not stop the group after it (Linux's JOBCTL_STOP_DEQUEUED).
    continues: AtomicU64,
}

impl JobControl {
    pub const fn new() -> Self {
        JobControl {
            state: Mutex::new(GroupState {
                stopping: 0,
                stopped: false,
                unreported_stop: 0,
                unreported_continue: false,
            }),
            continues: AtomicU64::new(0),
        }
    }

    /// To be read before taking a signal off the pending sets, and given to `start_stop`.
    pub fn continues(&self) -> u64 {
        self.continues.load(SeqCst)
    }
}

/// Where a thread is in its group's stop (Linux's JOBCTL_STOP_PENDING and JOBCTL_STOPPED).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Stop {
    Running = 0,
    /// Must stop at its next return to user space.
    Asked = 1,
    Stopped = 2,
    /// Leaving: not counted in a group stop.
    Exiting = 3,
}

/// A thread's `Stop` state.
pub struct ThreadJob(AtomicU8);

impl Default for ThreadJob {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadJob {
    pub const fn new() -> Self {
        ThreadJob(AtomicU8::new(Stop::Running as u8))
    }

    fn get(&self) -> Stop {
        match self.0.load(Relaxed) {
            0 => Stop::Running,
            1 => Stop::Asked,
            2 => Stop::Stopped,
            _ => Stop::Exiting,
        }
    }

    fn set(&self, s: Stop) {
        self.0.store(s as u8, Relaxed);
    }

    /// The thread must stop at its next return to user space: interruptible waits end.
    pub fn stop_asked(&self) -> bool {
        self.get() == Stop::Asked
    }
}

/// What sending `sig` to `p` does before the signal is queued (Linux's prepare_signal): a
/// stop signal discards pending SIGCONTs; SIGCONT discards pending stop signals and continues
/// the group, whether or not it is blocked, ignored or caught.
pub fn on_send(p: &Arc<Process>, sig: u32) {
    if is_stop_signal(sig) {
        let threads = p.threads.lock().clone();
        discard_pending(p, &threads, sig_bit(SIGCONT));
    } else if sig == SIGCONT {
        continue_group(p);
    }
}

fn discard_pending(p: &Process, threads: &[Arc<Thread>], set: SigSet) {
    p.shared_pending.discard(set);
    for t in threads {
        t.pending.discard(set);
    }
}

/// SIGCONT: every thread runs again, and the parent hears of it if the group had stopped
/// (CLD_CONTINUED) or was stopping (CLD_STOPPED with status 0, as Linux).
fn continue_group(p: &Arc<Process>) {
    let threads = p.threads.lock().clone();
    let mut stopped = Vec::new();
    let event = {
        let mut g = p.job.state.lock();
        discard_pending(p, &threads, STOP_SIGNALS);
        p.job.continues.fetch_add(1, SeqCst);
        for t in threads.iter().filter(|t| t.job.get() != Stop::Exiting) {
            if t.job.get() == Stop::Stopped {
                stopped.push(t.clone());
            }
            t.job.set(Stop::Running);
        }
        let event = if g.stopped {
            Some((CLD_CONTINUED, SIGCONT))
        } else if g.stopping > 0 {
            Some((CLD_STOPPED, 0))
        } else {
            None
        };
        if event.is_some() {
            *g = GroupState {
                unreported_continue: true,
                ..GroupState::default()
            };
        }
        event
    };
    // After the state change: a stopped thread looks at it again once marked Blocked.
    for t in &stopped {
        sched::wake(t);
    }
    if let Some((why, status)) = event {
        notify_parent(p, why, status);
    }
}

/// The calling thread took stop signal `sig` whose action is the default (Linux's
/// do_signal_stop): unless a SIGCONT came after `continues_before` (read before the signal
/// was taken), every thread of the group is asked to stop, this one included; the caller
/// then stops in `stop_if_asked`.
pub fn start_stop(t: &Thread, sig: u32, continues_before: u64) {
    let p = &t.process;
    let threads = p.threads.lock().clone();
    {
        let mut g = p.job.state.lock();
        if p.job.continues.load(SeqCst) != continues_before || p.is_exiting() {
            return;
        }
        if t.job.get() == Stop::Asked {
            // A group stop is already under way: this thread just joins it.
            return;
        }
        if !g.stopped {
            g.unreported_stop = sig;
        }
        g.stopping = 0;
        for x in threads.iter().filter(|x| x.job.get() == Stop::Running) {
            x.job.set(Stop::Asked);
            g.stopping += 1;
        }
    }
    for x in threads.iter().filter(|x| !core::ptr::eq(&***x, t)) {
        x.note_return_work();
        sched::wake(x);
        crate::arch::apic::kick_cpu(x.cpu.load(Relaxed));
    }
}

/// A thread made by `creator` (CLONE_THREAD) while its group is stopping stops too (Linux's
/// task_join_group_stop). Called once `new` is among the group's threads: a stop started
/// since then has already asked it.
pub fn join_group_stop(creator: &Thread, new: &Thread) {
    let mut g = creator.process.job.state.lock();
    if creator.job.get() == Stop::Asked && new.job.get() == Stop::Running {
        new.job.set(Stop::Asked);
        g.stopping += 1;
    }
}

/// If the calling thread's group is stopping, stops it (the last thread to stop tells the
/// parent) and sleeps until a SIGCONT, or until it is being killed. For the return to user
/// space, before it takes signals.
pub fn stop_if_asked(t: &Thread) {
    if !t.job.stop_asked() {
        return;
    }
    let p = &t.process;
    let completed = {
        let mut g = p.job.state.lock();
        if t.job.get() != Stop::Asked {
            return; // a SIGCONT came first
        }
        t.job.set(Stop::Stopped);
        g.stopping = g.stopping.saturating_sub(1);
        complete_if_last(&mut g)
    };
    if let Some(sig) = completed {
        notify_parent(p, CLD_STOPPED, sig);
    }
    // Killable: SIGKILL or a group exit ends the stop, other signals wait for SIGCONT (as on
    // Linux, where a stopped thread does not take them).
    let stopped = || t.job.get() == Stop::Stopped && !crate::signal::being_killed(t);
    while stopped() {
        sched::sleep_unless(None, || !stopped());
    }
}

/// Marks the group stopped if no thread is left to stop; returns the stop signal to tell the
/// parent about if it just became so.
fn complete_if_last(g: &mut GroupState) -> Option<u32> {
    if g.stopping > 0 || g.stopped {
        return None;
    }
    g.stopped = true;
    Some(g.unreported_stop)
}

/// A thread is exiting: it no longer counts in a group stop; if it was the last one the stop
/// waited for, the group has now stopped (Linux's exit_signals). Not when the whole group
/// goes (the last thread, a group exit or an exec).
pub fn on_thread_exit(t: &Thread) {
    let p = &t.process;
    let whole_group_goes = p.thread_count() <= 1 || p.is_exiting() || t.must_exit.load(Relaxed);
    let completed = {
        let mut g = p.job.state.lock();
        let was_asked = t.job.get() == Stop::Asked;
        t.job.set(Stop::Exiting);
        if !was_asked || whole_group_goes {
            return;
        }
        g.stopping = g.stopping.saturating_sub(1);
        complete_if_last(&mut g)
    };
    if let Some(sig) = completed {
        notify_parent(p, CLD_STOPPED, sig);
    }
}

/// Tells `child`'s parent that it stopped or continued (Linux's do_notify_parent_cldstop):
/// SIGCHLD unless the parent ignores it or asked for SA_NOCLDSTOP, and its waiters look.
fn notify_parent(child: &Process, why: i32, status: u32) {
    let Some(parent) = process::find_process(child.ppid.load(Relaxed)) else {
        return;
    };
    let act = parent.sigactions().lock()[SIGCHLD as usize - 1];
    if act.handler != SIG_IGN && act.flags & SA_NOCLDSTOP == 0 {
        let info = SigInfo {
            uid: child.creds.lock().uid,
            ..SigInfo::sigchld(child.pid, why, status as i32)
        };
        crate::signal::send_to_process(&parent, SIGCHLD, Some(info));
    }
    parent.child_wait.wake_all();
}

/// What a wait with WUNTRACED finds (Linux's wait_task_stopped): the signal that stopped
/// `p`, once per stop; `consume` false (WNOWAIT) leaves it to be found again.
pub fn stop_report(p: &Process, consume: bool) -> Option<u32> {
    let mut g = p.job.state.lock();
    if !g.stopped || g.unreported_stop == 0 {
        return None;
    }
    let sig = g.unreported_stop;
    if consume {
        g.unreported_stop = 0;
    }
    Some(sig)
}

/// What a wait with WCONTINUED finds (wait_task_continued): whether `p` was continued since
/// the last report; `consume` false (WNOWAIT) leaves it to be found again.
pub fn continue_report(p: &Process, consume: bool) -> bool {
    let mut g = p.job.state.lock();
    let continued = g.unreported_continue;
    if consume {
        g.unreported_continue = false;
    }
    continued
}
