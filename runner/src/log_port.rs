//! The log port (COM3): the kernel log and the control lines (spec/boot-protocol.md, *Log
//! port*), read by a thread of the runner while QEMU runs.

use crate::console::{self, LogLine};
use std::io::{BufRead, BufReader, LineWriter, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the log port said.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    pub(crate) booted: bool,
    pub(crate) exit_line: Option<String>,
    pub(crate) panic: Option<Vec<String>>,
    pub(crate) in_panic: bool,
    pub(crate) panic_ended: bool,
    pub(crate) strace: Vec<String>,
    pub(crate) text: String,
}

/// Reads the log port until it closes: control lines are acted on (`exit_seen` is set at
/// `@ktls exit`), `@strace` records go to stderr when `streaming`, log lines to `file`.
pub(crate) fn read(
    from: UnixStream,
    streaming: bool,
    mut file: Option<LineWriter<std::fs::File>>,
    exit_seen: &AtomicBool,
) -> LogState {
    let mut st = LogState::default();
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
        let classified = console::classify(&line);
        if st.in_panic {
            if classified == LogLine::PanicEnd {
                st.in_panic = false;
                st.panic_ended = true;
            } else if let Some(p) = &mut st.panic {
                p.push(line.strip_suffix('\r').unwrap_or(&line).to_string());
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
                exit_seen.store(true, Ordering::Release);
            }
            LogLine::PanicStart => {
                st.in_panic = true;
                st.panic.get_or_insert_with(Vec::new);
            }
            // A stray end marker, or an unknown control line: keep it in the log.
            LogLine::PanicEnd | LogLine::UnknownControl(_) => {
                let l = line.strip_suffix('\r').unwrap_or(&line).to_string();
                log_it(&l, &mut st);
            }
            LogLine::Log(t) => log_it(t, &mut st),
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log reader on a canned log stream (through a real socket pair).
    #[test]
    fn log_port_parsing() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let text = "early\r\n@ktls boot 1\r\nmm: ok\n@strace getpid() = 1\n@weird\n\
                    @ktls exit 3\n@ktls panic\npanicked at x.rs:1\n  frame 0\n@ktls end\nafter";
        a.write_all(text.as_bytes()).unwrap();
        drop(a);
        let flag = AtomicBool::new(false);
        let st = read(b, false, None, &flag);
        assert!(flag.load(Ordering::Relaxed));
        assert!(st.booted);
        assert_eq!(st.exit_line.as_deref(), Some("3"));
        assert_eq!(st.strace, ["getpid() = 1"]);
        assert_eq!(st.text, "early\nmm: ok\n@weird\nafter\n");
        assert_eq!(
            st.panic.unwrap(),
            ["panicked at x.rs:1".to_string(), "  frame 0".to_string()]
        );
        assert!(st.panic_ended);
    }
}
