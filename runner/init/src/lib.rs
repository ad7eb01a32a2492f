//! The script format of `ktls-init` and the markers it prints, shared by the init (which reads
//! scripts and prints markers) and the runner (which writes scripts and splits the output).
//! `spec/boot-protocol.md`, *Scripts*, is the contract; this is its implementation.
//!
//! # The script file
//!
//! A sequence of fields, each one followed by a NUL byte (so no field can contain NUL, just as
//! no `execve` argument can):
//!
//! ```text
//! ktls-script 1     magic and version
//! TOKEN             1 to 64 ASCII letters and digits, chosen at random by the runner
//! EXIT              `zero` (the init exits 0) or `first-failure` (it exits with the first
//!                   non-zero command status, 0 if there is none)
//! N                 the number of commands, decimal
//! N times:
//!   EXE             the absolute guest path of the executable
//!   STDIN           empty: the command inherits the init's stdin (the console); else the
//!                   absolute guest path of a file the command gets as its stdin
//!   ARGC            the number of arguments, decimal
//!   ARGV...         ARGC arguments (argv[0] first)
//! ```
//!
//! Nothing follows the last field. Numbers are plain decimal (`0`, or no leading zero).
//!
//! # Markers
//!
//! For command `I` (counting from 0), the init writes to its stdout and then to its stderr
//! `@@ktls-script begin I TOKEN\n` before starting the command, and
//! `\n@@ktls-script end I TOKEN STATUS\n` after it ended, where STATUS is the shell-style status
//! (the exit code, or 128+N after death by signal N). The end marker's leading newline is part
//! of the marker: it is always written, so that the marker starts a line even after output
//! without a final newline, and [`split_stream`] removes exactly that one newline. The random
//! token keeps a program from printing a marker by accident: text that looks like a marker but
//! lacks the token is program output like any other.

/// The magic field that starts a script (format version 1).
pub const MAGIC: &str = "ktls-script 1";
/// The guest directory that holds the init, the script and the stdin files.
pub const DIR: &str = "/.ktls-script";
/// The init's guest path.
pub const INIT_PATH: &str = "/.ktls-script/init";
/// The script's guest path (the init's default; its first argument overrides it).
pub const SCRIPT_PATH: &str = "/.ktls-script/commands";
/// The longest token.
pub const MAX_TOKEN: usize = 64;

/// What the init exits with once every command ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExitMode {
    /// 0.
    #[default]
    Zero,
    /// The status of the first command that did not exit 0, or 0.
    FirstFailure,
}

impl ExitMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitMode::Zero => "zero",
            ExitMode::FirstFailure => "first-failure",
        }
    }

    pub fn parse(s: &[u8]) -> Option<ExitMode> {
        match s {
            b"zero" => Some(ExitMode::Zero),
            b"first-failure" => Some(ExitMode::FirstFailure),
            _ => None,
        }
    }
}

/// One command of a script, as the init runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Absolute guest path of the executable.
    pub exe: Vec<u8>,
    /// Absolute guest path of the file to use as stdin; `None`: the init's stdin.
    pub stdin: Option<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
}

/// A whole script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub token: String,
    pub exit: ExitMode,
    pub commands: Vec<Command>,
}

/// Checks a token: 1 to [`MAX_TOKEN`] ASCII letters and digits.
pub fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOKEN && t.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn absolute_path(what: &str, p: &[u8]) -> Result<(), String> {
    if p.first() != Some(&b'/') {
        return Err(format!(
            "{what} {:?} is not an absolute path",
            String::from_utf8_lossy(p)
        ));
    }
    Ok(())
}

impl Script {
    /// The script file's bytes. Fails on a bad token, a relative path or a NUL byte in a field.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        if !valid_token(&self.token) {
            return Err(format!("bad token {:?}", self.token));
        }
        let mut out = Vec::new();
        let mut field = |f: &[u8], what: &str| -> Result<(), String> {
            if f.contains(&0) {
                return Err(format!(
                    "{what} {:?} contains a NUL byte",
                    String::from_utf8_lossy(f)
                ));
            }
            out.extend_from_slice(f);
            out.push(0);
            Ok(())
        };
        field(MAGIC.as_bytes(), "magic")?;
        field(self.token.as_bytes(), "token")?;
        field(self.exit.as_str().as_bytes(), "exit mode")?;
        field(self.commands.len().to_string().as_bytes(), "count")?;
        for c in &self.commands {
            absolute_path("the executable", &c.exe)?;
            field(&c.exe, "the executable")?;
            match &c.stdin {
                Some(p) => {
                    absolute_path("the stdin file", p)?;
                    field(p, "the stdin file")?;
                }
                None => field(b"", "the stdin file")?,
            }
            field(c.argv.len().to_string().as_bytes(), "argc")?;
            for a in &c.argv {
                field(a, "argument")?;
            }
        }
        Ok(out)
    }

    /// Parses a script file.
    pub fn decode(bytes: &[u8]) -> Result<Script, String> {
        if bytes.last().is_some_and(|&b| b != 0) {
            return Err("the last field is not terminated by a NUL byte".into());
        }
        let mut fields = bytes.split(|&b| b == 0);
        let mut next = |what: &str| {
            fields
                .next()
                .ok_or_else(|| format!("the script ends before {what}"))
        };
        if next("the magic")? != MAGIC.as_bytes() {
            return Err(format!("not a script (it must start with {MAGIC:?})"));
        }
        let token = String::from_utf8(next("the token")?.to_vec())
            .ok()
            .filter(|t| valid_token(t))
            .ok_or("bad token")?;
        let exit = ExitMode::parse(next("the exit mode")?).ok_or("bad exit mode")?;
        let count = parse_count(next("the count")?).ok_or("bad command count")?;
        let mut commands = Vec::new();
        for i in 0..count {
            let exe = next("an executable")?.to_vec();
            absolute_path(&format!("command {i}: the executable"), &exe)?;
            let stdin = match next("a stdin file")? {
                b"" => None,
                p => {
                    absolute_path(&format!("command {i}: the stdin file"), p)?;
                    Some(p.to_vec())
                }
            };
            let argc = parse_count(next("an argument count")?)
                .ok_or_else(|| format!("command {i}: bad argument count"))?;
            let mut argv = Vec::new();
            for _ in 0..argc {
                argv.push(next("an argument")?.to_vec());
            }
            commands.push(Command { exe, stdin, argv });
        }
        // `split` yields one empty piece after the final NUL.
        match (fields.next(), fields.next()) {
            (Some(b""), None) => Ok(Script {
                token,
                exit,
                commands,
            }),
            _ => Err("extra data after the last command".into()),
        }
    }
}

