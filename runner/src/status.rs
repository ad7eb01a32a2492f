//! The runner's exit statuses (spec/boot-protocol.md, *Exit*) and how a run maps to one.

/// Bad command-line usage.
pub const USAGE: i32 = 2;
/// `--timeout` expired; QEMU was killed.
pub const TIMEOUT: i32 = 124;
/// The kernel panicked, or QEMU ended without `@ktls exit`.
pub const KERNEL_FAILED: i32 = 125;
/// The runner itself failed (build, packing, starting QEMU).
pub const RUNNER_FAILED: i32 = 126;

/// What came of asking the kernel for a hang report (an NMI, after the timeout expired).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HangReport {
    /// Not asked: the run did not time out, or QEMU had not even connected its ports.
    #[default]
    NotAsked,
    /// The kernel wrote one (`@ktls hang`).
    Came,
    /// The kernel did not answer.
    Missing,
}

/// What the runner observed during a run, the input of [`decide`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFacts {
    /// The run was killed after `--timeout`.
    pub timed_out: bool,
    /// How long the timeout was, for the message.
    pub timeout_secs: f64,
    /// The hang report asked for after the timeout.
    pub hang_report: HangReport,
    /// The status text of `@ktls exit <status>`, if such a line came.
    pub exit_line: Option<String>,
    /// `@ktls panic` was seen.
    pub panicked: bool,
    /// `@ktls boot` was seen.
    pub booted: bool,
    /// QEMU's exit code; `None` if it was killed by a signal.
    pub qemu_code: Option<i32>,
    /// The signal that killed QEMU, if one did.
    pub qemu_signal: Option<i32>,
    /// The runner killed QEMU because it did not exit after `@ktls exit`.
    pub killed_after_exit: bool,
}

/// Parses the status of an `@ktls exit <status>` line: a decimal 0..=255.
pub fn parse_exit_status(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.is_empty() || t.len() > 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i32>().ok().filter(|n| (0..=255).contains(n))
}

/// The run's status, and the explanation when it is not the program's own status.
pub fn decide(f: &RunFacts) -> (i32, Option<String>) {
    if f.timed_out {
        return (
            TIMEOUT,
            Some(format!(
                "timed out after {} s; QEMU was killed{}{}",
                f.timeout_secs,
                match f.hang_report {
                    HangReport::NotAsked => "",
                    HangReport::Came => " after the kernel's hang report",
                    HangReport::Missing => "; no hang report from the kernel",
                },
                if f.booted {
                    ""
                } else {
                    " (the kernel had not even reported `@ktls boot`)"
                }
            )),
        );
    }
    if f.panicked {
        return (
            KERNEL_FAILED,
            Some("the kernel panicked (see the panic report)".into()),
        );
    }
    if let Some(text) = &f.exit_line {
        return match parse_exit_status(text) {
            Some(n) => {
                let note = f.killed_after_exit.then(|| {
                    "QEMU did not exit after `@ktls exit`; the runner killed it".to_string()
                });
                (n, note)
            }
            None => (
                KERNEL_FAILED,
                Some(format!(
                    "the kernel reported an invalid exit status {text:?} (expected 0-255)"
                )),
            ),
        };
    }
    let how = match (f.qemu_code, f.qemu_signal) {
        (Some(0), _) => "QEMU exited with status 0 without `@ktls exit`: the machine reset, which \
                         (with -no-reboot) usually means a triple fault"
            .to_string(),
        (Some(1), _) if f.booted => {
            "the kernel wrote 0 to the exit port without reporting `@ktls exit`".into()
        }
        (Some(3), _) if f.booted => {
            "the kernel wrote 1 (panic) to the exit port without a panic report".into()
        }
        (Some(c), _) => format!("QEMU exited with status {c} without `@ktls exit`"),
        (None, Some(s)) => format!("QEMU was killed by signal {s} before `@ktls exit`"),
        (None, None) => "QEMU ended without `@ktls exit`".into(),
    };
    let boot = if f.booted {
        ""
    } else {
        "; the kernel never reported `@ktls boot`"
    };
    (KERNEL_FAILED, Some(format!("{how}{boot}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RunFacts {
        RunFacts {
            booted: true,
            qemu_code: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn program_status_passes_through() {
        for (text, n) in [("0", 0), ("1", 1), ("42", 42), ("255", 255), ("139", 139)] {
            let f = RunFacts {
                exit_line: Some(text.into()),
                ..facts()
            };
            assert_eq!(decide(&f), (n, None));
        }
    }

    #[test]
    fn bad_exit_lines_are_kernel_failures() {
        for text in ["", "256", "-1", "abc", "1 2", "0x10", "99999999999"] {
            let f = RunFacts {
                exit_line: Some(text.into()),
                ..facts()
            };
            let (s, msg) = decide(&f);
            assert_eq!(s, KERNEL_FAILED, "{text:?}");
            assert!(msg.unwrap().contains("invalid exit status"));
        }
    }

    #[test]
    fn panic_beats_exit_and_timeout_beats_all() {
        let f = RunFacts {
            exit_line: Some("0".into()),
            panicked: true,
            ..facts()
        };
        assert_eq!(decide(&f).0, KERNEL_FAILED);
        let f = RunFacts {
            timed_out: true,
            timeout_secs: 2.5,
            ..f
        };
        let (s, msg) = decide(&f);
        assert_eq!(s, TIMEOUT);
        assert!(msg.unwrap().contains("2.5 s"));
    }

    #[test]
    fn a_timeout_says_whether_the_kernel_reported() {
        let timed_out = RunFacts {
            timed_out: true,
            timeout_secs: 3.0,
            ..facts()
        };
        for (hang_report, text) in [
            (HangReport::NotAsked, "timed out after 3 s; QEMU was killed"),
            (
                HangReport::Came,
                "timed out after 3 s; QEMU was killed after the kernel's hang report",
            ),
            (
                HangReport::Missing,
                "timed out after 3 s; QEMU was killed; no hang report from the kernel",
            ),
        ] {
            let f = RunFacts {
                hang_report,
                ..timed_out.clone()
            };
            assert_eq!(decide(&f), (TIMEOUT, Some(text.to_string())));
        }
    }

    #[test]
    fn no_exit_line_is_a_crash() {
        for (booted, code, sig, needle) in [
            (true, Some(0), None, "triple fault"),
            (false, Some(0), None, "triple fault"),
            (true, Some(1), None, "wrote 0 to the exit port"),
            (false, Some(1), None, "QEMU exited with status 1"),
            (true, Some(3), None, "without a panic report"),
            (false, Some(3), None, "QEMU exited with status 3"),
            (true, Some(7), None, "status 7"),
            (false, None, Some(9), "signal 9"),
        ] {
            let f = RunFacts {
                qemu_code: code,
                qemu_signal: sig,
                booted,
                ..Default::default()
            };
            let (s, msg) = decide(&f);
            assert_eq!(s, KERNEL_FAILED);
            let msg = msg.unwrap();
            assert!(msg.contains(needle), "{msg}");
            assert_eq!(
                msg.contains("never reported `@ktls boot`"),
                !booted,
                "{msg}"
            );
        }
    }

    #[test]
    fn exit_then_hang_keeps_the_status() {
        let f = RunFacts {
            exit_line: Some("3".into()),
            killed_after_exit: true,
            qemu_code: None,
            qemu_signal: Some(9),
            ..facts()
        };
        let (s, msg) = decide(&f);
        assert_eq!(s, 3);
        assert!(msg.unwrap().contains("did not exit"));
    }
}
