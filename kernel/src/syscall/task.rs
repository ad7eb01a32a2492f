//! Creating, replacing, waiting for and signalling processes and threads; credentials;
//! affinity; the signal-state syscalls that need the scheduler.

use super::SysResult;
use crate::arch::entry::TrapFrame;
use crate::arch::switch;
use crate::fs::Ctx;
use crate::mm::uaccess::{self, read_cstr, UserPtr};
use crate::process::{self, current, current_arc, Process, ProcessParts, Thread};
use crate::signal::{self, SigInfo};
use crate::{exec, job_control, sched};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::fs::PATH_MAX;
use ktls_abi::signal::*;
use ktls_abi::time::Timespec;
use ktls_abi::Errno;
use spin::Mutex;

// Clone flags (include/uapi/linux/sched.h).
const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_DETACHED: u64 = 0x400000;
const CLONE_NEWNS: u64 = 0x20000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// Namespace and cgroup flags: not supported here.
const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x80
    | 0x2_0000_0000;

/// What clone and clone3 ask for, decoded.
pub struct CloneRequest {
    pub flags: u64,
    pub exit_signal: u32,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
    /// Where CLONE_PIDFD stores the pidfd (clone: the parent_tid argument).
    pub pidfd: u64,
}

pub fn clone(
    frame: &TrapFrame,
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
) -> SysResult {
    let req = CloneRequest {
        flags: flags & !CSIGNAL,
        exit_signal: (flags & CSIGNAL) as u32,
        stack,
        parent_tid,
        child_tid,
        tls,
        pidfd: parent_tid,
    };
    // The pidfd and the parent's tid would go to the same place.
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err(Errno::EINVAL);
    }
    do_clone(frame, req)
}

/// struct clone_args sizes (CLONE_ARGS_SIZE_VER0..2).
const CLONE_ARGS_VER0: u64 = 64;

