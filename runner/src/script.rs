//! Several programs in one boot: the runner boots a small init (`ktls-init`, in `runner/init/`)
//! that runs a script of commands one after another, and cuts the console and stderr streams
//! into each command's output by the markers the init prints (spec/boot-protocol.md,
//! *Scripts*). A test suite pays for one boot instead of one per program.
//!
//! ```no_run
//! use ktls_runner::{run_script, RunConfig};
//! use std::path::PathBuf;
//!
//! let mut cfg = RunConfig::default();
//! cfg.timeout = Some(std::time::Duration::from_secs(120));
//! let bb = PathBuf::from("/bin/busybox");
//! let out = run_script(
//!     &cfg,
//!     &[
//!         (bb.clone(), vec!["echo".into(), "a".into()]),
//!         (bb.clone(), vec!["sh".into(), "-c".into(), "exit 3".into()]),
//!     ],
//! )
//! .unwrap();
//! assert_eq!(out.boot.status, 0, "the boot went well");
//! assert_eq!(out.commands[0].stdout, b"a\n");
//! assert_eq!(out.commands[1].status, Some(3));
//! ```
//!
//! What each command sees: its program packed at its canonical host path (as `run_captured`
//! does), `argv[0]` the program as given, the [`RunConfig::env`] environment, the working
//! directory of the boot request, stdout and stderr on the console, stdin as the
//! [`ScriptCommand::stdin`] says. It runs as a child of the init (so `getppid()` is the init's
//! pid), and the next command starts when it has ended; processes it leaves running in the
//! background keep running, and what they print lands in later sections or outside them.

use crate::initramfs::{self, Assembly, BootRequest, Node, Source, Tree};
use crate::{build, qemu, Input, Outcome, RunConfig, RunError};
use ktls_init::{split_stream, Command, Script, DIR, INIT_PATH, SCRIPT_PATH};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use ktls_init::ExitMode;

/// One command of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptCommand {
    /// The program, looked up as [`crate::run_captured`] does (a name without `/` in `PATH`,
    /// relative paths against [`RunConfig::cwd`]); `argv[0]` is this as given.
    pub program: PathBuf,
    /// `argv[1..]`.
    pub args: Vec<OsString>,
    /// The command's stdin: these bytes (a file in the guest tree, read from its start), or
    /// with `None` the console, shared by every command (fed from [`RunConfig::stdin`]; the
    /// console's end of file is read once, so after one command read to the end, the next one
    /// reading the console waits for input that never comes).
    pub stdin: Option<Vec<u8>>,
}

impl ScriptCommand {
    /// A command with an empty stdin.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> ScriptCommand {
        ScriptCommand {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            stdin: Some(Vec::new()),
        }
    }
}

/// What one command of a script did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The shell-style status (the exit code, or 128+N after death by signal N; 127 if the
    /// program does not exist in the guest, 126 if it could not be started). `None` if the
    /// command had not ended when the boot did (kernel panic, timeout, or it never started).
    pub status: Option<i32>,
    /// What it wrote to stdout (the console).
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// The init started it (its begin marker came).
    pub started: bool,
}

/// The result of [`run_script`]: each command's outcome and the boot's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// One per command, in order.
    pub commands: Vec<CommandOutcome>,
    /// The whole boot: `status` is the init's (0 with [`ExitMode::Zero`] when every command
    /// ran) or 124/125 as for any run; `kernel_log`, `panic_report`, `strace`, `message`... as
    /// for one program. Its `stdout` and `stderr` are the raw streams, markers included.
    pub boot: Outcome,
    /// Console output outside every command's section (normally empty: output of background
    /// processes between two commands, or the init's own complaints).
    pub stdout_outside: Vec<u8>,
    /// Stderr output outside every command's section.
    pub stderr_outside: Vec<u8>,
}

impl ScriptOutcome {
    /// The boot ended normally and every command exited with status 0.
    pub fn all_succeeded(&self) -> bool {
        self.boot.exited
            && self.boot.panic_report.is_none()
            && self.commands.iter().all(|c| c.status == Some(0))
    }

