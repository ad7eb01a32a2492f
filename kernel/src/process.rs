//! Processes and threads.
//!
//! A `Process` owns what its threads share (address space, file table, working directory,
//! credentials, signal actions, limits, children); a `Thread` owns its kernel stack, its saved
//! user register state and its scheduler state. vfork shares the address space between two
//! processes and CLONE_FILES/CLONE_SIGHAND share tables, so those sit behind their own `Arc`s.
//!
//! The running thread is found through the per-CPU block (`current()`), which holds a pointer
//! kept alive by the scheduler for as long as the thread is on a CPU.

use crate::arch::switch::FpuState;
use crate::arch::{cpu, percpu};
use crate::mm::addrspace::AddressSpace;
use crate::sched::{self, State, WaitQueue};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed,
    Ordering::Release,
};
use ktls_abi::mm::{Rlimit, RLIMIT_NLIMITS, RLIMIT_NOFILE, RLIMIT_STACK, RLIM_INFINITY};
use ktls_abi::signal::{self, KSigaction, StackT, NSIG};
use spin::Mutex;

/// Size of each thread's kernel stack.
pub const KERNEL_STACK_SIZE: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
}

pub type SigActions = [KSigaction; NSIG as usize];

pub struct Process {
    pub pid: u32,
    pub ppid: AtomicU32,
    pub pgid: AtomicU32,
    pub sid: AtomicU32,
    pub mm: Mutex<Arc<Mutex<AddressSpace>>>,
    /// The root page table of `mm` (kept in step with it), so a context switch can compare it
    /// with CR3 without taking locks.
    pub mm_root: AtomicU64,
    pub files: Mutex<Arc<Mutex<ktls_vfs::FdTable>>>,
    pub cwd: Mutex<ktls_vfs::NodeRef>,
    pub umask: AtomicU32,
    /// Absolute path of the executable (for /proc/self/exe and AT_EXECFN).
    pub exe: Mutex<Vec<u8>>,
    pub creds: Mutex<Creds>,
    pub sigactions: Mutex<Arc<Mutex<SigActions>>>,
    pub rlimits: Mutex<[Rlimit; RLIMIT_NLIMITS as usize]>,
    pub threads: Mutex<Vec<Arc<Thread>>>,
    pub children: Mutex<Vec<Arc<Process>>>,
    /// The signal sent to the parent when this process ends (SIGCHLD usually; 0 for none).
    pub exit_signal: AtomicU32,
    /// Set once the process has ended: its wait status, for the parent to collect.
    pub zombie: Mutex<Option<u32>>,
    /// A group exit is under way (exit_group, a fatal signal, execve): its wait status.
    pub group_exit: Mutex<Option<u32>>,
    /// `group_exit` is set (readable with one load on the return-to-user path).
    pub exiting: AtomicBool,
    /// Woken when a child of this process changes state.
    pub child_wait: WaitQueue,
    /// Process-directed pending signals and their siginfo.
    pub shared_pending: crate::signal::Pending,
    /// Stopped or continued by job-control signals, and what the parent has not yet heard.
    pub job: crate::job_control::JobControl,
    /// KTLS parameters and mm_cid allocation.
    pub rseq: crate::rseq::ProcessRseq,
    /// membarrier registrations (MEMBARRIER_CMD_REGISTER_* bits).
    pub membarrier: AtomicU32,
    /// CPU time of threads that have exited (ns).
    pub dead_cpu_ns: AtomicU64,
    /// The nice value (-20..=19), inherited by children.
    pub nice: AtomicI32,
    /// CPU time of reaped children (ns), for RUSAGE_CHILDREN and times().
    pub children_cpu_ns: AtomicU64,
    /// prctl state: PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS.
    pub pdeathsig: AtomicU32,
    pub dumpable: AtomicU32,
    pub no_new_privs: AtomicBool,
}