pub fn clone3(frame: &TrapFrame, args: u64, size: u64) -> SysResult {
    if size < CLONE_ARGS_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > ktls_abi::PAGE_SIZE as u64 {
        return Err(Errno::E2BIG);
    }
    let mut raw = alloc::vec![0u8; size as usize];
    uaccess::copy_from_user(&mut raw, args)?;
    // Linux's copy_struct_from_user: unknown trailing bytes must be zero.
    if raw.len() > 88 && raw[88..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    raw.resize(88.max(raw.len()), 0);
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) = (
        word(0),
        word(1),
        word(2),
        word(3),
        word(4),
        word(5),
        word(6),
        word(7),
    );
    let (set_tid_size, cgroup) = (word(9), word(10));
    if exit_signal > NSIG as u64 || flags & CSIGNAL != 0 || set_tid_size != 0 || cgroup != 0 {
        return Err(Errno::EINVAL);
    }
    // Linux's known clone3 flags, plus ours.
    let known = ktls_abi::clone::CLONE3_LINUX_FLAGS | ktls_abi::clone::CLONE_RSEQ_KTLS;
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    // Linux reads `pidfd` only with CLONE_PIDFD (glibc fills it in regardless).
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 && pidfd == parent_tid {
        return Err(Errno::EINVAL);
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let req = CloneRequest {
        flags,
        exit_signal: exit_signal as u32,
        stack: if stack != 0 { stack + stack_size } else { 0 },
        parent_tid,
        child_tid,
        tls,
        pidfd,
    };
    do_clone(frame, req)
}

pub fn fork(frame: &TrapFrame) -> SysResult {
    do_clone(
        frame,
        CloneRequest {
            flags: 0,
            exit_signal: SIGCHLD,
            stack: 0,
            parent_tid: 0,
            child_tid: 0,
            tls: 0,
            pidfd: 0,
        },
    )
}

pub fn vfork(frame: &TrapFrame) -> SysResult {
    let req = CloneRequest {
        flags: CLONE_VM | CLONE_VFORK,
        exit_signal: SIGCHLD,
        stack: 0,
        parent_tid: 0,
        child_tid: 0,
        tls: 0,
        pidfd: 0,
    };
    do_clone(frame, req)
}

fn do_clone(frame: &TrapFrame, req: CloneRequest) -> SysResult {
    let f = req.flags;
    // Linux's checks in copy_process.
    if f & CLONE_NAMESPACES != 0 {
        return super::unimplemented_op("clone with namespace or cgroup flags", f);
    }
    if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_CLEAR_SIGHAND != 0 && f & CLONE_SIGHAND != 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SETTLS != 0 && req.tls >= crate::mm::addrspace::USER_TOP {
        return Err(Errno::EPERM);
    }
    if f & CLONE_PIDFD != 0 {
        if f & CLONE_DETACHED != 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_THREAD != 0 {
            // A pidfd for a thread (PIDFD_THREAD, Linux 6.9) is not implemented.
            return super::unimplemented_op("clone with CLONE_PIDFD | CLONE_THREAD", f);
        }
    }
    let parent_thread = current_arc();
    let parent = parent_thread.process.clone();
    check_nproc(&parent)?;
    crate::mm::heap::admit()?;
    let tid = process::alloc_id();
    let ktls_reg = if f & ktls_abi::clone::CLONE_RSEQ_KTLS != 0 {
        Some(crate::rseq::prepare_ktls_child(
            &parent_thread,
            f,
            req.tls,
            tid,
        )?)
    } else {
        None
    };

    let mut pidfd = None;
    let process = if f & CLONE_THREAD != 0 {
        parent.clone()
    } else {
        let mm = if f & CLONE_VM != 0 {
            parent.mm()
        } else {
            Arc::new(Mutex::new(parent.mm().lock().duplicate()?))
        };
        let files = if f & CLONE_FILES != 0 {
            parent.files()
        } else {
            Arc::new(Mutex::new(parent.files().lock().clone()))
        };
        let sigactions = if f & CLONE_SIGHAND != 0 {
            parent.sigactions()
        } else {
            let mut a = *parent.sigactions().lock();
            if f & CLONE_CLEAR_SIGHAND != 0 {
                for act in a.iter_mut().filter(|x| x.handler != SIG_IGN) {
                    *act = KSigaction::default();
                }
            }
            Arc::new(Mutex::new(a))
        };
        let ppid = if f & CLONE_PARENT != 0 {
            parent.ppid.load(Relaxed)
        } else {
            parent.pid
        };
        let child = Process::new(
            tid,
            ppid,
            ProcessParts {
                mm,
                files,
                cwd: parent.cwd.lock().clone(),
                exe: parent.exe.lock().clone(),
                creds: *parent.creds.lock(),
                sigactions,
                rlimits: *parent.rlimits.lock(),
                umask: parent.umask.load(Relaxed),
            },
        );
        child.pgid.store(parent.pgid.load(Relaxed), Relaxed);
        child.sid.store(parent.sid.load(Relaxed), Relaxed);
        child.exit_signal.store(req.exit_signal, Relaxed);
        child.nice.store(parent.nice.load(Relaxed), Relaxed);
        if f & CLONE_PIDFD != 0 {
            // The pidfd's number is stored before the child can be seen (a failed store
            // leaves no child), and the descriptor goes if the clone fails later.
            match install_pidfd(&parent, &child, req.pidfd) {
                Ok(fd) => pidfd = Some(fd),
                Err(e) => {
                    process::reap(&parent, &child);
                    return Err(e);
                }
            }
        }
        match process::find_process(ppid) {
            Some(pp) => pp.children.lock().push(child.clone()),
            None => parent.children.lock().push(child.clone()),
        }
        child
    };

    let thread = match Thread::new(tid, process.clone()) {
        Ok(t) => t,
        Err(e) => {
            if f & CLONE_THREAD == 0 {
                // Undo the half-made process: it never ran.
                process::reap(&parent, &process);
                if let Some(pp) = process::find_process(process.ppid.load(Relaxed)) {
                    process::reap(&pp, &process);
                }
            }
            if let Some(fd) = pidfd {
                let _ = parent.files().lock().close(fd);
            }
            return Err(e);
        }
    };
    if f & CLONE_THREAD != 0 {
        job_control::join_group_stop(&parent_thread, &thread);
    }
    thread
        .sigmask
        .store(parent_thread.sigmask.load(Relaxed), Relaxed);
    *thread.comm.lock() = parent_thread.comm.lock().clone();
    thread
        .affinity
        .store(parent_thread.affinity.load(Relaxed), Relaxed);
    thread.cpu.store(parent_thread.cpu.load(Relaxed), Relaxed);
    // The child's FPU state and GS base are the parent's; FS too unless CLONE_SETTLS.
    parent_thread.save_user_state();
    thread.fs_base.store(
        if f & CLONE_SETTLS != 0 {
            req.tls
        } else {
            parent_thread.fs_base.load(Relaxed)
        },
        Relaxed,
    );
    thread
        .gs_base
        .store(parent_thread.gs_base.load(Relaxed), Relaxed);
    if f & CLONE_THREAD == 0 {
        // A new process keeps the parent's alternate signal stack (a thread starts without).
        *thread.altstack.lock() = *parent_thread.altstack.lock();
    }
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if req.stack != 0 {
        child_frame.rsp = req.stack;
    }

    // Linux ignores a failed store of the new tid (the clone still succeeds).
    if f & CLONE_PARENT_SETTID != 0 {
        let _ = UserPtr::<u32>::new(req.parent_tid).write(&tid);
    }
    if f & CLONE_CHILD_SETTID != 0 {
        // In the child's memory: the same as ours unless the address space was copied.
        let mm = process.mm();
        let _ = mm.lock().write_bytes(req.child_tid, &tid.to_le_bytes());
    }
    if f & CLONE_CHILD_CLEARTID != 0 {
        thread.clear_child_tid.store(req.child_tid, Relaxed);
    }
    crate::rseq::init_child(&parent_thread, &thread, f, ktls_reg);
    let sp = switch::new_thread_stack(thread.kernel_stack_top(), &child_frame);
    thread.saved_rsp.store(sp, Relaxed);
    let vfork = (f & CLONE_VFORK != 0).then(process::VforkDone::new);
    if let Some(v) = &vfork {
        *thread.vfork_done.lock() = Some(v.clone());
    }
    sched::enqueue(thread);
    if let Some(v) = vfork {
        // The parent sleeps until the child thread execs or exits (for a CLONE_THREAD child
        // too), or until the parent is killed; other signals do not end this wait.
        v.wait();
        crate::rseq::after_vfork(&parent_thread);
    }
    Ok(tid as u64)
}

/// CLONE_PIDFD: a pidfd for `child` in the parent's table (close-on-exec), its number
/// stored at `ptr`. EFAULT (and no descriptor) if the store fails.
fn install_pidfd(parent: &Process, child: &Arc<Process>, ptr: u64) -> Result<i32, Errno> {
    let file = crate::pidfd::open_file(parent, child, false);
    let files = parent.files();
    let fd = files.lock().insert(file, true)?;
    if let Err(e) = UserPtr::<i32>::new(ptr).write(&fd) {
        let _ = files.lock().close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// RLIMIT_NPROC counts the threads of the caller's real user; as on Linux, root is exempt
/// (the system-wide thread limit still applies to everyone).
fn check_nproc(p: &Process) -> Result<(), Errno> {
    let uid = p.creds.lock().uid;
    if uid == 0 {
        return Ok(());
    }
    let limit = p.rlimits.lock()[ktls_abi::mm::RLIMIT_NPROC as usize].rlim_cur;
    let used: usize = process::all_processes()
        .iter()
        .filter(|q| q.creds.lock().uid == uid)
        .map(|q| q.thread_count())
        .sum();
    if used as u64 >= limit {
        return Err(Errno::EAGAIN);
    }
    Ok(())
}

/// Reads a NULL-terminated array of string pointers (argv/envp), with Linux's limits.
fn read_string_array(ptr: u64) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if ptr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        if i >= ktls_abi::mm::MAX_ARG_STRINGS {
            return Err(Errno::E2BIG);
        }
        let p = UserPtr::<u64>::new(ptr).add(i).read()?;
        if p == 0 {
            break;
        }
        let s = read_cstr(p, ktls_abi::mm::MAX_ARG_STRLEN).map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::E2BIG
            } else {
                e
            }
        })?;
        total += s.len() + 1 + 8;
        if total as u64 > ktls_loader::DEFAULT_ARG_LIMIT {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

pub fn execve(frame: &mut TrapFrame, path: u64, argv: u64, envp: u64) -> SysResult {
    crate::mm::heap::admit()?;
    let path = read_cstr(path, PATH_MAX)?;
    let argv = read_string_array(argv)?;
    let envp = read_string_array(envp)?;
    let t = current_arc();
    let p = t.process.clone();
    let creds = *p.creds.lock();
    let (file, abs) = {
        let ctx = Ctx::of(&p);
        let cwd = p.cwd.lock().clone();
        crate::fs::read_executable(&ctx, &cwd, &path)?
    };
    let image = {
        let argv_refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        let envp_refs: Vec<&[u8]> = envp.iter().map(|a| a.as_slice()).collect();
        exec::load(file.bytes(), &path, &argv_refs, &envp_refs, &creds)?
    };
    // Point of no return: the other threads go (and we wait until they have, as Linux's
    // de_thread), then the new image replaces the old.
    process::kill_other_threads(&p, t.tid);
    while p.thread_count() > 1 {
        if p.is_exiting() || t.must_exit.load(Relaxed) {
            // Another thread's exit_group or execve won the race: we go too, after dropping
            // what we hold (exit_thread never returns, so nothing held here would be freed:
            // the loaded image's memory, and the thread and process themselves).
            drop((image, file, abs, argv, envp, path, t, p));
            process::exit_thread(0);
        }
        sched::sleep_until(crate::time::monotonic_ns() + 1_000_000);
    }
    let new_mm = Arc::new(Mutex::new(image.mm));
    new_mm.lock().activate();
    p.mm_root.store(new_mm.lock().root_phys(), Relaxed);
    let old_mm = core::mem::replace(&mut *p.mm.lock(), new_mm);
    drop(old_mm);
    process::release_vfork_parent(&t);
    *t.comm.lock() = path
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or(&path)
        .iter()
        .take(15)
        .copied()
        .collect();
    *p.exe.lock() = abs;
    p.files().lock().close_on_exec();
    {
        // Handlers are reset (their code is gone); ignored signals stay ignored.
        let actions = p.sigactions();
        let mut fresh = *actions.lock();
        for a in fresh.iter_mut() {
            if a.handler != SIG_IGN {
                *a = KSigaction::default();
            }
        }
        *p.sigactions.lock() = Arc::new(Mutex::new(fresh));
    }
    *t.altstack.lock() = StackT {
        ss_flags: SS_DISABLE,
        ..Default::default()
    };
    t.clear_child_tid.store(0, Relaxed);
    t.robust_list.store(0, Relaxed);
    crate::rseq::on_exec(&t);
    crate::arch::cpu::set_user_fs_base(0);
    crate::arch::cpu::set_user_gs_base(0);
    if let Some(fpu) = t.fpu.lock().as_mut() {
        fpu.reset();
    }
    *frame = TrapFrame::new_user(image.entry, image.sp);
    t.full_restore.store(true, Relaxed);
    t.note_return_work();
    // The new context's RAX, which syscall_entry stores.
    Ok(0)
}

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WEXITED: u64 = 4;
const WCONTINUED: u64 = 8;
const WNOWAIT: u64 = 0x0100_0000;
const WNOTHREAD: u64 = 0x2000_0000;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;

enum Which {
    Any,
    Pid(u32),
    Pgid(u32),
}

fn matches(c: &Process, which: &Which) -> bool {
    match which {
        Which::Any => true,
        Which::Pid(p) => c.pid == *p,
        Which::Pgid(g) => c.pgid.load(Relaxed) == *g,
    }
}

/// What a wait reports of a child.
#[derive(Clone, Copy)]
enum ChildEvent {
    /// It ended, with this wait status.
    Exited(u32),
    /// It was stopped by this signal (WUNTRACED).
    Stopped(u32),
    /// It was continued (WCONTINUED).
    Continued,
}

impl ChildEvent {
    /// The status wait4 stores.
    fn wstatus(self) -> u32 {
        match self {
            ChildEvent::Exited(ws) => ws,
            ChildEvent::Stopped(sig) => (sig << 8) | 0x7f,
            ChildEvent::Continued => 0xffff,
        }
    }

    /// The siginfo waitid fills in (si_code, si_status).
    fn siginfo(self, pid: u32) -> SigInfo {
        match self {
            ChildEvent::Exited(ws) => SigInfo::child(pid, ws),
            ChildEvent::Stopped(sig) => SigInfo::sigchld(pid, CLD_STOPPED, sig as i32),
            ChildEvent::Continued => SigInfo::sigchld(pid, CLD_CONTINUED, SIGCONT as i32),
        }
    }
}

/// The event of `c` that a wait with `options` reports, in Linux's order (an exit, then a
/// stop, then a continue); with WNOWAIT it stays to be reported again, else an exited
/// child is reaped.
fn child_event(me: &Process, c: &Arc<Process>, options: u64) -> Option<ChildEvent> {
    let consume = options & WNOWAIT == 0;
    if options & WEXITED != 0 {
        if let Some(ws) = *c.zombie.lock() {
            if consume {
                process::reap(me, c);
            }
            return Some(ChildEvent::Exited(ws));
        }
    }
    if options & WUNTRACED != 0 {
        if let Some(sig) = job_control::stop_report(c, consume) {
            return Some(ChildEvent::Stopped(sig));
        }
    }
    if options & WCONTINUED != 0 && job_control::continue_report(c, consume) {
        return Some(ChildEvent::Continued);
    }
    None
}

/// Waits for an event of a child matching `which` (see `child_event`); returns the child's pid
/// and the event, or None for WNOHANG with no event yet.
fn wait_child(which: Which, options: u64) -> Result<Option<(u32, ChildEvent)>, Errno> {
    let me = current().process.clone();
    let result = me.child_wait.wait(true, || {
        let children = me.children.lock().clone();
        let mut any = false;
        for c in children.iter().filter(|c| matches(c, &which)) {
            any = true;
            if let Some(event) = child_event(&me, c, options) {
                return Some(Ok(Some((c.pid, event))));
            }
        }
        if !any {
            return Some(Err(Errno::ECHILD));
        }
        if options & WNOHANG != 0 {
            return Some(Ok(None));
        }
        None
    });
    result.map_err(|_| Errno::ERESTARTSYS)?
}

pub fn wait4(pid: u64, wstatus: u64, options: u64, rusage: u64) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
        return Err(Errno::EINVAL);
    }
    let pid = pid as i32;
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Pgid(current().process.pgid.load(Relaxed)),
        p if p < -1 => Which::Pgid(p.unsigned_abs()),
        p => Which::Pid(p as u32),
    };
    // wait4 always reports exits (Linux adds WEXITED).
    match wait_child(which, options | WEXITED)? {
        None => Ok(0),
        Some((cpid, event)) => {
            if wstatus != 0 {
                UserPtr::<u32>::new(wstatus).write(&event.wstatus())?;
            }
            if rusage != 0 {
                // struct rusage (144 bytes): no accounting yet, so all zero.
                uaccess::copy_to_user(rusage, &[0u8; 144])?;
            }
            Ok(cpid as u64)
        }
    }
}

