//! The scheduler: per-CPU run queues under one lock, round robin with timer-driven slices.
//!
//! Design, chosen to be easy to reason about and to keep the switch short:
//! - One `SCHED` lock guards every CPU's queue and current thread. Under our CPU counts it is
//!   uncontended, and one lock means no lock-ordering rules.
//! - The kernel is not preemptible: a thread switches only when it blocks, yields or exits,
//!   or at the return to user space when its slice is used up (`need_resched`). So kernel
//!   code never sees another thread run in the middle of its work on this CPU.
//! - A thread being switched away from is still "on its CPU" until the next thread has saved
//!   it (`finish_switch`); a CPU about to run a thread waits for that flag (`on_cpu`), so a
//!   thread woken elsewhere is never resumed on a half-saved stack (Linux's on_cpu rule).
//! - Each thread has a home CPU (`cpu`); wake-ups queue it there, or on the least loaded CPU
//!   its affinity allows, and a CPU whose queue runs dry takes work from the busiest one.
//!   A halted CPU that is handed work is woken with an IPI.
//! - Sleeping threads wait in a deadline list checked on every timer tick.

use crate::arch::{apic, cpu, percpu, switch};
use crate::process::{self, Thread};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::panic::Location;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use spin::Mutex;

pub const MAX_CPUS: usize = 64;
/// Timer ticks in a time slice.
const SLICE_TICKS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Runnable = 0,
    Running = 1,
    Blocked = 2,
    Dead = 3,
}

impl State {
    pub fn from_u8(v: u8) -> State {
        match v {
            0 => State::Runnable,
            1 => State::Running,
            2 => State::Blocked,
            _ => State::Dead,
        }
    }
}

struct CpuQueue {
    queue: VecDeque<Arc<Thread>>,
    current: Option<Arc<Thread>>,
    idle: Option<Arc<Thread>>,
    /// The thread switched away from, until `finish_switch` has dealt with it.
    prev: Option<Arc<Thread>>,
    slice: u32,
    halted: bool,
    online: bool,
}

impl CpuQueue {
    const fn new() -> Self {
        CpuQueue {
            queue: VecDeque::new(),
            current: None,
            idle: None,
            prev: None,
            slice: SLICE_TICKS,
            halted: false,
            online: false,
        }
    }

    fn load(&self) -> usize {
        self.queue.len() + self.current.as_ref().is_some_and(|c| !c.is_idle()) as usize
    }
}

struct Scheduler {
    cpus: [CpuQueue; MAX_CPUS],
    /// Sleepers by deadline (monotonic ns); the Vec keeps ties.
    sleepers: BTreeMap<u64, Vec<Arc<Thread>>>,
}

static SCHED: Mutex<Scheduler> = Mutex::new(Scheduler {
    cpus: [const { CpuQueue::new() }; MAX_CPUS],
    sleepers: BTreeMap::new(),
});

/// Flags CPU `cpu`'s running thread to give up the CPU at its next return to user space
/// (kept in the per-CPU block, outside the lock, so the syscall return path tests it with
/// one load).
fn set_need_resched(cpu: usize) {
    if let Some(pc) = percpu::of(cpu) {
        pc.set_need_resched(true);
    }
}

/// Runs `f` on the scheduler state with interrupts masked (the timer tick takes the lock too).
fn with_sched<R>(f: impl FnOnce(&mut Scheduler) -> R) -> R {
    cpu::without_interrupts(|| f(&mut SCHED.lock()))
}

fn this_cpu() -> usize {
    percpu::get().cpu_id() as usize
}

/// Makes the code running on this CPU its idle thread, and marks the CPU online.
pub fn init_cpu(idle: Arc<Thread>) {
    let c = this_cpu();
    idle.set_state(State::Running);
    idle.on_cpu.store(true, Relaxed);
    idle.cpu.store(c as u32, Relaxed);
    process::switch_to(&idle);
    with_sched(|s| {
        let q = &mut s.cpus[c];
        q.idle = Some(idle.clone());
        q.current = Some(idle);
        q.online = true;
    });
}