pub struct Thread {
    pub tid: u32,
    pub process: Arc<Process>,
    kstack: alloc::boxed::Box<[u128]>,
    idle: bool,
    pub state: AtomicU8,
    /// Still running on (or being switched away from) a CPU: see `sched`.
    pub on_cpu: AtomicBool,
    /// In a run queue.
    pub queued: AtomicBool,
    /// Home CPU.
    pub cpu: AtomicU32,
    pub affinity: AtomicU64,
    /// Kernel stack pointer while switched out.
    pub saved_rsp: AtomicU64,
    pub fs_base: AtomicU64,
    pub gs_base: AtomicU64,
    pub fpu: Mutex<Option<FpuState>>,
    pub sigmask: AtomicU64,
    pub pending: crate::signal::Pending,
    pub altstack: Mutex<StackT>,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    pub robust_list_len: AtomicU64,
    /// Set when a syscall rewrote the whole user context (execve, sigreturn, signal delivery):
    /// the return to user space must restore every register with iretq.
    pub full_restore: AtomicBool,
    /// The exit code of a thread that called exit (not exit_group).
    pub exit_code: AtomicI32,
    /// The signal mask to restore after a sigsuspend-style wait.
    pub restore_sigmask: Mutex<Option<u64>>,
    /// `restore_sigmask` is set.
    pub restore_sigmask_pending: AtomicBool,
    /// rseq / KTLS registration.
    pub rseq: crate::rseq::ThreadRseq,
    /// The thread must end at its next return to user space (the group exits or another
    /// thread execs); blocking waits treat it like a fatal signal.
    pub must_exit: AtomicBool,
    /// The return to user space has work to look at: set (`note_return_work`) by whatever
    /// makes some (a signal queued for the thread or its process, `must_exit`, a mask to
    /// restore, an rseq event), cleared by the return path before it looks
    /// (syscall::exit_to_user). One load for the fast path instead of six, through two
    /// structures.
    pub return_work: AtomicBool,
    /// Set by FUTEX_WAKE when it takes this thread off a futex queue.
    pub futex_woken: AtomicBool,
    /// Asked to stop, or stopped, with its group (job control).
    pub job: crate::job_control::ThreadJob,
    /// Where it last blocked (for the hang report).
    pub wait_site: sched::WaitSite,
    /// The thread's name (PR_SET_NAME; the executable's base name at start).
    pub comm: Mutex<Vec<u8>>,
    /// CPU time used up to the last switch-out, and when the thread last got its CPU (ns).
    pub cpu_ns: AtomicU64,
    pub running_since: AtomicU64,
    /// For the child of a CLONE_VFORK clone: what its parent waits on, completed when this
    /// thread gives the memory back by exec or by exiting (Linux's vfork_done).
    pub vfork_done: Mutex<Option<Arc<VforkDone>>>,
    /// How restart_syscall goes on with a sleep that a signal without a handler (a stop and
    /// continue) interrupted (Linux's restart_block); cleared when a handler runs.
    pub restart: Mutex<Option<crate::syscall::RestartSleep>>,
}

/// A vfork parent's wait: done once the child has exec'd or exited.
pub struct VforkDone {
    done: AtomicBool,
    queue: WaitQueue,
}

impl VforkDone {
    pub fn new() -> Arc<Self> {
        Arc::new(VforkDone {
            done: AtomicBool::new(false),
            queue: WaitQueue::new(),
        })
    }

    /// Waits until the child is done, or the caller is being killed (Linux's killable wait:
    /// a fatal signal or a group exit ends it, other signals do not).
    #[track_caller]
    pub fn wait(&self) {
        let t = current();
        let _ = self.queue.wait(false, || {
            (self.done.load(Relaxed) || crate::signal::fatal_pending(t)).then_some(())
        });
    }

