//! The byte-level parts of the protocol: console input escaping and log-port lines.

/// The escape byte of console input.
pub const ESCAPE: u8 = 0xff;
/// What the runner sends when its stdin ends: `0xff 0x01`.
pub const EOF_MARKER: [u8; 2] = [ESCAPE, 0x01];

/// Escapes console input: `0xff` becomes `0xff 0x00`; every other byte stands for itself.
pub fn escape_input(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 64 + 2);
    for &b in bytes {
        out.push(b);
        if b == ESCAPE {
            out.push(0x00);
        }
    }
    out
}

/// Undoes [`escape_input`] (what the kernel does): returns the bytes and whether the end-of-file
/// marker was seen (decoding stops there). For tests and documentation.
pub fn unescape_input(bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        if b != ESCAPE {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(0x00) => out.push(ESCAPE),
            Some(0x01) => return (out, true),
            // Undefined escapes and a lone trailing 0xff are dropped.
            _ => {}
        }
    }
    (out, false)
}

/// One line of the log port (COM3), classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogLine<'a> {
    /// `@ktls boot <version>`
    Boot(&'a str),
    /// `@strace <text>`
    Strace(&'a str),
    /// `@ktls exit <status>` (the status text, not yet validated)
    Exit(&'a str),
    /// `@ktls panic`: a panic report follows.
    PanicStart,
    /// `@ktls hang`: a hang report follows (the kernel's answer to an NMI).
    HangStart,
    /// `@ktls end`: the end of a panic or hang report.
    ReportEnd,
    /// A line that starts with `@` but is none of the above.
    UnknownControl(&'a str),
    /// Anything else: the kernel's log.
    Log(&'a str),
}

/// Classifies one line (without its newline; a trailing `\r` is ignored).
pub fn classify(line: &str) -> LogLine<'_> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !line.starts_with('@') {
        return LogLine::Log(line);
    }
    if let Some(text) = line.strip_prefix("@strace ") {
        return LogLine::Strace(text);
    }
    if line == "@strace" {
        return LogLine::Strace("");
    }
    if let Some(rest) = line.strip_prefix("@ktls ") {
        let rest = rest.trim_end();
        if let Some(v) = rest.strip_prefix("boot") {
            if v.is_empty() || v.starts_with(' ') {
                return LogLine::Boot(v.trim());
            }
        }
        if let Some(s) = rest.strip_prefix("exit ") {
            return LogLine::Exit(s.trim());
        }
        if rest == "exit" {
            return LogLine::Exit("");
        }
        match rest {
            "panic" => return LogLine::PanicStart,
            "hang" => return LogLine::HangStart,
            "end" => return LogLine::ReportEnd,
            _ => {}
        }
    }
    LogLine::UnknownControl(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_input(b"abc"), b"abc");
        assert_eq!(escape_input(&[0xff]), [0xff, 0x00]);
        assert_eq!(
            escape_input(&[1, 0xff, 0xff, 0, 0xfe]),
            [1, 0xff, 0, 0xff, 0, 0, 0xfe]
        );
        assert_eq!(escape_input(&[]), Vec::<u8>::new());
        // The EOF marker can never appear inside escaped data.
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let esc = escape_input(&all);
        assert!(!esc.windows(2).any(|w| w == EOF_MARKER));
        let mut stream = esc.clone();
        stream.extend_from_slice(&EOF_MARKER);
        stream.extend_from_slice(b"ignored");
        assert_eq!(unescape_input(&stream), (all.clone(), true));
        assert_eq!(unescape_input(&esc), (all, false));
    }

    #[test]
    fn classification() {
        assert_eq!(classify("@ktls boot 1"), LogLine::Boot("1"));
        assert_eq!(classify("@ktls boot 1\r"), LogLine::Boot("1"));
        assert_eq!(classify("@ktls exit 0"), LogLine::Exit("0"));
        assert_eq!(classify("@ktls exit 255"), LogLine::Exit("255"));
        assert_eq!(classify("@ktls exit"), LogLine::Exit(""));
        assert_eq!(classify("@ktls panic"), LogLine::PanicStart);
        assert_eq!(classify("@ktls hang"), LogLine::HangStart);
        assert_eq!(classify("@ktls hang\r"), LogLine::HangStart);
        assert_eq!(classify("@ktls end"), LogLine::ReportEnd);
        assert_eq!(
            classify("@ktls hangs"),
            LogLine::UnknownControl("@ktls hangs")
        );
        assert_eq!(
            classify("@strace write(1, \"hi\", 2) = 2"),
            LogLine::Strace("write(1, \"hi\", 2) = 2")
        );
        assert_eq!(classify("@strace"), LogLine::Strace(""));
        assert_eq!(
            classify("mm: 255 MiB free"),
            LogLine::Log("mm: 255 MiB free")
        );
        assert_eq!(classify(""), LogLine::Log(""));
        assert_eq!(
            classify("@ktls bootx"),
            LogLine::UnknownControl("@ktls bootx")
        );
        assert_eq!(classify("@other"), LogLine::UnknownControl("@other"));
        assert_eq!(classify(" @ktls exit 0"), LogLine::Log(" @ktls exit 0"));
    }
}
