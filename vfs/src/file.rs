//! Open file descriptions: what an fd refers to (shared by dup and fork).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use ktls_abi::fs::{
    dtype_of, encode_dirent64, Stat, Statx, DT_DIR, O_ACCMODE, O_APPEND, O_DIRECT, O_NOATIME,
    O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET,
};
use ktls_abi::Errno;
use spin::Mutex;

use crate::dev::CharDevice;
use crate::node::{Kind, NodeRef, FIRST_ENTRY_POS};
use crate::pipe::PipeEnd;
use crate::poll::PollEvents;
use crate::{ProcessContext, Result, WaitKey};

/// The status flags F_SETFL may change (Linux's SETFL_MASK minus O_ASYNC, which ktls does
/// not implement).
pub const SETFL_MASK: u64 = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;

pub(crate) enum FileKind {
    /// O_PATH: a location only; no I/O.
    Path,
    Regular,
    Directory,
    Device(Arc<dyn CharDevice>),
    Pipe(PipeEnd),
    /// A generated file's content, produced at open.
    Generated(Box<[u8]>),
}

/// An open file description: the node, the file offset and the status flags. File
/// descriptors hold it in an `Arc`, so dup'd and inherited descriptors share one offset; the
/// description (and with it a pipe end's reader or writer count) goes away with the last one.
pub struct OpenFile {
    node: NodeRef,
    flags: AtomicU64,
    pos: Mutex<u64>,
    kind: FileKind,
}

impl core::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OpenFile({:?}, flags {:#o})", self.node, self.flags())
    }
}

