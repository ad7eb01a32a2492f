//! rseq (Linux's restartable sequences) and KTLS, the per-thread area the kernel keeps
//! current for user space (spec/ktls.md; layouts and argument checks in `ktls_abi::{rseq,
//! ktls}`, which this module only applies).
//!
//! A registered thread carries an "event" flag, set when it is switched out, migrated or gets
//! a signal. At the next return to user space the kernel first looks at the active critical
//! section (aborting it if the thread's IP is inside), then rewrites the id fields
//! (cpu_id_start, cpu_id, node_id, mm_cid) if they changed. KTLS fields (live word, tid, pid,
//! credentials) are written at registration, at thread creation and when credentials change.

use crate::arch::entry::TrapFrame;
use crate::mm::uaccess::UserPtr;
use crate::process::{self, Process, Thread};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use ktls_abi::ktls::{self, Caller, ProcessKtls, RseqCall, ThreadReg, KTLS_LIVE};
use ktls_abi::rseq::{self as abi, CsAction, RseqCs, RSEQ_CPU_ID_UNINITIALIZED};
use ktls_abi::signal::SIGSEGV;
use ktls_abi::Errno;
use spin::Mutex;

/// The KTLS level this kernel plays (`ktls_level=K`); MAX_LEVEL by default.
static LEVEL: AtomicU32 = AtomicU32::new(ktls::MAX_LEVEL);

pub fn set_level(level: u32) {
    LEVEL.store(level, Relaxed);
}

/// AT_KTLS_FEATURE_SIZE: the end of the last field of the level this kernel fills.
pub fn advertised_size() -> u32 {
    ktls::feature_size(LEVEL.load(Relaxed))
}

/// The auxv entries for rseq and KTLS, after Linux's.
pub fn auxv() -> alloc::vec::Vec<(u64, u64)> {
    use ktls_abi::auxv::*;
    alloc::vec![
        (AT_RSEQ_FEATURE_SIZE, abi::RSEQ_FEATURE_SIZE as u64),
        (AT_RSEQ_ALIGN, abi::RSEQ_ALLOC_ALIGN as u64),
        (AT_KTLS_FEATURE_SIZE, advertised_size() as u64),
        (AT_KTLS_ALIGN, ktls::KTLS_ALIGN as u64),
    ]
}

/// Per-thread rseq state.
#[derive(Default)]
pub struct ThreadRseq {
    pub reg: Mutex<Option<ThreadReg>>,
    /// Preempted, migrated or signalled since the ids were last written.
    pub event: AtomicBool,
    /// The area's tid/pid/credentials must be rewritten (a fork child's copy, a vfork parent).
    identity_stale: AtomicBool,
    /// The CPU last written to the area (u32::MAX: none yet).
    written_cpu: AtomicU32,
    /// The thread's mm_cid, held from its first use until the thread exits (u32::MAX: none).
    cid: AtomicU32,
}

impl ThreadRseq {
    pub fn new() -> Self {
        ThreadRseq {
            reg: Mutex::new(None),
            event: AtomicBool::new(false),
            identity_stale: AtomicBool::new(false),
            written_cpu: AtomicU32::new(u32::MAX),
            cid: AtomicU32::new(u32::MAX),
        }
    }

    fn registration(&self) -> Option<ThreadReg> {
        *self.reg.lock()
    }

    fn force_update(&self) {
        self.written_cpu.store(u32::MAX, Relaxed);
        self.event.store(true, Relaxed);
    }
}

/// Per-process KTLS parameters and mm_cid allocation.
#[derive(Default)]
pub struct ProcessRseq {
    pub ktls: Mutex<Option<ProcessKtls>>,
    /// Bit n set: mm_cid n is taken by a thread of the process.
    cids: Mutex<u64>,
}

impl ProcessRseq {
    pub fn new() -> Self {
        ProcessRseq {
            ktls: Mutex::new(None),
            cids: Mutex::new(0),
        }
    }
}

