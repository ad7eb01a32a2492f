//! Building the vDSO image (`cargo build -p ktls-vdso`), for the kernel's build script (which
//! embeds the image) and the tests (which check and run it).
//!
//! The vDSO needs codegen flags of its own (position-independent, small code model, no frame
//! pointers, unwind tables). The workspace's `.cargo/config.toml` sets the kernel's flags for
//! x86_64-unknown-none, and config files can only add to those (a later
//! `force-frame-pointers=no` does not undo an earlier `yes`), so the build sets
//! CARGO_ENCODED_RUSTFLAGS, which replaces them for the vDSO and its dependencies. By hand:
//!
//! ```sh
//! CARGO_ENCODED_RUSTFLAGS=$(printf -- '-Crelocation-model=pic\x1f-Ccode-model=small\x1f-Cforce-unwind-tables=yes') \
//!     cargo build --release -p ktls-vdso --target x86_64-unknown-none --target-dir target/vdso
//! ```
//!
//! The output goes to its own target directory (`<workspace>/target/vdso`): the flags differ
//! from the kernel's, and a build script must not wait for the target directory its own cargo
//! holds locked.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The codegen flags of the vDSO and its dependencies.
pub const VDSO_RUSTFLAGS: [&str; 3] = [
    "-Crelocation-model=pic",
    "-Ccode-model=small",
    "-Cforce-unwind-tables=yes",
];

/// Builds `ktls-vdso` (release) with cargo `cargo` in `workspace` and returns the path of the
/// image. Cargo's own freshness check makes repeated calls cheap.
pub fn build_vdso(cargo: &OsStr, workspace: &Path) -> Result<PathBuf, String> {
    let target_dir = workspace.join("target").join("vdso");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--release",
            "-p",
            "ktls-vdso",
            "--target",
            "x86_64-unknown-none",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Whatever an outer cargo (a build script's, `cargo test`'s, clippy's) put into the
    // environment would redirect or re-flag this build.
    for (name, _) in std::env::vars_os() {
        let Some(n) = name.to_str() else { continue };
        let leaks = n.starts_with("CARGO_") && !keep_cargo_var(n)
            || n == "CARGO"
            || n.starts_with("__CARGO")
            || n.starts_with("RUSTC_WORKSPACE_WRAPPER")
            || n.starts_with("CLIPPY_")
            || [
                "RUSTFLAGS",
                "RUSTDOCFLAGS",
                "OUT_DIR",
                "TARGET",
                "HOST",
                "PROFILE",
                "OPT_LEVEL",
                "DEBUG",
                "NUM_JOBS",
            ]
            .contains(&n);
        if leaks {
            cmd.env_remove(n);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", VDSO_RUSTFLAGS.join("\x1f"));
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {cargo:?} to build the vDSO: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the vDSO failed ({}): {cmd:?}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let image = target_dir
        .join("x86_64-unknown-none")
        .join("release")
        .join("ktls-vdso");
    if !image.is_file() {
        return Err(format!(
            "cargo built the vDSO but {} is missing",
            image.display()
        ));
    }
    Ok(image)
}

/// Cargo variables that describe the user's setup rather than the outer build.
fn keep_cargo_var(name: &str) -> bool {
    name == "CARGO_HOME"
        || name == "CARGO_BUILD_JOBS"
        || name.starts_with("CARGO_NET_")
        || name.starts_with("CARGO_HTTP_")
        || name.starts_with("CARGO_REGISTRIES_")
        || name == "CARGO_TERM_COLOR"
}
