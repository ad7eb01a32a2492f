//! The `ktls` command line.

use crate::script::{self, ExitMode, ScriptCommand, ScriptOutcome};
use crate::{
    accel, compare, run_captured, run_host, run_streaming, shim_demo_path, status, Accel,
    AccelChoice, Add, Input, Machine, Outcome, RunConfig, RunError,
};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
ktls: run static Linux x86_64 programs on the ktls kernel in QEMU

USAGE:
    ktls [OPTIONS]                          boot ktls and run the built-in demo
    ktls run [OPTIONS] PROGRAM [ARGS...]    boot ktls and run PROGRAM with ARGS
    ktls run [OPTIONS] --script FILE        boot ktls once and run the commands in FILE
    ktls demo [OPTIONS] [ARGS...]           the demo, with arguments
    ktls bench [ARGS...]                    the benchmarks (package ktls-bench; ktls bench --help)
    ktls --help | --version

PROGRAM is a static x86_64 executable on this host; a name without '/' is looked up in PATH.
It is placed at its canonical absolute host path in the guest's root tree (an initramfs), its
argv[0] is PROGRAM as given, and it starts in the current directory if that directory exists in
the guest tree (else in /). The first argument that is not an option is PROGRAM; everything after
it belongs to PROGRAM. `--` ends the options.

OPTIONS:
    --smp N                 number of CPUs (default 1)
    --mem SIZE              guest memory: a number with an optional K/M/G/T suffix, in MiB
                            when there is none (default 256M)
    --add HOST_PATH[:GUEST_PATH]
                            put a host file or directory (recursively) in the guest tree, at
                            GUEST_PATH (absolute) or else at its canonical host path; repeatable
    --env K=V               set an environment variable; repeatable. The environment starts as
                            PATH=/bin:/usr/bin:/sbin:/usr/sbin HOME=/ and --env adds or overrides
    --strace                have the kernel trace every syscall; the records go to stderr
    --kernel-log FILE       write the kernel log to FILE (it is shown anyway if the kernel panics)
    --accel auto|kvm|tcg    the QEMU accelerator (default auto: KVM only where it really works;
                            never on kvm-pvm, which breaks ring-0 guests)
    --compare-host          also run PROGRAM natively on this host (same arguments, environment,
                            directory and stdin, which is read fully first), print the ktls
                            run's output, then report on stderr how the runs differ in status,
                            stdout and stderr; exit 0 if status and stdout are the same, else 1
    --timeout SECS          after SECS seconds, ask the kernel for a hang report (an NMI) and
                            print it, then kill QEMU (exit status 124)
    --kernel-arg WORD       add WORD to the kernel command line (e.g. loglevel=2, nofsgsbase);
                            repeatable
    --qemu-machine microvm|pc
                            the QEMU machine type (default microvm)
    --script FILE           instead of one PROGRAM, run the commands of FILE one after another
                            in one boot (see SCRIPTS)
    -h, --help              this help
    -V, --version           the runner's version

