//! ktls's file system: an in-memory tree of nodes, open file descriptions, pipes and file
//! descriptor tables, as `no_std` + `alloc` logic that is tested on the host.
//!
//! # How the kernel uses it
//!
//! The syscall layer owns user memory: it copies paths and buffers in and out and calls this
//! crate with kernel slices. This crate never sees a user pointer and never blocks.
//!
//! * **Boot.** [`Vfs::new`] with the kernel's [`Platform`] (clock, random bytes, wake-ups).
//!   [`Vfs::populate_cpio`] unpacks the initramfs image (a cpio newc archive read with
//!   `ktls-cpio`; file data stays borrowed from the image, zero-copy) into a read-only root
//!   ([`Vfs::populate`] takes [`InitramfsEntry`]s from any other source).
//!   [`Vfs::take_boot_request`] reads and removes `/.ktls`. Then [`Vfs::mount`] a tmpfs on
//!   `/tmp` (mode 01777), [`Vfs::install_dev`] for `/dev` (null, zero, full, random,
//!   urandom) and [`Vfs::add_char_device`] for the console and ttys (the kernel implements
//!   [`CharDevice`]), and [`Vfs::install_proc`] for `/proc/self/exe`, plus generated files
//!   ([`NewNode::Generated`]) as needed.
//! * **Processes.** Each process has a cwd ([`NodeRef`]) and an [`FdTable`] of
//!   [`OpenFile`]s. Calls that take a path get a [`ProcessContext`] (credentials, umask,
//!   pid, executable path) and a start directory: the cwd for `AT_FDCWD`, or the node of the
//!   dirfd's open file ([`OpenFile::node`]). `AT_EMPTY_PATH` is the kernel's: it uses the
//!   fd's node directly ([`Node::stat`], [`Vfs::link_node`], ...).
//! * **Errors** are [`Errno`] values with Linux's numbers and Linux's choice for each case.
//!
//! # Blocking
//!
//! Nothing here waits. A read from an empty pipe or a device with no input returns
//! `Err(EAGAIN)`, and so does a write to a full pipe. If the file is not O_NONBLOCK
//! ([`OpenFile::is_nonblocking`]), the kernel's blocking layer waits until
//! [`OpenFile::poll`] reports readiness and retries; the VFS calls [`Platform::wake`] with the
//! file's [`OpenFile::wait_key`] whenever a pipe's state changes (data, space, an end
//! closing), so the kernel can sleep on that key. A blocking write longer than `PIPE_BUF`
//! may be partial: the kernel writes the rest after waiting. Opening a FIFO without
//! O_NONBLOCK returns at once; the kernel waits while [`OpenFile::open_pending`]. poll, ppoll
//! and select are built from [`OpenFile::poll`].
//!
//! # Design
//!
//! * Nodes are `Arc<Node>` ([`NodeRef`]); a directory holds its children strongly and each
//!   directory knows its parent weakly (for `..` and getcwd). Regular files either borrow
//!   `&'static [u8]` from the initramfs or own a `Vec<u8>` (tmpfs).
//! * Each node belongs to a file system (initramfs, tmpfs, devtmpfs, proc, pipefs) with its
//!   own `st_dev` and read-only flag: writes to the initramfs are EROFS, renames and links
//!   across file systems EXDEV. A mount puts a file system's root directory in place of the
//!   mount point's entry.
//! * Locks are `spin::Mutex`es held briefly and never across a call into the kernel except the
//!   clock ([`Platform::now`]). Changes to the namespace serialize on one tree lock, lookups
//!   do not take it. Node attributes are a leaf lock.
//! * An open file's offset is shared by everything that shares the `Arc<OpenFile>` (dup,
//!   fork). Pipe reader and writer counts follow the lifetime of the open files: when the
//!   last reference to an end's `OpenFile` drops, that end is closed.
//! * Limits: tmpfs files are contiguous vectors, so a write far past the end allocates the
//!   gap (ENOSPC when that fails) instead of making a sparse file; generated files refuse
//!   opening for writing (EACCES). Not implemented: atime updates (as if mounted noatime),
//!   file locks, O_ASYNC, packet-mode pipes, RENAME_WHITEOUT, ETXTBSY, chroot.
#![no_std]
extern crate alloc;

