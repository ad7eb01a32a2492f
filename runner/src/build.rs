//! Building the guest binaries: the kernel (`x86_64-unknown-none`), the demo and the script init
//! (`x86_64-unknown-linux-musl`), each once per process, into `<workspace>/target/guest`.
//!
//! The builds run `cargo build --release` in the workspace root with the environment variables
//! an outer cargo (`cargo test`, `cargo clippy`...) would leak into them removed, so they build
//! exactly what a developer would by hand. cargo's output is shown only if the build fails.

use crate::RunError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kernel's target.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
/// The demo's target.
pub const DEMO_TARGET: &str = "x86_64-unknown-linux-musl";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner crate lives inside the workspace")
}

/// The kernel ELF to boot: `$KTLS_KERNEL` if set (it must exist), else the result of building
/// `ktls-kernel` (done once per process; later calls, from any thread, wait for it and share its
/// result, including a failure).
pub fn kernel_path() -> Result<PathBuf, RunError> {
    if let Some(p) = std::env::var_os("KTLS_KERNEL") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RunError::Build(format!(
                "KTLS_KERNEL={} is not a file",
                p.display()
            )))
        };
    }
    static KERNEL: OnceLock<Result<PathBuf, RunError>> = OnceLock::new();
    KERNEL
        .get_or_init(|| build_package("ktls-kernel", KERNEL_TARGET, "ktls-kernel"))
        .clone()
}

/// The built-in demo program (built once per process, like the kernel).
pub fn demo_path() -> Result<PathBuf, RunError> {
    static DEMO: OnceLock<Result<PathBuf, RunError>> = OnceLock::new();
    DEMO.get_or_init(|| build_package("ktls-demo", DEMO_TARGET, "ktls-demo"))
        .clone()
}

/// The default demo: `libc-shim/examples/demo.c` built against the libc shim with
/// `libc-shim/ktls-cc` (once per process). It reads tid, uid and cpu three ways (raw KTLS
/// load, vDSO, syscall) in the main thread and four threads, and says which way each came.
pub fn shim_demo_path() -> Result<PathBuf, RunError> {
    static SHIM_DEMO: OnceLock<Result<PathBuf, RunError>> = OnceLock::new();
    SHIM_DEMO
        .get_or_init(|| {
            let root = workspace_root();
            let out = root.join("target").join("guest").join("ktls-shim-demo");
            let mut cmd = Command::new(root.join("libc-shim").join("ktls-cc"));
            cmd.current_dir(root)
                .args(["-O2", "-o"])
                .arg(&out)
                .arg(root.join("libc-shim").join("examples").join("demo.c"));
            for (name, _) in std::env::vars_os() {
                if let Some(n) = name.to_str() {
                    if leaks_from_outer_cargo(n) {
                        cmd.env_remove(n);
                    }
                }
            }
            let res = cmd.output().map_err(|e| {
                RunError::Build(format!(
                    "cannot run libc-shim/ktls-cc to build the demo: {e}"
                ))
            })?;
            if !res.status.success() {
                return Err(RunError::Build(format!(
                    "building the shim demo failed:\n{}",
                    String::from_utf8_lossy(&res.stderr)
                )));
            }
            Ok(out)
        })
        .clone()
}

/// The init that runs scripts (`ktls-init`, see [`crate::script`]), built once per process like
/// the kernel.
pub fn init_path() -> Result<PathBuf, RunError> {
    static INIT: OnceLock<Result<PathBuf, RunError>> = OnceLock::new();
    INIT.get_or_init(|| build_package("ktls-init", DEMO_TARGET, "ktls-init"))
        .clone()
}

/// Environment variables that must not leak from an outer cargo into the inner build: they
/// would redirect its output, change its target or flags, or wrap rustc in clippy.
pub(crate) fn leaks_from_outer_cargo(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    const PREFIXES: &[&str] = &[
        "__CARGO",
        "CARGO_TARGET_", // CARGO_TARGET_DIR, CARGO_TARGET_TMPDIR, CARGO_TARGET_<triple>_*
        "CARGO_BUILD_",  // CARGO_BUILD_TARGET, _TARGET_DIR, _RUSTFLAGS, _RUSTC_*WRAPPER...
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_MANIFEST_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_LLVM_COV",
    ];
    (EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)))
        && name != "CARGO_BUILD_JOBS"
}

/// The cargo to run: the one running us if any (`$CARGO`), else `cargo` from `PATH`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn build_package(package: &str, target: &str, bin: &str) -> Result<PathBuf, RunError> {
    let root = workspace_root();
    let target_dir = root.join("target").join("guest");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(["build", "--release", "-p", package, "--target", target])
        .arg("--target-dir")
        .arg(&target_dir);
    for (name, _) in std::env::vars_os() {
        if let Some(n) = name.to_str() {
            if leaks_from_outer_cargo(n) {
                cmd.env_remove(n);
            }
        }
    }
    let out = cmd.output().map_err(|e| {
        RunError::Build(format!(
            "could not run {:?} to build {package}: {e}",
            cargo()
        ))
    })?;
    if !out.status.success() {
        return Err(RunError::Build(format!(
            "`cargo build --release -p {package} --target {target} --target-dir {}` in {} \
             failed ({}):\n{}{}",
            target_dir.display(),
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let path = target_dir.join(target).join("release").join(bin);
    if !path.is_file() {
        return Err(RunError::Build(format!(
            "cargo built {package} but {} does not exist",
            path.display()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_cargo_variables_are_removed() {
        for v in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_MAKEFLAGS",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "__CARGO_FIX_PLZ",
        ] {
            assert!(leaks_from_outer_cargo(v), "{v}");
        }
        for v in [
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "PATH",
            "HOME",
            "CARGO_NET_OFFLINE",
            "CARGO_BUILD_JOBS",
            "RUSTC_WRAPPER",
        ] {
            assert!(!leaks_from_outer_cargo(v), "{v}");
        }
    }

    #[test]
    fn workspace_root_is_the_workspace() {
        let toml = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(toml.contains("[workspace]"));
    }
}
