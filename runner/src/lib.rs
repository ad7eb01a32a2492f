//! The ktls runner: builds the kernel, packs a program into an initramfs and runs it on ktls in
//! QEMU, following `spec/boot-protocol.md`.
//!
//! The `ktls` binary is a thin command line over this library (see [`cli`]); the test harness
//! (`tests/`) uses the library directly:
//!
//! ```no_run
//! use ktls_runner::{run_captured, Input, RunConfig};
//! use std::path::Path;
//!
//! let mut cfg = RunConfig::default();
//! cfg.stdin = Input::Bytes(b"hello\n".to_vec());
//! cfg.timeout = Some(std::time::Duration::from_secs(60));
//! let out = run_captured(&cfg, Path::new("/bin/busybox"), &["cat".into()]).unwrap();
//! assert_eq!(out.status, 0);
//! assert_eq!(out.stdout, b"hello\n");
//! ```
//!
//! # What a run does
//!
//! 1. [`kernel_path`] builds `ktls-kernel` for `x86_64-unknown-none` (once per process; the
//!    `KTLS_KERNEL` environment variable names a prebuilt kernel instead).
//! 2. The program is looked up (a name without `/` in the runner's `PATH`, like a shell does)
//!    and packed at its canonical absolute host path into a cpio initramfs, with all parent
//!    directories, the [`RunConfig::adds`] and the boot request `/.ktls/{exe,argv,envp,cwd}`.
//!    `argv[0]` is the program as given. The working directory is the host's one
//!    ([`RunConfig::cwd`]) if that directory exists in the guest tree, else `/`.
//! 3. QEMU starts with the spec's command line; its three serial ports and its monitor connect
//!    to unix sockets the runner listens on in a fresh temporary directory (removed
//!    afterwards).
//! 4. COM1 output is the program's stdout, COM2 its stderr; COM3 carries the kernel log and the
//!    control lines (`@ktls exit N`, `@ktls panic` or `@ktls hang` ... `@ktls end`, `@strace ...`).
//! 5. The run's status is the program's (from `@ktls exit N`), or 125 (kernel panic, QEMU died
//!    without `@ktls exit`), or 124 (timeout: before killing QEMU, the runner injects an NMI
//!    through the monitor and collects the kernel's hang report, [`Outcome::hang_report`]).
//!    Failures of the runner itself (build, packing, starting QEMU) are a [`RunError`]
//!    (status 126).
//!
//! To run many programs, [`run_script`] runs them one after another in a single boot (through
//! a small init, see [`script`]) and returns each one's status and output.
//!
//! A kernel panic report ([`Outcome::panic_report`]) and a hang report
//! ([`Outcome::hang_report`]) come with their kernel code addresses symbolized
//! (`function+offset` and source lines, see [`symbolize`]).
//!
//! Every function here is safe to call from many threads at once: each run has its own
//! temporary directory and sockets, and the kernel build happens once behind a lock.
//!
//! # Environment variables
//!
//! * `KTLS_KERNEL=/path`: use this kernel ELF instead of building one.
//! * `KTLS_QEMU=/path`: the QEMU binary (default `qemu-system-x86_64` from `PATH`).

pub mod accel;
pub mod bench;
pub mod build;
pub mod cli;
pub mod console;
pub mod host;
pub mod initramfs;
mod log_port;
mod monitor;
pub mod qemu;
pub mod script;
pub mod status;
pub mod symbolize;
mod util;

pub use accel::{Accel, AccelChoice, AccelDecision, HostFacts};
pub use build::{demo_path, kernel_path, shim_demo_path, workspace_root};
pub use host::{compare, run_host, Comparison, HostOutcome};
pub use initramfs::Add;
pub use qemu::{run_captured, run_streaming};
pub use script::{
    run_script, run_script_commands, CommandOutcome, ExitMode, ScriptCommand, ScriptOutcome,
};

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The environment a program gets when nobody says otherwise.
pub const DEFAULT_ENV: [(&str, &str); 2] =
    [("PATH", "/bin:/usr/bin:/sbin:/usr/sbin"), ("HOME", "/")];

