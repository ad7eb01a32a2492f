//! The log port (COM3): the kernel log and the control lines (spec/boot-protocol.md, *Log
//! port*), read by a thread of the runner while QEMU runs.

use crate::console::{self, LogLine};
use std::io::{BufRead, BufReader, LineWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// A report of the kernel: the lines between `@ktls panic` or `@ktls hang` and `@ktls end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) lines: Vec<String>,
    /// Its `@ktls end` came.
    pub(crate) ended: bool,
}

impl Report {
    /// The report as text, with the kernel code addresses annotated from the kernel ELF at
    /// `kernel` (see symbolize.rs; as the kernel wrote it if the ELF cannot be read).
    pub(crate) fn symbolized(&self, kernel: &Path) -> String {
        let mut r = self.lines.join("\n");
        if !self.ended {
            r.push_str("\n(the report ends here: no `@ktls end` line came)");
        }
        crate::symbolize::symbolize_report(kernel, &r).unwrap_or(r)
    }
}

/// What the log port said.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    pub(crate) booted: bool,
    pub(crate) exit_line: Option<String>,
    pub(crate) panic: Option<Report>,
    /// Hang reports, in order: normally one, the answer to the runner's NMI.
    pub(crate) hangs: Vec<Report>,
    pub(crate) strace: Vec<String>,
    pub(crate) text: String,
}

/// What the thread that waits for QEMU needs to know while the log is still being read.
#[derive(Debug, Default)]
pub(crate) struct LogEvents {
    /// `@ktls exit` came.
    pub(crate) exit_seen: AtomicBool,
    /// `@ktls hang` came.
    pub(crate) hang_started: AtomicBool,
    /// A hang report's `@ktls end` came.
    pub(crate) hang_ended: AtomicBool,
}

/// The report being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Panic,
    Hang,
}