const P_ALL: u64 = 0;
const P_PID: u64 = 1;
const P_PGID: u64 = 2;
const P_PIDFD: u64 = 3;

pub fn waitid(idtype: u64, id: u64, infop: u64, mut options: u64, rusage: u64) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE)
        != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    let mut pidfd_eagain = false;
    let which = match idtype {
        P_ALL => Which::Any,
        P_PID if id as i32 > 0 => Which::Pid(id as u32),
        P_PGID => Which::Pgid(if id == 0 {
            current().process.pgid.load(Relaxed)
        } else {
            id as u32
        }),
        P_PIDFD => {
            let (pid, nonblocking) = pidfd_target(id)?;
            if nonblocking {
                // A PIDFD_NONBLOCK pidfd waits as with WNOHANG, and says EAGAIN instead of
                // returning 0 while the child runs.
                options |= WNOHANG;
                pidfd_eagain = true;
            }
            Which::Pid(pid)
        }
        _ => return Err(Errno::EINVAL),
    };
    let found = wait_child(which, options)?;
    if found.is_none() && pidfd_eagain {
        return Err(Errno::EAGAIN);
    }
    let mut info = [0u8; 128];
    if let Some((cpid, event)) = found {
        let si = event.siginfo(cpid);
        info[0..4].copy_from_slice(&(SIGCHLD as i32).to_le_bytes());
        info[8..12].copy_from_slice(&si.code.to_le_bytes());
        info[16..20].copy_from_slice(&cpid.to_le_bytes());
        info[24..28].copy_from_slice(&si.status.to_le_bytes());
    }
    if infop != 0 {
        uaccess::copy_to_user(infop, &info)?;
    }
    if rusage != 0 {
        uaccess::copy_to_user(rusage, &[0u8; 144])?;
    }
    Ok(0)
}

