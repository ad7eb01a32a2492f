//! Kernel options from the command line, and the start of the first process from the boot
//! request in the initramfs (spec/boot-protocol.md).

use crate::arch::entry::TrapFrame;
use crate::arch::switch;
use crate::mm::addrspace::AddressSpace;
use crate::process::{self, Creds, Process, ProcessParts, Thread};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use spin::Mutex;

/// Kernel command-line options.
pub struct Options {
    pub fsgsbase: bool,
}

impl Options {
    pub fn parse(cmdline: &str) -> Options {
        let mut o = Options { fsgsbase: true };
        for word in cmdline.split_ascii_whitespace() {
            match word {
                "strace" => crate::syscall::STRACE.store(true, Relaxed),
                "nofsgsbase" => o.fsgsbase = false,
                "fsgs_switch=wrmsr" => crate::arch::cpu::set_switch_with_msrs(),
                w if w.starts_with("ktls_level=") => {
                    match ktls_abi::ktls::parse_level_option(&w[11..]) {
                        Some(l) => crate::rseq::set_level(l),
                        None => warn!(
                            "bad option {w:?}: ktls_level takes 1..={}",
                            ktls_abi::ktls::MAX_LEVEL
                        ),
                    }
                }
                w if w.starts_with("loglevel=") => match w[9..].parse::<u8>() {
                    Ok(l) => crate::log::LEVEL.store(l, Relaxed),
                    Err(_) => warn!("bad option {w:?}"),
                },
                w => info!("unknown kernel option {w:?} ignored"),
            }
        }
        o
    }
}

/// Reports the initial process's status to the runner and stops the machine.
pub fn finish(status: u8) -> ! {
    crate::log::write_line(format_args!("@ktls exit {status}"));
    crate::arch::cpu::qemu_exit(0)
}

/// The kernel's own process (pid 0), owner of the idle threads.
static KERNEL_PROCESS: spin::Once<Arc<Process>> = spin::Once::new();

fn kernel_process() -> Arc<Process> {
    KERNEL_PROCESS
        .call_once(|| {
            let root = crate::fs::vfs().root().clone();
            Process::new(
                0,
                0,
                parts(
                    AddressSpace::new().expect("memory for pid 0"),
                    root,
                    Vec::new(),
                ),
            )
        })
        .clone()
}

fn parts(mm: AddressSpace, cwd: ktls_vfs::NodeRef, exe: Vec<u8>) -> ProcessParts {
    ProcessParts {
        mm: Arc::new(Mutex::new(mm)),
        files: Arc::new(Mutex::new(ktls_vfs::FdTable::new())),
        cwd,
        exe,
        creds: Creds::default(),
        sigactions: Arc::new(Mutex::new(
            [Default::default(); ktls_abi::signal::NSIG as usize],
        )),
        rlimits: process::default_rlimits(),
        umask: 0o022,
    }
}

/// Makes the running code this CPU's idle thread and joins the scheduler.
pub fn become_idle() {
    crate::sched::init_cpu(Thread::new_idle(kernel_process()));
}

/// Debug builds prove SMAP works: a kernel load from the new program's (mapped) stack
/// outside the copy layer must fault. Without SMAP the CPU cannot catch it; we say so.
fn smap_selftest(image: &crate::exec::Image) {
    image.mm.activate();
    let caught = crate::mm::uaccess::smap_selftest(image.sp);
    crate::boot::restore_kernel_address_space();
    match (crate::arch::cpu::smap_enabled(), caught) {
        (true, true) => info!("self-test: SMAP caught a stray kernel access to user memory"),
        (true, false) => panic!("self-test: SMAP is on but a stray kernel access to user memory went through"),
        (false, _) => info!("self-test: this CPU has no SMAP; stray kernel accesses to user memory cannot be caught"),
    }
}

/// Back to the kernel process's address space (after a self-test borrowed another).
pub fn restore_kernel_address_space() {
    kernel_process().mm().lock().activate();
}

/// Builds the file system, loads the requested program as process 1, and starts scheduling.
pub fn start(initrd: &'static [u8]) -> ! {
    let req = match crate::fs::init(initrd) {
        Ok(r) => r,
        Err(msg) => {
            error!("ktls: {msg}");
            finish(126);
        }
    };
    become_idle();
    // Every CPU is online before the first user instruction (sched::online_cpus is exact).
    crate::arch::smp::start_aps();
    let name = String::from_utf8_lossy(&req.exe).into_owned();
    let vfs = crate::fs::vfs();
    let ctx = ktls_vfs::KernelContext;
    let cwd = vfs
        .lookup_dir(&ctx, vfs.root(), &req.cwd)
        .unwrap_or_else(|_| vfs.root().clone());
    let (file, abs) = match crate::fs::read_executable(&ctx, &cwd, &req.exe) {
        Ok(f) => f,
        Err(e) => {
            error!("ktls: {name}: {e}");
            finish(
                if e == ktls_abi::Errno::ENOENT || e == ktls_abi::Errno::ENOTDIR {
                    127
                } else {
                    126
                },
            );
        }
    };
    let argv: Vec<&[u8]> = req.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = req.envp.iter().map(|a| a.as_slice()).collect();
    let image = match crate::exec::load(file.bytes(), &req.exe, &argv, &envp, &Creds::default()) {
        Ok(i) => i,
        Err(e) => {
            error!("ktls: cannot run {name}: {e}");
            finish(126);
        }
    };
    if cfg!(debug_assertions) {
        smap_selftest(&image);
    }
    let pid = process::alloc_id();
    let init = Process::new(pid, 0, parts(image.mm, cwd, abs));
    if let Err(e) = crate::fs::open_stdio(&init) {
        error!("ktls: cannot open the console: {e}");
        finish(126);
    }
    let thread = match Thread::new(pid, init) {
        Ok(t) => t,
        Err(e) => {
            error!("ktls: cannot create the first thread: {e}");
            finish(126);
        }
    };
    let sp = switch::new_thread_stack(
        thread.kernel_stack_top(),
        &TrapFrame::new_user(image.entry, image.sp),
    );
    thread.saved_rsp.store(sp, Relaxed);
    *thread.comm.lock() = req
        .exe
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or(&[])
        .iter()
        .take(15)
        .copied()
        .collect();
    info!("ktls: starting {name} (pid {pid}) at {:#x}", image.entry);
    crate::sched::enqueue(thread);
    crate::sched::idle_loop()
}
