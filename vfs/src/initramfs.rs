//! Filling the tree from the initramfs, and the boot request in `/.ktls`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use ktls_abi::fs::{
    makedev, S_IALLUGO, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use ktls_abi::time::Timespec;
use ktls_abi::Errno;

use crate::node::{FileData, Kind, NodeRef};
use crate::path::lookup_child;
use crate::vfs::{check_name, NewNode};
use crate::{Result, Vfs};

/// One archive member, as the kernel's cpio reader yields it.
#[derive(Clone, Copy, Debug)]
pub struct InitramfsEntry<'a> {
    /// The path inside the archive (`bin/sh`, `./bin/sh` and `/bin/sh` are the same).
    pub name: &'a [u8],
    /// Type and permission bits (`S_IFREG | 0o755`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// File content, or a symlink's target; borrowed from the archive for good.
    pub data: &'static [u8],
    /// Device number of a device node.
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// Hard links: entries with `nlink >= 2` and the same `ino`, device and mode are one
    /// node (cpio stores the data with the last of them). Zero where unknown.
    pub ino: u32,
    pub nlink: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
}

impl From<ktls_cpio::Entry<'static>> for InitramfsEntry<'static> {
    fn from(e: ktls_cpio::Entry<'static>) -> Self {
        InitramfsEntry {
            name: e.name,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime as i64,
            data: e.data,
            rdev_major: e.rdev_major,
            rdev_minor: e.rdev_minor,
            ino: e.ino,
            nlink: e.nlink,
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
        }
    }
}

/// Why [`Vfs::populate_cpio`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitramfsError {
    /// The archive is malformed.
    Cpio(ktls_cpio::Error),
    /// An entry could not be added.
    Entry(PopulateError),
}

impl core::fmt::Display for InitramfsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitramfsError::Cpio(e) => write!(f, "{e}"),
            InitramfsError::Entry(e) => write!(f, "{e}"),
        }
    }
}

/// What identifies the members of one hard-link set: ino, device, mode.
type LinkKey = (u32, u32, u32, u32);

/// Why [`Vfs::populate`] stopped: the entry and the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PopulateError {
    pub name: Vec<u8>,
    pub errno: Errno,
}

impl core::fmt::Display for PopulateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "initramfs entry \"")?;
        for &b in &self.name {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        write!(f, "\": {}", self.errno)
    }
}

/// The program to start, from `/.ktls` (spec/boot-protocol.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRequest {
    /// Absolute guest path of the executable.
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// Initial working directory (`/` when `/.ktls/cwd` is absent).
    pub cwd: Vec<u8>,
}

/// Why the boot request could not be read: which file, and the error (ENOENT: missing;
/// EINVAL: not a regular file, or a list not NUL-terminated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRequestError {
    pub file: &'static str,
    pub errno: Errno,
}

impl core::fmt::Display for BootRequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "/.ktls/{}: {}", self.file, self.errno)
    }
}

/// Splits "a\0b\0" into ["a", "b"]; EINVAL if the last item lacks its NUL.
fn nul_list(data: &[u8]) -> Result<Vec<Vec<u8>>> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    if data.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(data[..data.len() - 1]
        .split(|&b| b == 0)
        .map(|s| s.to_vec())
        .collect())
}

impl Vfs {
    /// Adds the archive's entries to the (read-only) root file system, in order. Missing
    /// parent directories are made (0755, root-owned); an entry replaces an existing one of
    /// the same name, except that a directory entry over a directory only updates its
    /// attributes. `TRAILER!!!` is skipped. A symlink target ends at its first NUL, if any.
    /// Stops at the first bad entry: EINVAL for a `..` component, an unknown file type or an
    /// empty symlink target, ENOTDIR when a parent is
    /// not a directory, ENAMETOOLONG for a component over NAME_MAX.
    ///
    /// Regular files and special files with `nlink >= 2` sharing ino, device and mode are
    /// joined into one node with several names, as Linux does; a later member's non-empty
    /// data becomes the node's data.
    ///
    /// Call it before mounting anything (`/tmp`, `/dev`, `/proc`): entries under a mount
    /// point would be added to the mounted file system's directory otherwise.
    pub fn populate<'a, I>(&self, entries: I) -> core::result::Result<(), PopulateError>
    where
        I: IntoIterator<Item = InitramfsEntry<'a>>,
    {
        let mut links = BTreeMap::new();
        for e in entries {
            self.add_entry(&e, &mut links)
                .map_err(|errno| PopulateError {
                    name: e.name.to_vec(),
                    errno,
                })?;
        }
        Ok(())
    }

    /// [`Vfs::populate`] from a cpio newc archive that stays in memory for good (the
    /// initramfs image): file data is borrowed from it.
    pub fn populate_cpio(
        &self,
        archive: &'static [u8],
    ) -> core::result::Result<(), InitramfsError> {
        let mut error = None;
        let entries = ktls_cpio::entries(archive).map_while(|r| match r {
            Ok(e) => Some(InitramfsEntry::from(e)),
            Err(e) => {
                error = Some(e);
                None
            }
        });
        self.populate(entries).map_err(InitramfsError::Entry)?;
        match error {
            Some(e) => Err(InitramfsError::Cpio(e)),
            None => Ok(()),
        }
    }