/// The pid a pidfd names and whether the pidfd is O_NONBLOCK. EBADF if `fd` is not an open
/// pidfd (as Linux's pidfd_get_pid).
fn pidfd_target(fd: u64) -> Result<(u32, bool), Errno> {
    let fd = i32::try_from(fd as i64).map_err(|_| Errno::EBADF)?;
    let file = current().process.files().lock().get(fd)?;
    let pidfd = crate::pidfd::of_file(&file).ok_or(Errno::EBADF)?;
    Ok((pidfd.pid(), file.is_nonblocking()))
}

const PIDFD_NONBLOCK: u64 = ktls_abi::fs::O_NONBLOCK;
/// pidfd_open's flag for a pidfd naming a thread (O_EXCL), Linux 6.9.
const PIDFD_THREAD: u64 = 0o200;

/// pidfd_open(2): a pidfd (close-on-exec) for the process `pid`. EINVAL for unknown flags or
/// a pid <= 0, ENOENT for a thread that is not a process's first (as Linux 6.18), ESRCH if
/// there is no such process (a zombie still has one).
pub fn pidfd_open(pid: u64, flags: u64) -> SysResult {
    if flags & !(PIDFD_NONBLOCK | PIDFD_THREAD) != 0 {
        return Err(Errno::EINVAL);
    }
    let pid = pid as i32;
    if pid <= 0 {
        return Err(Errno::EINVAL);
    }
    if flags & PIDFD_THREAD != 0 {
        return super::unimplemented_op("pidfd_open with PIDFD_THREAD", flags);
    }
    crate::mm::heap::admit()?;
    let target = match process::find_process(pid as u32) {
        Some(p) => p,
        // A live thread's id, but not a process's.
        None if process::find_thread(pid as u32).is_some() => return Err(Errno::ENOENT),
        None => return Err(Errno::ESRCH),
    };
    let me = current().process.clone();
    let file = crate::pidfd::open_file(&me, &target, flags & PIDFD_NONBLOCK != 0);
    let fd = me.files().lock().insert(file, true)?;
    Ok(fd as u64)
}