impl OpenFile {
    pub(crate) fn new(node: NodeRef, flags: u64, kind: FileKind) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            node,
            flags: AtomicU64::new(flags),
            pos: Mutex::new(0),
            kind,
        })
    }

    /// The node this file is open on (for fstat, fchdir, *at() with this fd as dirfd).
    pub fn node(&self) -> &NodeRef {
        &self.node
    }

    /// The access mode and status flags, as F_GETFL reports them.
    pub fn flags(&self) -> u64 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Whether this is an O_PATH file (only usable as a location and for fstat).
    pub fn is_path(&self) -> bool {
        matches!(self.kind, FileKind::Path)
    }

    pub fn is_readable(&self) -> bool {
        !self.is_path() && matches!(self.flags() & O_ACCMODE, O_RDONLY | O_RDWR)
    }

    pub fn is_writable(&self) -> bool {
        !self.is_path() && matches!(self.flags() & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    /// Whether the kernel should return EAGAIN to user space instead of waiting.
    pub fn is_nonblocking(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }

    /// Whether the file is a terminal (isatty).
    pub fn is_tty(&self) -> bool {
        matches!(&self.kind, FileKind::Device(d) if d.is_tty())
    }

    /// The current file offset (directories: the readdir cookie).
    pub fn position(&self) -> u64 {
        *self.pos.lock()
    }

    /// F_SETFL: changes only the flags in [`SETFL_MASK`]. EBADF on O_PATH files; EPERM for
    /// O_NOATIME on someone else's file; EINVAL for O_DIRECT where direct I/O is unsupported.
    pub fn set_status_flags(&self, ctx: &dyn ProcessContext, flags: u64) -> Result<()> {
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        let old = self.flags();
        if flags & O_NOATIME != 0 && old & O_NOATIME == 0 && !self.node.owner_or_root(ctx) {
            return Err(Errno::EPERM);
        }
        if flags & O_DIRECT != 0 && !direct_io_supported(&self.node) {
            return Err(Errno::EINVAL);
        }
        self.flags.store(
            (old & !SETFL_MASK) | (flags & SETFL_MASK),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// read(2): at the file offset, advancing it. EBADF unless open for reading, EISDIR on a
    /// directory, EAGAIN when a pipe or device has nothing yet, `Ok(0)` at end of file.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Path => Err(Errno::EBADF),
            FileKind::Directory => Err(Errno::EISDIR),
            FileKind::Device(d) => d.read(buf),
            FileKind::Pipe(p) => p.read(buf),
            FileKind::Regular => {
                let data = self.node.file_data().ok_or(Errno::EINVAL)?;
                let mut pos = self.pos.lock();
                let n = data.lock().read_at(*pos, buf);
                *pos += n as u64;
                Ok(n)
            }
            FileKind::Generated(content) => {
                let mut pos = self.pos.lock();
                let n = copy_from(content, *pos, buf);
                *pos += n as u64;
                Ok(n)
            }
        }
    }

    /// write(2): at the file offset (at the end with O_APPEND), advancing it. EBADF unless
    /// open for writing; EPIPE when a pipe has no reader; EAGAIN when a pipe is full (a write
    /// of at most PIPE_BUF bytes is all or nothing); EFBIG past the maximum file size.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Device(d) => d.write(buf),
            FileKind::Pipe(p) => p.write(buf),
            FileKind::Regular => {
                let mut pos = self.pos.lock();
                let at = *pos;
                let (at, n) = self.write_regular(at, buf)?;
                *pos = at + n as u64;
                Ok(n)
            }
            // Opening these for writing is refused.
            FileKind::Path | FileKind::Directory | FileKind::Generated(_) => Err(Errno::EBADF),
        }
    }

    /// Writes at `at` (or at the end with O_APPEND); returns where and how much was written.
    fn write_regular(&self, at: u64, buf: &[u8]) -> Result<(u64, usize)> {
        if buf.is_empty() {
            return Ok((at, 0));
        }
        let data = self.node.file_data().ok_or(Errno::EINVAL)?;
        let mut d = data.lock();
        let at = if self.flags() & O_APPEND != 0 {
            d.len()
        } else {
            at
        };
        let n = d.write_at(at, buf, &*self.node.sb.platform)?;
        drop(d);
        self.node.touch_mtime();
        Ok((at, n))
    }

    /// Whether pread/pwrite are allowed (Linux's FMODE_PREAD/FMODE_PWRITE).
    fn positional(&self) -> Result<()> {
        match &self.kind {
            FileKind::Path => Err(Errno::EBADF),
            FileKind::Pipe(_) => Err(Errno::ESPIPE),
            FileKind::Device(d) if !d.seekable() => Err(Errno::ESPIPE),
            _ => Ok(()),
        }
    }

    /// pread64(2): at `offset`, leaving the file offset alone. EINVAL for a negative offset,
    /// ESPIPE on pipes and terminals.
    pub fn pread(&self, buf: &mut [u8], offset: i64) -> Result<usize> {
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        self.positional()?;
        if !self.is_readable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Directory => Err(Errno::EISDIR),
            FileKind::Device(d) => d.read(buf),
            FileKind::Regular => {
                let data = self.node.file_data().ok_or(Errno::EINVAL)?;
                Ok(data.lock().read_at(offset as u64, buf))
            }
            FileKind::Generated(content) => Ok(copy_from(content, offset as u64, buf)),
            FileKind::Path | FileKind::Pipe(_) => Err(Errno::ESPIPE),
        }
    }

    /// pwrite64(2): at `offset`, leaving the file offset alone; as on Linux, O_APPEND files
    /// append anyway.
    pub fn pwrite(&self, buf: &[u8], offset: i64) -> Result<usize> {
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        self.positional()?;
        if !self.is_writable() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Device(d) => d.write(buf),
            FileKind::Regular => Ok(self.write_regular(offset as u64, buf)?.1),
            _ => Err(Errno::EBADF),
        }
    }

    /// lseek(2). EINVAL for an unknown `whence` or a negative result; ESPIPE on pipes and
    /// terminals; SEEK_END relative to the size of a regular file; SEEK_DATA/SEEK_HOLE with
    /// ENXIO at or past the end (a file has no holes but its end). Directories take SEEK_SET
    /// and SEEK_CUR of a readdir cookie; the seekable devices always return 0.
    pub fn seek(&self, offset: i64, whence: u64) -> Result<u64> {
        if whence > SEEK_HOLE {
            return Err(Errno::EINVAL);
        }
        let size = match &self.kind {
            FileKind::Path => return Err(Errno::EBADF),
            FileKind::Pipe(_) => return Err(Errno::ESPIPE),
            FileKind::Device(d) => {
                if !d.seekable() {
                    return Err(Errno::ESPIPE);
                }
                *self.pos.lock() = 0;
                return Ok(0);
            }
            FileKind::Regular => Some(self.node.size()),
            // seq_file and directories know no end.
            FileKind::Directory | FileKind::Generated(_) => None,
        };
        let mut pos = self.pos.lock();
        let new = match (whence, size) {
            (SEEK_SET, _) => offset,
            (SEEK_CUR, _) => (*pos as i64).checked_add(offset).ok_or(Errno::EINVAL)?,
            (SEEK_END, Some(size)) => (size as i64).checked_add(offset).ok_or(Errno::EINVAL)?,
            (SEEK_DATA, Some(size)) => {
                if offset < 0 || offset as u64 >= size {
                    return Err(Errno::ENXIO);
                }
                offset
            }
            (SEEK_HOLE, Some(size)) => {
                if offset < 0 || offset as u64 >= size {
                    return Err(Errno::ENXIO);
                }
                size as i64
            }
            _ => return Err(Errno::EINVAL),
        };
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = new as u64;
        Ok(new as u64)
    }

    /// getdents64(2): fills `buf` with `linux_dirent64` records from the directory offset on,
    /// `.` and `..` first; each record's d_off is the cookie of the next entry (usable with
    /// lseek). Returns the bytes written, 0 at the end. ENOTDIR on a non-directory, EINVAL if
    /// not even one record fits, ENOENT in a removed directory.
    pub fn getdents64(&self, buf: &mut [u8]) -> Result<usize> {
        let dir = match &self.kind {
            FileKind::Path => return Err(Errno::EBADF),
            FileKind::Directory => self.node.dir().ok_or(Errno::ENOTDIR)?,
            _ => return Err(Errno::ENOTDIR),
        };
        let mut pos = self.pos.lock();
        let mut written = 0;
        let d = dir.lock();
        if d.removed {
            return Err(Errno::ENOENT);
        }
        loop {
            let parent_ino;
            let (p, ino, dtype, name): (u64, u64, u8, &[u8]) = match *pos {
                0 => (0, self.node.ino(), DT_DIR, b"."),
                1 => {
                    // As Linux: a file system's root is its own parent here.
                    parent_ino = match d.parent.as_ref().and_then(|w| w.upgrade()) {
                        Some(parent) if !self.node.is_fs_root() => parent.ino(),
                        _ => self.node.ino(),
                    };
                    (1, parent_ino, DT_DIR, b"..")
                }
                n => match d.entry_from(n.max(FIRST_ENTRY_POS)) {
                    Some((p, name, node)) => (p, node.ino(), dtype_of(node.file_type()), name),
                    None => break,
                },
            };
            let next = p + 1;
            match encode_dirent64(&mut buf[written..], ino, next as i64, dtype, name) {
                Some(len) => {
                    written += len;
                    *pos = next;
                }
                None if written == 0 => return Err(Errno::EINVAL),
                None => break,
            }
        }
        Ok(written)
    }

    /// fstat(2).
    pub fn stat(&self) -> Stat {
        self.node.stat()
    }

    /// statx(2) on this file (AT_EMPTY_PATH).
    pub fn statx(&self, mask: u32) -> Result<Statx> {
        self.node.statx(mask)
    }

    /// ftruncate(2): EINVAL for a negative length, a non-regular file or a file not open for
    /// writing; EBADF on O_PATH.
    pub fn truncate(&self, len: i64) -> Result<()> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        if self.is_path() {
            return Err(Errno::EBADF);
        }
        if !matches!(self.kind, FileKind::Regular) || !self.is_writable() {
            return Err(Errno::EINVAL);
        }
        self.node.set_len(len as u64)
    }

    /// Readiness for poll/select: pipes and devices report their state, everything else is
    /// always ready (Linux's DEFAULT_POLLMASK); O_PATH files are POLLNVAL.
    pub fn poll(&self) -> PollEvents {
        match &self.kind {
            FileKind::Path => PollEvents::NVAL,
            FileKind::Pipe(p) => p.poll(),
            FileKind::Device(d) => d.poll(),
            FileKind::Regular | FileKind::Directory | FileKind::Generated(_) => PollEvents::DEFAULT,
        }
    }

    /// What the kernel should sleep on while this file is not ready: the VFS calls
    /// [`crate::Platform::wake`] with this key when a pipe's state changes. `None` for files
    /// that are always ready, and for devices without a key.
    pub fn wait_key(&self) -> Option<WaitKey> {
        match &self.kind {
            FileKind::Pipe(p) => Some(p.key()),
            FileKind::Device(d) => d.wait_key(),
            _ => None,
        }
    }

    /// For a FIFO opened without O_NONBLOCK: whether the open must still wait for the other
    /// end (a reader waits for a writer to open, and vice versa). The kernel waits on
    /// [`OpenFile::wait_key`] until this is false before returning the fd (dropping the file
    /// if interrupted).
    pub fn open_pending(&self) -> bool {
        match &self.kind {
            FileKind::Pipe(p) => p.open_pending(),
            _ => false,
        }
    }

    /// The driver behind a device or anonymous file.
    pub fn device(&self) -> Option<&Arc<dyn CharDevice>> {
        match &self.kind {
            FileKind::Device(d) => Some(d),
            _ => None,
        }
    }

    /// ioctl(2): passed to a device driver; ENOTTY for anything else, EBADF on O_PATH.
    pub fn ioctl(&self, cmd: u64, arg: u64) -> Result<u64> {
        match &self.kind {
            FileKind::Path => Err(Errno::EBADF),
            FileKind::Device(d) => d.ioctl(cmd, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    /// The count FIONREAD reports for pipes (bytes buffered) and regular files (bytes after
    /// the offset); `None` where FIONREAD is not the VFS's to answer.
    pub fn readable_bytes(&self) -> Option<u64> {
        match &self.kind {
            FileKind::Pipe(p) => Some(p.buffered() as u64),
            FileKind::Regular => Some(self.node.size().saturating_sub(self.position())),
            _ => None,
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // A pipe end gives up its reader/writer count when its PipeEnd drops.
        if let FileKind::Device(d) = &self.kind {
            d.release();
        }
    }
}

/// Whether O_DIRECT is accepted: regular files on tmpfs (Linux 6.6+). Not on the initramfs,
/// devices or pipes (EINVAL, as for `dd oflag=direct of=/dev/null`).
pub(crate) fn direct_io_supported(node: &NodeRef) -> bool {
    matches!(node.kind, Kind::Regular(_)) && node.sb.user_writable()
}

fn copy_from(content: &[u8], pos: u64, buf: &mut [u8]) -> usize {
    if pos >= content.len() as u64 {
        return 0;
    }
    let start = pos as usize;
    let n = buf.len().min(content.len() - start);
    buf[..n].copy_from_slice(&content[start..start + n]);
    n
}