pub fn online_cpus() -> usize {
    with_sched(|s| s.cpus.iter().filter(|c| c.online).count())
}

/// The online CPUs as a bit mask (bit i = CPU index i), e.g. for affinity masks.
pub fn online_mask() -> u64 {
    with_sched(|s| {
        (0..MAX_CPUS)
            .filter(|&i| s.cpus[i].online)
            .fold(0, |m, i| m | 1 << i)
    })
}

/// Picks the CPU a woken thread should run on: its home CPU if allowed and online, else the
/// least loaded allowed one.
fn pick_cpu(s: &Scheduler, t: &Thread) -> usize {
    let mask = t.affinity.load(Relaxed);
    let home = t.cpu.load(Relaxed) as usize;
    let allowed = |i: usize| i < MAX_CPUS && s.cpus[i].online && mask & (1 << i) != 0;
    if allowed(home) && s.cpus[home].load() <= 1 {
        return home;
    }
    (0..MAX_CPUS)
        .filter(|&i| allowed(i))
        .min_by_key(|&i| (s.cpus[i].load(), i != home))
        .unwrap_or(home)
}

fn enqueue_locked(s: &mut Scheduler, t: Arc<Thread>) {
    // Woken before its own CPU switched away from it (it set itself Blocked and has not
    // reached `schedule` yet): it simply runs on. Queuing it would let another CPU resume
    // it while it still runs here.
    let home = t.cpu.load(Relaxed) as usize;
    if s.cpus[home]
        .current
        .as_ref()
        .is_some_and(|cur| Arc::ptr_eq(cur, &t))
    {
        t.set_state(State::Running);
        return;
    }
    queue_on_best_cpu(s, t);
}

/// Queues `t` on the CPU `pick_cpu` chooses, waking that CPU if it is halted.
fn queue_on_best_cpu(s: &mut Scheduler, t: Arc<Thread>) {
    if t.queued.swap(true, Relaxed) {
        return;
    }
    let c = pick_cpu(s, &t);
    t.cpu.store(c as u32, Relaxed);
    let q = &mut s.cpus[c];
    let kick = q.halted && c != this_cpu();
    if q.current.as_ref().is_some_and(|cur| cur.is_idle()) {
        set_need_resched(c);
    }
    q.queue.push_back(t);
    if kick {
        apic::send_ipi(c as u32, apic::RESCHED_VECTOR);
    }
}

/// Makes a new or woken thread runnable.
pub fn enqueue(t: Arc<Thread>) {
    t.set_state(State::Runnable);
    with_sched(|s| enqueue_locked(s, t));
}

/// Wakes `t` if it is blocked; returns whether it was.
pub fn wake(t: &Arc<Thread>) -> bool {
    // Whatever the caller changed (a signal queued, a futex waiter taken, data written) is
    // visible before we look at the state: pairs with the fence in `block_unless`, so that
    // either we see Blocked or the sleeper sees the change.
    core::sync::atomic::fence(SeqCst);
    if t.state
        .compare_exchange(
            State::Blocked as u8,
            State::Runnable as u8,
            Relaxed,
            Relaxed,
        )
        .is_err()
    {
        return false;
    }
    with_sched(|s| enqueue_locked(s, t.clone()));
    true
}

/// Takes the next thread for CPU `c` (the first its affinity allows there), stealing from the
/// busiest CPU when there is none.
fn pick_next(s: &mut Scheduler, c: usize) -> Option<Arc<Thread>> {
    let q = &mut s.cpus[c].queue;
    if let Some(pos) = q.iter().position(|t| allowed_on(t, c)) {
        return q.remove(pos);
    }
    let victim = (0..MAX_CPUS)
        .filter(|&i| i != c && s.cpus[i].online && !s.cpus[i].queue.is_empty())
        .max_by_key(|&i| s.cpus[i].queue.len())?;
    let q = &mut s.cpus[victim].queue;
    let pos = q.iter().position(|t| allowed_on(t, c))?;
    q.remove(pos)
}