SCRIPTS:
    A --script FILE has one command per line: PROGRAM [ARGS...], words separated by blanks,
    quoted as in sh ('...', \"...\", backslash) but without expansions; a word starting with
    # starts a comment. Each PROGRAM is found and packed as for `ktls run`; the commands run
    one after another (a small init forks and execs each), share the console as their stdin,
    and their output is shown when the boot has ended, each command's under a header on
    stderr. The exit status is the first failing command's status (0 if all succeeded).

EXIT STATUS:
    N       the program's exit status (128+N if signal N killed it)
    2       bad command-line usage
    124     --timeout expired (with the kernel's hang report on stderr)
    125     the kernel panicked, or QEMU ended without the program's exit (crash, triple fault)
    126     the runner failed: building the kernel, packing the initramfs or starting QEMU
    with --compare-host: 0 same, 1 different (124-126 as above when the ktls run fails)

ENVIRONMENT:
    KTLS_KERNEL=FILE        boot this kernel instead of building kernel/ (ktls-kernel)
    KTLS_QEMU=FILE          the QEMU binary (default qemu-system-x86_64)

EXAMPLES:
    cargo run --release
    cargo run --release -- run /bin/busybox echo hello
    echo hi | cargo run --release -- run --strace /bin/busybox cat
    cargo run --release -- run --add /etc/passwd:/etc/passwd --env USER=me /bin/busybox id
    cargo run --release -- run --compare-host /bin/busybox ls /
    cargo run --release -- run --script tests.txt
";

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The built-in demo (the libc shim's `examples/demo.c`).
    Demo,
    /// A host program, as typed.
    Program(PathBuf),
    /// A script of commands (`--script FILE`).
    Script(PathBuf),
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Help,
    Version,
    Run(Box<Invocation>),
}

/// A run asked for on the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub config: RunConfig,
    pub compare_host: bool,
    pub target: Target,
    /// The arguments after PROGRAM (`argv[1..]`).
    pub args: Vec<OsString>,
}

/// Parses `--mem`'s value into MiB.
pub fn parse_mem(s: &str) -> Result<u64, String> {
    let bad =
        || format!("--mem {s:?}: expected a size such as 256M, 1G or 512 (MiB), of at least 1M");
    let lower = s.trim().to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, kib_per_unit): (&str, u64) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1),
        Some('m') => (&body[..body.len() - 1], 1024),
        Some('g') => (&body[..body.len() - 1], 1024 * 1024),
        Some('t') => (&body[..body.len() - 1], 1024 * 1024 * 1024),
        _ => (body, 1024),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let kib = n.checked_mul(kib_per_unit).ok_or_else(bad)?;
    if kib % 1024 != 0 {
        return Err(format!("--mem {s:?}: must be a whole number of MiB"));
    }
    let mib = kib / 1024;
    if mib == 0 {
        return Err(bad());
    }
    if mib > 1024 * 1024 {
        return Err(format!("--mem {s:?}: more than 1T"));
    }
    Ok(mib)
}

/// Parses `--timeout`'s value (seconds, fractions allowed).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 1e9 => Ok(Duration::from_secs_f64(t)),
        _ => Err(format!(
            "--timeout {s:?}: expected a positive number of seconds"
        )),
    }
}

fn parse_smp(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=255).contains(&n) => Ok(n),
        _ => Err(format!(
            "--smp {s:?}: expected a number of CPUs from 1 to 255"
        )),
    }
}

fn parse_env(v: &OsStr) -> Result<(OsString, OsString), String> {
    use std::os::unix::ffi::OsStrExt;
    let b = v.as_bytes();
    match b.iter().position(|&c| c == b'=') {
        Some(i) if i > 0 => Ok((
            OsStr::from_bytes(&b[..i]).to_owned(),
            OsStr::from_bytes(&b[i + 1..]).to_owned(),
        )),
        _ => Err(format!("--env {v:?}: expected K=V with a non-empty K")),
    }
}

const VALUE_OPTIONS: &[&str] = &[
    "--smp",
    "--mem",
    "--add",
    "--env",
    "--kernel-log",
    "--accel",
    "--timeout",
    "--kernel-arg",
    "--qemu-machine",
    "--script",
];
const FLAG_OPTIONS: &[&str] = &[
    "--strace",
    "--compare-host",
    "--help",
    "-h",
    "--version",
    "-V",
];