    /// The index of the command that was running when the boot ended, if one was.
    pub fn unfinished(&self) -> Option<usize> {
        self.commands
            .iter()
            .position(|c| c.started && c.status.is_none())
    }
}

/// Runs `commands` (program, `argv[1..]`) one after another in one boot. Each command's stdin
/// is what [`crate::run_captured`] would give it: the bytes of [`RunConfig::stdin`] (nothing
/// for [`Input::Null`]) as a file of its own; with [`Input::Inherit`] all of them share the
/// console (see [`ScriptCommand::stdin`]). The init exits 0 ([`ExitMode::Zero`]), so
/// `boot.status` other than 0 means the boot itself failed.
///
/// `Ok` means the boot happened, whatever the commands did; `Err` means the runner could not
/// do it (bad configuration, a missing program, a failed build, QEMU failing to start).
pub fn run_script(
    cfg: &RunConfig,
    commands: &[(PathBuf, Vec<OsString>)],
) -> Result<ScriptOutcome, RunError> {
    let stdin = match &cfg.stdin {
        Input::Null => Some(Vec::new()),
        Input::Bytes(b) => Some(b.clone()),
        Input::Inherit => None,
    };
    let commands: Vec<ScriptCommand> = commands
        .iter()
        .map(|(program, args)| ScriptCommand {
            program: program.clone(),
            args: args.clone(),
            stdin: stdin.clone(),
        })
        .collect();
    run_script_commands(cfg, &commands, ExitMode::Zero)
}

/// [`run_script`] with a stdin per command and a choice of the init's exit status.
pub fn run_script_commands(
    cfg: &RunConfig,
    commands: &[ScriptCommand],
    exit: ExitMode,
) -> Result<ScriptOutcome, RunError> {
    cfg.validate()?;
    let token = new_token();
    let assembly = assemble(cfg, commands, &token, exit)?;
    let boot = qemu::run_assembly(cfg, &assembly, false)?;
    Ok(split(boot, &token, commands.len()))
}

/// A fresh random token (32 hex digits).
fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut token = String::new();
    for salt in 0..2u64 {
        // Each RandomState has fresh random keys.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        token.push_str(&format!("{:016x}", h.finish()));
    }
    token
}

/// The guest tree: the `adds`, every command's program (as `run_captured` packs one), the init,
/// the script and the stdin files; the boot request starts the init.
fn assemble(
    cfg: &RunConfig,
    commands: &[ScriptCommand],
    token: &str,
    exit: ExitMode,
) -> Result<Assembly, RunError> {
    let host_cwd = match &cfg.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir()
            .map_err(|e| RunError::Io(format!("the current directory: {e}")))?,
    };
    let path_var = std::env::var_os("PATH");
    let mut tree = Tree::new();
    for add in &cfg.adds {
        tree.add_host(&add.host, &add.guest)
            .map_err(|e| RunError::Pack(format!("--add {}: {e}", add.host.display())))?;
    }
    if tree.get(Path::new(DIR)).is_some() {
        return Err(RunError::Usage(format!(
            "{DIR} is reserved for the script and its init; --add something else"
        )));
    }
    let mut script = Script {
        token: token.to_string(),
        exit,
        commands: Vec::new(),
    };
    let mut stdin_files: BTreeMap<&[u8], PathBuf> = BTreeMap::new();
    let mut files: Vec<(PathBuf, Node)> = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        let exe =
            initramfs::resolve_program(c.program.as_os_str(), &host_cwd, path_var.as_deref())?;
        let meta = std::fs::metadata(&exe)
            .map_err(|e| RunError::Program(format!("{}: {e}", exe.display())))?;
        tree.insert(
            &exe,
            Node::File {
                mode: meta.permissions().mode() & 0o7777,
                source: Source::Host(exe.clone()),
            },
        )
        .map_err(|e| RunError::Pack(format!("command {}: {e}", i + 1)))?;
        for (link, target) in initramfs::path_aliases(&c.program, &host_cwd) {
            if tree.get(&link).is_none() {
                // Best effort, as for one program.
                let _ = tree.insert(
                    &link,
                    Node::Symlink {
                        target: target.into_os_string().into_vec(),
                    },
                );
            }
        }
        let stdin = match &c.stdin {
            None => None,
            Some(bytes) => {
                let next = stdin_files.len();
                let path = stdin_files
                    .entry(bytes.as_slice())
                    .or_insert_with(|| PathBuf::from(format!("{DIR}/stdin-{next}")))
                    .clone();
                if next < stdin_files.len() {
                    files.push((
                        path.clone(),
                        Node::File {
                            mode: 0o444,
                            source: Source::Bytes(bytes.clone()),
                        },
                    ));
                }
                Some(path.into_os_string().into_vec())
            }
        };
        let mut argv = vec![c.program.as_os_str().as_bytes().to_vec()];
        argv.extend(c.args.iter().map(|a| a.as_bytes().to_vec()));
        script.commands.push(Command {
            exe: exe.into_os_string().into_vec(),
            stdin,
            argv,
        });
    }
    let init = build::init_path()?;
    files.push((
        PathBuf::from(INIT_PATH),
        Node::File {
            mode: 0o755,
            source: Source::Host(init),
        },
    ));
    files.push((
        PathBuf::from(SCRIPT_PATH),
        Node::File {
            mode: 0o444,
            source: Source::Bytes(script.encode().map_err(RunError::Usage)?),
        },
    ));
    for (path, node) in files {
        tree.insert(&path, node).map_err(RunError::Pack)?;
    }
    let cwd = match host_cwd.canonicalize() {
        Ok(c) if tree.is_dir(&c) => c,
        _ => PathBuf::from("/"),
    };
    Ok(Assembly {
        tree,
        request: BootRequest {
            exe: PathBuf::from(INIT_PATH),
            argv: vec![OsString::from(INIT_PATH)],
            envp: cfg.env.clone(),
            cwd,
        },
    })
}