/// pidfd_send_signal(2): kill(2) through a pidfd. `info`, if given, is the siginfo to send
/// (its si_signo must be `sig`; only the process itself may send codes >= 0 or SI_TKILL, as
/// those claim to come from kill or the kernel). Flags are Linux 6.9's PIDFD_SIGNAL_*,
/// which are not implemented.
pub fn pidfd_send_signal(fd: u64, sig: u64, info: u64, flags: u64) -> SysResult {
    let sig = check_signal(sig)?;
    let fd = i32::try_from(fd as i64).map_err(|_| Errno::EBADF)?;
    let file = current().process.files().lock().get(fd)?;
    let pidfd = crate::pidfd::of_file(&file).ok_or(Errno::EBADF)?;
    if flags != 0 {
        if flags & !0x7 != 0 {
            return Err(Errno::EINVAL);
        }
        return super::unimplemented_op("pidfd_send_signal flags", flags);
    }
    let target = pidfd.process().ok_or(Errno::ESRCH)?;
    let me = current();
    let mut si = SigInfo::user(sig, SI_USER, me.process.pid, me.process.creds.lock().uid);
    if info != 0 {
        let mut raw = [0u8; 128];
        uaccess::copy_from_user(&mut raw, info)?;
        let word = |i: usize| i32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
        if word(0) as u32 != sig {
            return Err(Errno::EINVAL);
        }
        let code = word(8);
        if !Arc::ptr_eq(&target, &me.process) && (code >= 0 || code == SI_TKILL) {
            return Err(Errno::EPERM);
        }
        si.code = code;
        si.pid = word(16) as u32;
        si.uid = word(20) as u32;
    }
    // A zombie takes the signal as kill(2) would find it: nothing happens.
    if sig != 0 && target.zombie.lock().is_none() {
        signal::send_to_process(&target, sig, Some(si));
    }
    Ok(0)
}