/// How to run a program. `RunConfig::default()` is what `ktls run` does without options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Number of CPUs (`-smp`), at least 1. Default 1.
    pub smp: u32,
    /// Guest memory in MiB (`-m`), at least 1. Default 256.
    pub mem_mib: u64,
    /// Extra host files and directories to put in the guest tree, in order (later ones win).
    pub adds: Vec<Add>,
    /// The program's complete environment, in order. Default: [`DEFAULT_ENV`].
    /// [`RunConfig::set_env`] adds or overrides one variable.
    pub env: Vec<(OsString, OsString)>,
    /// Adds the kernel command-line word `strace`; the records land in [`Outcome::strace`]
    /// (and on stderr with [`run_streaming`]).
    pub strace: bool,
    /// Also write the kernel log (the non-control lines of COM3) to this file.
    pub kernel_log: Option<PathBuf>,
    /// KVM or TCG; see [`accel`].
    pub accel: AccelChoice,
    /// Extra kernel command-line words (each non-empty, without whitespace).
    pub kernel_args: Vec<String>,
    /// The program's console input.
    pub stdin: Input,
    /// Kill QEMU after this long (after asking the kernel for its hang report, which adds up
    /// to [`qemu::HANG_REPORT_WAIT`]); the run then has status 124, [`Outcome::timed_out`] and
    /// normally [`Outcome::hang_report`].
    pub timeout: Option<Duration>,
    /// The QEMU machine type.
    pub machine: Machine,
    /// The host working directory: relative program paths are resolved against it, it is the
    /// guest's working directory if it exists in the guest tree, and [`run_host`] runs there.
    /// `None`: the runner's own working directory.
    pub cwd: Option<PathBuf>,
    /// Extra QEMU arguments, appended after the spec's command line (e.g. `-icount`,
    /// `shift=0,sleep=off` for the benchmarks). Not checked: QEMU rejects what it does not know.
    pub extra_qemu_args: Vec<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            smp: 1,
            mem_mib: 256,
            adds: Vec::new(),
            env: DEFAULT_ENV
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
            strace: false,
            kernel_log: None,
            accel: AccelChoice::Auto,
            kernel_args: Vec::new(),
            stdin: Input::Null,
            timeout: None,
            machine: Machine::Microvm,
            cwd: None,
            extra_qemu_args: Vec::new(),
        }
    }
}

impl RunConfig {
    /// Sets `key` to `value` in [`RunConfig::env`], in place if it is already there.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.env.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Checks the values a user can get wrong; [`run_captured`] and friends call it first.
    pub fn validate(&self) -> Result<(), RunError> {
        use std::os::unix::ffi::OsStrExt;
        if self.smp == 0 || self.smp > 255 {
            return Err(RunError::Usage(format!(
                "--smp must be between 1 and 255, not {}",
                self.smp
            )));
        }
        if self.mem_mib == 0 {
            return Err(RunError::Usage("--mem must be at least 1M".into()));
        }
        for w in &self.kernel_args {
            if w.is_empty() || w.chars().any(char::is_whitespace) {
                return Err(RunError::Usage(format!(
                    "kernel argument {w:?} must be one non-empty word without whitespace"
                )));
            }
        }
        for (k, v) in &self.env {
            let (k, v) = (k.as_bytes(), v.as_bytes());
            if k.is_empty() || k.contains(&b'=') || k.contains(&0) || v.contains(&0) {
                return Err(RunError::Usage(format!(
                    "bad environment variable {:?}={:?} (the name must be non-empty without '=', \
                     and neither may contain a NUL byte)",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )));
            }
        }
        if let Some(t) = self.timeout {
            if t.is_zero() {
                return Err(RunError::Usage("--timeout must be positive".into()));
            }
        }
        Ok(())
    }
}

