//! Running a program on ktls in QEMU (spec/boot-protocol.md).

use crate::accel::{self, Accel, HostFacts};
use crate::console;
use crate::initramfs;
use crate::log_port::{self, LogEvents};
use crate::monitor::{self, Monitor};
use crate::status::{self, HangReport, RunFacts};
use crate::util::{self, TempDir};
use crate::{build, Input, Machine, Outcome, RunConfig, RunError};
use std::ffi::{OsStr, OsString};
use std::io::{LineWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long QEMU may take to connect its serial ports before the runner gives up (when no
/// shorter `timeout` is set).
pub const START_LIMIT: Duration = Duration::from_secs(60);
/// How long QEMU may keep running after `@ktls exit` before the runner kills it.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);
/// After a timeout, how long the runner waits for the kernel's hang report.
pub const HANG_REPORT_WAIT: Duration = Duration::from_secs(3);

/// The QEMU binary: `$KTLS_QEMU`, else `qemu-system-x86_64`.
pub fn qemu_binary() -> OsString {
    std::env::var_os("KTLS_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into())
}

/// The kernel command line for `cfg`: `strace` if asked for, then the extra words.
pub fn kernel_cmdline(cfg: &RunConfig) -> String {
    let mut words: Vec<&str> = Vec::new();
    if cfg.strace {
        words.push("strace");
    }
    words.extend(cfg.kernel_args.iter().map(String::as_str));
    words.join(" ")
}

/// Everything on QEMU's command line.
#[derive(Clone, Debug)]
pub struct QemuSetup<'a> {
    pub machine: Machine,
    pub accel: Accel,
    pub mem_mib: u64,
    pub smp: u32,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub append: &'a str,
    /// The unix sockets of COM1 (console), COM2 (stderr), COM3 (log) and the monitor, in that
    /// order.
    pub sockets: [&'a Path; 4],
}

/// QEMU's arguments, as in the spec's *Machine* section.
pub fn qemu_args(s: &QemuSetup) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |x: &dyn AsRef<OsStr>| a.push(x.as_ref().to_owned());
    push(&"-M");
    push(&s.machine.qemu_arg());
    for x in s.accel.qemu_args() {
        push(&x);
    }
    push(&"-m");
    push(&format!("{}M", s.mem_mib));
    push(&"-smp");
    push(&s.smp.to_string());
    for x in ["-nodefaults", "-nographic", "-no-reboot"] {
        push(&x);
    }
    if s.machine == Machine::Pc {
        // SeaBIOS would print its banner on COM1, which is the program's stdout.
        push(&"-fw_cfg");
        push(&"name=etc/sercon-port,string=0");
    }
    push(&"-kernel");
    push(&s.kernel);
    push(&"-initrd");
    push(&s.initrd);
    push(&"-append");
    push(&s.append);
    let chardev = |id: &str, path: &Path| {
        let mut v = OsString::from(format!("socket,id={id},path="));
        // QEMU option values escape ',' by doubling it.
        let escaped = path.as_os_str().to_string_lossy().replace(',', ",,");
        v.push(escaped);
        v
    };
    push(&"-chardev");
    push(&chardev("con", s.sockets[0]));
    push(&"-serial");
    push(&"chardev:con");
    push(&"-chardev");
    push(&chardev("err", s.sockets[1]));
    push(&"-device");
    push(&"isa-serial,chardev=err,iobase=0x2f8,irq=3");
    push(&"-chardev");
    push(&chardev("log", s.sockets[2]));
    push(&"-device");
    push(&"isa-serial,chardev=log,iobase=0x3e8,irq=5");
    push(&"-chardev");
    push(&chardev("mon", s.sockets[3]));
    push(&"-mon");
    push(&"chardev=mon,mode=readline");
    push(&"-device");
    push(&"isa-debug-exit,iobase=0xf4,iosize=4");
    a
}

/// Runs `program` with `args` on ktls and captures everything: the program's stdout and stderr,
/// the strace records, the kernel log, a panic report. `program` is looked up as a shell does
/// (see [`initramfs::resolve_program`]); `argv[0]` is `program` as given.
///
/// `Ok` means the run happened, whatever its status (see [`Outcome::status`]); `Err` means the
/// runner could not do it (bad configuration, missing program, failed kernel build, QEMU
/// failing to start). Safe to call from several threads at once.
pub fn run_captured(
    cfg: &RunConfig,
    program: &Path,
    args: &[OsString],
) -> Result<Outcome, RunError> {
    run(cfg, program, args, false)
}

/// Like [`run_captured`], but the program's stdout and stderr go to this process's stdout and
/// stderr as they arrive, and `@strace` records (text only) to stderr; the [`Outcome`]'s
/// `stdout`, `stderr` and `strace` stay empty. This is what `ktls run` does.
pub fn run_streaming(
    cfg: &RunConfig,
    program: &Path,
    args: &[OsString],
) -> Result<Outcome, RunError> {
    run(cfg, program, args, true)
}

fn io_err(what: &str) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(format!("{what}: {e}"))
}

fn run(
    cfg: &RunConfig,
    program: &Path,
    args: &[OsString],
    streaming: bool,
) -> Result<Outcome, RunError> {
    cfg.validate()?;
    let cwd = match &cfg.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir().map_err(io_err("the current directory"))?,
    };
    let exe = initramfs::resolve_program(
        program.as_os_str(),
        &cwd,
        std::env::var_os("PATH").as_deref(),
    )?;
    let mut argv = vec![program.as_os_str().to_owned()];
    argv.extend(args.iter().cloned());
    let assembly = initramfs::assemble(&exe, argv, cfg.env.clone(), &cwd, &cfg.adds)?;
    run_assembly(cfg, &assembly, streaming)
}