    fn complete(&self) {
        self.done.store(true, Relaxed);
        self.queue.wake_all();
    }
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// User threads alive (for the system-wide limit).
static THREAD_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Linux's threads-max: as many threads as half the kernel heap holds kernel stacks, so a
/// thread or fork bomb gets EAGAIN long before the heap runs out.
pub fn max_threads() -> usize {
    crate::mm::heap::size() / 2 / KERNEL_STACK_SIZE
}

/// A zeroed kernel stack, or None if the heap cannot give one above its reserve (fallible,
/// unlike `vec!`).
fn alloc_kernel_stack() -> Option<alloc::boxed::Box<[u128]>> {
    let words = KERNEL_STACK_SIZE / core::mem::size_of::<u128>();
    if !crate::mm::heap::can_spare(KERNEL_STACK_SIZE) {
        return None;
    }
    let mut v = Vec::new();
    v.try_reserve_exact(words).ok()?;
    v.resize(words, 0u128);
    Some(v.into_boxed_slice())
}
/// Every process that has not been reaped, by pid.
static PROCESSES: Mutex<BTreeMap<u32, Arc<Process>>> = Mutex::new(BTreeMap::new());
/// Every live thread, by tid.
static THREADS: Mutex<BTreeMap<u32, Arc<Thread>>> = Mutex::new(BTreeMap::new());

pub fn alloc_id() -> u32 {
    NEXT_ID.fetch_add(1, Relaxed)
}

pub fn default_rlimits() -> [Rlimit; RLIMIT_NLIMITS as usize] {
    let mut r = [Rlimit {
        rlim_cur: RLIM_INFINITY,
        rlim_max: RLIM_INFINITY,
    }; RLIMIT_NLIMITS as usize];
    r[RLIMIT_STACK as usize] = Rlimit {
        rlim_cur: 8 << 20,
        rlim_max: RLIM_INFINITY,
    };
    r[RLIMIT_NOFILE as usize] = Rlimit {
        rlim_cur: 1024,
        rlim_max: 4096,
    };
    r[ktls_abi::mm::RLIMIT_CORE as usize] = Rlimit {
        rlim_cur: 0,
        rlim_max: RLIM_INFINITY,
    };
    r[ktls_abi::mm::RLIMIT_MEMLOCK as usize] = Rlimit {
        rlim_cur: 8 << 20,
        rlim_max: 8 << 20,
    };
    r
}

/// What a new process starts with; `Process::new` takes it whole.
pub struct ProcessParts {
    pub mm: Arc<Mutex<AddressSpace>>,
    pub files: Arc<Mutex<ktls_vfs::FdTable>>,
    pub cwd: ktls_vfs::NodeRef,
    pub exe: Vec<u8>,
    pub creds: Creds,
    pub sigactions: Arc<Mutex<SigActions>>,
    pub rlimits: [Rlimit; RLIMIT_NLIMITS as usize],
    pub umask: u32,
}

impl Process {
    pub fn new(pid: u32, ppid: u32, parts: ProcessParts) -> Arc<Self> {
        let root = parts.mm.lock().root_phys();
        let p = Arc::new(Process {
            mm_root: AtomicU64::new(root),
            pid,
            ppid: AtomicU32::new(ppid),
            pgid: AtomicU32::new(pid),
            sid: AtomicU32::new(pid),
            mm: Mutex::new(parts.mm),
            files: Mutex::new(parts.files),
            cwd: Mutex::new(parts.cwd),
            umask: AtomicU32::new(parts.umask),
            exe: Mutex::new(parts.exe),
            creds: Mutex::new(parts.creds),
            sigactions: Mutex::new(parts.sigactions),
            rlimits: Mutex::new(parts.rlimits),
            threads: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            exit_signal: AtomicU32::new(signal::SIGCHLD),
            zombie: Mutex::new(None),
            group_exit: Mutex::new(None),
            exiting: AtomicBool::new(false),
            child_wait: WaitQueue::new(),
            shared_pending: crate::signal::Pending::new(),
            job: crate::job_control::JobControl::new(),
            rseq: crate::rseq::ProcessRseq::new(),
            membarrier: AtomicU32::new(0),
            dead_cpu_ns: AtomicU64::new(0),
            nice: AtomicI32::new(0),
            children_cpu_ns: AtomicU64::new(0),
            pdeathsig: AtomicU32::new(0),
            dumpable: AtomicU32::new(1),
            no_new_privs: AtomicBool::new(false),
        });
        if pid != 0 {
            PROCESSES.lock().insert(pid, p.clone());
        }
        p
    }

    /// The address space (shared with a vfork parent until exec or exit).
    pub fn mm(&self) -> Arc<Mutex<AddressSpace>> {
        self.mm.lock().clone()
    }

    pub fn files(&self) -> Arc<Mutex<ktls_vfs::FdTable>> {
        self.files.lock().clone()
    }

    pub fn sigactions(&self) -> Arc<Mutex<SigActions>> {
        self.sigactions.lock().clone()
    }

    pub fn thread_count(&self) -> usize {
        self.threads.lock().len()
    }