/// What the program reads from its console (COM1).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Input {
    /// Nothing: end of file right away (like `< /dev/null`).
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// The runner's own stdin, forwarded as it arrives, then end of file. Meant for the command
    /// line: a thread keeps reading the process's stdin until it ends.
    Inherit,
}

/// The QEMU machine type (`-M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Machine {
    /// `-M microvm,rtc=on` (the default).
    #[default]
    Microvm,
    /// `-M pc`.
    Pc,
}

impl Machine {
    pub fn parse(s: &str) -> Option<Machine> {
        match s {
            "microvm" => Some(Machine::Microvm),
            "pc" => Some(Machine::Pc),
            _ => None,
        }
    }

    /// The value of QEMU's `-M`.
    pub fn qemu_arg(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm,rtc=on",
            Machine::Pc => "pc",
        }
    }
}

/// The result of a run on ktls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The runner's exit status for this run: the program's status (from `@ktls exit N`, 0-255,
    /// 128+N for death by signal N), 125 (kernel panic or QEMU ended without `@ktls exit`) or 124
    /// (timeout). See [`status`].
    pub status: i32,
    /// What the program wrote to the console (COM1). Empty with [`run_streaming`].
    pub stdout: Vec<u8>,
    /// What the program wrote to stderr (COM2). Empty with [`run_streaming`].
    pub stderr: Vec<u8>,
    /// The text of each `@strace` line, in order.
    pub strace: Vec<String>,
    /// The kernel log: every non-control line of COM3 (and unknown `@` lines), each followed by
    /// a newline.
    pub kernel_log: String,
    /// The lines between `@ktls panic` and `@ktls end`, if the kernel panicked, with kernel
    /// code addresses annotated by [`symbolize::annotate`] (`#N 0x... function+0xoff at
    /// file:line`; lines are only added to, never changed).
    pub panic_report: Option<String>,
    /// After a timeout, the kernel's hang report (the lines between `@ktls hang` and `@ktls
    /// end`: each CPU's interrupted code, the run queues, the thread table with each thread's
    /// syscall and wait site), annotated as [`Outcome::panic_report`] is. `None` if the run
    /// did not time out or the kernel did not answer (then [`Outcome::message`] says so).
    pub hang_report: Option<String>,
    /// The run was killed because of [`RunConfig::timeout`].
    pub timed_out: bool,
    /// `@ktls boot` was seen.
    pub booted: bool,
    /// `@ktls exit N` was seen (then `status` is N unless the kernel also panicked).
    pub exited: bool,
    /// Why `status` is not the program's own, when it is not (panic, crash, timeout), in words.
    pub message: Option<String>,
    /// QEMU's own stdout and stderr (warnings, errors).
    pub qemu_output: String,
    /// The accelerator the run used.
    pub accel: Accel,
}

/// A failure of the runner itself (not of the program or the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A bad option value or configuration (exit status 2).
    Usage(String),
    /// The program could not be found or read on the host (exit status 126).
    Program(String),
    /// Building the kernel or the demo failed; the message holds cargo's output (126).
    Build(String),
    /// Packing the initramfs failed (126).
    Pack(String),
    /// QEMU could not be started or quit before connecting its serial ports (126).
    Qemu(String),
    /// Another I/O failure of the runner (126).
    Io(String),
}

impl RunError {
    /// The `ktls` command's exit status for this error: 2 for usage errors, else 126.
    pub fn exit_status(&self) -> i32 {
        match self {
            RunError::Usage(_) => status::USAGE,
            _ => status::RUNNER_FAILED,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Usage(m) => write!(f, "{m}"),
            RunError::Program(m) => write!(f, "{m}"),
            RunError::Build(m) => write!(f, "build failed: {m}"),
            RunError::Pack(m) => write!(f, "could not pack the initramfs: {m}"),
            RunError::Qemu(m) => write!(f, "could not run QEMU: {m}"),
            RunError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RunError {}
