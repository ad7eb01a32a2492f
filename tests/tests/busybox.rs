//! Busybox (Debian's busybox-static, a static glibc program) running applets natively and on
//! ktls: same status and stdout, plus what each applet must print.

use ktls_tests::{add_same_path, busybox, files_fixture, fixture_file, Case};
use std::path::Path;

/// A case running `busybox ARGS...`, or `None` (after a note) without /bin/busybox.
fn bb(args: &[&str]) -> Option<Case> {
    let exe = busybox()?;
    let mut case = Case::new(format!("busybox {}", args.join(" ")), exe);
    for a in args {
        case = case.arg(*a);
    }
    Some(case)
}

const WORDS: &str = "pear\napple\nZebra\nbanana\n42\napple\ncherry pie\n\n_under\nBanana\n";

fn words() -> std::path::PathBuf {
    fixture_file("busybox/words.txt", WORDS.as_bytes())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("fixture paths are UTF-8")
}

#[test]
fn echo() {
    if let Some(c) = bb(&["echo", "hello"]) {
        c.stdout_is("hello\n").run();
    }
}

#[test]
fn sh_exit() {
    if let Some(c) = bb(&["sh", "-c", "exit 7"]) {
        c.status(7).stdout_is("").run();
    }
}

#[test]
fn cat() {
    let w = words();
    if let Some(c) = bb(&["cat", s(&w)]) {
        c.guest_add(add_same_path(&w)).stdout_is(WORDS).run();
    }
}

#[test]
fn sort() {
    let w = words();
    let mut lines: Vec<&str> = WORDS.lines().collect();
    lines.sort(); // byte order, as sort in the C locale
    let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Some(c) = bb(&["sort", s(&w)]) {
        c.guest_add(add_same_path(&w)).stdout_is(want).run();
    }
}

#[test]
fn wc() {
    let w = words();
    let want = [
        WORDS.lines().count(),
        WORDS.split_whitespace().count(),
        WORDS.len(),
    ];
    let path = s(&w).to_owned();
    if let Some(c) = bb(&["wc", &path]) {
        c.guest_add(add_same_path(&w))
            .check(move |out| {
                let text = String::from_utf8_lossy(out);
                let fields: Vec<&str> = text.split_whitespace().collect();
                let nums: Vec<String> = want.iter().map(|n| n.to_string()).collect();
                if fields.len() == 4 && fields[..3] == nums[..] && fields[3] == path {
                    Ok(())
                } else {
                    Err(format!(
                        "wc printed {text:?}, want counts {want:?} and {path}"
                    ))
                }
            })
            .run();
    }
}

#[test]
fn sha256sum() {
    let w = words();
    let path = s(&w).to_owned();
    if let Some(c) = bb(&["sha256sum", &path]) {
        c.guest_add(add_same_path(&w))
            .check(move |out| {
                let text = String::from_utf8_lossy(out);
                let ok = text
                    .strip_suffix('\n')
                    .and_then(|l| l.split_once("  "))
                    .is_some_and(|(hash, p)| {
                        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && p == path
                    });
                if ok {
                    Ok(())
                } else {
                    Err(format!("sha256sum printed {text:?}"))
                }
            })
            .run();
    }
}

#[test]
fn ls() {
    let dir = files_fixture().join("dir");
    // -1: on ktls stdout is the console, a terminal, where ls would print columns.
    if let Some(c) = bb(&["ls", "-1", s(&dir)]) {
        c.guest_add(add_same_path(&dir))
            .stdout_is("alpha\nbeta\ngamma.txt\nsub\n")
            .run();
    }
}