/// Parses the arguments after the program name. `Err` holds a usage message (exit status 2).
pub fn parse(args: &[OsString]) -> Result<Command, String> {
    let mut config = RunConfig {
        stdin: Input::Inherit,
        ..RunConfig::default()
    };
    let mut compare_host = false;
    let mut script: Option<PathBuf> = None;
    let mut subcommand: Option<&str> = None;
    let mut target: Option<Target> = None;
    let mut rest: Vec<OsString> = Vec::new();
    let mut options_done = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        // After PROGRAM (or the demo's `--`), everything belongs to the program.
        if target.is_some() && (subcommand == Some("run") || options_done) {
            rest.push(arg.clone());
            continue;
        }
        let text = arg.to_str();
        let is_option = !options_done && text.is_some_and(|t| t.starts_with('-') && t.len() > 1)
            || (!options_done && text.is_none() && arg.to_string_lossy().starts_with('-'));
        if !is_option {
            let word = arg.to_string_lossy();
            match subcommand {
                None if !options_done && (word == "run" || word == "demo" || word == "help") => {
                    subcommand = Some(match &*word {
                        "run" => "run",
                        "demo" => "demo",
                        _ => "help",
                    });
                    if word == "help" {
                        return Ok(Command::Help);
                    }
                    if word == "demo" {
                        target = Some(Target::Demo);
                    }
                }
                None => {
                    return Err(format!(
                        "unknown command {word:?} (to run a program: ktls run {word} ...)"
                    ))
                }
                Some("run") => target = Some(Target::Program(PathBuf::from(arg))),
                Some(_) => {
                    // `demo` arguments.
                    rest.push(arg.clone());
                }
            }
            continue;
        }
        let text = text.ok_or_else(|| format!("unknown option {arg:?}"))?;
        if text == "--" {
            options_done = true;
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (text, None),
        };
        if FLAG_OPTIONS.contains(&name) {
            if inline.is_some() {
                return Err(format!("option {name} takes no value"));
            }
            match name {
                "--strace" => config.strace = true,
                "--compare-host" => compare_host = true,
                "--help" | "-h" => return Ok(Command::Help),
                _ => return Ok(Command::Version),
            }
            continue;
        }
        if !VALUE_OPTIONS.contains(&name) {
            return Err(format!("unknown option {name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("option {name} needs a value"))?;
                i += 1;
                v.clone()
            }
        };
        let utf8 = || {
            value
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{name}: the value {value:?} is not valid UTF-8"))
        };
        match name {
            "--smp" => config.smp = parse_smp(&utf8()?)?,
            "--mem" => config.mem_mib = parse_mem(&utf8()?)?,
            "--add" => config
                .adds
                .push(Add::parse(&value).map_err(|e| e.to_string())?),
            "--env" => {
                let (k, v) = parse_env(&value)?;
                config.set_env(k, v);
            }
            "--kernel-log" => config.kernel_log = Some(PathBuf::from(&value)),
            "--accel" => {
                config.accel = AccelChoice::parse(&utf8()?)
                    .ok_or_else(|| format!("--accel {value:?}: expected auto, kvm or tcg"))?
            }
            "--timeout" => config.timeout = Some(parse_timeout(&utf8()?)?),
            "--kernel-arg" => {
                let w = utf8()?;
                if w.is_empty() || w.chars().any(char::is_whitespace) {
                    return Err(format!(
                        "--kernel-arg {w:?}: expected one word without whitespace"
                    ));
                }
                config.kernel_args.push(w);
            }
            "--qemu-machine" => {
                config.machine = Machine::parse(&utf8()?)
                    .ok_or_else(|| format!("--qemu-machine {value:?}: expected microvm or pc"))?
            }
            "--script" => script = Some(PathBuf::from(&value)),
            _ => unreachable!("every value option is handled"),
        }
    }
    if let Some(file) = script {
        if subcommand == Some("demo") || matches!(target, Some(Target::Program(_))) {
            return Err("--script runs the commands of a file: give no PROGRAM with it".into());
        }
        if compare_host {
            return Err("--compare-host does not work with --script".into());
        }
        if !rest.is_empty() {
            return Err("--script takes no other arguments".into());
        }
        target = Some(Target::Script(file));
    }
    let target = match (subcommand, target) {
        (Some("run"), None) => return Err("run: PROGRAM is missing".into()),
        (_, Some(t)) => t,
        (_, None) => Target::Demo,
    };
    if target == Target::Demo && subcommand.is_none() && !rest.is_empty() {
        return Err("arguments for the demo need `ktls demo [OPTIONS] [ARGS...]`".into());
    }
    Ok(Command::Run(Box::new(Invocation {
        config,
        compare_host,
        target,
        args: rest,
    })))
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("ktls: error: {msg}\nTry `ktls --help`.");
    status::USAGE
}