/// Cuts the boot's streams into the commands' outcomes.
fn split(boot: Outcome, token: &str, count: usize) -> ScriptOutcome {
    let out = split_stream(&boot.stdout, token, count);
    let err = split_stream(&boot.stderr, token, count);
    let commands = out
        .sections
        .into_iter()
        .zip(err.sections)
        .map(|(o, e)| CommandOutcome {
            started: o.is_some() || e.is_some(),
            // Both streams carry the status; the console's comes first.
            status: o
                .as_ref()
                .and_then(|s| s.status)
                .or_else(|| e.as_ref().and_then(|s| s.status)),
            stdout: o.map(|s| s.output).unwrap_or_default(),
            stderr: e.map(|s| s.output).unwrap_or_default(),
        })
        .collect();
    ScriptOutcome {
        commands,
        boot,
        stdout_outside: out.outside,
        stderr_outside: err.outside,
    }
}

/// Parses a `--script` file: one command per line, words separated by blanks (spaces, tabs);
/// the first word is the program (as for `ktls run PROGRAM`), the others its arguments. A word
/// that starts with `#` starts a comment that runs to the end of the line; blank lines are
/// skipped. Quoting as in a POSIX shell, without expansions: `'...'` keeps everything inside
/// as is, `"..."` too except that `\"` and `\\` stand for `"` and `\`, and outside quotes `\`
/// keeps the next character as is. A quote must end on its line, and a line cannot end with
/// an unquoted `\`.
pub fn parse_script_text(text: &[u8]) -> Result<Vec<(PathBuf, Vec<OsString>)>, String> {
    let mut commands = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let words = split_words(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let mut words = words.into_iter().map(OsString::from_vec);
        if let Some(program) = words.next() {
            if program.is_empty() {
                return Err(format!("line {}: the program name is empty", n + 1));
            }
            commands.push((PathBuf::from(program), words.collect()));
        }
    }
    Ok(commands)
}