fn allowed_on(t: &Thread, c: usize) -> bool {
    t.affinity.load(Relaxed) & (1 << c) != 0
}

/// Sets `t`'s affinity and, as Linux, returns once `t` is on no CPU the new mask excludes:
/// the caller moves itself right away; another thread queued on such a CPU is requeued; one
/// running there is interrupted and moves at its return to user space, which we wait for.
pub fn set_affinity(t: &Arc<Thread>, mask: u64) {
    t.affinity.store(mask, Relaxed);
    if core::ptr::eq(&**t, process::current()) {
        if !allowed_on(t, this_cpu()) {
            schedule();
        }
        return;
    }
    let deadline = crate::time::monotonic_ns() + 1_000_000_000;
    loop {
        let running_on = with_sched(|s| {
            for c in (0..MAX_CPUS).filter(|&c| !allowed_on(t, c)) {
                let q = &mut s.cpus[c].queue;
                if let Some(pos) = q.iter().position(|x| Arc::ptr_eq(x, t)) {
                    let x = q.remove(pos).expect("position just found");
                    x.queued.store(false, Relaxed);
                    queue_on_best_cpu(s, x);
                }
            }
            let c = t.cpu.load(Relaxed) as usize;
            let running = s.cpus[c]
                .current
                .as_ref()
                .is_some_and(|x| Arc::ptr_eq(x, t));
            (running && !allowed_on(t, c)).then_some(c)
        });
        let Some(c) = running_on else {
            return;
        };
        if crate::time::monotonic_ns() > deadline {
            // It stays in the kernel that long: it moves at its next return to user space.
            return;
        }
        set_need_resched(c);
        apic::kick_cpu(c as u32);
        apic::delay_us(20);
    }
}

/// Gives up the CPU: to the next runnable thread, or back to the caller if there is none and
/// the caller can still run. A caller that set itself Blocked or Dead does not come back
/// until woken (never, for Dead).
pub fn schedule() {
    cpu::without_interrupts(|| {
        let c = this_cpu();
        let mut s = SCHED.lock();
        percpu::get().set_need_resched(false);
        s.cpus[c].slice = SLICE_TICKS;
        let prev = s.cpus[c]
            .current
            .clone()
            .expect("CPU without a current thread");
        let mut prev_runs_on = prev.state() == State::Running && !prev.is_idle();
        if prev_runs_on && !allowed_on(&prev, c) {
            // Its affinity no longer includes this CPU: queue it where it may run (that CPU
            // waits for `on_cpu` until this switch is done) and run something else here.
            prev.set_state(State::Runnable);
            queue_on_best_cpu(&mut s, prev.clone());
            prev_runs_on = false;
        }
        let next = loop {
            match pick_next(&mut s, c) {
                Some(t) => {
                    t.queued.store(false, Relaxed);
                    // A thread that is dead or blocked again is skipped (it leaves the queue).
                    let prev_running = Arc::ptr_eq(&t, &prev) && prev.state() == State::Running;
                    if t.state() == State::Runnable || prev_running {
                        break t;
                    }
                }
                None if prev_runs_on
                    || Arc::ptr_eq(&prev, s.cpus[c].idle.as_ref().expect("idle")) =>
                {
                    return;
                }
                None => break s.cpus[c].idle.clone().expect("idle"),
            }
        };
        if Arc::ptr_eq(&next, &prev) {
            prev.set_state(State::Running);
            return;
        }
        if prev_runs_on {
            prev.set_state(State::Runnable);
            prev.queued.store(true, Relaxed);
            s.cpus[c].queue.push_back(prev.clone());
        }
        next.set_state(State::Running);
        next.cpu.store(c as u32, Relaxed);
        s.cpus[c].current = Some(next.clone());
        s.cpus[c].prev = Some(prev.clone());
        drop(s);

        while next.on_cpu.load(Acquire) {
            core::hint::spin_loop();
        }
        next.on_cpu.store(true, Relaxed);
        let now = crate::time::monotonic_ns();
        let ran = now.saturating_sub(prev.running_since.load(Relaxed));
        prev.cpu_ns.fetch_add(ran, Relaxed);
        next.running_since.store(now, Relaxed);
        prev.save_user_state();
        if !prev.is_idle() {
            crate::rseq::on_switch_out(&prev);
        }
        next.restore_user_state();
        process::switch_to(&next);
        let save = prev.saved_rsp.as_ptr();
        let new_rsp = next.saved_rsp.load(Relaxed);
        // The queue's `prev` and `current` keep both threads alive across the switch.
        drop(prev);
        drop(next);
        // SAFETY: `new_rsp` was saved by switch_stacks (or built by initial_stack) for a thread
        // that is not running (on_cpu was clear); `save` points into the previous thread,
        // which the queue's `prev` keeps alive until finish_switch.
        unsafe { switch::switch_stacks(save, new_rsp) };
        finish_switch();
    });
}