/// Offsets of the fields the kernel writes in the rseq head.
const OFF_CPU_ID_START: u64 = core::mem::offset_of!(abi::Rseq, cpu_id_start) as u64;
const OFF_CPU_ID: u64 = core::mem::offset_of!(abi::Rseq, cpu_id) as u64;
const OFF_RSEQ_CS: u64 = core::mem::offset_of!(abi::Rseq, rseq_cs) as u64;
const OFF_NODE_ID: u64 = core::mem::offset_of!(abi::Rseq, node_id) as u64;
const OFF_MM_CID: u64 = core::mem::offset_of!(abi::Rseq, mm_cid) as u64;
const OFF_FLAGS: u64 = core::mem::offset_of!(abi::Rseq, flags) as u64;
const OFF_SLICE_CTRL: u64 = core::mem::offset_of!(abi::Rseq, slice_ctrl) as u64;

/// A KTLS area's head starts as Linux 7.0 sets it: no active critical section, no time-slice
/// extension offered (flags 0) or granted (slice_ctrl 0).
fn reset_head_state(area: u64) -> Result<(), Errno> {
    UserPtr::<u64>::new(area + OFF_RSEQ_CS).write(&0)?;
    put_u32(area + OFF_FLAGS, 0)?;
    put_u32(area + OFF_SLICE_CTRL, 0)
}

fn put_u32(addr: u64, v: u32) -> Result<(), Errno> {
    UserPtr::<u32>::new(addr).write(&v)
}

/// Writes every KTLS field (beyond the rseq head) that fits in the filled size, for thread
/// `tid` of process `p`.
fn write_ktls_fields(area: u64, filled: u32, tid: u32, p: &Process) -> Result<(), Errno> {
    let creds = *p.creds.lock();
    for f in ktls::fields_present(filled) {
        let v = match f.name {
            "ktls_live" => KTLS_LIVE,
            "tid" => tid,
            "pid" => p.pid,
            "uid" => creds.uid,
            "euid" => creds.euid,
            "gid" => creds.gid,
            "egid" => creds.egid,
            "sig_pending" => 0,
            _ => continue, // rseq head fields and user-written ones (sig_defer)
        };
        if f.offset >= ktls::KTLS_BASE {
            put_u32(area + f.offset as u64, v)?;
        }
    }
    Ok(())
}

/// The ids of the running thread: (cpu, node, mm_cid).
fn ids(t: &Thread) -> (u32, u32, u32) {
    let cpu = crate::arch::percpu::get().cpu_id();
    (cpu, 0, mm_cid(t))
}

/// The thread's compact concurrency id: the lowest id free in its process when it first needs
/// one, held until the thread exits. So ids are unique among the process's threads and below
/// the number of its live threads.
fn mm_cid(t: &Thread) -> u32 {
    let cur = t.rseq.cid.load(Relaxed);
    if cur != u32::MAX {
        return cur;
    }
    let mut cids = t.process.rseq.cids.lock();
    let id = (!*cids).trailing_zeros().min(63);
    *cids |= 1 << id;
    t.rseq.cid.store(id, Relaxed);
    id
}

fn release_cid(t: &Thread) {
    let cid = t.rseq.cid.swap(u32::MAX, Relaxed);
    if cid != u32::MAX && cid < 64 {
        *t.process.rseq.cids.lock() &= !(1u64 << cid);
    }
}

/// Writes cpu_id_start, cpu_id, node_id and mm_cid.
fn write_ids(area: u64, t: &Thread) -> Result<(), Errno> {
    let (cpu, node, cid) = ids(t);
    put_u32(area + OFF_CPU_ID_START, cpu)?;
    put_u32(area + OFF_CPU_ID, cpu)?;
    put_u32(area + OFF_NODE_ID, node)?;
    put_u32(area + OFF_MM_CID, cid)?;
    t.rseq.written_cpu.store(cpu, Relaxed);
    Ok(())
}