/// Boots ktls with the initramfs of `assembly` (everything of a run after the program was
/// found and the tree assembled; `cfg` must be valid). Also used by [`crate::script`].
pub(crate) fn run_assembly(
    cfg: &RunConfig,
    assembly: &initramfs::Assembly,
    streaming: bool,
) -> Result<Outcome, RunError> {
    let kernel = build::kernel_path()?;
    let accel = accel::decide(cfg.accel, &HostFacts::probe()).accel;

    let tmp = TempDir::new("run").map_err(io_err("creating a temporary directory"))?;
    let initrd = tmp.path().join("initramfs.cpio");
    initramfs::pack(assembly, &initrd)?;
    let log_file = match &cfg.kernel_log {
        Some(p) => Some(LineWriter::new(std::fs::File::create(p).map_err(|e| {
            RunError::Io(format!("--kernel-log {}: {e}", p.display()))
        })?)),
        None => None,
    };

    let socket_paths: Vec<PathBuf> = ["con", "err", "log", "mon"]
        .iter()
        .map(|n| tmp.path().join(format!("{n}.sock")))
        .collect();
    let listeners = socket_paths
        .iter()
        .map(|p| {
            let l = UnixListener::bind(p)
                .map_err(|e| RunError::Io(format!("listening on {}: {e}", p.display())))?;
            l.set_nonblocking(true)
                .map_err(io_err("setting up a serial socket"))?;
            Ok(l)
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    let append = kernel_cmdline(cfg);
    let mut qargs = qemu_args(&QemuSetup {
        machine: cfg.machine,
        accel,
        mem_mib: cfg.mem_mib,
        smp: cfg.smp,
        kernel: &kernel,
        initrd: &initrd,
        append: &append,
        sockets: [
            &socket_paths[0],
            &socket_paths[1],
            &socket_paths[2],
            &socket_paths[3],
        ],
    });
    qargs.extend(cfg.extra_qemu_args.iter().map(OsString::from));
    let started = Instant::now();
    let child = Command::new(qemu_binary())
        .args(&qargs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            RunError::Qemu(format!(
                "cannot start {}: {e} (install qemu-system-x86, or set KTLS_QEMU)",
                qemu_binary().to_string_lossy()
            ))
        })?;
    // From here on, every way out of this function kills QEMU if it still runs.
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    let qemu_out = collect_output(child);
    let show_cmdline = || {
        std::iter::once(qemu_binary())
            .chain(qargs.iter().cloned())
            .map(|a| util::shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    };

    let timeout_at = cfg.timeout.map(|t| started + t);
    let start_limit = started + START_LIMIT;
    let streams = match accept_all(&listeners, child, timeout_at, start_limit) {
        Ok(s) => s,
        Err(Accept::QemuExited(st)) => {
            let out = qemu_out.join();
            return Err(RunError::Qemu(format!(
                "QEMU exited ({st}) before connecting its serial ports:\n{}\ncommand: {}",
                out.trim_end(),
                show_cmdline()
            )));
        }
        Err(Accept::StartLimit) => {
            let _ = child.kill();
            let _ = child.wait();
            let out = qemu_out.join();
            return Err(RunError::Qemu(format!(
                "QEMU did not connect its serial ports within {} s:\n{}\ncommand: {}",
                START_LIMIT.as_secs(),
                out.trim_end(),
                show_cmdline()
            )));
        }
        Err(Accept::TimedOut) => {
            let _ = child.kill();
            let _ = child.wait();
            let facts = RunFacts {
                timed_out: true,
                timeout_secs: cfg.timeout.unwrap_or_default().as_secs_f64(),
                ..Default::default()
            };
            let (status, message) = status::decide(&facts);
            return Ok(Outcome {
                status,
                message,
                timed_out: true,
                qemu_output: qemu_out.join(),
                accel,
                ..Default::default()
            });
        }
        Err(Accept::Io(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Io(format!("accepting QEMU's connections: {e}")));
        }
    };
    let [con, err, log, mon] = streams;
    let mut monitor = Monitor::new(mon).map_err(io_err("duplicating the monitor socket"))?;

    // Console input: a detached thread (with `Input::Inherit` it may block on our stdin
    // forever; with bytes it ends when they are written or QEMU is gone).
    let con_in = con
        .try_clone()
        .map_err(io_err("duplicating the console socket"))?;
    let input = cfg.stdin.clone();
    std::thread::spawn(move || feed_console(con_in, input));

    let stdout_t = pump(con, streaming.then(|| Box::new(std::io::stdout()) as Sink));
    let stderr_t = pump(err, streaming.then(|| Box::new(std::io::stderr()) as Sink));
    let events = Arc::new(LogEvents::default());
    let log_t = {
        let events = events.clone();
        std::thread::spawn(move || log_port::read(log, streaming, log_file, &events))
    };

    let mut exit_seen_at: Option<Instant> = None;
    let exited = util::wait_for_exit(child, || {
        if exit_seen_at.is_none() && events.exit_seen.load(Ordering::Acquire) {
            exit_seen_at = Some(Instant::now());
        }
        let grace = exit_seen_at.map(|t| t + EXIT_GRACE);
        match (timeout_at, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    })
    .map_err(io_err("waiting for QEMU"))?;
    let timed_out = exited.is_none() && timeout_at.is_some_and(|t| Instant::now() >= t);
    let cpus_without_report = if timed_out {
        ask_for_hang_report(&mut monitor, &events, child)
    } else {
        None
    };
    let (qemu_status, killed) = match exited {
        Some(st) => (st, false),
        None => (
            util::kill_and_reap(child).map_err(io_err("killing QEMU"))?,
            true,
        ),
    };

    let stdout = stdout_t.join().unwrap_or_default();
    let stderr = stderr_t.join().unwrap_or_default();
    let log = log_t.join().unwrap_or_default();
    let qemu_output = qemu_out.join();

    // QEMU failing on its own (bad memory size, missing device...) before the kernel said
    // anything is a failure to start QEMU, not a kernel crash.
    let kernel_silent = !log.booted
        && log.text.is_empty()
        && log.exit_line.is_none()
        && log.panic.is_none()
        && log.hangs.is_empty()
        && log.strace.is_empty();
    let qemu_complained = qemu_output
        .lines()
        .any(|l| !l.trim().is_empty() && !l.contains("warning"));
    if !timed_out && !killed && kernel_silent && qemu_complained && qemu_status.code() != Some(0) {
        return Err(RunError::Qemu(format!(
            "QEMU failed ({qemu_status}) before the kernel started:\n{}\ncommand: {}",
            qemu_output.trim_end(),
            show_cmdline()
        )));
    }

    use std::os::unix::process::ExitStatusExt;
    let facts = RunFacts {
        timed_out,
        timeout_secs: cfg.timeout.unwrap_or_default().as_secs_f64(),
        hang_report: match (timed_out, log.hangs.is_empty()) {
            (false, _) => HangReport::NotAsked,
            (true, false) => HangReport::Came,
            (true, true) => HangReport::Missing,
        },
        exit_line: log.exit_line.clone(),
        panicked: log.panic.is_some(),
        booted: log.booted,
        qemu_code: qemu_status.code(),
        qemu_signal: qemu_status.signal(),
        killed_after_exit: killed && !timed_out,
    };
    let (status, mut message) = status::decide(&facts);
    if status == status::KERNEL_FAILED && !qemu_output.trim().is_empty() && !log.booted {
        if let Some(m) = &mut message {
            m.push_str(&format!("\nQEMU said:\n{}", qemu_output.trim_end()));
        }
    }
    if let (Some(m), Some(cpus)) = (&mut message, &cpus_without_report) {
        m.push('\n');
        m.push_str(&describe_cpus(cpus, &kernel));
    }
    let panic_report = log.panic.map(|r| r.symbolized(&kernel));
    let hang_report = (!log.hangs.is_empty()).then(|| {
        let reports: Vec<String> = log.hangs.iter().map(|r| r.symbolized(&kernel)).collect();
        reports.join("\n")
    });
    Ok(Outcome {
        status,
        stdout,
        stderr,
        strace: log.strace,
        kernel_log: log.text,
        panic_report,
        hang_report,
        timed_out,
        booted: log.booted,
        exited: log.exit_line.is_some(),
        message,
        qemu_output,
        accel,
    })
}

/// After a timeout: asks the kernel for its hang report (QEMU's `nmi`, an NMI on every CPU)
/// and waits for it at most [`HANG_REPORT_WAIT`]. If none began, returns each CPU's
/// instruction pointer as QEMU sees it instead (`None` if the monitor did not say either).
fn ask_for_hang_report(
    monitor: &mut Monitor,
    events: &LogEvents,
    child: &mut Child,
) -> Option<Vec<(u32, u64)>> {
    if monitor.send("nmi").is_ok() {
        let deadline = Instant::now() + HANG_REPORT_WAIT;
        while Instant::now() < deadline
            && !events.hang_ended.load(Ordering::Acquire)
            && matches!(child.try_wait(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if events.hang_started.load(Ordering::Acquire) {
        return None;
    }
    let answer = monitor
        .ask("info registers -a", Duration::from_secs(2))
        .ok()?;
    Some(monitor::rips(&answer)).filter(|r| !r.is_empty())
}

/// `QEMU's registers instead:` and a line per CPU with its instruction pointer, symbolized.
fn describe_cpus(cpus: &[(u32, u64)], kernel: &Path) -> String {
    let lines: Vec<String> = cpus
        .iter()
        .map(|(cpu, rip)| format!("  CPU {cpu}: rip {rip:#018x}"))
        .collect();
    let text = lines.join("\n");
    let text = crate::symbolize::symbolize_report(kernel, &text).unwrap_or(text);
    format!("QEMU's registers instead:\n{text}")
}

/// Kills and reaps the child when dropped, unless it has exited already.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

enum Accept {
    QemuExited(std::process::ExitStatus),
    StartLimit,
    TimedOut,
    Io(std::io::Error),
}

/// Accepts QEMU's four connections (in any order), watching QEMU and the clocks meanwhile.
fn accept_all(
    listeners: &[UnixListener],
    child: &mut Child,
    timeout_at: Option<Instant>,
    start_limit: Instant,
) -> Result<[UnixStream; 4], Accept> {
    let mut got: [Option<UnixStream>; 4] = Default::default();
    loop {
        for (l, slot) in listeners.iter().zip(got.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).map_err(Accept::Io)?;
                    *slot = Some(s);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Accept::Io(e)),
            }
        }
        if got.iter().all(Option::is_some) {
            return Ok(got.map(|s| s.expect("all accepted")));
        }
        if let Some(st) = child.try_wait().map_err(Accept::Io)? {
            return Err(Accept::QemuExited(st));
        }
        let now = Instant::now();
        if timeout_at.is_some_and(|t| now >= t) {
            return Err(Accept::TimedOut);
        }
        if now >= start_limit {
            return Err(Accept::StartLimit);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// QEMU's stdout and stderr, collected by two threads.
struct QemuOutput(Vec<JoinHandle<Vec<u8>>>);

impl QemuOutput {
    fn join(self) -> String {
        let mut all = Vec::new();
        for t in self.0 {
            all.extend(t.join().unwrap_or_default());
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

fn collect_output(child: &mut Child) -> QemuOutput {
    let mut threads = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        threads.push(std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = o.read_to_end(&mut v);
            v
        }));
    }
    if let Some(mut e) = child.stderr.take() {
        threads.push(std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        }));
    }
    QemuOutput(threads)
}

type Sink = Box<dyn Write + Send>;

/// Copies a serial port's output to `sink` (flushing as it goes), or into the returned vector
/// when there is no sink. A sink that fails (a closed pipe) is dropped; the port keeps being
/// drained so that the guest never blocks on it.
fn pump(mut from: UnixStream, mut sink: Option<Sink>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut captured = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            match &mut sink {
                Some(s) => {
                    if s.write_all(&buf[..n]).and_then(|_| s.flush()).is_err() {
                        sink = None;
                    }
                }
                None => captured.extend_from_slice(&buf[..n]),
            }
        }
        captured
    })
}

/// Sends the console input, escaped, then the end-of-file marker. The socket stays open
/// afterwards: QEMU treats a closed socket as a disconnected console and would drop output.
fn feed_console(mut to: UnixStream, input: Input) {
    let result = (|| -> std::io::Result<()> {
        match input {
            Input::Null => {}
            Input::Bytes(b) => to.write_all(&console::escape_input(&b))?,
            Input::Inherit => {
                let mut stdin = std::io::stdin();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match stdin.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    to.write_all(&console::escape_input(&buf[..n]))?;
                }
            }
        }
        to.write_all(&console::EOF_MARKER)
    })();
    // An error means QEMU is gone; nothing to do.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_the_spec() {
        let setup = QemuSetup {
            machine: Machine::Microvm,
            accel: Accel::Tcg,
            mem_mib: 256,
            smp: 2,
            kernel: Path::new("/k"),
            initrd: Path::new("/t/i.cpio"),
            append: "strace loglevel=2",
            sockets: [
                Path::new("/t/con.sock"),
                Path::new("/t/err.sock"),
                Path::new("/t/a,b.sock"),
                Path::new("/t/mon.sock"),
            ],
        };
        let args: Vec<String> = qemu_args(&setup)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let line = args.join(" ");
        assert_eq!(
            line,
            "-M microvm,rtc=on -accel tcg -cpu max -m 256M -smp 2 -nodefaults -nographic \
             -no-reboot -kernel /k -initrd /t/i.cpio -append strace loglevel=2 \
             -chardev socket,id=con,path=/t/con.sock -serial chardev:con \
             -chardev socket,id=err,path=/t/err.sock \
             -device isa-serial,chardev=err,iobase=0x2f8,irq=3 \
             -chardev socket,id=log,path=/t/a,,b.sock \
             -device isa-serial,chardev=log,iobase=0x3e8,irq=5 \
             -chardev socket,id=mon,path=/t/mon.sock -mon chardev=mon,mode=readline \
             -device isa-debug-exit,iobase=0xf4,iosize=4"
        );
        // -append's value is one argument.
        let i = args.iter().position(|a| a == "-append").unwrap();
        assert_eq!(args[i + 1], "strace loglevel=2");
        let pc = qemu_args(&QemuSetup {
            machine: Machine::Pc,
            accel: Accel::Kvm,
            ..setup
        });
        assert_eq!(pc[1], "pc");
        assert_eq!(&pc[2..6], ["-accel", "kvm", "-cpu", "host"]);
        let i = pc.iter().position(|a| a == "-fw_cfg").unwrap();
        assert_eq!(pc[i + 1], "name=etc/sercon-port,string=0");
    }

    #[test]
    fn cmdline_words() {
        let mut cfg = RunConfig::default();
        assert_eq!(kernel_cmdline(&cfg), "");
        cfg.strace = true;
        cfg.kernel_args = vec!["nofsgsbase".into(), "loglevel=2".into()];
        assert_eq!(kernel_cmdline(&cfg), "strace nofsgsbase loglevel=2");
    }

    #[test]
    fn console_feeding_escapes_and_ends_with_eof() {
        let (a, mut b) = UnixStream::pair().unwrap();
        feed_console(a, Input::Bytes(vec![b'x', 0xff, b'y']));
        let mut got = Vec::new();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        while got.len() < 6 {
            let n = b.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, [b'x', 0xff, 0, b'y', 0xff, 1]);
    }
}
