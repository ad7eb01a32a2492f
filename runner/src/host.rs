//! Running the same program natively on the host (`--compare-host`), and comparing the runs.

use crate::initramfs;
use crate::util::{self, Waited};
use crate::{status, Input, Outcome, RunConfig, RunError};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The result of a native run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostOutcome {
    /// Shell-style status: the exit code, 128+N for death by signal N, 124 after a timeout.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

/// Runs `program` with `args` natively, as [`crate::run_captured`] would run it on ktls: the
/// same program lookup and `argv[0]`, exactly [`RunConfig::env`] as the environment, the
/// working directory [`RunConfig::cwd`] (or the runner's), [`RunConfig::stdin`] as input
/// (`Input::Null` is an empty stdin; `Input::Inherit` the runner's own stdin) and the same
/// timeout. The other settings (adds, CPUs, memory...) do not apply to a native run.
pub fn run_host(
    cfg: &RunConfig,
    program: &Path,
    args: &[OsString],
) -> Result<HostOutcome, RunError> {
    cfg.validate()?;
    let cwd = match &cfg.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir()
            .map_err(|e| RunError::Io(format!("the current directory: {e}")))?,
    };
    let exe = initramfs::resolve_program(
        program.as_os_str(),
        &cwd,
        std::env::var_os("PATH").as_deref(),
    )?;
    let mut cmd = Command::new(&exe);
    cmd.arg0(program.as_os_str())
        .args(args)
        .env_clear()
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(match &cfg.stdin {
        Input::Null => Stdio::null(),
        Input::Bytes(_) => Stdio::piped(),
        Input::Inherit => Stdio::inherit(),
    });
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| RunError::Program(format!("{}: {e}", exe.display())))?;
    if let (Input::Bytes(b), Some(mut stdin)) = (&cfg.stdin, child.stdin.take()) {
        let b = b.clone();
        // A program that does not read its input gets EPIPE here; that is fine.
        std::thread::spawn(move || drop(stdin.write_all(&b)));
    }
    let mut readers = Vec::new();
    for mut r in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        readers.push(std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        }));
    }
    let deadline = cfg.timeout.map(|t| started + t);
    let waited = util::wait_until(&mut child, || deadline)
        .map_err(|e| RunError::Io(format!("waiting for {}: {e}", exe.display())))?;
    let mut outputs = readers.into_iter().map(|t| t.join().unwrap_or_default());
    let stdout = outputs.next().unwrap_or_default();
    let stderr = outputs.next().unwrap_or_default();
    Ok(match waited {
        Waited::Exited(st) => HostOutcome {
            status: util::shell_status(st),
            stdout,
            stderr,
            timed_out: false,
        },
        Waited::Killed => HostOutcome {
            status: status::TIMEOUT,
            stdout,
            stderr,
            timed_out: true,
        },
    })
}

/// How a ktls run and a native run differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    pub same_status: bool,
    pub same_stdout: bool,
    /// Reported, but not part of [`Comparison::same`]: error messages often name the system.
    pub same_stderr: bool,
    /// A human-readable report, one finding per line (each starting with `ktls: compare-host:`).
    pub report: String,
}

impl Comparison {
    /// Same status and same stdout.
    pub fn same(&self) -> bool {
        self.same_status && self.same_stdout
    }
}

