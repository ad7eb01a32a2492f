//! C programs built with the shim (`ktls-cc`: gcc -nostdlib -static, crt0.S, libktls_shim.a):
//! the demo and the self-test, natively on this Linux host and on ktls (kernel levels 2 and
//! 1), with the library built for level 2 and for level 1.
//!
//! `KTLS_TESTS_NATIVE_ONLY=1` skips the ktls runs (as in the `ktls-tests` crate).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ktls_runner::{run_captured, RunConfig};

/// Prints a note that libtest does not capture.
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "note: {msg}");
}

fn shim_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the test programs go: `<workspace>/target/shim-tests/` (inside the workspace, so the
/// runner can put them in the guest at their own path).
pub fn out_dir() -> PathBuf {
    shim_dir()
        .parent()
        .unwrap()
        .join("target")
        .join("shim-tests")
}

fn native_only() -> bool {
    std::env::var_os("KTLS_TESTS_NATIVE_ONLY").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Builds `source` (relative to libc-shim/) with `ktls-cc` for a library `level`; once per
/// process and program (ktls-cc's cargo build is serialised per level).
fn build(source: &str, level: u32) -> PathBuf {
    static LOCKS: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];
    type Built = Vec<(String, u32, Result<PathBuf, String>)>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    // One build at a time per level (ktls-cc's cargo build and target dir), and each program
    // once: a second build could replace the binary while another test runs it.
    let _serial = LOCKS[level as usize - 1]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, r)) = built
        .lock()
        .unwrap()
        .iter()
        .find(|(s, l, _)| s == source && *l == level)
    {
        return r.clone().unwrap();
    }
    let name = Path::new(source).file_stem().unwrap().to_string_lossy();
    let out = out_dir().join(format!("{name}-level{level}"));
    std::fs::create_dir_all(out_dir()).unwrap();
    let mut cmd = Command::new(shim_dir().join("ktls-cc"));
    cmd.env("KTLS_LEVEL_BUILT_WITH", level.to_string())
        .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(shim_dir().join(source));
    // What an outer cargo sets that would change the inner build (ktls-cc unsets the rest).
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(k);
        }
    }
    let r = match cmd.output() {
        Ok(o) if o.status.success() => Ok(out.canonicalize().unwrap()),
        Ok(o) => Err(format!(
            "{cmd:?}: {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("{cmd:?}: {e}")),
    };
    built
        .lock()
        .unwrap()
        .push((source.to_string(), level, r.clone()));
    r.unwrap()
}

pub fn run_native(prog: &Path) -> (i32, String) {
    let out = Command::new(prog)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", prog.display()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = out.status.code().unwrap_or(-1);
    (status, text + &String::from_utf8_lossy(&out.stderr))
}

pub fn run_ktls(prog: &Path, kernel_level: u32, env: &[(&str, &str)]) -> Option<(i32, String)> {
    if native_only() {
        note("KTLS_TESTS_NATIVE_ONLY: ktls run skipped");
        return None;
    }
    let mut cfg = RunConfig {
        timeout: Some(Duration::from_secs(120)),
        kernel_args: vec![format!("ktls_level={kernel_level}")],
        ..RunConfig::default()
    };
    for (k, v) in env {
        cfg.set_env(k, v);
    }
    let o = run_captured(&cfg, prog, &[]).unwrap_or_else(|e| panic!("runner: {e}"));
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status != 0 {
        text += &format!(
            "\n--- stderr\n{}\n--- panic\n{:?}\n--- hang report\n{}\n--- kernel log tail\n{}",
            String::from_utf8_lossy(&o.stderr),
            o.panic_report,
            o.hang_report.as_deref().unwrap_or("(none)"),
            o.kernel_log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Some((o.status, text))
}

fn host_has_ktls() -> bool {
    // SAFETY: plain libc call.
    unsafe { libc::getauxval(ktls_abi::auxv::AT_KTLS_FEATURE_SIZE) != 0 }
}

const WHO: [&str; 5] = ["main", "thread 1", "thread 2", "thread 3", "thread 4"];

/// The demo's line for `who` and `what` (tid, uid, cpu).
fn demo_line<'a>(out: &'a str, who: &str, what: &str) -> &'a str {
    let prefix = format!("[{who}] {what}: ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
}

#[test]
fn demo_natively() {
    let prog = build("examples/demo.c", 2);
    let (status, out) = run_native(&prog);
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("all equal: main thread and 4 threads"),
        "{out}"
    );
    if host_has_ktls() {
        note("this host has KTLS: the Linux expectations are not checked");
        return;
    }
    assert!(
        out.contains("no AT_KTLS_* keys") && out.contains("__ktls_size 0"),
        "{out}"
    );
    for who in WHO {
        for what in ["tid", "uid", "cpu"] {
            let l = demo_line(&out, who, what);
            // No KTLS on Linux: the raw way is unavailable and the readers fall back.
            assert!(
                l.contains("raw KTLS load unavailable (no KTLS: __ktls_size = 0)"),
                "{l}"
            );
            assert!(l.contains("-> equal"), "{l}");
        }
        assert!(demo_line(&out, who, "tid").ends_with("ktls_gettid() came from the syscall"));
        // Linux's vDSO has getcpu but no KTLS accessors.
        assert!(demo_line(&out, who, "tid").contains("vDSO __vdso_gettid unavailable"));
        assert!(demo_line(&out, who, "cpu").ends_with("ktls_cpu() came from the vDSO"));
    }
    assert!(out.contains("[thread 4] plain rseq area"), "{out}");
}

#[test]
fn selftest_natively() {
    for level in [2, 1] {
        let prog = build("tests/selftest.c", level);
        let (status, out) = run_native(&prog);
        assert!(
            status == 0 && out.contains("all checks passed"),
            "level {level}: status {status}\n{out}"
        );
    }
}

/// The demo on ktls: the raw KTLS load for every field the kernel fills, in every thread.
fn demo_on_ktls(kernel_level: u32, clone_flag: bool) {
    let prog = build("examples/demo.c", 2);
    let env: &[(&str, &str)] = if clone_flag {
        &[]
    } else {
        &[("KTLS_SHIM_NO_CLONE_RSEQ_KTLS", "1")]
    };
    let Some((status, out)) = run_ktls(&prog, kernel_level, env) else {
        return;
    };
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("all equal: main thread and 4 threads"),
        "{out}"
    );
    let fsz = ktls_abi::ktls::feature_size(kernel_level);
    assert!(
        out.contains(&format!("AT_KTLS_FEATURE_SIZE {fsz}, AT_KTLS_ALIGN 64")),
        "{out}"
    );
    assert!(
        out.contains(&format!("__ktls_offset 128, __ktls_size {fsz}")),
        "{out}"
    );
    assert!(
        out.contains("[main] KTLS area registered with rseq(2)"),
        "{out}"
    );
    for who in WHO {
        if who != "main" {
            let how = if clone_flag {
                "by the kernel at clone3(CLONE_RSEQ_KTLS)"
            } else {
                "with rseq(2) and RSEQ_FLAG_KTLS"
            };
            assert!(
                out.contains(&format!("[{who}] KTLS area registered {how}")),
                "{out}"
            );
        }
        for what in ["tid", "cpu"] {
            let l = demo_line(&out, who, what);
            assert!(
                l.contains("-> equal") && l.ends_with("came from the raw KTLS load"),
                "{l}"
            );
        }
        let uid = demo_line(&out, who, "uid");
        assert!(uid.contains("-> equal"), "{uid}");
        if kernel_level >= 2 {
            assert!(
                uid.ends_with("ktls_getuid() came from the raw KTLS load"),
                "{uid}"
            );
        } else {
            assert!(
                uid.contains("raw KTLS load unavailable (the kernel does not fill this field)")
                    && uid.ends_with("ktls_getuid() came from the syscall"),
                "{uid}"
            );
        }
    }
}

