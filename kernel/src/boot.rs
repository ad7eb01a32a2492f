//! The boot request (spec/boot-protocol.md): kernel options from the command line, and the
//! program to run from `/.ktls/` in the initramfs; then the first process.

use crate::arch::entry::{self, TrapFrame};
use crate::process::{self, Process, Thread};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

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

/// What to run: `/.ktls/{exe,argv,envp,cwd}`.
pub struct Request {
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub initrd: &'static [u8],
}

/// Strings each followed by a NUL (an unterminated last one is taken as is).
fn split_nul(data: &[u8]) -> Vec<Vec<u8>> {
    if data.is_empty() {
        return Vec::new();
    }
    let body = data.strip_suffix(&[0]).unwrap_or(data);
    body.split(|&b| b == 0).map(|s| s.to_vec()).collect()
}

impl Request {
    pub fn from_initramfs(initrd: &'static [u8]) -> Result<Request, String> {
        let mut r = Request {
            exe: Vec::new(),
            argv: Vec::new(),
            envp: Vec::new(),
            cwd: b"/".to_vec(),
            initrd,
        };
        let mut seen_exe = false;
        for e in ktls_cpio::entries(initrd) {
            let e = e.map_err(|e| alloc::format!("initramfs: {e}"))?;
            match e.name {
                b".ktls/exe" => {
                    r.exe = e.data.to_vec();
                    seen_exe = true;
                }
                b".ktls/argv" => r.argv = split_nul(e.data),
                b".ktls/envp" => r.envp = split_nul(e.data),
                b".ktls/cwd" => r.cwd = e.data.to_vec(),
                _ => {}
            }
        }
        if !seen_exe {
            return Err("no /.ktls/exe in the initramfs".into());
        }
        if r.argv.is_empty() {
            r.argv.push(r.exe.clone());
        }
        Ok(r)
    }
}

/// Reports the initial process's status to the runner and stops the machine.
pub fn finish(status: u8) -> ! {
    crate::log::write_line(format_args!("@ktls exit {status}"));
    crate::arch::cpu::qemu_exit(0)
}

/// Loads the requested program as process 1 and enters it.
pub fn start_init(req: &Request) -> ! {
    let name = String::from_utf8_lossy(&req.exe);
    let Some(file) = find_file(req.initrd, &req.exe) else {
        error!("ktls: {name}: no such file");
        finish(127);
    };
    let argv: Vec<&[u8]> = req.argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = req.envp.iter().map(|a| a.as_slice()).collect();
    let creds = process::Creds::default();
    let image = match crate::exec::load(file, &req.exe, &argv, &envp, &creds) {
        Ok(i) => i,
        Err(e) => {
            error!("ktls: cannot run {name}: {e}");
            finish(if e == ktls_abi::Errno::ENOENT {
                127
            } else {
                126
            });
        }
    };
    let pid = process::alloc_id();
    let proc = Process::new(pid, 0, image.mm, req.exe.clone());
    let thread = Thread::new(pid, proc);
    process::switch_to(&thread);
    info!("ktls: starting {name} (pid {pid}) at {:#x}", image.entry);
    entry::enter_user(
        thread.kernel_stack_top(),
        &TrapFrame::new_user(image.entry, image.sp),
    )
}

fn find_file(initrd: &'static [u8], path: &[u8]) -> Option<&'static [u8]> {
    let want = ktls_cpio::normalize_name(path);
    ktls_cpio::entries(initrd)
        .flatten()
        .find(|e| e.name == want && e.is_file())
        .map(|e| e.data)
}