/// Where two outputs first differ, described in a few lines.
fn describe_difference(what: &str, ktls: &[u8], host: &[u8]) -> String {
    let common = ktls.iter().zip(host).take_while(|(a, b)| a == b).count();
    let line_no = ktls[..common].iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = ktls[..common]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_of = |s: &[u8]| {
        let rest = &s[line_start.min(s.len())..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let mut text = String::from_utf8_lossy(&rest[..end.min(200)]).into_owned();
        if end > 200 {
            text.push_str("...");
        }
        if end == rest.len() && rest.is_empty() {
            "(end of output)".to_string()
        } else {
            format!("{text:?}")
        }
    };
    format!(
        "ktls: compare-host: {what} differs ({} bytes on ktls, {} on the host); first difference \
         at byte {common}, line {line_no}:\nktls: compare-host:   ktls: {}\nktls: compare-host:   \
         host: {}\n",
        ktls.len(),
        host.len(),
        line_of(ktls),
        line_of(host)
    )
}

/// Compares a ktls run with a native run of the same program.
pub fn compare(ktls: &Outcome, host: &HostOutcome) -> Comparison {
    let same_status = ktls.status == host.status;
    let same_stdout = ktls.stdout == host.stdout;
    let same_stderr = ktls.stderr == host.stderr;
    let mut report = String::new();
    if same_status {
        report.push_str(&format!(
            "ktls: compare-host: status {} on both\n",
            ktls.status
        ));
    } else {
        report.push_str(&format!(
            "ktls: compare-host: status differs: {} on ktls, {} on the host\n",
            ktls.status, host.status
        ));
    }
    if same_stdout {
        report.push_str(&format!(
            "ktls: compare-host: stdout identical ({} bytes)\n",
            ktls.stdout.len()
        ));
    } else {
        report.push_str(&describe_difference("stdout", &ktls.stdout, &host.stdout));
    }
    if same_stderr {
        report.push_str(&format!(
            "ktls: compare-host: stderr identical ({} bytes)\n",
            ktls.stderr.len()
        ));
    } else {
        report.push_str(&describe_difference(
            "stderr (not counted)",
            &ktls.stderr,
            &host.stderr,
        ));
    }
    let same = same_status && same_stdout;
    report.push_str(if same {
        "ktls: compare-host: SAME (status and stdout)\n"
    } else {
        "ktls: compare-host: DIFFERENT\n"
    });
    Comparison {
        same_status,
        same_stdout,
        same_stderr,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig::default()
    }

    #[test]
    fn host_runs_with_the_given_env_stdin_and_argv0() {
        let mut c = cfg();
        c.stdin = Input::Bytes(b"in\xff".to_vec());
        c.set_env("X", "y");
        let out = run_host(
            &c,
            Path::new("sh"),
            &[
                "-c".into(),
                "cat; echo \"$0 $X $HOME\"; env | sort | tr '\\n' ' '; echo >&2 err; exit 7".into(),
            ],
        )
        .unwrap();
        assert_eq!(out.status, 7);
        assert_eq!(out.stderr, b"err\n");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.stdout.starts_with(b"in\xffsh y /\n"), "{text}");
        // Only the configured environment (sh may add PWD, SHLVL, _).
        for var in text.lines().nth(1).unwrap().split_whitespace() {
            let name = var.split('=').next().unwrap();
            assert!(
                ["PATH", "HOME", "X", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
                "{var}"
            );
        }
    }

    #[test]
    fn host_signals_and_timeouts() {
        let out = run_host(&cfg(), Path::new("sh"), &["-c".into(), "kill -9 $$".into()]).unwrap();
        assert_eq!(out.status, 137);
        let mut c = cfg();
        c.timeout = Some(std::time::Duration::from_millis(100));
        let out = run_host(&c, Path::new("sleep"), &["10".into()]).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status, 124);
        assert!(matches!(
            run_host(&cfg(), Path::new("no-such-program-ktls"), &[]),
            Err(RunError::Program(_))
        ));
    }

    #[test]
    fn comparing() {
        let k = Outcome {
            status: 0,
            stdout: b"a\nb\nc\n".to_vec(),
            stderr: b"x".to_vec(),
            ..Default::default()
        };
        let h = HostOutcome {
            status: 0,
            stdout: b"a\nb\nc\n".to_vec(),
            stderr: b"y".to_vec(),
            timed_out: false,
        };
        let c = compare(&k, &h);
        assert!(c.same());
        assert!(!c.same_stderr);
        assert!(c.report.contains("SAME"));
        let h2 = HostOutcome {
            status: 1,
            stdout: b"a\nB\nc\n".to_vec(),
            ..h.clone()
        };
        let c = compare(&k, &h2);
        assert!(!c.same());
        assert!(c
            .report
            .contains("status differs: 0 on ktls, 1 on the host"));
        assert!(c.report.contains("byte 2, line 2"), "{}", c.report);
        assert!(c.report.contains("ktls: \"b\""), "{}", c.report);
        assert!(c.report.contains("host: \"B\""), "{}", c.report);
        // One output a prefix of the other.
        let h3 = HostOutcome {
            stdout: b"a\nb\nc\nd\n".to_vec(),
            ..h
        };
        let c = compare(&k, &h3);
        assert!(!c.same_stdout);
        assert!(c.report.contains("(end of output)"), "{}", c.report);
        assert!(c.report.contains("\"d\""), "{}", c.report);
    }
}