/// A decimal count: `0`, or digits without a leading zero, at most 9 of them.
fn parse_count(f: &[u8]) -> Option<usize> {
    let plain = !f.is_empty()
        && f.len() <= 9
        && f.iter().all(u8::is_ascii_digit)
        && (f[0] != b'0' || f.len() == 1);
    if !plain {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

/// `@@ktls-script begin I TOKEN\n`.
pub fn begin_marker(index: usize, token: &str) -> Vec<u8> {
    format!("@@ktls-script begin {index} {token}\n").into_bytes()
}

/// `\n@@ktls-script end I TOKEN STATUS\n` (the leading newline belongs to the marker).
pub fn end_marker(index: usize, token: &str, status: i32) -> Vec<u8> {
    format!("\n@@ktls-script end {index} {token} {status}\n").into_bytes()
}

/// The end marker up to its status.
fn end_prefix(index: usize, token: &str) -> Vec<u8> {
    format!("\n@@ktls-script end {index} {token} ").into_bytes()
}

/// One command's share of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// What the command wrote, without the markers (and without the newline the end marker
    /// added in front of itself).
    pub output: Vec<u8>,
    /// The status from the end marker; `None` if the stream ended before it (the command was
    /// still running when the boot ended: kernel panic, timeout).
    pub status: Option<i32>,
}

/// A stream cut into the commands' sections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// One per command; `None` for a command whose begin marker never came.
    pub sections: Vec<Option<Section>>,
    /// Everything outside the sections, in order: the init's own messages, output of
    /// background processes that outlived their command between two commands.
    pub outside: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return (needle.is_empty()).then_some(0);
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(off) => {
                let at = i + off;
                if &hay[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Parses an end marker's status: decimal 0..=255, no sign, no leading zero.
fn parse_status(f: &[u8]) -> Option<i32> {
    let n = parse_count(f)?;
    (n <= 255).then_some(n as i32)
}

/// Cuts one output stream (the console, or stderr) of a script run into `count` sections.
pub fn split_stream(stream: &[u8], token: &str, count: usize) -> Split {
    let mut split = Split {
        sections: vec![None; count],
        outside: Vec::new(),
    };
    let mut pos = 0;
    for (i, slot) in split.sections.iter_mut().enumerate() {
        let begin = begin_marker(i, token);
        let Some(b) = find(&stream[pos..], &begin).map(|b| pos + b) else {
            break;
        };
        split.outside.extend_from_slice(&stream[pos..b]);
        let start = b + begin.len();
        let prefix = end_prefix(i, token);
        let Some(e) = find(&stream[start..], &prefix).map(|e| start + e) else {
            *slot = Some(Section {
                output: stream[start..].to_vec(),
                status: None,
            });
            pos = stream.len();
            break;
        };
        let after = e + prefix.len();
        let nl = stream[after..].iter().position(|&c| c == b'\n');
        let status = nl.and_then(|n| parse_status(&stream[after..after + n]));
        *slot = Some(Section {
            output: stream[start..e].to_vec(),
            status,
        });
        pos = match nl {
            Some(n) => after + n + 1,
            None => stream.len(),
        };
    }
    split.outside.extend_from_slice(&stream[pos..]);
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_substrings() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"aaab", b"ab"), Some(2));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"x", b""), Some(0));
        assert_eq!(find(b"xyz", b"z"), Some(2));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b"17"), Some(17));
        for bad in [&b""[..], b"01", b"-1", b"+1", b"1x", b"1234567890"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
        assert_eq!(parse_status(b"255"), Some(255));
        assert_eq!(parse_status(b"256"), None);
    }
}