    /// CPU time of all its threads, living and dead (ns).
    pub fn cpu_time_ns(&self) -> u64 {
        let live: u64 = self.threads.lock().iter().map(|t| t.cpu_time_ns()).sum();
        live + self.dead_cpu_ns.load(Relaxed)
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Relaxed)
    }
}

impl Thread {
    fn build(
        tid: u32,
        process: Arc<Process>,
        idle: bool,
        kstack: alloc::boxed::Box<[u128]>,
    ) -> Thread {
        Thread {
            tid,
            process,
            kstack,
            idle,
            state: AtomicU8::new(State::Blocked as u8),
            on_cpu: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            cpu: AtomicU32::new(0),
            affinity: AtomicU64::new(u64::MAX),
            saved_rsp: AtomicU64::new(0),
            fs_base: AtomicU64::new(0),
            gs_base: AtomicU64::new(0),
            fpu: Mutex::new(None),
            sigmask: AtomicU64::new(0),
            pending: crate::signal::Pending::new(),
            altstack: Mutex::new(StackT {
                ss_flags: signal::SS_DISABLE,
                ..Default::default()
            }),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            robust_list_len: AtomicU64::new(0),
            full_restore: AtomicBool::new(false),
            exit_code: AtomicI32::new(0),
            restore_sigmask: Mutex::new(None),
            restore_sigmask_pending: AtomicBool::new(false),
            rseq: crate::rseq::ThreadRseq::new(),
            must_exit: AtomicBool::new(false),
            // A new thread looks once, whatever it inherited or missed while being made.
            return_work: AtomicBool::new(true),
            futex_woken: AtomicBool::new(false),
            job: crate::job_control::ThreadJob::new(),
            wait_site: sched::WaitSite::new(),
            comm: Mutex::new(Vec::new()),
            cpu_ns: AtomicU64::new(0),
            running_since: AtomicU64::new(crate::time::monotonic_ns()),
            vfork_done: Mutex::new(None),
            restart: Mutex::new(None),
        }
    }

    /// A user thread of `process`, registered in the thread table and the process. EAGAIN
    /// when the system-wide thread limit is reached or the kernel stack cannot be allocated.
    pub fn new(tid: u32, process: Arc<Process>) -> Result<Arc<Self>, ktls_abi::Errno> {
        if THREAD_COUNT.load(Relaxed) >= max_threads() {
            return Err(ktls_abi::Errno::EAGAIN);
        }
        let kstack = alloc_kernel_stack().ok_or(ktls_abi::Errno::EAGAIN)?;
        THREAD_COUNT.fetch_add(1, Relaxed);
        let t = Arc::new(Self::build(tid, process.clone(), false, kstack));
        *t.fpu.lock() = Some(FpuState::new_from_current());
        THREADS.lock().insert(tid, t.clone());
        process.threads.lock().push(t.clone());
        Ok(t)
    }

    /// The idle thread of a CPU (never in a run queue, never in user mode).
    pub fn new_idle(process: Arc<Process>) -> Arc<Self> {
        let kstack = alloc_kernel_stack().expect("memory for an idle thread's stack");
        Arc::new(Self::build(0, process, true, kstack))
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Relaxed))
    }

    pub fn set_state(&self, s: State) {
        self.state.store(s as u8, Relaxed);
    }

    /// One past the highest byte of this thread's kernel stack (16-byte aligned).
    pub fn kernel_stack_top(&self) -> u64 {
        self.kstack.as_ptr() as u64 + (self.kstack.len() * 16) as u64
    }

    /// Saves the user FS/GS bases and FPU state of the thread leaving the CPU.
    pub fn save_user_state(&self) {
        if self.idle {
            return;
        }
        self.fs_base.store(cpu::user_fs_base(), Relaxed);
        self.gs_base.store(cpu::user_gs_base(), Relaxed);
        if let Some(f) = self.fpu.lock().as_mut() {
            f.save();
        }
    }

    /// CPU time used so far (ns), counting the current run if the thread is on a CPU now.
    pub fn cpu_time_ns(&self) -> u64 {
        let mut t = self.cpu_ns.load(Relaxed);
        if self.state() == State::Running {
            t += crate::time::monotonic_ns().saturating_sub(self.running_since.load(Relaxed));
        }
        t
    }

    /// Loads them for the thread entering the CPU.
    pub fn restore_user_state(&self) {
        if self.idle {
            return;
        }
        cpu::set_user_fs_base(self.fs_base.load(Relaxed));
        cpu::set_user_gs_base(self.gs_base.load(Relaxed));
        if let Some(f) = self.fpu.lock().as_mut() {
            f.restore();
        }
    }
}