/// Completes a switch on the new thread's stack: the previous thread is now fully saved.
pub fn finish_switch() {
    let prev = with_sched(|s| s.cpus[this_cpu()].prev.take());
    if let Some(p) = prev {
        p.on_cpu.store(false, Release);
        // A dead thread's last reference is usually this one: its kernel stack is freed here,
        // on another stack.
        drop(p);
    }
}

/// A new thread's first code: finish the switch that brought it here, then the work every
/// return to user space does (rseq ids and a fork child's KTLS identity, pending signals).
#[no_mangle]
pub extern "C" fn first_return_c(frame: &mut crate::arch::entry::TrapFrame) {
    finish_switch();
    crate::syscall::exit_to_user(frame, process::current());
}

/// CPUs whose current thread belongs to `p` (bit per CPU).
pub fn cpus_running_process(p: &crate::process::Process) -> u64 {
    with_sched(|s| {
        let mut mask = 0;
        for (i, q) in s.cpus.iter().enumerate() {
            if q.current
                .as_ref()
                .is_some_and(|t| !t.is_idle() && core::ptr::eq(&*t.process, p))
            {
                mask |= 1 << i;
            }
        }
        mask
    })
}

/// A full memory barrier on every online CPU in `mask`: this one runs a fence, the others
/// take an IPI (interrupts serialize) and we wait until each has acknowledged it.
pub fn barrier_on_cpus(mask: u64) {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    let me = this_cpu();
    let targets: Vec<usize> = with_sched(|s| {
        (0..MAX_CPUS)
            .filter(|&i| i != me && s.cpus[i].online && mask & (1 << i) != 0)
            .collect()
    });
    for c in targets {
        let before = apic::ipis_seen(c);
        apic::send_ipi(c as u32, apic::RESCHED_VECTOR);
        let start = crate::time::monotonic_ns();
        while apic::ipis_seen(c) == before {
            core::hint::spin_loop();
            if crate::time::monotonic_ns() - start > 1_000_000_000 {
                warn!("membarrier: CPU {c} did not answer its IPI within 1 s");
                break;
            }
        }
    }
}