/// sys_rseq(addr, len, flags, sig).
pub fn sys_rseq(addr: u64, len: u64, flags: u64, sig: u64) -> Result<u64, Errno> {
    let t = process::current();
    let p = &t.process;
    let caller = Caller {
        fs_base: crate::arch::cpu::user_fs_base(),
        threads: p.thread_count() as u32,
    };
    let len32 = u32::try_from(len).map_err(|_| Errno::EINVAL)?;
    let call = ktls::check_rseq_call(
        addr,
        len32,
        flags as u32,
        sig as u32,
        t.rseq.registration(),
        *p.rseq.ktls.lock(),
        caller,
    )?;
    match call {
        RseqCall::Linux(abi::Action::Unregister) | RseqCall::UnregisterKtls => {
            let ktls = matches!(call, RseqCall::UnregisterKtls);
            // Linux resets the ids; a KTLS area is marked dead. An area that can no longer be
            // written is EFAULT and a SIGSEGV, as Linux's rseq_reset_ids.
            let reset = || -> Result<(), Errno> {
                put_u32(addr + OFF_CPU_ID_START, 0)?;
                put_u32(addr + OFF_CPU_ID, RSEQ_CPU_ID_UNINITIALIZED)?;
                put_u32(addr + OFF_NODE_ID, 0)?;
                put_u32(addr + OFF_MM_CID, 0)?;
                if ktls {
                    put_u32(addr + ktls::KTLS_BASE as u64, 0)?;
                }
                Ok(())
            };
            if let Err(e) = reset() {
                crate::signal::send_to_thread(&process::current_arc(), SIGSEGV, None);
                return Err(e);
            }
            *t.rseq.reg.lock() = None;
            t.rseq.written_cpu.store(u32::MAX, Relaxed);
            Ok(0)
        }
        RseqCall::Linux(abi::Action::Register { .. }) => {
            if !abi::access_ok(addr, len) {
                return Err(Errno::EFAULT);
            }
            write_ids(addr, t)?;
            UserPtr::<u64>::new(addr + OFF_RSEQ_CS).write(&0)?;
            *t.rseq.reg.lock() = Some(ThreadReg {
                reg: abi::Registration {
                    addr,
                    len: len32,
                    sig: sig as u32,
                },
                ktls: false,
            });
            Ok(0)
        }
        RseqCall::RegisterKtls { fix } => {
            if !abi::access_ok(addr, len) {
                return Err(Errno::EFAULT);
            }
            write_ids(addr, t)?;
            reset_head_state(addr)?;
            let filled = ktls::filled_size(len32, advertised_size());
            write_ktls_fields(addr, filled, t.tid, p)?;
            if let Some(fixed) = fix {
                *p.rseq.ktls.lock() = Some(fixed);
                // Every area of the process has this length, so this filled size.
                crate::vdso::publish_ktls(p, fixed, filled);
            }
            *t.rseq.reg.lock() = Some(ThreadReg {
                reg: abi::Registration {
                    addr,
                    len: len32,
                    sig: sig as u32,
                },
                ktls: true,
            });
            Ok(0)
        }
    }
}

/// Called when a thread leaves its CPU (preemption, blocking, migration): one store, checked
/// at its next return to user space.
pub fn on_switch_out(t: &Thread) {
    t.rseq.event.store(true, Relaxed);
    t.note_return_work();
}