fn check_signal(sig: u64) -> Result<u32, Errno> {
    if sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(sig as u32)
}

pub fn kill(pid: u64, sig: u64) -> SysResult {
    let sig = check_signal(sig)?;
    let me = current();
    let info = SigInfo::user(sig, SI_USER, me.process.pid, me.process.creds.lock().uid);
    let pid = pid as i32;
    let targets: Vec<Arc<Process>> = match pid {
        p if p > 0 => vec_of(process::find_process(p as u32).filter(|p| p.zombie.lock().is_none())),
        0 => by_pgid(me.process.pgid.load(Relaxed)),
        -1 => process::all_processes()
            .into_iter()
            .filter(|p| p.pid > 1 && p.pid != me.process.pid)
            .collect(),
        p => by_pgid(p.unsigned_abs()),
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    for p in targets {
        signal::send_to_process(&p, sig, Some(info));
    }
    Ok(0)
}

fn vec_of(p: Option<Arc<Process>>) -> Vec<Arc<Process>> {
    p.into_iter().collect()
}

fn by_pgid(pgid: u32) -> Vec<Arc<Process>> {
    process::all_processes()
        .into_iter()
        .filter(|p| p.pgid.load(Relaxed) == pgid && p.zombie.lock().is_none())
        .collect()
}

pub fn tgkill(tgid: u64, tid: u64, sig: u64) -> SysResult {
    if tgid as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    send_to_tid(Some(tgid as u32), tid, sig)
}

pub fn tkill(tid: u64, sig: u64) -> SysResult {
    send_to_tid(None, tid, sig)
}

/// tgkill/tkill: a thread-directed signal, optionally checking the thread's group.
fn send_to_tid(tgid: Option<u32>, tid: u64, sig: u64) -> SysResult {
    if tid as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    let sig = check_signal(sig)?;
    let t = process::find_thread(tid as u32).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| t.process.pid != g) {
        return Err(Errno::ESRCH);
    }
    let me = current();
    let info = SigInfo::user(sig, SI_TKILL, me.process.pid, me.process.creds.lock().uid);
    signal::send_to_thread(&t, sig, Some(info));
    Ok(0)
}

pub fn rt_sigreturn(frame: &mut TrapFrame) -> SysResult {
    let t = current();
    if crate::signal_frame::sigreturn(t, frame).is_err() {
        process::exit_group(wstatus_signaled(SIGSEGV));
    }
    Ok(frame.rax)
}

pub fn rt_sigpending(set: u64, size: u64) -> SysResult {
    if size as usize > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let t = current();
    let pending = (t.pending.set() | t.process.shared_pending.set()) & t.sigmask.load(Relaxed);
    uaccess::copy_to_user(set, &pending.to_le_bytes()[..size as usize])?;
    Ok(0)
}

pub fn rt_sigsuspend(mask: u64, size: u64) -> SysResult {
    if size as usize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let new = UserPtr::<SigSet>::new(mask).read()? & !UNBLOCKABLE;
    let t = current();
    let old = t.sigmask.swap(new, Relaxed);
    // Sleep until a signal arrives; the handler runs with `new` in force, then sigreturn
    // restores `old` (saved in the frame via the restored mask below).
    sleep_until_signal(t);
    signal::set_restore_mask(t, old);
    Err(Errno::ERESTARTNOHAND)
}