/// Timer tick on this CPU: wakes expired sleepers and ends the running thread's slice.
pub fn tick(now_ns: u64) {
    let mut guard = SCHED.lock();
    let s = &mut *guard;
    while let Some(entry) = s.sleepers.first_entry() {
        if *entry.key() > now_ns {
            break;
        }
        for t in entry.remove() {
            if t.state
                .compare_exchange(
                    State::Blocked as u8,
                    State::Runnable as u8,
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
            {
                enqueue_locked(s, t);
            }
        }
    }
    let c = this_cpu();
    let q = &mut s.cpus[c];
    q.slice = q.slice.saturating_sub(1);
    // A thread whose affinity was changed by another moves at the next tick.
    let misplaced = q.current.as_ref().is_some_and(|t| !allowed_on(t, c));
    if (q.slice == 0 && !q.queue.is_empty()) || misplaced {
        set_need_resched(c);
    }
}

/// Whether this CPU's running thread should give up the CPU (one load, for the fast path).
#[inline(always)]
pub fn need_resched() -> bool {
    percpu::need_resched_here()
}

/// At the return to user space: switch if this CPU's slice ran out or work arrived for idle.
pub fn preempt_point() {
    if need_resched() {
        schedule();
    }
}

/// The idle loop of a CPU: run whatever is runnable, else halt until an interrupt.
pub fn idle_loop() -> ! {
    loop {
        schedule();
        cpu::disable_interrupts();
        let empty = {
            let mut s = SCHED.lock();
            let c = this_cpu();
            let empty = s.cpus[c].queue.is_empty();
            s.cpus[c].halted = empty;
            empty
        };
        if empty {
            cpu::enable_and_halt();
            with_sched(|s| s.cpus[this_cpu()].halted = false);
        } else {
            cpu::enable_interrupts();
        }
    }
}

/// Where a thread last blocked, for the hang report: the source location of the blocking
/// call. The blocking primitives are `#[track_caller]` (and so are the helpers that wrap
/// them, such as `fs::blocking`), so this is the kernel code that decided to wait; one store
/// per block, nothing on paths that do not block.
///
/// A lock rather than an atomic pointer keeps this safe Rust; the NMI-time reader only
/// tries it (`get` is None while a `set` on the interrupted CPU holds it).
pub struct WaitSite(Mutex<Option<&'static Location<'static>>>);

impl WaitSite {
    pub const fn new() -> Self {
        WaitSite(Mutex::new(None))
    }

    fn set(&self, site: &'static Location<'static>) {
        *self.0.lock() = Some(site);
    }

    pub fn get(&self) -> Option<&'static Location<'static>> {
        self.0.try_lock().and_then(|s| *s)
    }
}

impl Default for WaitSite {
    fn default() -> Self {
        Self::new()
    }
}

/// Blocks the current thread until `deadline_ns` (monotonic) or until woken earlier. Signals
/// do not end it early: for short polling sleeps whose caller looks at signals itself.
#[track_caller]
pub fn sleep_until(deadline_ns: u64) {
    sleep_unless(Some(deadline_ns), || false);
}

/// Blocks the current thread until woken, until `deadline_ns` (monotonic) if there is one,
/// or not at all if `interrupt` (such as "a signal is pending") already holds once the
/// thread is marked Blocked. A signal's sender wakes only threads it sees Blocked, so
/// checking before the mark alone could sleep through a signal sent in between.
#[track_caller]
pub fn sleep_unless(deadline_ns: Option<u64>, interrupt: impl FnOnce() -> bool) {
    process::current().set_state(State::Blocked);
    block_unless(deadline_ns, interrupt);
}

/// `block_current`, unless `interrupt` holds: the caller has marked the thread Blocked (and
/// put it where its waker will find it); `interrupt` looks at the wake conditions that have
/// no waker of their own, signals above all (Linux's signal_pending_state in `__schedule`).
#[track_caller]
pub fn block_unless(deadline_ns: Option<u64>, interrupt: impl FnOnce() -> bool) {
    // The Blocked mark is visible before `interrupt` looks: pairs with the fence in `wake`.
    core::sync::atomic::fence(SeqCst);
    if interrupt() {
        cancel_block();
    } else {
        block_current(deadline_ns);
    }
}

/// Switches away from the current thread, which the caller has already set Blocked (after
/// putting it where a waker will find it); returns when it is woken, or at `deadline_ns`.
#[track_caller]
pub fn block_current(deadline_ns: Option<u64>) {
    let t = process::current_arc();
    t.wait_site.set(Location::caller());
    if let Some(d) = deadline_ns {
        with_sched(|s| s.sleepers.entry(d).or_default().push(t.clone()));
    }
    schedule();
    if let Some(d) = deadline_ns {
        with_sched(|s| {
            if let Some(v) = s.sleepers.get_mut(&d) {
                v.retain(|x| !Arc::ptr_eq(x, &t));
                if v.is_empty() {
                    s.sleepers.remove(&d);
                }
            }
        });
    }
}

/// Undoes the caller's `set_state(Blocked)` when it finds it need not sleep after all. A waker
/// may already have seen Blocked and queued the thread (on any CPU); then it goes through
/// the scheduler, which finds it queued, rather than running on while another CPU could
/// pick it from that queue.
pub fn cancel_block() {
    let t = process::current();
    if t.state
        .compare_exchange(State::Blocked as u8, State::Running as u8, Relaxed, Relaxed)
        .is_err()
    {
        schedule();
    }
}

/// One CPU's scheduler state, as the hang report shows it (`try_for_each_cpu`).
pub struct CpuView<'a> {
    q: &'a CpuQueue,
}