fn split_words(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blank = |b: u8| b == b' ' || b == b'\t' || b == b'\r';
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        i += 1;
        match b {
            _ if blank(b) => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            b'#' if word.is_none() => break,
            b'\'' => {
                let w = word.get_or_insert_with(Vec::new);
                let end = line[i..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .ok_or("a single quote is not closed")?;
                w.extend_from_slice(&line[i..i + end]);
                i += end + 1;
            }
            b'"' => {
                let w = word.get_or_insert_with(Vec::new);
                loop {
                    let c = *line.get(i).ok_or("a double quote is not closed")?;
                    i += 1;
                    match c {
                        b'"' => break,
                        b'\\' if matches!(line.get(i), Some(b'"' | b'\\')) => {
                            w.push(line[i]);
                            i += 1;
                        }
                        _ => w.push(c),
                    }
                }
            }
            b'\\' => {
                let c = *line
                    .get(i)
                    .ok_or("the line ends with a backslash (lines do not continue)")?;
                word.get_or_insert_with(Vec::new).push(c);
                i += 1;
            }
            _ => word.get_or_insert_with(Vec::new).push(b),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The words of a command for showing it (shell-quoted where needed).
pub fn show_command(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a: &OsStr| crate::util::shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktls_init::{begin_marker, end_marker};

    const TOKEN: &str = "0123abcdXYZ";

    fn cmd(exe: &str, stdin: Option<&str>, argv: &[&[u8]]) -> Command {
        Command {
            exe: exe.as_bytes().to_vec(),
            stdin: stdin.map(|s| s.as_bytes().to_vec()),
            argv: argv.iter().map(|a| a.to_vec()).collect(),
        }
    }

    #[test]
    fn script_files_round_trip() {
        let script = Script {
            token: TOKEN.into(),
            exit: ExitMode::FirstFailure,
            commands: vec![
                cmd("/bin/busybox", None, &[b"/bin/busybox", b"echo", b"a b"]),
                // Empty arguments, an empty argv, odd bytes.
                cmd("/x", Some("/.ktls-script/stdin-0"), &[b"", b"", b"\xff\n"]),
                cmd("/y", None, &[]),
            ],
        };
        let bytes = script.encode().unwrap();
        assert!(bytes.starts_with(b"ktls-script 1\0"));
        assert_eq!(Script::decode(&bytes).unwrap(), script);
        let empty = Script {
            token: "t".into(),
            exit: ExitMode::Zero,
            commands: vec![],
        };
        assert_eq!(
            empty.encode().unwrap(),
            b"ktls-script 1\0t\0zero\x000\0".to_vec()
        );
        assert_eq!(Script::decode(&empty.encode().unwrap()).unwrap(), empty);
        // Every truncation, and any extra byte, is refused.
        for cut in 0..bytes.len() {
            assert!(Script::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"x\0");
        assert!(Script::decode(&longer).is_err());
    }

    #[test]
    fn bad_scripts_are_refused() {
        let base = |token: &str, c: Command| Script {
            token: token.into(),
            exit: ExitMode::Zero,
            commands: vec![c],
        };
        assert!(base("", cmd("/x", None, &[])).encode().is_err());
        assert!(base("a b", cmd("/x", None, &[])).encode().is_err());
        assert!(base(&"a".repeat(65), cmd("/x", None, &[]))
            .encode()
            .is_err());
        assert!(base("t", cmd("x", None, &[])).encode().is_err());
        assert!(base("t", cmd("/x", Some("rel"), &[])).encode().is_err());
        assert!(base("t", cmd("/x", None, &[b"a\0b"])).encode().is_err());
        for bad in [
            &b"ktls-script 2\0t\0zero\x000\0"[..],
            b"ktls-script 1\0t\0maybe\x000\0",
            b"ktls-script 1\0t\0zero\x0001\0",
            b"ktls-script 1\0t\0zero\x001\0rel\0\x000\0",
            b"ktls-script 1\0t t\0zero\x000\0",
            b"ktls-script 1\0t\0zero\x000",
            b"",
        ] {
            assert!(Script::decode(bad).is_err(), "{bad:?}");
        }
    }

    /// What the init writes to one stream for commands that wrote `outputs` and ended with
    /// `statuses`.
    fn stream(outputs: &[&[u8]], statuses: &[i32]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, (o, st)) in outputs.iter().zip(statuses).enumerate() {
            s.extend(begin_marker(i, TOKEN));
            s.extend_from_slice(o);
            s.extend(end_marker(i, TOKEN, *st));
        }
        s
    }

    #[test]
    fn streams_split_into_sections() {
        let outputs: [&[u8]; 6] = [
            b"a\n",
            b"no newline at the end",
            b"",
            b"\n\n",
            // Marker-like text without the token, in the middle of a line and on its own.
            b"x @@ktls-script end 4 0123abcdXYZ 0 y\n@@ktls-script end 4 other 0\n\
              @@ktls-script begin 5 0123abcdXYZ tail\n",
            b"\xff\x00binary",
        ];
        let statuses = [0, 1, 0, 255, 3, 139];
        let s = stream(&outputs, &statuses);
        let split = split_stream(&s, TOKEN, outputs.len());
        assert!(split.outside.is_empty(), "{:?}", split.outside);
        for (i, sec) in split.sections.iter().enumerate() {
            let sec = sec.as_ref().unwrap();
            assert_eq!(sec.output, outputs[i], "section {i}");
            assert_eq!(sec.status, Some(statuses[i]), "section {i}");
        }
        // The stream reads well: a marker is always a line of its own.
        let text = String::from_utf8_lossy(&s);
        assert!(text.contains("no newline at the end\n@@ktls-script end 1 "));
        assert!(text.contains("a\n\n@@ktls-script end 0 "));
    }

    #[test]
    fn cut_streams_and_outside_output() {
        let mut s = b"init says hi\n".to_vec();
        s.extend(stream(&[b"one\n"], &[0]));
        s.extend_from_slice(b"late background output\n");
        s.extend(begin_marker(1, TOKEN));
        s.extend_from_slice(b"partial");
        let split = split_stream(&s, TOKEN, 3);
        assert_eq!(split.outside, b"init says hi\nlate background output\n");
        assert_eq!(
            split.sections[0],
            Some(ktls_init::Section {
                output: b"one\n".to_vec(),
                status: Some(0)
            })
        );
        assert_eq!(
            split.sections[1],
            Some(ktls_init::Section {
                output: b"partial".to_vec(),
                status: None
            })
        );
        assert_eq!(split.sections[2], None);
        // The boot ended inside an end marker.
        let mut s = begin_marker(0, TOKEN);
        s.extend_from_slice(b"x\n@@ktls-script end 0 0123abcdXYZ 1");
        let split = split_stream(&s, TOKEN, 1);
        let sec = split.sections[0].as_ref().unwrap();
        assert_eq!((sec.output.as_slice(), sec.status), (&b"x"[..], None));
        // Another token's markers are output.
        let s = stream(&[b"x"], &[0]);
        let split = split_stream(&s, "other", 1);
        assert_eq!(split.sections, [None]);
        assert_eq!(split.outside, s);
    }

    #[test]
    fn outcomes_from_both_streams() {
        let boot = Outcome {
            stdout: stream(&[b"out0", b"out1\n"], &[0, 2]),
            stderr: stream(&[b"", b"err1\n"], &[0, 2]),
            exited: true,
            ..Default::default()
        };
        let o = split(boot, TOKEN, 3);
        assert_eq!(o.commands.len(), 3);
        assert_eq!(o.commands[0].stdout, b"out0");
        assert_eq!(o.commands[0].status, Some(0));
        assert_eq!(o.commands[1].stderr, b"err1\n");
        assert_eq!(o.commands[1].status, Some(2));
        assert!(!o.commands[2].started);
        assert_eq!(o.commands[2].status, None);
        assert!(!o.all_succeeded());
        assert_eq!(o.unfinished(), None);
    }

    #[test]
    fn tokens_are_fresh() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(ktls_init::valid_token(&a));
    }

    #[test]
    fn script_text() {
        let text = b"# a comment\n\
            /bin/busybox echo a   # trailing comment\n\
            \n   \t\n\
            /bin/busybox sh -c 'exit 3'\n\
            prog \"a \\\"b\\\" \\\\ \\n\" x\\ y '' a#b\r\n\
            p 'it''s' \"\" \\#x";
        let cmds = parse_script_text(text).unwrap();
        let words = |i: usize| -> Vec<String> {
            std::iter::once(cmds[i].0.to_string_lossy().into_owned())
                .chain(cmds[i].1.iter().map(|a| a.to_string_lossy().into_owned()))
                .collect()
        };
        assert_eq!(cmds.len(), 4);
        assert_eq!(words(0), ["/bin/busybox", "echo", "a"]);
        assert_eq!(words(1), ["/bin/busybox", "sh", "-c", "exit 3"]);
        assert_eq!(words(2), ["prog", "a \"b\" \\ \\n", "x y", "", "a#b"]);
        assert_eq!(words(3), ["p", "its", "", "#x"]);
        for bad in [
            &b"p 'open"[..],
            b"p \"open",
            b"p \"open\\\"",
            b"p trailing\\",
            b"'' x",
        ] {
            assert!(parse_script_text(bad).is_err(), "{bad:?}");
        }
        assert!(parse_script_text(b"").unwrap().is_empty());
        assert_eq!(
            show_command(
                Path::new("/bin/busybox"),
                &["sh".into(), "-c".into(), "exit 3".into()]
            ),
            "/bin/busybox sh -c 'exit 3'"
        );
    }

    #[test]
    fn the_tree_holds_programs_init_script_and_stdin() {
        let host = crate::util::TempDir::new("script-tree").unwrap();
        let d = host.path().canonicalize().unwrap();
        let prog = d.join("prog");
        std::fs::write(&prog, b"\x7fELF").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = RunConfig {
            cwd: Some(d.clone()),
            ..RunConfig::default()
        };
        let commands = [
            ScriptCommand {
                program: "./prog".into(),
                args: vec!["x".into()],
                stdin: Some(b"in".to_vec()),
            },
            ScriptCommand {
                program: prog.clone(),
                args: vec![],
                stdin: Some(b"in".to_vec()),
            },
            ScriptCommand {
                program: prog.clone(),
                args: vec![],
                stdin: None,
            },
        ];
        let asm = assemble(&cfg, &commands, TOKEN, ExitMode::Zero).unwrap();
        assert_eq!(asm.request.exe, Path::new(INIT_PATH));
        assert_eq!(asm.request.argv, [OsString::from(INIT_PATH)]);
        assert_eq!(asm.request.cwd, d, "the program's directory is in the tree");
        assert_eq!(asm.request.envp, cfg.env);
        assert!(matches!(
            asm.tree.get(&prog),
            Some(Node::File { mode: 0o755, .. })
        ));
        assert!(matches!(
            asm.tree.get(Path::new(INIT_PATH)),
            Some(Node::File { mode: 0o755, .. })
        ));
        let Some(Node::File {
            source: Source::Bytes(script),
            ..
        }) = asm.tree.get(Path::new(SCRIPT_PATH))
        else {
            panic!("no script");
        };
        let script = Script::decode(script).unwrap();
        assert_eq!(script.token, TOKEN);
        let p = prog.as_os_str().as_bytes().to_vec();
        // Equal stdin contents share one file.
        let stdin0 = b"/.ktls-script/stdin-0".to_vec();
        assert_eq!(
            script.commands,
            [
                Command {
                    exe: p.clone(),
                    stdin: Some(stdin0.clone()),
                    argv: vec![b"./prog".to_vec(), b"x".to_vec()],
                },
                Command {
                    exe: p.clone(),
                    stdin: Some(stdin0),
                    argv: vec![p.clone()],
                },
                Command {
                    exe: p.clone(),
                    stdin: None,
                    argv: vec![p],
                },
            ]
        );
        assert_eq!(
            asm.tree.get(Path::new("/.ktls-script/stdin-0")),
            Some(&Node::File {
                mode: 0o444,
                source: Source::Bytes(b"in".to_vec())
            })
        );
        assert!(asm.tree.get(Path::new("/.ktls-script/stdin-1")).is_none());
        // The script's directory cannot be taken by --add, and missing programs are errors.
        let bad = RunConfig {
            adds: vec![crate::Add {
                host: prog.clone(),
                guest: "/.ktls-script".into(),
            }],
            ..cfg.clone()
        };
        assert!(matches!(
            assemble(&bad, &commands, TOKEN, ExitMode::Zero),
            Err(RunError::Usage(_))
        ));
        let missing = [ScriptCommand::new(d.join("nope"), &[])];
        assert!(matches!(
            assemble(&cfg, &missing, TOKEN, ExitMode::Zero),
            Err(RunError::Program(_))
        ));
    }
}