    fn add_entry(
        &self,
        e: &InitramfsEntry<'_>,
        links: &mut BTreeMap<LinkKey, NodeRef>,
    ) -> Result<()> {
        let comps: Vec<&[u8]> = e
            .name
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.iter().any(|c| *c == b"..") {
            return Err(Errno::EINVAL);
        }
        if comps.as_slice() == [b"TRAILER!!!".as_slice()] {
            return Ok(());
        }
        let now = self.platform().now();
        let time = Timespec {
            tv_sec: e.mtime,
            tv_nsec: 0,
        };
        let ty = e.mode & S_IFMT;
        let Some((&name, parents)) = comps.split_last() else {
            // "." itself: the root directory's attributes.
            if ty != S_IFDIR {
                return Err(Errno::EINVAL);
            }
            Self::set_attrs(self.root(), e, time, now);
            return Ok(());
        };
        let mut dir = self.root().clone();
        for &c in parents {
            check_name(c)?;
            dir = match lookup_child(&dir, c) {
                Ok(n) if n.is_dir() => n,
                Ok(_) => return Err(Errno::ENOTDIR),
                Err(Errno::ENOENT) => {
                    let d = self.make_node(&dir, NewNode::Dir, 0o755, 0, 0, now);
                    self.put_node(&dir, c, d.clone());
                    d
                }
                Err(err) => return Err(err),
            };
        }
        check_name(name)?;
        if ty == S_IFDIR {
            if let Ok(existing) = lookup_child(&dir, name) {
                if existing.is_dir() {
                    Self::set_attrs(&existing, e, time, now);
                    return Ok(());
                }
            }
        }
        let link_key = (e.nlink >= 2 && !matches!(ty, S_IFDIR | S_IFLNK)).then_some((
            e.ino,
            e.dev_major,
            e.dev_minor,
            e.mode,
        ));
        if let Some(node) = link_key.and_then(|k| links.get(&k)) {
            if let (Kind::Regular(data), false) = (&node.kind, e.data.is_empty()) {
                *data.lock() = FileData::Static(e.data);
            }
            if lookup_child(&dir, name).is_ok_and(|n| alloc::sync::Arc::ptr_eq(&n, node)) {
                return Ok(());
            }
            node.meta.lock().nlink += 1;
            self.put_node(&dir, name, node.clone());
            return Ok(());
        }
        let rdev = makedev(e.rdev_major, e.rdev_minor);
        let spec = match ty {
            S_IFDIR => NewNode::Dir,
            S_IFREG => NewNode::StaticFile(e.data),
            S_IFLNK => {
                // Some writers store the target with its NUL (Linux reads a C string).
                let target = e.data.split(|&b| b == 0).next().unwrap_or_default();
                if target.is_empty() {
                    return Err(Errno::EINVAL);
                }
                NewNode::Symlink(target)
            }
            S_IFCHR => NewNode::CharDev(rdev),
            S_IFBLK => NewNode::BlockDev(rdev),
            S_IFIFO => NewNode::Fifo,
            S_IFSOCK => NewNode::Socket,
            _ => return Err(Errno::EINVAL),
        };
        let node = self.make_node(&dir, spec, e.mode, e.uid, e.gid, time);
        Self::set_attrs(&node, e, time, now);
        if let Some(k) = link_key {
            links.insert(k, node.clone());
        }
        self.put_node(&dir, name, node);
        Ok(())
    }

    /// An unpacked node's attributes: atime = mtime = the archive's, ctime = btime = now.
    fn set_attrs(node: &NodeRef, e: &InitramfsEntry<'_>, time: Timespec, now: Timespec) {
        let mut m = node.meta.lock();
        m.mode = (m.mode & S_IFMT) | (e.mode & S_IALLUGO);
        m.uid = e.uid;
        m.gid = e.gid;
        m.atime = time;
        m.mtime = time;
        m.ctime = now;
        m.btime = now;
    }

    /// Reads the boot request from `/.ktls` and removes that directory from the tree (also
    /// when the request is malformed). `Ok(None)` if there is no `/.ktls`. `exe`, `argv` and
    /// `envp` are required, `cwd` is optional.
    pub fn take_boot_request(&self) -> core::result::Result<Option<BootRequest>, BootRequestError> {
        let Ok(dir) = lookup_child(self.root(), b".ktls") else {
            return Ok(None);
        };
        let read = |file: &'static str| -> core::result::Result<Option<Vec<u8>>, BootRequestError> {
            let err = |errno| BootRequestError { file, errno };
            let node = match lookup_child(&dir, file.as_bytes()) {
                Ok(n) => n,
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(err(e)),
            };
            match &node.kind {
                Kind::Regular(d) => Ok(Some(d.lock().bytes().to_vec())),
                _ => Err(err(Errno::EINVAL)),
            }
        };
        let result = (|| {
            let required = |file: &'static str| {
                read(file)?.ok_or(BootRequestError {
                    file,
                    errno: Errno::ENOENT,
                })
            };
            let list = |file: &'static str| {
                nul_list(&required(file)?).map_err(|errno| BootRequestError { file, errno })
            };
            Ok(Some(BootRequest {
                exe: required("exe")?,
                argv: list("argv")?,
                envp: list("envp")?,
                cwd: read("cwd")?.unwrap_or_else(|| b"/".to_vec()),
            }))
        })();
        let removed = self.remove_node(self.root(), b".ktls");
        debug_assert!(removed.is_ok());
        result
    }
}