impl<'a> CpuView<'a> {
    pub fn current(&self) -> Option<&'a Thread> {
        self.q.current.as_deref()
    }

    pub fn queued(&self) -> impl Iterator<Item = &'a Thread> {
        self.q.queue.iter().map(|t| &**t)
    }

    pub fn halted(&self) -> bool {
        self.q.halted
    }
}

/// The threads sleeping until a deadline.
pub struct Sleepers {
    pub count: usize,
    /// The earliest deadline (monotonic ns).
    pub next_deadline_ns: Option<u64>,
}

/// Calls `f` with each online CPU's index and state, then returns the sleepers; `None`,
/// without waiting, if the scheduler's lock is held. For the hang report, which runs in an
/// NMI: `f` must not take locks the interrupted code may hold.
pub fn try_for_each_cpu(mut f: impl FnMut(usize, CpuView)) -> Option<Sleepers> {
    let s = SCHED.try_lock()?;
    for (i, q) in s.cpus.iter().enumerate().filter(|(_, q)| q.online) {
        f(i, CpuView { q });
    }
    Some(Sleepers {
        count: s.sleepers.values().map(Vec::len).sum(),
        next_deadline_ns: s.sleepers.keys().next().copied(),
    })
}

/// Threads waiting for something, woken together.
pub struct WaitQueue {
    waiters: Mutex<VecDeque<Arc<Thread>>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        WaitQueue {
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until `cond` yields a value, or (if `interruptible`) a signal is pending, which
    /// gives Err(()). `cond` is checked again after registering, so a wake-up between the
    /// check and the sleep is not lost.
    #[track_caller]
    pub fn wait<T>(
        &self,
        interruptible: bool,
        mut cond: impl FnMut() -> Option<T>,
    ) -> Result<T, ()> {
        let t = process::current_arc();
        loop {
            if let Some(v) = cond() {
                return Ok(v);
            }
            if interruptible && crate::signal::pending(&t) {
                return Err(());
            }
            cpu::without_interrupts(|| {
                t.set_state(State::Blocked);
                self.waiters.lock().push_back(t.clone());
            });
            // Both looks again after the mark: a wake_all or a signal between the first
            // looks and the mark found the thread not Blocked and did not wake it.
            let mut found = None;
            let mut signalled = false;
            block_unless(None, || {
                found = cond();
                signalled = interruptible && crate::signal::pending(&t);
                found.is_some() || signalled
            });
            self.remove(&t);
            if let Some(v) = found {
                return Ok(v);
            }
            if signalled {
                return Err(());
            }
        }
    }

    fn remove(&self, t: &Arc<Thread>) {
        cpu::without_interrupts(|| self.waiters.lock().retain(|x| !Arc::ptr_eq(x, t)));
    }

    pub fn wake_all(&self) {
        let waiters: Vec<Arc<Thread>> =
            cpu::without_interrupts(|| self.waiters.lock().drain(..).collect());
        for t in waiters {
            wake(&t);
        }
    }
}