#[test]
fn demo_on_ktls_level_2() {
    demo_on_ktls(2, true);
}

#[test]
fn demo_on_ktls_level_1() {
    demo_on_ktls(1, true);
}

/// Threads created without CLONE_RSEQ_KTLS register their areas themselves with rseq(2)
/// (what a KTLS kernel without the clone3 flag makes the shim do).
#[test]
fn demo_on_ktls_without_the_clone3_flag() {
    demo_on_ktls(2, false);
}

#[test]
fn selftest_on_ktls() {
    // (library level, kernel level): every combination of the compatibility matrix, in
    // parallel (each is a QEMU boot).
    // And once with threads that register their areas themselves.
    let runs: Vec<_> = [
        (2, 2, true),
        (2, 1, true),
        (1, 2, true),
        (1, 1, true),
        (2, 2, false),
    ]
    .into_iter()
    .map(|(lib, kernel, clone_flag)| {
        let prog = build("tests/selftest.c", lib);
        let env: &[(&str, &str)] = if clone_flag {
            &[]
        } else {
            &[("KTLS_SHIM_NO_CLONE_RSEQ_KTLS", "1")]
        };
        std::thread::spawn(move || (lib, kernel, run_ktls(&prog, kernel, env)))
    })
    .collect();
    for run in runs {
        let (lib, kernel, result) = run.join().unwrap();
        let Some((status, out)) = result else {
            continue;
        };
        assert!(
            status == 0 && out.contains("all checks passed"),
            "library level {lib}, kernel level {kernel}: status {status}\n{out}"
        );
    }
}