/// Reads the log port until it closes: control lines are acted on (and noted in `events`),
/// `@strace` records go to stderr when `streaming`, log lines to `file`.
pub(crate) fn read(
    from: UnixStream,
    streaming: bool,
    mut file: Option<LineWriter<std::fs::File>>,
    events: &LogEvents,
) -> LogState {
    let mut st = LogState::default();
    let mut open: Option<Open> = None;
    let mut reader = BufReader::new(from);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let classified = console::classify(line);
        // A panic can interrupt a hang report (never the other way round: a panic stops the
        // machine); whatever the hang report had stays, unended.
        if let Some(which) = open.filter(|_| classified != LogLine::PanicStart) {
            let report = match which {
                Open::Panic => st.panic.as_mut(),
                Open::Hang => st.hangs.last_mut(),
            }
            .expect("an open report exists");
            if classified == LogLine::ReportEnd {
                report.ended = true;
                open = None;
                if which == Open::Hang {
                    events.hang_ended.store(true, Ordering::Release);
                }
            } else {
                report.lines.push(line.to_string());
            }
            continue;
        }
        let mut log_it = |text: &str, st: &mut LogState| {
            st.text.push_str(text);
            st.text.push('\n');
            if let Some(f) = &mut file {
                if writeln!(f, "{text}").is_err() {
                    file = None;
                }
            }
        };
        match classified {
            LogLine::Boot(_) => st.booted = true,
            LogLine::Strace(t) => {
                if streaming {
                    eprintln!("{t}");
                } else {
                    st.strace.push(t.to_string());
                }
            }
            LogLine::Exit(s) => {
                if st.exit_line.is_none() {
                    st.exit_line = Some(s.to_string());
                }
                events.exit_seen.store(true, Ordering::Release);
            }
            LogLine::PanicStart => {
                open = Some(Open::Panic);
                st.panic.get_or_insert_with(Report::default);
            }
            LogLine::HangStart => {
                open = Some(Open::Hang);
                st.hangs.push(Report::default());
                events.hang_started.store(true, Ordering::Release);
            }
            // A stray end marker, or an unknown control line: keep it in the log.
            LogLine::ReportEnd | LogLine::UnknownControl(_) => log_it(line, &mut st),
            LogLine::Log(t) => log_it(t, &mut st),
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log reader on a canned log stream (through a real socket pair).
    fn read_text(text: &str) -> (LogState, LogEvents) {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(text.as_bytes()).unwrap();
        drop(a);
        let events = LogEvents::default();
        let st = read(b, false, None, &events);
        (st, events)
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn log_port_parsing() {
        let (st, events) = read_text(
            "early\r\n@ktls boot 1\r\nmm: ok\n@strace getpid() = 1\n@weird\n\
             @ktls exit 3\n@ktls panic\npanicked at x.rs:1\n  frame 0\n@ktls end\nafter",
        );
        assert!(events.exit_seen.load(Ordering::Relaxed));
        assert!(!events.hang_started.load(Ordering::Relaxed));
        assert!(st.booted);
        assert_eq!(st.exit_line.as_deref(), Some("3"));
        assert_eq!(st.strace, ["getpid() = 1"]);
        assert_eq!(st.text, "early\nmm: ok\n@weird\nafter\n");
        let panic = st.panic.unwrap();
        assert_eq!(panic.lines, lines(&["panicked at x.rs:1", "  frame 0"]));
        assert!(panic.ended);
        assert!(st.hangs.is_empty());
    }

    #[test]
    fn hang_reports() {
        let (st, events) = read_text(
            "@ktls boot 1\nbefore\n\n@ktls hang\r\ncpu 0: user mode at rip 0x401000\n\
             threads:\n  tid=1 pid=1 state=Blocked\n@ktls end\nafter\n\
             @ktls hang\ncpu 1: kernel mode\n@ktls end\n@ktls end\n",
        );
        assert!(events.hang_started.load(Ordering::Relaxed));
        assert!(events.hang_ended.load(Ordering::Relaxed));
        assert_eq!(st.hangs.len(), 2);
        assert_eq!(
            st.hangs[0].lines,
            lines(&[
                "cpu 0: user mode at rip 0x401000",
                "threads:",
                "  tid=1 pid=1 state=Blocked"
            ])
        );
        assert!(st.hangs[0].ended);
        assert_eq!(st.hangs[1].lines, lines(&["cpu 1: kernel mode"]));
        // The report's lines are not in the log; a stray end marker is.
        assert_eq!(st.text, "before\n\nafter\n@ktls end\n");
        assert!(st.panic.is_none());
    }

    #[test]
    fn a_hang_report_cut_short() {
        // The run ended (QEMU killed) before `@ktls end`.
        let (st, events) = read_text("@ktls hang\ncpu 0: kernel mode\nbacktrace:\n");
        assert!(events.hang_started.load(Ordering::Relaxed));
        assert!(!events.hang_ended.load(Ordering::Relaxed));
        assert_eq!(st.hangs.len(), 1);
        assert!(!st.hangs[0].ended);
        let text = st.hangs[0].symbolized(Path::new("/nonexistent/kernel"));
        assert_eq!(
            text,
            "cpu 0: kernel mode\nbacktrace:\n(the report ends here: no `@ktls end` line came)"
        );
    }

    #[test]
    fn a_panic_inside_a_hang_report() {
        // A fault while writing the hang report: the panic report takes over.
        let (st, events) = read_text(
            "@ktls hang\ncpu 0: kernel mode\n@ktls panic\nkernel fault: page fault\n@ktls end\n",
        );
        assert!(!events.hang_ended.load(Ordering::Relaxed));
        assert_eq!(st.hangs.len(), 1);
        assert_eq!(st.hangs[0].lines, lines(&["cpu 0: kernel mode"]));
        assert!(!st.hangs[0].ended);
        let panic = st.panic.unwrap();
        assert_eq!(panic.lines, lines(&["kernel fault: page fault"]));
        assert!(panic.ended);
    }
}
