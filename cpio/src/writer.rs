//! The newc writer (feature `std`).

use crate::{HEADER_LEN, MAGIC_NEWC, S_IFDIR, S_IFLNK, S_IFREG, TRAILER};
use std::io::{self, Write};

/// Writes a newc archive entry by entry; [`Writer::finish`] writes the trailer.
///
/// Names are written as given, with leading `/` removed (an archive of a root tree names its
/// entries `bin/sh`, not `/bin/sh`), and `.` for the root itself. Every entry gets a fresh
/// inode number (1, 2, 3...), uid and gid 0, and mtime 0 unless [`Writer::set_mtime`] says
/// otherwise. Only the permission bits (`0o7777`) of a `mode` argument are used; the writer
/// supplies the file type.
///
/// ```
/// let mut w = ktls_cpio::Writer::new(Vec::new());
/// w.add_dir("/bin", 0o755).unwrap();
/// w.add_file("/bin/hello", 0o755, b"#!/bin/sh\necho hi\n").unwrap();
/// w.add_symlink("/bin/hi", "hello").unwrap();
/// let archive = w.finish().unwrap();
/// let names: Vec<_> = ktls_cpio::entries(&archive).map(|e| e.unwrap().name).collect();
/// assert_eq!(names, [&b"bin"[..], b"bin/hello", b"bin/hi"]);
/// ```
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    mtime: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            next_ino: 1,
            mtime: 0,
        }
    }

    /// The modification time recorded in the following entries (seconds since the epoch).
    pub fn set_mtime(&mut self, mtime: u32) {
        self.mtime = mtime;
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Adds a directory (`mode`: its permissions, e.g. `0o755`).
    pub fn add_dir(&mut self, path: impl AsRef<[u8]>, mode: u32) -> io::Result<()> {
        self.add_entry(path.as_ref(), S_IFDIR | (mode & 0o7777), 2, b"")
    }

    /// Adds a regular file with the given permissions and contents.
    pub fn add_file(&mut self, path: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> io::Result<()> {
        self.add_entry(path.as_ref(), S_IFREG | (mode & 0o7777), 1, data)
    }

    /// Adds a symbolic link `path` -> `target` (mode `0o777`).
    pub fn add_symlink(
        &mut self,
        path: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> io::Result<()> {
        let target = target.as_ref();
        if target.is_empty() {
            return Err(invalid("cpio: empty symbolic link target"));
        }
        self.add_entry(path.as_ref(), S_IFLNK | 0o777, 1, target)
    }

    /// Writes the `TRAILER!!!` entry and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header_and_name(TRAILER, 0, 0, 1, 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn add_entry(&mut self, path: &[u8], mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let name = entry_name(path)?;
        if name == TRAILER {
            return Err(invalid("cpio: an entry may not be named TRAILER!!!"));
        }
        let size = u32::try_from(data.len())
            .map_err(|_| invalid("cpio: file larger than 4 GiB (newc limit)"))?;
        let ino = self.next_ino;
        self.next_ino = self
            .next_ino
            .checked_add(1)
            .ok_or_else(|| invalid("cpio: too many entries"))?;
        self.write_header_and_name(name, ino, mode, nlink, size)?;
        self.put(data)?;
        self.pad()
    }

    fn write_header_and_name(
        &mut self,
        name: &[u8],
        ino: u32,
        mode: u32,
        nlink: u32,
        size: u32,
    ) -> io::Result<()> {
        let namesize = u32::try_from(name.len() + 1).map_err(|_| invalid("cpio: name too long"))?;
        let mtime = if name == TRAILER { 0 } else { self.mtime };
        let fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, namesize, 0];
        let mut h = [0u8; HEADER_LEN];
        h[..6].copy_from_slice(MAGIC_NEWC);
        for (i, f) in fields.iter().enumerate() {
            for j in 0..8 {
                let nibble = (f >> (28 - 4 * j)) & 0xf;
                h[6 + 8 * i + j] = b"0123456789abcdef"[nibble as usize];
            }
        }
        self.put(&h)?;
        self.put(name)?;
        self.put(&[0])?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Zero bytes up to the next multiple of 4 (every header starts 4-aligned, so the
    /// alignment of the whole stream is the alignment the format asks for).
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The stored name: leading `/` removed, `.` for the root; NUL bytes are rejected.
fn entry_name(path: &[u8]) -> io::Result<&[u8]> {
    if path.contains(&0) {
        return Err(invalid("cpio: path contains a NUL byte"));
    }
    let mut n = path;
    while let Some(rest) = n.strip_prefix(b"/") {
        n = rest;
    }
    Ok(if n.is_empty() { b"." } else { n })
}
