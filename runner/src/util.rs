//! Small helpers: private temporary directories and waiting for a child with a deadline.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fresh directory (mode 0700) removed with its contents when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut base = std::env::temp_dir();
        // Unix socket paths are limited to 107 bytes; keep ours well below.
        if base.as_os_str().len() > 60 {
            base = PathBuf::from("/tmp");
        }
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("ktls-{tag}-{}-{n}-{nanos:x}", std::process::id()));
            let mut b = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            match b.create(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How waiting for a child ended.
pub(crate) enum Waited {
    Exited(ExitStatus),
    /// The deadline passed; the child was killed (and reaped).
    Killed,
}

/// Waits for `child` until it exits or `deadline()` says stop (checked every few
/// milliseconds; it may move, e.g. after QEMU reported the program's exit), then kills it.
pub(crate) fn wait_until(
    child: &mut Child,
    deadline: impl FnMut() -> Option<Instant>,
) -> io::Result<Waited> {
    match wait_for_exit(child, deadline)? {
        Some(st) => Ok(Waited::Exited(st)),
        None => {
            kill_and_reap(child)?;
            Ok(Waited::Killed)
        }
    }
}

/// [`wait_until`] without the kill: `None` if the deadline passed first (the child runs on).
pub(crate) fn wait_for_exit(
    child: &mut Child,
    mut deadline: impl FnMut() -> Option<Instant>,
) -> io::Result<Option<ExitStatus>> {
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if deadline().is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Kills the child (if it still runs) and returns its status.
pub(crate) fn kill_and_reap(child: &mut Child) -> io::Result<ExitStatus> {
    let _ = child.kill();
    child.wait()
}

/// `arg` quoted for a POSIX shell when it needs it (for showing command lines).
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A shell-style status: the exit code, or 128+N for death by signal N.
pub(crate) fn shell_status(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-m"), "-m");
        assert_eq!(shell_quote("a,b=c/d"), "a,b=c/d");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("strace loglevel=2"), "'strace loglevel=2'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn temp_dirs_are_unique_and_removed() {
        let a = TempDir::new("t").unwrap();
        let b = TempDir::new("t").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("f"), b"x").unwrap();
        let p = a.path().to_owned();
        drop(a);
        assert!(!p.exists());
        assert!(b.path().is_dir());
    }

    #[test]
    fn waiting_and_killing() {
        let mut c = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        match wait_until(&mut c, || None).unwrap() {
            Waited::Exited(st) => assert_eq!(shell_status(st), 3),
            Waited::Killed => panic!("killed"),
        }
        let mut c = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let t = Instant::now();
        let deadline = t + Duration::from_millis(50);
        assert!(matches!(
            wait_until(&mut c, || Some(deadline)).unwrap(),
            Waited::Killed
        ));
        assert_eq!(c.try_wait().unwrap().map(shell_status), Some(128 + 9));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
