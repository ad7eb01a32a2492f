//! Processes and threads.
//!
//! A `Process` owns what its threads share (address space, file table, working directory,
//! credentials, signal actions, limits); a `Thread` owns its kernel stack and per-thread
//! state. The running thread is found through the per-CPU block (`current()`), which holds a
//! pointer kept alive by the thread table for as long as the thread can run.

use crate::arch::entry::TrapFrame;
use crate::arch::{cpu, percpu};
use crate::mm::addrspace::AddressSpace;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
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
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
}

pub struct Process {
    pub pid: u32,
    pub ppid: AtomicU32,
    pub mm: Mutex<AddressSpace>,
    pub umask: AtomicU32,
    /// Absolute path of the executable (for /proc/self/exe and AT_EXECFN).
    pub exe: Mutex<Vec<u8>>,
    pub creds: Mutex<Creds>,
    pub sigactions: Mutex<[KSigaction; NSIG as usize]>,
    pub rlimits: Mutex<[Rlimit; RLIMIT_NLIMITS as usize]>,
}

pub struct Thread {
    pub tid: u32,
    pub process: Arc<Process>,
    kstack: Box<[u128]>,
    pub sigmask: AtomicU64,
    pub altstack: Mutex<StackT>,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    pub robust_list_len: AtomicU64,
    /// Set when a syscall rewrote the whole user context (execve, sigreturn): the return to
    /// user space must restore every register with iretq instead of sysretq.
    pub full_restore: AtomicBool,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// Every live thread, by tid: the owner of the Arc that `current()` borrows.
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

impl Process {
    pub fn new(pid: u32, ppid: u32, mm: AddressSpace, exe: Vec<u8>) -> Arc<Self> {
        Arc::new(Process {
            pid,
            ppid: AtomicU32::new(ppid),
            mm: Mutex::new(mm),
            umask: AtomicU32::new(0o022),
            exe: Mutex::new(exe),
            creds: Mutex::new(Creds::default()),
            sigactions: Mutex::new([KSigaction::default(); NSIG as usize]),
            rlimits: Mutex::new(default_rlimits()),
        })
    }
}

impl Thread {
    pub fn new(tid: u32, process: Arc<Process>) -> Arc<Self> {
        let words = KERNEL_STACK_SIZE / core::mem::size_of::<u128>();
        let t = Arc::new(Thread {
            tid,
            process,
            kstack: alloc::vec![0u128; words].into_boxed_slice(),
            sigmask: AtomicU64::new(0),
            altstack: Mutex::new(StackT {
                ss_flags: signal::SS_DISABLE,
                ..Default::default()
            }),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            robust_list_len: AtomicU64::new(0),
            full_restore: AtomicBool::new(false),
        });
        THREADS.lock().insert(tid, t.clone());
        t
    }

    /// One past the highest byte of this thread's kernel stack (16-byte aligned).
    pub fn kernel_stack_top(&self) -> u64 {
        self.kstack.as_ptr() as u64 + (self.kstack.len() * 16) as u64
    }
}

/// The running thread.
pub fn current() -> &'static Thread {
    try_current().expect("no current thread")
}

pub fn try_current() -> Option<&'static Thread> {
    let p = percpu::get().current_raw() as *const Thread;
    // SAFETY: the per-CPU pointer is set by `switch_to` from an Arc held in THREADS, which
    // keeps the thread alive until it has exited and been switched away from for good.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Makes `t` the running thread on this CPU: its address space, kernel stack and identity.
pub fn switch_to(t: &Arc<Thread>) {
    let pc = percpu::get();
    pc.set_current_raw(Arc::as_ptr(t) as u64);
    pc.set_kernel_stack(t.kernel_stack_top());
    t.process.mm.lock().activate();
}

/// Ends the whole process (exit_group) with a wait status.
pub fn exit_group(wstatus: u32) -> ! {
    let t = current();
    let pid = t.process.pid;
    debug!("process {pid} exits with wait status {wstatus:#x}");
    if pid == 1 {
        // The initial process is the whole run: report its status to the runner and stop.
        crate::log::write_line(format_args!("@ktls exit {}", signal::shell_status(wstatus)));
        cpu::qemu_exit(0);
    }
    panic!("process {pid} exited, but only the initial process is supported so far");
}

/// A fault in user mode with no way to deliver the signal: the process dies of it.
pub fn fatal_signal(sig: u32, frame: &TrapFrame) -> ! {
    debug!(
        "pid {}: fatal signal {sig} at rip {:#x} (vector {}, error {:#x})",
        current().process.pid,
        frame.rip,
        frame.vector,
        frame.error_code
    );
    exit_group(signal::wstatus_signaled(sig))
}
