//! Building the two C programs with the host's gcc (`$CC` overrides it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the C sources are.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// The output directory for results and binaries: `<workspace>/target/bench`.
pub fn out_dir() -> PathBuf {
    ktls_runner::workspace_root().join("target").join("bench")
}

/// The guest program: static, no libc, no PIE, no red zone (its timed loops make calls the
/// compiler does not see), no stack protector or CET padding.
pub const GUEST_FLAGS: &[&str] = &[
    "-O2",
    "-static",
    "-nostdlib",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector",
    "-fcf-protection=none",
    "-mno-red-zone",
    "-fno-pie",
    "-no-pie",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
];

/// The native harness: an ordinary glibc program.
pub const NATIVE_FLAGS: &[&str] = &[
    "-O2",
    "-mno-red-zone",
    "-fcf-protection=none",
    "-Wall",
    "-Wextra",
    "-Werror",
];

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "gcc".into())
}

fn compile(source: &str, output: &str, flags: &[&str]) -> Result<PathBuf, String> {
    let dir = out_dir().join("bin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let src = source_dir().join(source);
    let out = dir.join(output);
    let result = Command::new(cc())
        .args(flags)
        .arg("-I")
        .arg(source_dir())
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| format!("cannot run {}: {e} (install gcc)", cc()))?;
    if !result.status.success() {
        return Err(format!(
            "{} {} failed:\n{}",
            cc(),
            src.display(),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(out)
}

/// Builds the guest program (`target/bench/bin/ktls-bench-guest`).
pub fn build_guest() -> Result<PathBuf, String> {
    compile("guest.c", "ktls-bench-guest", GUEST_FLAGS)
}

/// Builds the native harness (`target/bench/bin/ktls-bench-native`).
pub fn build_native() -> Result<PathBuf, String> {
    compile("native.c", "ktls-bench-native", NATIVE_FLAGS)
}
