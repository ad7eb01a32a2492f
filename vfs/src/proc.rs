//! Nodes whose content depends on who looks: per-process symlinks and generated files.

use alloc::vec::Vec;

use crate::{ProcessContext, Result};

/// A symlink whose target is computed for the calling process at each lookup or readlink
/// (`/proc/self/exe`; later `/proc/self/cwd`, `/proc/self/fd/N`).
pub trait DynamicLink: Send + Sync {
    /// The target for `ctx`'s process; an error fails the lookup (ENOENT is typical).
    fn target(&self, ctx: &dyn ProcessContext) -> Result<Vec<u8>>;
}

/// The target of `/proc/self/exe`: [`ProcessContext::exe_path`].
pub struct ExeLink;

impl DynamicLink for ExeLink {
    fn target(&self, ctx: &dyn ProcessContext) -> Result<Vec<u8>> {
        ctx.exe_path()
    }
}

/// A read-only file whose whole content is produced when it is opened (`/proc/meminfo`,
/// `/proc/self/auxv`, `/proc/cpuinfo`). The open file keeps that snapshot: reads and seeks
/// work on it, so a reader sees one consistent version. Per-process content can use
/// [`ProcessContext::pid`] to find the process.
pub trait Generator: Send + Sync {
    fn generate(&self, ctx: &dyn ProcessContext) -> Result<Vec<u8>>;
}

impl<F> Generator for F
where
    F: Fn(&dyn ProcessContext) -> Result<Vec<u8>> + Send + Sync,
{
    fn generate(&self, ctx: &dyn ProcessContext) -> Result<Vec<u8>> {
        self(ctx)
    }
}