mod dev;
mod fdtable;
mod file;
mod initramfs;
mod node;
mod path;
mod pipe;
mod poll;
mod proc;
mod vfs;

use alloc::vec::Vec;

pub use dev::{
    CharDevice, FullDevice, NullDevice, RandomDevice, ZeroDevice, DEV_CONSOLE, DEV_FULL, DEV_NULL,
    DEV_RANDOM, DEV_TTY, DEV_URANDOM, DEV_ZERO,
};
pub use fdtable::{FdTable, DEFAULT_NOFILE};
pub use file::{OpenFile, SETFL_MASK};
pub use initramfs::{BootRequest, BootRequestError, InitramfsEntry, InitramfsError, PopulateError};
pub use ktls_abi::Errno;
pub use node::{FsKind, Node, NodeRef, BLOCK_SIZE, MAX_FILE_SIZE};
pub use path::MAX_SYMLINKS;
pub use pipe::PIPE_CAPACITY;
pub use poll::PollEvents;
pub use proc::{DynamicLink, ExeLink, Generator};
pub use vfs::{NewNode, Vfs};

use ktls_abi::time::Timespec;

/// Result with a Linux errno.
pub type Result<T> = core::result::Result<T, Errno>;

/// An identifier for something a kernel thread can wait on (the address of a pipe, or
/// whatever a [`CharDevice`] chooses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitKey(pub usize);

/// What the VFS needs from the kernel.
pub trait Platform: Send + Sync {
    /// The current time (CLOCK_REALTIME), for file timestamps.
    fn now(&self) -> Timespec;
    /// Fills `buf` with random bytes (for `/dev/random` and `/dev/urandom`).
    fn fill_random(&self, buf: &mut [u8]);
    /// Something waiting on `key` may be able to proceed (a pipe got data or space, or an
    /// end closed). Called without VFS locks held.
    fn wake(&self, key: WaitKey);
    /// Whether `bytes` more of kernel memory may go to contents user space chose (pipe
    /// buffers, tmpfs file data): the kernel keeps the last of its heap for itself, and says
    /// no before that is reached, so these allocations fail with ENOMEM/ENOSPC rather than
    /// leave the kernel nothing. The default says yes (the allocation itself may still fail).
    fn can_allocate(&self, bytes: usize) -> bool {
        let _ = bytes;
        true
    }
}

/// The calling process, as path resolution and permission checks see it.
pub trait ProcessContext {
    /// The user id for permission checks (the fsuid; the real uid for access(2) without
    /// AT_EACCESS). 0 is root and bypasses the mode bits.
    fn fsuid(&self) -> u32;
    /// The group id for permission checks and for new files.
    fn fsgid(&self) -> u32;
    /// Whether `gid` is the caller's group or one of its supplementary groups.
    fn in_group(&self, gid: u32) -> bool {
        gid == self.fsgid()
    }
    /// The umask applied to the mode of new files, directories and FIFOs.
    fn umask(&self) -> u32;
    /// The process id (for `/proc/self`-style generated content).
    fn pid(&self) -> u32;
    /// The absolute path of the running executable (`/proc/self/exe`); ENOENT if none.
    fn exe_path(&self) -> Result<Vec<u8>>;
}

/// The kernel itself as a caller: root, no umask, pid 0, no executable.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelContext;

impl ProcessContext for KernelContext {
    fn fsuid(&self) -> u32 {
        0
    }
    fn fsgid(&self) -> u32 {
        0
    }
    fn umask(&self) -> u32 {
        0
    }
    fn pid(&self) -> u32 {
        0
    }
    fn exe_path(&self) -> Result<Vec<u8>> {
        Err(Errno::ENOENT)
    }
}