impl Thread {
    /// Tells the thread that its return to user space has work (see `return_work`). Call it
    /// after making the work: the release store orders the two for the thread's CPU.
    pub fn note_return_work(&self) {
        self.return_work.store(true, Release);
    }
}

/// The running thread. Inlined: every system call asks for it, and a call with its frame
/// costs more than the two loads it is.
#[inline(always)]
pub fn current() -> &'static Thread {
    match try_current() {
        Some(t) => t,
        None => no_current_thread(),
    }
}

#[cold]
#[inline(never)]
fn no_current_thread() -> ! {
    panic!("no current thread")
}

#[inline(always)]
pub fn try_current() -> Option<&'static Thread> {
    current_ptr::get()
}

/// The running thread as a counted reference (for queues and tables).
pub fn current_arc() -> Arc<Thread> {
    current_ptr::get_arc().expect("no current thread")
}

/// Makes `t` the running thread on this CPU: its address space, kernel stack and identity.
pub fn switch_to(t: &Arc<Thread>) {
    let pc = percpu::get();
    current_ptr::set(t);
    pc.set_kernel_stack(t.kernel_stack_top());
    crate::mm::addrspace::activate_root(&t.process.mm_root);
}

pub fn find_process(pid: u32) -> Option<Arc<Process>> {
    PROCESSES.lock().get(&pid).cloned()
}

pub fn find_thread(tid: u32) -> Option<Arc<Thread>> {
    THREADS.lock().get(&tid).cloned()
}

/// Calls `f` on the live threads in tid order, at most `max` of them, and returns how many
/// there are; `None`, without waiting, if the thread table's lock is held. For the hang
/// report, which runs in an NMI: `f` must not take locks the interrupted code may hold.
pub fn try_for_each_thread(max: usize, f: impl FnMut(&Thread)) -> Option<usize> {
    let threads = THREADS.try_lock()?;
    threads.values().take(max).map(|t| &**t).for_each(f);
    Some(threads.len())
}

pub fn all_processes() -> Vec<Arc<Process>> {
    PROCESSES.lock().values().cloned().collect()
}

/// Ends the calling thread. The last thread of a process ends the process: its resources are
/// released, its children go to init, and its parent is told. Never returns.
pub fn exit_thread(code: i32) -> ! {
    let t = current_arc();
    let p = t.process.clone();
    t.exit_code.store(code, Relaxed);
    crate::job_control::on_thread_exit(&t);
    release_vfork_parent(&t);
    crate::futex::thread_exit_cleanup(&t);
    crate::rseq::on_thread_exit(&t);
    p.dead_cpu_ns.fetch_add(t.cpu_time_ns(), Relaxed);
    THREADS.lock().remove(&t.tid);
    THREAD_COUNT.fetch_sub(1, Relaxed);
    let last = {
        let mut threads = p.threads.lock();
        threads.retain(|x| !Arc::ptr_eq(x, &t));
        threads.is_empty()
    };
    if last {
        let wstatus = p
            .group_exit
            .lock()
            .unwrap_or(signal::wstatus_exited(code as u8));
        exit_process(&p, wstatus);
    }
    drop(p);
    t.set_state(State::Dead);
    drop(t);
    sched::schedule();
    unreachable!("a dead thread was scheduled");
}

/// Starts a group exit with `wstatus` (first one wins), tells the other threads, and ends the
/// caller.
pub fn exit_group(wstatus: u32) -> ! {
    let t = current();
    {
        let mut g = t.process.group_exit.lock();
        if g.is_none() {
            *g = Some(wstatus);
            t.process.exiting.store(true, Relaxed);
        }
    }
    kill_other_threads(&t.process, t.tid);
    exit_thread(0)
}