/// At the return to user space: abort an interrupted critical section, refresh the ids.
/// Anything wrong with the area or the descriptor kills the process with SIGSEGV, as Linux.
pub fn on_return_to_user(frame: &mut TrapFrame) {
    let t = process::current();
    if !t.rseq.event.swap(false, Relaxed) {
        return;
    }
    let Some(reg) = t.rseq.registration() else {
        return;
    };
    let mut ok =
        fixup_critical_section(frame, reg.reg).is_ok() && refresh_ids(t, reg.reg.addr).is_ok();
    if ok && reg.ktls && t.rseq.identity_stale.swap(false, Relaxed) {
        let filled = ktls::filled_size(reg.reg.len, advertised_size());
        ok = write_ktls_fields(reg.reg.addr, filled, t.tid, &t.process).is_ok();
    }
    if !ok {
        process::exit_group(ktls_abi::signal::wstatus_signaled(SIGSEGV));
    }
}

fn refresh_ids(t: &Thread, area: u64) -> Result<(), Errno> {
    let cpu = crate::arch::percpu::get().cpu_id();
    if t.rseq.written_cpu.load(Relaxed) != cpu {
        write_ids(area, t)?;
    }
    Ok(())
}

/// Linux's rseq_ip_fixup: if the IP is inside the active critical section, send the thread to
/// the abort handler (after checking the signature before it) and clear rseq_cs.
fn fixup_critical_section(frame: &mut TrapFrame, reg: abi::Registration) -> Result<(), ()> {
    let cs_ptr = UserPtr::<u64>::new(reg.addr + OFF_RSEQ_CS)
        .read()
        .map_err(|_| ())?;
    if cs_ptr == 0 {
        return Ok(());
    }
    abi::check_cs_addr(cs_ptr).map_err(|_| ())?;
    let cs = UserPtr::<RseqCs>::new(cs_ptr).read().map_err(|_| ())?;
    match abi::cs_action(frame.rip, &cs).map_err(|_| ())? {
        CsAction::Clear => {}
        CsAction::Abort { abort_ip } => {
            let found = UserPtr::<u32>::new(abort_ip - 4).read().map_err(|_| ())?;
            abi::check_abort_signature(found, reg.sig).map_err(|_| ())?;
            frame.rip = abort_ip;
        }
    }
    // The section is over either way: clear the pointer (Linux clears it lazily too).
    UserPtr::<u64>::new(reg.addr + OFF_RSEQ_CS)
        .write(&0)
        .map_err(|_| ())
}

/// Before a signal frame is built: a signal interrupts a critical section like preemption.
pub fn on_signal_delivery(frame: &mut TrapFrame) -> Result<(), ()> {
    let t = process::current();
    let Some(reg) = t.rseq.registration() else {
        return Ok(());
    };
    fixup_critical_section(frame, reg.reg)
}

/// clone3 with CLONE_RSEQ_KTLS: checks the flags and writes the new thread's area at
/// `tls + offset` (in our address space, which the child shares) before the child exists, so
/// a failure fails the clone with nothing to undo. Returns the registration to give the child.
pub fn prepare_ktls_child(
    parent: &Thread,
    flags: u64,
    tls: u64,
    child_tid: u32,
) -> Result<ThreadReg, Errno> {
    use ktls_abi::clone::CloneFlags;
    let needed = CloneFlags::THREAD.bits() | CloneFlags::SETTLS.bits();
    if flags & needed != needed {
        return Err(Errno::EINVAL);
    }
    let pk = (*parent.process.rseq.ktls.lock()).ok_or(Errno::EINVAL)?;
    if tls == 0 {
        return Err(Errno::EINVAL);
    }
    let area = tls.wrapping_add(pk.offset as u64);
    if !area.is_multiple_of(ktls::KTLS_ALIGN as u64) {
        return Err(Errno::EINVAL);
    }
    if !abi::access_ok(area, pk.len as u64) {
        return Err(Errno::EFAULT);
    }
    // Ids are written for real at the child's first return to user space.
    reset_head_state(area)?;
    put_u32(area + OFF_CPU_ID_START, 0)?;
    put_u32(area + OFF_CPU_ID, RSEQ_CPU_ID_UNINITIALIZED)?;
    put_u32(area + OFF_NODE_ID, 0)?;
    put_u32(area + OFF_MM_CID, 0)?;
    write_ktls_fields(
        area,
        ktls::filled_size(pk.len, advertised_size()),
        child_tid,
        &parent.process,
    )?;
    Ok(ThreadReg {
        reg: abi::Registration {
            addr: area,
            len: pk.len,
            sig: pk.sig,
        },
        ktls: true,
    })
}

