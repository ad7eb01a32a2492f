//! `ktls-init`: runs the commands of a script (see the library, and `spec/boot-protocol.md`,
//! *Scripts*) one after another, each in a child process (fork, execve, wait), between begin
//! and end markers on stdout and stderr, then exits. The runner boots it as the program when
//! asked to run several programs in one boot (`ktls run --script`, `ktls_runner::run_script`).
//!
//! Usage: `ktls-init [SCRIPT]` (default `/.ktls-script/commands`). The commands get the init's
//! environment and working directory, and its stdin unless the script names a stdin file.
//! Exit status: 0, or with `first-failure` the first non-zero command status; 126 when the
//! script cannot be read or parsed.

use ktls_init::{begin_marker, end_marker, Command, ExitMode, Script, SCRIPT_PATH};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

/// Writes all of `bytes` to `fd`, retrying after interruptions; gives up on other errors
/// (there is nowhere to report them).
fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn say(msg: &str) {
    write_all(2, format!("ktls-init: {msg}\n").as_bytes());
}

fn cstring(bytes: &[u8]) -> CString {
    // The script format has no NUL bytes inside fields, and the environment cannot have any.
    CString::new(bytes).expect("no NUL byte inside a field")
}

/// A NULL-terminated array of pointers into `strings` (which must outlive its use).
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The shell-style status of a `waitpid` status word.
fn shell_status(st: libc::c_int) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        128
    }
}

/// Runs one command to its end; returns its shell-style status (127 if the executable does not
/// exist, 126 if it cannot be started, as a shell does).
fn run(cmd: &Command, envp: &[*const libc::c_char]) -> i32 {
    let exe = cstring(&cmd.exe);
    let argv: Vec<CString> = cmd.argv.iter().map(|a| cstring(a)).collect();
    let argv_ptrs = pointers(&argv);
    let stdin = cmd.stdin.as_deref().map(cstring);
    let shown = String::from_utf8_lossy(&cmd.exe).into_owned();

    // SAFETY: this process has a single thread, so the child may do anything the parent could.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        say(&format!(
            "{shown}: cannot fork: {}",
            std::io::Error::last_os_error()
        ));
        return 126;
    }
    if pid == 0 {
        child(&exe, &argv_ptrs, envp, stdin.as_ref(), &shown);
    }
    let mut st: libc::c_int = 0;
    loop {
        // SAFETY: `st` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if r < 0 && e.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        say(&format!("{shown}: waitpid: {e}"));
        return 126;
    }
    // Reap whatever else ended meanwhile (orphans may be given to us).
    // SAFETY: as above.
    while unsafe { libc::waitpid(-1, &mut 0, libc::WNOHANG) } > 0 {}
    shell_status(st)
}

/// The child's side: stdin, the SIGPIPE disposition, execve; never returns.
fn child(
    exe: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdin: Option<&CString>,
    shown: &str,
) -> ! {
    // SAFETY: plain system calls on valid NUL-terminated strings and pointer arrays.
    unsafe {
        if let Some(path) = stdin {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd < 0 {
                say(&format!(
                    "{shown}: cannot open its stdin {}: {}",
                    path.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
                libc::_exit(126);
            }
            if fd != 0 {
                libc::dup2(fd, 0);
                libc::close(fd);
            }
        }
        // Rust's runtime ignores SIGPIPE, and ignored signals survive execve; the command must
        // start with the default disposition, as under a shell.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let e = std::io::Error::last_os_error();
        say(&format!("cannot run {shown}: {e}"));
        let code = match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
            _ => 126,
        };
        libc::_exit(code)
    }
}

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .unwrap_or_else(|| OsString::from(SCRIPT_PATH));
    let shown = path.to_string_lossy().into_owned();
    let script = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| Script::decode(&b))
    {
        Ok(s) => s,
        Err(e) => {
            say(&format!("{shown}: {e}"));
            std::process::exit(126);
        }
    };
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect();
    let envp = pointers(&env);
    let mut first_failure = None;
    for (i, cmd) in script.commands.iter().enumerate() {
        let begin = begin_marker(i, &script.token);
        write_all(1, &begin);
        write_all(2, &begin);
        let status = run(cmd, &envp);
        let end = end_marker(i, &script.token, status);
        write_all(1, &end);
        write_all(2, &end);
        if status != 0 && first_failure.is_none() {
            first_failure = Some(status);
        }
    }
    std::process::exit(match script.exit {
        ExitMode::Zero => 0,
        ExitMode::FirstFailure => first_failure.unwrap_or(0),
    })
}