/// Runs the command line (the arguments after the program name); returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.first().is_some_and(|a| a == "bench") {
        return crate::bench::main(&args[1..]);
    }
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(msg) => return usage_error(&msg),
    };
    let (mut config, compare_host, target, args) = match cmd {
        Command::Help => {
            print!("{HELP}");
            return 0;
        }
        Command::Version => {
            println!("ktls {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Command::Run(inv) => (inv.config, inv.compare_host, inv.target, inv.args),
    };
    match execute(&mut config, compare_host, target, &args) {
        Ok(status) => status,
        Err(RunError::Usage(msg)) => usage_error(&msg),
        Err(e) => {
            eprintln!("ktls: error: {e}");
            e.exit_status()
        }
    }
}

fn execute(
    config: &mut RunConfig,
    compare_host: bool,
    target: Target,
    args: &[OsString],
) -> Result<i32, RunError> {
    config.validate()?;
    let decision = accel::decide(config.accel, &accel::HostFacts::probe());
    eprintln!("{}", decision.note);
    if let Some(w) = &decision.warning {
        eprintln!("{w}");
    }
    // Run with exactly the decided accelerator (the decision above is what was printed).
    config.accel = match decision.accel {
        Accel::Kvm => AccelChoice::Kvm,
        Accel::Tcg => AccelChoice::Tcg,
    };
    let program = match target {
        Target::Demo => shim_demo_path()?,
        Target::Program(p) => p,
        Target::Script(file) => return execute_script(config, &file),
    };
    if !compare_host {
        let outcome = run_streaming(config, &program, args)?;
        report(&outcome);
        return Ok(outcome.status);
    }
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| RunError::Io(format!("reading stdin: {e}")))?;
    config.stdin = Input::Bytes(input);
    let outcome = run_captured(config, &program, args)?;
    {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&outcome.stdout).and_then(|_| out.flush());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&outcome.stderr);
        for line in &outcome.strace {
            let _ = writeln!(err, "{line}");
        }
    }
    report(&outcome);
    // Without a program status there is nothing to compare: report the failure as is.
    if outcome.timed_out || outcome.panic_report.is_some() || !outcome.exited {
        return Ok(outcome.status);
    }
    let host = run_host(config, &program, args)?;
    let cmp = compare(&outcome, &host);
    eprint!("{}", cmp.report);
    Ok(if cmp.same() { 0 } else { 1 })
}

/// `ktls run --script FILE`: every command in one boot, then their outputs, in order.
fn execute_script(config: &RunConfig, file: &std::path::Path) -> Result<i32, RunError> {
    let text = std::fs::read(file)
        .map_err(|e| RunError::Usage(format!("--script {}: {e}", file.display())))?;
    let commands: Vec<ScriptCommand> = script::parse_script_text(&text)
        .map_err(|e| RunError::Usage(format!("--script {}: {e}", file.display())))?
        .into_iter()
        .map(|(program, args)| ScriptCommand {
            program,
            args,
            stdin: None,
        })
        .collect();
    let outcome = script::run_script_commands(config, &commands, ExitMode::FirstFailure)?;
    show_script(&commands, &outcome);
    report(&outcome.boot);
    Ok(outcome.boot.status)
}

/// Prints each command's output (stdout to stdout, stderr to stderr) under a header on stderr,
/// with its status when it is not 0.
fn show_script(commands: &[ScriptCommand], o: &ScriptOutcome) {
    let n = commands.len();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for (i, (c, r)) in commands.iter().zip(&o.commands).enumerate() {
        if !r.started {
            let _ = writeln!(err, "ktls: script [{}/{n}]: not started", i + 1);
            continue;
        }
        let _ = out.flush();
        let _ = writeln!(
            err,
            "ktls: script [{}/{n}] $ {}",
            i + 1,
            script::show_command(&c.program, &c.args)
        );
        let _ = out.write_all(&r.stdout).and_then(|_| out.flush());
        let _ = err.write_all(&r.stderr);
        match r.status {
            Some(0) => {}
            Some(s) => {
                let _ = writeln!(err, "ktls: script [{}/{n}]: exit status {s}", i + 1);
            }
            None => {
                let _ = writeln!(
                    err,
                    "ktls: script [{}/{n}]: had not ended when the boot did",
                    i + 1
                );
            }
        }
    }
    let _ = out.write_all(&o.stdout_outside).and_then(|_| out.flush());
    let _ = err.write_all(&o.stderr_outside);
    for line in &o.boot.strace {
        let _ = writeln!(err, "{line}");
    }
}

/// How many kernel log lines a panic report shows.
const LOG_TAIL: usize = 40;

/// Prints what the user must know about a run that did not end normally.
pub fn report(o: &Outcome) {
    let mut err = std::io::stderr().lock();
    if let Some(p) = &o.panic_report {
        let lines: Vec<&str> = o.kernel_log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
        let _ = writeln!(
            err,
            "ktls: the KERNEL PANICKED (this is a bug in ktls, not in the program); exit status {}",
            o.status
        );
        if !tail.is_empty() {
            let _ = writeln!(
                err,
                "ktls: kernel log before the panic (last {} lines):",
                tail.len()
            );
            for l in tail {
                let _ = writeln!(err, "  {l}");
            }
        }
        show_kernel_report(&mut err, "panic", p);
        if let Some(h) = &o.hang_report {
            show_kernel_report(&mut err, "hang", h);
        }
        return;
    }
    if let Some(m) = &o.message {
        let _ = writeln!(err, "ktls: {m}");
        if o.status == status::KERNEL_FAILED && !o.kernel_log.is_empty() {
            let lines: Vec<&str> = o.kernel_log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
            let _ = writeln!(err, "ktls: kernel log (last {} lines):", tail.len());
            for l in tail {
                let _ = writeln!(err, "  {l}");
            }
        }
    }
    if let Some(h) = &o.hang_report {
        show_kernel_report(&mut err, "hang", h);
    }
}