/// pause: sleeps until a signal is delivered (a handler runs, or the process ends).
pub fn pause() -> SysResult {
    sleep_until_signal(current());
    Err(Errno::ERESTARTNOHAND)
}

fn sleep_until_signal(t: &crate::process::Thread) {
    while !signal::pending(t) {
        sched::sleep_unless(None, || signal::pending(t));
    }
}

pub fn rt_sigtimedwait(set: u64, info: u64, timeout: u64, size: u64) -> SysResult {
    if size as usize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let wanted = UserPtr::<SigSet>::new(set).read()? & !UNBLOCKABLE;
    let deadline = if timeout != 0 {
        let ts = UserPtr::<Timespec>::new(timeout).read()?;
        if !ts.is_valid() {
            return Err(Errno::EINVAL);
        }
        Some(crate::time::monotonic_ns().saturating_add(ts.to_nanos()))
    } else {
        None
    };
    let t = current();
    loop {
        if let Some(si) = t
            .pending
            .take(wanted)
            .or_else(|| t.process.shared_pending.take(wanted))
        {
            if info != 0 {
                let mut raw = [0u8; 128];
                raw[0..4].copy_from_slice(&(si.signo as i32).to_le_bytes());
                raw[8..12].copy_from_slice(&si.code.to_le_bytes());
                raw[16..20].copy_from_slice(&si.pid.to_le_bytes());
                raw[20..24].copy_from_slice(&si.uid.to_le_bytes());
                uaccess::copy_to_user(info, &raw)?;
            }
            return Ok(si.signo as u64);
        }
        if signal::deliverable(t) & !wanted != 0 || interrupted_otherwise(t) {
            return Err(Errno::EINTR);
        }
        if deadline.is_some_and(|d| crate::time::monotonic_ns() >= d) {
            return Err(Errno::EAGAIN);
        }
        // Woken by signal delivery (send_to_* wakes the thread), or at the deadline.
        sched::sleep_unless(deadline, || {
            (t.pending.set() | t.process.shared_pending.set()) & (wanted | signal::deliverable(t))
                != 0
                || interrupted_otherwise(t)
        });
    }
}

/// What ends sigtimedwait besides a signal: the thread being killed or its group stopping.
fn interrupted_otherwise(t: &Thread) -> bool {
    signal::being_killed(t) || t.job.stop_asked()
}

pub fn sched_yield() -> SysResult {
    sched::schedule();
    Ok(0)
}

pub fn sched_setaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    let t = thread_for(pid)?;
    let mut bytes = [0u8; 8];
    let n = (len as usize).min(8);
    uaccess::copy_from_user(&mut bytes[..n], mask)?;
    let m = u64::from_le_bytes(bytes) & sched::online_mask();
    if m == 0 {
        return Err(Errno::EINVAL);
    }
    sched::set_affinity(&t, m);
    Ok(0)
}

pub fn sched_getaffinity(pid: u64, len: u64, mask: u64) -> SysResult {
    let t = thread_for(pid)?;
    let ncpus = sched::online_cpus() as u64;
    // Linux: the buffer must hold nr_cpu_ids bits and be a whole number of longs.
    if len * 8 < ncpus || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let m = t.affinity.load(Relaxed) & sched::online_mask();
    UserPtr::<u64>::new(mask).write(&m)?;
    Ok(8)
}

fn thread_for(pid: u64) -> Result<Arc<Thread>, Errno> {
    if pid == 0 {
        Ok(current_arc())
    } else {
        process::find_thread(pid as u32).ok_or(Errno::ESRCH)
    }
}

pub fn getpgid(pid: u64) -> SysResult {
    let p = if pid == 0 {
        current().process.clone()
    } else {
        process::find_process(pid as u32).ok_or(Errno::ESRCH)?
    };
    Ok(p.pgid.load(Relaxed) as u64)
}

pub fn getsid(pid: u64) -> SysResult {
    let p = if pid == 0 {
        current().process.clone()
    } else {
        process::find_process(pid as u32).ok_or(Errno::ESRCH)?
    };
    Ok(p.sid.load(Relaxed) as u64)
}

