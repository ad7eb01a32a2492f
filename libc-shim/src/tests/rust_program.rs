//! A Rust `no_std` program on the shim's rlib (`rust-demo/`, the `start` feature), natively
//! and on ktls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::c_programs::{run_ktls, run_native};

/// Builds rust-demo/ (its own workspace) into `<workspace>/target/shim-rust/`, once.
fn build() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let shim = Path::new(env!("CARGO_MANIFEST_DIR"));
            let target = shim.parent().unwrap().join("target").join("shim-rust");
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.args(["build", "--quiet", "--release", "--manifest-path"])
                .arg(shim.join("rust-demo").join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target);
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy().into_owned();
                if (k.starts_with("CARGO_") && k != "CARGO_HOME")
                    || k.starts_with("RUSTC_")
                    || k == "RUSTFLAGS"
                {
                    cmd.env_remove(k);
                }
            }
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{cmd:?}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(target.join("release").join("ktls-shim-rust-demo"))
        })
        .clone()
        .unwrap()
}

fn check(out: &str, ktls: bool) {
    assert!(out.contains("all equal"), "{out}");
    let who = ["main", "thread 1", "thread 2", "thread 3", "thread 4"];
    for w in who {
        let tid = out
            .lines()
            .find(|l| l.starts_with(&format!("[{w}] tid: ")))
            .unwrap_or_else(|| panic!("no tid line for {w}:\n{out}"));
        assert_eq!(tid.contains("raw KTLS load Some("), ktls, "{tid}");
        let reg = match (ktls, w) {
            (false, _) => "Rseq",
            (true, "main") => "KtlsRseq",
            (true, _) => "KtlsClone3",
        };
        assert!(
            out.contains(&format!("[{w}] registration {reg}\n")),
            "{out}"
        );
    }
}

#[test]
fn rust_no_std_program_natively() {
    let (status, out) = run_native(&build());
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("__ktls_offset 128, __ktls_size 0"), "{out}");
    check(&out, false);
}

#[test]
fn rust_no_std_program_on_ktls() {
    let Some((status, out)) = run_ktls(&build(), 2, &[]) else {
        return;
    };
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("__ktls_offset 128, __ktls_size 100"), "{out}");
    check(&out, true);
}
