//! `ktls bench [ARGS...]`: runs the benchmarks, the `ktls-bench` package (`bench/`), with
//! `cargo run --release -p ktls-bench -- ARGS...` in the workspace. The runner does not depend
//! on that package (it depends on the runner), so this goes through cargo.

use crate::build::{cargo, leaks_from_outer_cargo};
use crate::{status, workspace_root};
use std::ffi::OsString;
use std::process::Command;

/// Runs the benchmarks with `args`; returns their exit status.
pub fn main(args: &[OsString]) -> i32 {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root())
        .args(["run", "--release", "-q", "-p", "ktls-bench", "--"])
        .args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(leaks_from_outer_cargo) {
            cmd.env_remove(&name);
        }
    }
    match cmd.status() {
        Ok(s) => s.code().unwrap_or(status::RUNNER_FAILED),
        Err(e) => {
            eprintln!(
                "ktls: error: cannot run {:?} for the benchmarks: {e}",
                cargo()
            );
            status::RUNNER_FAILED
        }
    }
}