pub fn setpgid(pid: u64, pgid: u64) -> SysResult {
    if (pgid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let me = current().process.clone();
    let p = if pid == 0 || pid as u32 == me.pid {
        me.clone()
    } else {
        let c = process::find_process(pid as u32).ok_or(Errno::ESRCH)?;
        if c.ppid.load(Relaxed) != me.pid {
            return Err(Errno::ESRCH);
        }
        c
    };
    let g = if pgid == 0 { p.pid } else { pgid as u32 };
    p.pgid.store(g, Relaxed);
    Ok(0)
}

pub fn setsid() -> SysResult {
    let p = current().process.clone();
    if p.pgid.load(Relaxed) == p.pid {
        return Err(Errno::EPERM);
    }
    p.sid.store(p.pid, Relaxed);
    p.pgid.store(p.pid, Relaxed);
    Ok(p.pid as u64)
}

const SCHED_OTHER: u64 = 0;
const SCHED_FIFO: u64 = 1;
const SCHED_RR: u64 = 2;
const SCHED_BATCH: u64 = 3;
const SCHED_IDLE: u64 = 5;
/// The time slice the scheduler gives (2 ticks of 10 ms).
const SLICE_NS: u64 = 20_000_000;

/// Policies this scheduler has: all non-real-time ones behave as SCHED_OTHER.
fn check_policy(policy: u64, prio: i32) -> Result<(), Errno> {
    match policy & !0x4000_0000 /* SCHED_RESET_ON_FORK */ {
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE if prio == 0 => Ok(()),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Err(Errno::EINVAL),
        SCHED_FIFO | SCHED_RR if !(1..=99).contains(&prio) => Err(Errno::EINVAL),
        SCHED_FIFO | SCHED_RR => {
            // Real-time scheduling is not implemented: say so rather than pretend.
            crate::log_once!("real-time scheduling policies are not implemented: EPERM");
            Err(Errno::EPERM)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_getscheduler(pid: u64) -> SysResult {
    if (pid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    thread_for(pid)?;
    Ok(SCHED_OTHER)
}

pub fn sched_setscheduler(pid: u64, policy: u64, param: u64) -> SysResult {
    if (pid as i64) < 0 || param == 0 {
        return Err(Errno::EINVAL);
    }
    let prio = UserPtr::<i32>::new(param).read()?;
    thread_for(pid)?;
    check_policy(policy, prio)?;
    Ok(0)
}

pub fn sched_getparam(pid: u64, param: u64) -> SysResult {
    if (pid as i64) < 0 || param == 0 {
        return Err(Errno::EINVAL);
    }
    thread_for(pid)?;
    UserPtr::<i32>::new(param).write(&0)?;
    Ok(0)
}

pub fn sched_setparam(pid: u64, param: u64) -> SysResult {
    if (pid as i64) < 0 || param == 0 {
        return Err(Errno::EINVAL);
    }
    let prio = UserPtr::<i32>::new(param).read()?;
    thread_for(pid)?;
    check_policy(SCHED_OTHER, prio)?;
    Ok(0)
}

pub fn sched_get_priority_max(policy: u64) -> SysResult {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(99),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_get_priority_min(policy: u64) -> SysResult {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(1),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_rr_get_interval(pid: u64, ts: u64) -> SysResult {
    if (pid as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    thread_for(pid)?;
    UserPtr::<Timespec>::new(ts).write(&Timespec::from_nanos(SLICE_NS))?;
    Ok(0)
}

const PRIO_PROCESS: u64 = 0;
const PRIO_PGRP: u64 = 1;
const PRIO_USER: u64 = 2;

fn prio_targets(which: u64, who: u64) -> Result<Vec<Arc<Process>>, Errno> {
    let me = current().process.clone();
    let who = who as u32;
    let v: Vec<Arc<Process>> = match which {
        PRIO_PROCESS if who == 0 => alloc::vec![me],
        PRIO_PROCESS => vec_of(process::find_process(who)),
        PRIO_PGRP => by_pgid(if who == 0 { me.pgid.load(Relaxed) } else { who }),
        PRIO_USER => {
            let uid = if who == 0 { me.creds.lock().uid } else { who };
            process::all_processes()
                .into_iter()
                .filter(|p| p.creds.lock().uid == uid)
                .collect()
        }
        _ => return Err(Errno::EINVAL),
    };
    if v.is_empty() {
        return Err(Errno::ESRCH);
    }
    Ok(v)
}

/// getpriority returns 20 - nice (the raw syscall never returns a negative value).
pub fn getpriority(which: u64, who: u64) -> SysResult {
    let best = prio_targets(which, who)?
        .iter()
        .map(|p| p.nice.load(Relaxed))
        .min()
        .unwrap_or(0);
    Ok((20 - best) as u64)
}

/// Nice values are kept and reported; this scheduler does not weight threads by them.
pub fn setpriority(which: u64, who: u64, prio: u64) -> SysResult {
    let nice = (prio as i32).clamp(-20, 19);
    let privileged = current().process.creds.lock().euid == 0;
    for p in prio_targets(which, who)? {
        if nice < p.nice.load(Relaxed) && !privileged {
            return Err(Errno::EACCES);
        }
        p.nice.store(nice, Relaxed);
    }
    Ok(0)
}
