//! The vDSO image: building it ([`build`]), checking it ([`check`]), and finding it for tests
//! ([`image`]).
//!
//! The kernel's build script uses [`build::build_vdso`] and [`check::check`] before it embeds
//! the image, so a kernel is never built around a vDSO that has relocations, writable data or a
//! missing symbol. The tests of this crate check the checker (it rejects broken images) and run
//! the image natively on the host (`tests/native.rs`).

pub mod build;
pub mod check;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("vdso/image lives two levels below the workspace root")
}

/// The built vDSO image (built once per process with the cargo running us, or `cargo`).
pub fn image() -> Result<PathBuf, String> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            build::build_vdso(&cargo, workspace_root())
        })
        .clone()
}