/// A panic or hang report, indented, between a header and a footer.
fn show_kernel_report(err: &mut impl Write, what: &str, report: &str) {
    let _ = writeln!(
        err,
        "ktls: {what} report (kernel addresses symbolized by the runner from the kernel ELF):"
    );
    for l in report.lines() {
        let _ = writeln!(err, "  {l}");
    }
    let _ = writeln!(err, "ktls: end of the {what} report");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn run_parts(c: Command) -> (RunConfig, bool, Target, Vec<OsString>) {
        match c {
            Command::Run(inv) => (inv.config, inv.compare_host, inv.target, inv.args),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn no_arguments_runs_the_demo() {
        let (cfg, cmp, target, args) = run_parts(p(&[]).unwrap());
        assert_eq!(target, Target::Demo);
        assert!(!cmp && args.is_empty());
        assert_eq!(cfg.smp, 1);
        assert_eq!(cfg.mem_mib, 256);
        assert_eq!(cfg.stdin, Input::Inherit);
        assert_eq!(cfg.machine, Machine::Microvm);
        assert_eq!(cfg.accel, AccelChoice::Auto);
        assert_eq!(
            cfg.env,
            [
                ("PATH".into(), "/bin:/usr/bin:/sbin:/usr/sbin".into()),
                ("HOME".into(), "/".into())
            ]
        );
        let (cfg, _, target, _) = run_parts(p(&["--strace", "--smp", "2"]).unwrap());
        assert_eq!(target, Target::Demo);
        assert!(cfg.strace);
        assert_eq!(cfg.smp, 2);
        let (_, _, target, args) = run_parts(p(&["demo", "--smp=3", "a"]).unwrap());
        assert_eq!(target, Target::Demo);
        assert_eq!(args, ["a"]);
        // `--b` is an option there, and unknown.
        assert!(p(&["demo", "a", "--b"]).is_err());
        let (_, _, _, args) = run_parts(p(&["demo", "--", "--b", "c"]).unwrap());
        assert_eq!(args, ["--b", "c"]);
    }

    #[test]
    fn run_with_every_option() {
        let (cfg, cmp, target, args) = run_parts(
            p(&[
                "run",
                "--smp",
                "4",
                "--mem=1G",
                "--add",
                "/etc/hostname:/etc/hostname",
                "--add=/etc/passwd:/x/passwd",
                "--env",
                "PATH=/x",
                "--env=A=b=c",
                "--strace",
                "--kernel-log",
                "/tmp/log",
                "--accel",
                "tcg",
                "--compare-host",
                "--timeout",
                "2.5",
                "--kernel-arg",
                "loglevel=2",
                "--kernel-arg=nofsgsbase",
                "--qemu-machine",
                "pc",
                "/bin/busybox",
                "echo",
                "--smp",
                "hello",
            ])
            .unwrap(),
        );
        assert_eq!(target, Target::Program("/bin/busybox".into()));
        assert_eq!(args, ["echo", "--smp", "hello"]);
        assert!(cmp);
        assert_eq!(cfg.smp, 4);
        assert_eq!(cfg.mem_mib, 1024);
        assert_eq!(cfg.adds.len(), 2);
        assert_eq!(cfg.adds[1].guest, PathBuf::from("/x/passwd"));
        assert_eq!(
            cfg.env,
            [
                ("PATH".into(), "/x".into()),
                ("HOME".into(), "/".into()),
                ("A".into(), "b=c".into())
            ]
        );
        assert!(cfg.strace);
        assert_eq!(cfg.kernel_log, Some(PathBuf::from("/tmp/log")));
        assert_eq!(cfg.accel, AccelChoice::Tcg);
        assert_eq!(cfg.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(cfg.kernel_args, ["loglevel=2", "nofsgsbase"]);
        assert_eq!(cfg.machine, Machine::Pc);
    }

    #[test]
    fn options_end_at_the_program_or_double_dash() {
        let (_, _, target, args) = run_parts(p(&["run", "--", "-weird", "--help"]).unwrap());
        assert_eq!(target, Target::Program("-weird".into()));
        assert_eq!(args, ["--help"]);
        let (_, _, _, args) = run_parts(p(&["run", "prog", "--", "x"]).unwrap());
        assert_eq!(args, ["--", "x"]);
        // Options before the subcommand count too.
        let (cfg, _, target, _) = run_parts(p(&["--smp", "2", "run", "prog"]).unwrap());
        assert_eq!(cfg.smp, 2);
        assert_eq!(target, Target::Program("prog".into()));
    }

    #[test]
    fn scripts() {
        for args in [
            &["run", "--script", "t.txt"][..],
            &["--script=t.txt"],
            &["--smp", "2", "run", "--script", "t.txt", "--strace"],
        ] {
            let (_, _, target, rest) = run_parts(p(args).unwrap());
            assert_eq!(target, Target::Script("t.txt".into()), "{args:?}");
            assert!(rest.is_empty());
        }
        // After PROGRAM, --script is the program's.
        let (_, _, target, rest) = run_parts(p(&["run", "prog", "--script", "x"]).unwrap());
        assert_eq!(target, Target::Program("prog".into()));
        assert_eq!(rest, ["--script", "x"]);
        for bad in [
            &["run", "--script", "t", "--", "prog"][..],
            &["demo", "--script", "t"],
            &["run", "--compare-host", "--script", "t"],
            &["run", "--script"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--help"]).unwrap(), Command::Help);
        assert_eq!(p(&["-h"]).unwrap(), Command::Help);
        assert_eq!(p(&["help"]).unwrap(), Command::Help);
        assert_eq!(p(&["run", "--help"]).unwrap(), Command::Help);
        assert_eq!(p(&["-V"]).unwrap(), Command::Version);
        // Every option is documented.
        for o in VALUE_OPTIONS.iter().chain(FLAG_OPTIONS) {
            assert!(HELP.contains(o), "{o} is not in --help");
        }
    }

    #[test]
    fn bad_usage_is_an_error_not_a_panic() {
        let cases: &[&[&str]] = &[
            &["run"],
            &["frobnicate"],
            &["--frob"],
            &["run", "--frob", "x"],
            &["--smp"],
            &["--smp", "0"],
            &["--smp", "256"],
            &["--smp", "two"],
            &["--smp", "-1"],
            &["--mem", "0"],
            &["--mem", "12X"],
            &["--mem", "M"],
            &["--mem", "1536K"],
            &["--mem", "99999999999999999999G"],
            &["--mem", "2T"],
            &["--env", "NOEQUALS"],
            &["--env", "=v"],
            &["--accel", "hvf"],
            &["--timeout", "0"],
            &["--timeout", "-3"],
            &["--timeout", "nan"],
            &["--timeout", "inf"],
            &["--timeout", "soon"],
            &["--kernel-arg", "two words"],
            &["--kernel-arg", ""],
            &["--qemu-machine", "q35"],
            &["--add", "relative:guest"],
            &["--add", ":/x"],
            &["--strace=yes"],
            &["--kernel-log"],
            &["stray-arg"],
        ];
        for c in cases {
            let r = p(c);
            assert!(r.is_err(), "{c:?} was accepted: {r:?}");
            assert!(!r.unwrap_err().is_empty());
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_mem("256M"), Ok(256));
        assert_eq!(parse_mem("256"), Ok(256));
        assert_eq!(parse_mem("256m"), Ok(256));
        assert_eq!(parse_mem("256MiB"), Ok(256));
        assert_eq!(parse_mem("2G"), Ok(2048));
        assert_eq!(parse_mem("1T"), Ok(1024 * 1024));
        assert_eq!(parse_mem("2048K"), Ok(2));
        assert!(parse_mem("").is_err());
        assert_eq!(parse_timeout("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("0.25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn non_utf8_program_arguments_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let args = vec![OsString::from("run"), OsString::from("prog"), odd.clone()];
        let (_, _, _, rest) = run_parts(parse(&args).unwrap());
        assert_eq!(rest, std::slice::from_ref(&odd));
        let args = vec![OsString::from("run"), odd.clone()];
        let (_, _, target, _) = run_parts(parse(&args).unwrap());
        assert_eq!(target, Target::Program(PathBuf::from(odd)));
    }
}