/// Makes every other thread of `p` exit at its next return to user space (or now, if it is
/// blocked).
pub fn kill_other_threads(p: &Arc<Process>, except_tid: u32) {
    let others: Vec<Arc<Thread>> = p
        .threads
        .lock()
        .iter()
        .filter(|x| x.tid != except_tid)
        .cloned()
        .collect();
    for o in others {
        // Not a SIGKILL: that would end the whole process, including the caller (execve).
        o.must_exit.store(true, Relaxed);
        o.note_return_work();
        sched::wake(&o);
        crate::arch::apic::kick_cpu(o.cpu.load(Relaxed));
    }
}

fn exit_process(p: &Arc<Process>, wstatus: u32) {
    debug!("process {} exits with wait status {wstatus:#x}", p.pid);
    // Release what the process holds: files (pipe ends close), the address space.
    let files = core::mem::replace(
        &mut *p.files.lock(),
        Arc::new(Mutex::new(ktls_vfs::FdTable::new())),
    );
    drop(files);
    if p.pid == 1 {
        // The initial process is the whole run: report its status to the runner and stop.
        crate::boot::finish(signal::shell_status(wstatus));
    }
    // Orphans go to init.
    let orphans: Vec<Arc<Process>> = core::mem::take(&mut *p.children.lock());
    // Children that asked for it (PR_SET_PDEATHSIG) learn that their parent died.
    for c in orphans.iter().filter(|c| c.zombie.lock().is_none()) {
        let sig = c.pdeathsig.load(Relaxed);
        if sig != 0 {
            crate::signal::send_to_process(c, sig, None);
        }
    }
    if !orphans.is_empty() {
        if let Some(init) = find_process(1) {
            for c in orphans {
                c.ppid.store(1, Relaxed);
                let zombie = c.zombie.lock().is_some();
                init.children.lock().push(c);
                if zombie {
                    init.child_wait.wake_all();
                }
            }
        }
    }
    *p.zombie.lock() = Some(wstatus);
    let parent = find_process(p.ppid.load(Relaxed));
    if let Some(parent) = parent {
        let sig = p.exit_signal.load(Relaxed);
        if sig != 0 {
            crate::signal::send_to_process(
                &parent,
                sig,
                Some(crate::signal::SigInfo::child(p.pid, wstatus)),
            );
        }
        parent.child_wait.wake_all();
    }
}

/// A vfork child thread that execs or exits lets its parent go on.
pub fn release_vfork_parent(t: &Thread) {
    if let Some(v) = t.vfork_done.lock().take() {
        v.complete();
    }
}

/// Removes a reaped zombie from the tables.
pub fn reap(parent: &Process, child: &Arc<Process>) {
    let cpu = child.cpu_time_ns() + child.children_cpu_ns.load(Relaxed);
    parent.children_cpu_ns.fetch_add(cpu, Relaxed);
    parent.children.lock().retain(|c| !Arc::ptr_eq(c, child));
    PROCESSES.lock().remove(&child.pid);
}

/// The per-CPU "current thread" pointer: one counted reference to the running thread is held
/// in the per-CPU block (taken in `set`, released when replaced).
mod current_ptr {
    use super::Thread;
    use crate::arch::percpu;
    use alloc::sync::Arc;

    pub fn set(t: &Arc<Thread>) {
        let new = Arc::into_raw(t.clone()) as u64;
        let old = percpu::get().current_raw();
        percpu::get().set_current_raw(new);
        if old != 0 {
            // SAFETY: `old` came from Arc::into_raw in an earlier `set` and is released once.
            // The scheduler's queue still holds the thread across the switch, so this is
            // never the last reference while the thread's stack is in use.
            drop(unsafe { Arc::from_raw(old as *const Thread) });
        }
    }

    #[inline(always)]
    pub fn get() -> Option<&'static Thread> {
        let p = percpu::current_raw() as *const Thread;
        // SAFETY: the per-CPU block owns a counted reference to this thread (see `set`), which
        // lives at least until another thread becomes current on this CPU, i.e. longer than
        // any use by the running thread itself.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    pub fn get_arc() -> Option<Arc<Thread>> {
        let p = percpu::get().current_raw() as *const Thread;
        if p.is_null() {
            return None;
        }
        // SAFETY: as for `get`; the new reference is counted.
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    }
}
