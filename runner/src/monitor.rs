//! QEMU's human monitor (HMP), on the runner's fourth unix socket (spec/boot-protocol.md,
//! *Machine*). When a run times out, the runner sends `nmi` (an NMI on every CPU: the kernel
//! answers with its hang report), and if no report comes, reads the CPUs' registers instead.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the monitor prints when it is ready for a command.
const PROMPT: &str = "(qemu) ";

/// A connected monitor. A thread collects everything it prints (and keeps the socket drained,
/// so QEMU never waits on it), until QEMU closes it.
pub(crate) struct Monitor {
    to: UnixStream,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Monitor {
    pub(crate) fn new(stream: UnixStream) -> io::Result<Monitor> {
        let mut from = stream.try_clone()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let collected = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => collected
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Ok(Monitor { to: stream, output })
    }

    fn output_len(&self) -> usize {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What the monitor printed from byte `from` on.
    fn output_since(&self, from: usize) -> String {
        let all = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned()
    }

    /// Sends one command line, without waiting for its answer.
    pub(crate) fn send(&mut self, command: &str) -> io::Result<()> {
        self.to.write_all(format!("{command}\n").as_bytes())
    }

    /// Sends `command` and returns what the monitor printed up to its next prompt, or what
    /// came before `limit` passed.
    pub(crate) fn ask(&mut self, command: &str, limit: Duration) -> io::Result<String> {
        let deadline = Instant::now() + limit;
        // The greeting ends with a prompt too: wait for it, so that it is not taken for the
        // end of the answer.
        while !self.output_since(0).contains(PROMPT) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = self.output_len();
        self.send(command)?;
        loop {
            let answer = self.output_since(start);
            if answer.contains(PROMPT) || Instant::now() >= deadline {
                return Ok(answer);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Each CPU's instruction pointer in the output of `info registers -a`: `(cpu, rip)` (`RIP=`
/// in long mode, `EIP=` before it).
pub(crate) fn rips(info_registers: &str) -> Vec<(u32, u64)> {
    let mut cpu = 0;
    let mut out = Vec::new();
    for line in info_registers.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("CPU#") {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            cpu = digits.parse().unwrap_or(cpu);
        } else if let Some(rest) = line
            .strip_prefix("RIP=")
            .or_else(|| line.strip_prefix("EIP="))
        {
            let hex = rest.split_whitespace().next().unwrap_or("");
            if let Ok(rip) = u64::from_str_radix(hex, 16) {
                out.push((cpu, rip));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As QEMU 7.2 prints it (abridged).
    const INFO_REGISTERS: &str = "info registers -a\r\n\
        \r\n\
        CPU#0\r\n\
        RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\r\n\
        RIP=ffffffff80149598 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\
        ES =0000 0000000000000000 00000000 00000000\r\n\
        \r\n\
        CPU#1\r\n\
        RAX=0000000000000001 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\r\n\
        RIP=0000000000401234 RFL=00000202 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0\r\n\
        (qemu) ";

    #[test]
    fn rips_of_info_registers() {
        assert_eq!(
            rips(INFO_REGISTERS),
            [(0, 0xffff_ffff_8014_9598), (1, 0x40_1234)]
        );
        assert_eq!(rips("(qemu) "), []);
        // Before long mode (a CPU that never started, here paused at the reset vector).
        let real_mode = "CPU#1\r\nEAX=00000000 EBX=00000000\r\n\
                         EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n";
        assert_eq!(rips(real_mode), [(1, 0xfff0)]);
    }

    #[test]
    fn asking_waits_for_the_prompt() {
        let (ours, mut qemu) = UnixStream::pair().unwrap();
        let mut m = Monitor::new(ours).unwrap();
        let fake = std::thread::spawn(move || {
            qemu.write_all(b"QEMU 7.2 monitor - type 'help'\r\n(qemu) ")
                .unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 64];
            while !got.ends_with(b"\n") {
                let n = qemu.read(&mut b).unwrap();
                got.extend_from_slice(&b[..n]);
            }
            assert_eq!(got, b"info registers -a\n");
            qemu.write_all(INFO_REGISTERS.as_bytes()).unwrap();
            qemu
        });
        let answer = m.ask("info registers -a", Duration::from_secs(10)).unwrap();
        assert!(answer.ends_with(PROMPT), "{answer:?}");
        assert_eq!(rips(&answer).len(), 2);
        drop(fake.join().unwrap());
    }
}