/// A new thread's registration: the prepared KTLS area, or the parent's for fork-like
/// children (Linux: not for CLONE_VM; KTLS also for vfork), else none.
pub fn init_child(parent: &Thread, child: &Thread, flags: u64, ktls_reg: Option<ThreadReg>) {
    let reg = ktls_reg.or_else(|| {
        parent.rseq.registration().filter(|r| {
            if r.ktls {
                ktls::ktls_inherited(flags)
            } else {
                ktls::rseq_inherited(flags)
            }
        })
    });
    if let Some(r) = reg {
        *child.rseq.reg.lock() = Some(r);
        child.rseq.identity_stale.store(r.ktls, Relaxed);
        child.rseq.force_update();
        child.note_return_work();
    }
    if flags & ktls_abi::clone::CloneFlags::VM.bits() == 0 {
        *child.process.rseq.ktls.lock() = *parent.process.rseq.ktls.lock();
    }
}

/// After a vfork child released us: our area (which the child used) says who we are again.
pub fn after_vfork(parent: &Thread) {
    if parent.rseq.registration().is_some_and(|r| r.ktls) {
        parent.rseq.identity_stale.store(true, Relaxed);
        parent.rseq.force_update();
        parent.note_return_work();
    }
}

/// execve: no registration and no KTLS parameters survive.
pub fn on_exec(t: &Thread) {
    *t.rseq.reg.lock() = None;
    t.rseq.written_cpu.store(u32::MAX, Relaxed);
    *t.process.rseq.ktls.lock() = None;
}

/// Thread exit: the registration ends (the memory may be gone, so nothing is written).
pub fn on_thread_exit(t: &Thread) {
    *t.rseq.reg.lock() = None;
    release_cid(t);
}

/// Credentials changed: rewrite them in every live KTLS area of the process (all threads
/// share our address space, so the current thread can write them all).
pub fn on_creds_changed(p: &Process) {
    let threads = p.threads.lock().clone();
    for t in threads {
        if let Some(r) = t.rseq.registration().filter(|r| r.ktls) {
            let filled = ktls::filled_size(r.reg.len, advertised_size());
            if write_ktls_fields(r.reg.addr, filled, t.tid, p).is_err() {
                // The area is no longer writable: the thread retries at its return to user
                // space, where a failed store is SIGSEGV (Linux's rule for rseq's stores).
                t.rseq.identity_stale.store(true, Relaxed);
                t.rseq.event.store(true, Relaxed);
                t.note_return_work();
            }
        }
    }
}

/// Signal deferral (KTLS level 2): whether the thread asked to hold back asynchronous signals;
/// if so, `sig_pending` is set so it knows to make a syscall once it clears `sig_defer`.
pub fn defers_signals(t: &Thread) -> bool {
    let Some(r) = t.rseq.registration().filter(|r| r.ktls) else {
        return false;
    };
    let filled = ktls::filled_size(r.reg.len, advertised_size());
    let (Some(defer), Some(pending)) = (ktls::field("sig_defer"), ktls::field("sig_pending"))
    else {
        return false;
    };
    if pending.end() > filled {
        return false;
    }
    match UserPtr::<u32>::new(r.reg.addr + defer.offset as u64).read() {
        Ok(v) if v != 0 => {
            let _ = put_u32(r.reg.addr + pending.offset as u64, 1);
            true
        }
        Ok(_) => {
            let _ = put_u32(r.reg.addr + pending.offset as u64, 0);
            false
        }
        Err(_) => false,
    }
}
