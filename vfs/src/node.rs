//! Nodes (inodes) of the tree and the file systems ("superblocks") they belong to.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ktls_abi::fs::{
    self, Stat, Statx, StatxTimestamp, R_OK, STATX_BASIC_STATS, STATX_BTIME, STATX_MNT_ID,
    STATX__RESERVED, S_IALLUGO, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK, S_ISGID, UTIME_NOW, UTIME_OMIT, W_OK, X_OK,
};
use ktls_abi::time::Timespec;
use ktls_abi::Errno;
use spin::Mutex;

use crate::pipe::Pipe;
use crate::proc::{DynamicLink, Generator};
use crate::{Platform, ProcessContext, Result};

/// A shared handle to a node.
pub type NodeRef = Arc<Node>;

/// Block size reported in `st_blksize`.
pub const BLOCK_SIZE: u64 = 4096;
/// tmpfs's pretend size of one directory entry (BOGO_DIRENT_SIZE): a directory's st_size is
/// this times (entries + 2).
const BOGO_DIRENT_SIZE: u64 = 20;
/// The largest file size (s_maxbytes of tmpfs on 64-bit): writes beyond it fail with EFBIG.
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Which kind of file system a node lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// The tree unpacked from the initramfs (read-only).
    Initramfs,
    /// A writable in-memory file system (`/tmp`).
    Tmpfs,
    /// The device directory (`/dev`); writable like Linux's devtmpfs.
    Devtmpfs,
    /// `/proc`: generated files and per-process links (no user-created nodes).
    Proc,
    /// Anonymous pipes made by pipe(2); never linked into the tree.
    Pipefs,
}

/// One mounted file system: the device number its nodes report and whether it is writable.
pub(crate) struct Superblock {
    pub(crate) dev: u64,
    pub(crate) mnt_id: u64,
    pub(crate) kind: FsKind,
    pub(crate) read_only: bool,
    next_ino: AtomicU64,
    pub(crate) platform: Arc<dyn Platform>,
}

impl Superblock {
    pub(crate) fn new(
        dev: u64,
        mnt_id: u64,
        kind: FsKind,
        read_only: bool,
        platform: Arc<dyn Platform>,
    ) -> Arc<Self> {
        Arc::new(Superblock {
            dev,
            mnt_id,
            kind,
            read_only,
            next_ino: AtomicU64::new(1),
            platform,
        })
    }

    fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether user space may create nodes here (O_TMPFILE, mkdir, ...), apart from
    /// read-only-ness.
    pub(crate) fn user_writable(&self) -> bool {
        !self.read_only && matches!(self.kind, FsKind::Tmpfs | FsKind::Devtmpfs)
    }
}

/// Mutable attributes of a node. Always a leaf lock: nothing else is locked while it is held.
pub(crate) struct Meta {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Link count of non-directories (directories compute theirs).
    pub(crate) nlink: u32,
    pub(crate) atime: Timespec,
    pub(crate) mtime: Timespec,
    pub(crate) ctime: Timespec,
    pub(crate) btime: Timespec,
    /// An O_TMPFILE file without O_EXCL: may be linked in although nlink is 0.
    pub(crate) linkable: bool,
}

/// The content of a regular file.
pub(crate) enum FileData {
    /// Borrowed zero-copy from the initramfs image.
    Static(&'static [u8]),
    /// Owned, writable (tmpfs).
    Mem(Vec<u8>),
}

impl FileData {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            FileData::Static(s) => s,
            FileData::Mem(v) => v,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// The data as a growable vector, copying borrowed data first.
    fn make_mut(&mut self, platform: &dyn Platform) -> Result<&mut Vec<u8>> {
        if let FileData::Static(s) = *self {
            let mut v = Vec::new();
            if !platform.can_allocate(s.len()) {
                return Err(Errno::ENOSPC);
            }
            v.try_reserve_exact(s.len()).map_err(|_| Errno::ENOSPC)?;
            v.extend_from_slice(s);
            *self = FileData::Mem(v);
        }
        match self {
            FileData::Mem(v) => Ok(v),
            FileData::Static(_) => unreachable!(),
        }
    }

    /// Copies bytes from `pos` into `buf`; returns how many (0 at or past the end).
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let data = self.bytes();
        if pos >= data.len() as u64 {
            return 0;
        }
        let start = pos as usize;
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        n
    }

    /// Writes `buf` at `pos`, filling any gap with zeros. Linux's rules: EFBIG when `pos` is at
    /// or past the size limit, a short write when the end would pass it.
    pub(crate) fn write_at(
        &mut self,
        pos: u64,
        buf: &[u8],
        platform: &dyn Platform,
    ) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if pos >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let n = (buf.len() as u64).min(MAX_FILE_SIZE - pos) as usize;
        let end = usize::try_from(pos + n as u64).map_err(|_| Errno::EFBIG)?;
        let v = self.make_mut(platform)?;
        if end > v.len() {
            grow(v, end, platform)?;
            v.resize(end, 0);
        }
        v[pos as usize..end].copy_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Sets the size, zero-filling when growing.
    pub(crate) fn set_len(&mut self, len: u64, platform: &dyn Platform) -> Result<()> {
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        if len == self.len() {
            return Ok(());
        }
        let len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        if let FileData::Static(s) = *self {
            if len <= s.len() {
                // Shrinking borrowed data needs no copy.
                *self = FileData::Static(&s[..len]);
                return Ok(());
            }
        }
        let v = self.make_mut(platform)?;
        if len > v.len() {
            grow(v, len, platform)?;
        }
        v.resize(len, 0);
        Ok(())
    }
}

/// Makes room in `v` for `len` bytes, as `Vec` grows (at least doubling), if the platform
/// can spare the memory; ENOSPC (tmpfs is full) if not.
fn grow(v: &mut Vec<u8>, len: usize, platform: &dyn Platform) -> Result<()> {
    if len <= v.capacity() {
        return Ok(());
    }
    let target = len.max(v.capacity().saturating_mul(2));
    if !platform.can_allocate(target) {
        return Err(Errno::ENOSPC);
    }
    v.try_reserve(len - v.len()).map_err(|_| Errno::ENOSPC)
}

/// A directory entry: the node and the position it occupies in readdir order.
pub(crate) struct DirEntry {
    pub(crate) pos: u64,
    pub(crate) node: NodeRef,
}

/// The first readdir position of a real entry: 0 is `.`, 1 is `..`.
pub(crate) const FIRST_ENTRY_POS: u64 = 2;

/// A directory's entries and its place in the tree.
///
/// Entries are kept in insertion order under stable positions, so a getdents64 cookie
/// (`d_off`) stays valid while entries are added or removed: removed entries are skipped and new
/// ones appear after the existing ones.
pub(crate) struct Dir {
    by_name: BTreeMap<Box<[u8]>, DirEntry>,
    by_pos: BTreeMap<u64, Box<[u8]>>,
    next_pos: u64,
    /// `None` only for the root of the whole tree (its `..` is itself).
    pub(crate) parent: Option<Weak<Node>>,
    /// This directory's name in its parent (for getcwd).
    pub(crate) name: Box<[u8]>,
    /// Set by rmdir: nothing can be created in a removed directory.
    pub(crate) removed: bool,
    subdirs: u32,
}

impl Dir {
    pub(crate) fn new(parent: Option<Weak<Node>>, name: &[u8]) -> Self {
        Dir {
            by_name: BTreeMap::new(),
            by_pos: BTreeMap::new(),
            next_pos: FIRST_ENTRY_POS,
            parent,
            name: name.into(),
            removed: false,
            subdirs: 0,
        }
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<&NodeRef> {
        self.by_name.get(name).map(|e| &e.node)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Adds an entry (the caller has checked the name is free). A directory child gets its
    /// parent link set: the caller must hold the tree lock when that child is reachable by
    /// anyone else (it locks a second directory).
    pub(crate) fn insert(&mut self, this: &NodeRef, name: &[u8], node: NodeRef) {
        debug_assert!(!self.by_name.contains_key(name));
        if let Kind::Dir(d) = &node.kind {
            let mut d = d.lock();
            d.parent = Some(Arc::downgrade(this));
            d.name = name.into();
            self.subdirs += 1;
        }
        let pos = self.next_pos;
        self.next_pos += 1;
        self.by_pos.insert(pos, name.into());
        self.by_name.insert(name.into(), DirEntry { pos, node });
    }

    /// Removes an entry and returns its node.
    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<NodeRef> {
        let e = self.by_name.remove(name)?;
        self.by_pos.remove(&e.pos);
        if e.node.is_dir() {
            self.subdirs -= 1;
        }
        Some(e.node)
    }

    /// The first entry at readdir position `pos` or later.
    pub(crate) fn entry_from(&self, pos: u64) -> Option<(u64, &[u8], &NodeRef)> {
        let (&p, name) = self.by_pos.range(pos..).next()?;
        Some((p, name, &self.by_name[name].node))
    }
}

/// What a node is, with the type-specific state.
pub(crate) enum Kind {
    Dir(Mutex<Dir>),
    Regular(Mutex<FileData>),
    Symlink(Box<[u8]>),
    /// A symlink whose target depends on the calling process (`/proc/self/exe`).
    DynSymlink(Arc<dyn DynamicLink>),
    CharDev(u64),
    BlockDev(u64),
    Fifo(Arc<Pipe>),
    Socket,
    /// An anonymous file's node (Linux's anon_inode: pidfds): in no directory, no type bits.
    Anon,
    /// A read-only file whose content a callback produces at open (`/proc/meminfo`).
    Generated(Arc<dyn Generator>),
}

impl Kind {
    fn type_bits(&self) -> u32 {
        match self {
            Kind::Dir(_) => S_IFDIR,
            Kind::Regular(_) | Kind::Generated(_) => S_IFREG,
            Kind::Symlink(_) | Kind::DynSymlink(_) => S_IFLNK,
            Kind::CharDev(_) => S_IFCHR,
            Kind::BlockDev(_) => S_IFBLK,
            Kind::Fifo(_) => S_IFIFO,
            Kind::Socket => S_IFSOCK,
            Kind::Anon => 0,
        }
    }
}

/// A node of the tree: a directory, file, symlink, device, FIFO or socket.
pub struct Node {
    ino: u64,
    pub(crate) sb: Arc<Superblock>,
    pub(crate) meta: Mutex<Meta>,
    pub(crate) kind: Kind,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Node(dev {:#x}, ino {}, mode {:o})",
            self.sb.dev,
            self.ino,
            self.mode()
        )
    }
}

impl Node {
    /// Makes a node. `perm` is masked to the permission, set-id and sticky bits; the type bits
    /// come from `kind`.
    pub(crate) fn new(
        sb: &Arc<Superblock>,
        kind: Kind,
        perm: u32,
        uid: u32,
        gid: u32,
        time: Timespec,
    ) -> NodeRef {
        let mode = kind.type_bits() | (perm & S_IALLUGO);
        Arc::new(Node {
            ino: sb.alloc_ino(),
            sb: sb.clone(),
            meta: Mutex::new(Meta {
                mode,
                uid,
                gid,
                nlink: 1,
                atime: time,
                mtime: time,
                ctime: time,
                btime: time,
                linkable: false,
            }),
            kind,
        })
    }

    pub(crate) fn now(&self) -> Timespec {
        self.sb.platform.now()
    }

    /// The inode number (unique within [`Node::dev`]).
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The device number of the file system holding the node (`st_dev`).
    pub fn dev(&self) -> u64 {
        self.sb.dev
    }

    /// Which file system the node lives on.
    pub fn fs_kind(&self) -> FsKind {
        self.sb.kind
    }

    /// Type and permission bits (`st_mode`).
    pub fn mode(&self) -> u32 {
        self.meta.lock().mode
    }

    /// The type bits (`S_IFREG`, `S_IFDIR`, ...).
    pub fn file_type(&self) -> u32 {
        self.kind.type_bits()
    }

    pub fn uid(&self) -> u32 {
        self.meta.lock().uid
    }

    pub fn gid(&self) -> u32 {
        self.meta.lock().gid
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    pub fn is_symlink(&self) -> bool {
        matches!(self.kind, Kind::Symlink(_) | Kind::DynSymlink(_))
    }

    /// A regular file with data (generated files are regular too, but have none until opened).
    pub fn is_regular(&self) -> bool {
        matches!(self.kind, Kind::Regular(_))
    }

    /// Device number of a character or block device node (`st_rdev`).
    pub fn rdev(&self) -> Option<u64> {
        match self.kind {
            Kind::CharDev(r) | Kind::BlockDev(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn dir(&self) -> Option<&Mutex<Dir>> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub(crate) fn file_data(&self) -> Option<&Mutex<FileData>> {
        match &self.kind {
            Kind::Regular(d) => Some(d),
            _ => None,
        }
    }

    /// Whether this directory is the root of its file system (a mount point's root).
    pub(crate) fn is_fs_root(&self) -> bool {
        self.is_dir() && self.ino == 1
    }

    /// The size (`st_size`): data length, symlink target length, tmpfs-style directory size.
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::Regular(d) => d.lock().len(),
            Kind::Dir(d) => (d.lock().len() as u64 + 2) * BOGO_DIRENT_SIZE,
            Kind::Symlink(t) => t.len() as u64,
            _ => 0,
        }
    }

    /// The link count: directories have 2 plus one per subdirectory (0 once removed).
    pub fn nlink(&self) -> u64 {
        match &self.kind {
            Kind::Dir(d) => {
                let d = d.lock();
                if d.removed {
                    0
                } else {
                    2 + d.subdirs as u64
                }
            }
            _ => self.meta.lock().nlink as u64,
        }
    }

    /// The data of a regular file that still borrows the initramfs image, for zero-copy
    /// mapping. `None` for anything else (including files that have been written).
    pub fn static_data(&self) -> Option<&'static [u8]> {
        match &self.kind {
            Kind::Regular(d) => match *d.lock() {
                FileData::Static(s) => Some(s),
                FileData::Mem(_) => None,
            },
            _ => None,
        }
    }

    /// Reads a regular file's bytes at `pos` without an open file (for the ELF loader).
    /// EISDIR for directories, EINVAL for other non-regular nodes.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        match &self.kind {
            Kind::Regular(d) => Ok(d.lock().read_at(pos, buf)),
            Kind::Dir(_) => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The target of a symlink (readlink). EINVAL for anything that is not a symlink.
    pub fn readlink(&self, ctx: &dyn ProcessContext) -> Result<Vec<u8>> {
        match &self.kind {
            Kind::Symlink(t) => Ok(t.to_vec()),
            Kind::DynSymlink(l) => l.target(ctx),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Linux's generic_permission for `mask` (a combination of `R_OK`, `W_OK`, `X_OK`),
    /// with EROFS for writing a file, directory or symlink on a read-only file system.
    /// uid 0 bypasses the mode bits, except that executing a non-directory needs some x bit.
    pub fn permission(&self, ctx: &dyn ProcessContext, mask: u64) -> Result<()> {
        let ty = self.file_type();
        if mask & W_OK != 0 && self.sb.read_only && matches!(ty, S_IFREG | S_IFDIR | S_IFLNK) {
            return Err(Errno::EROFS);
        }
        let m = self.meta.lock();
        let uid = ctx.fsuid();
        if uid == 0 {
            if mask & X_OK != 0 && ty != S_IFDIR && m.mode & 0o111 == 0 {
                return Err(Errno::EACCES);
            }
            return Ok(());
        }
        let (owner, group) = (m.uid, m.gid);
        let mode = m.mode;
        drop(m);
        let bits = if uid == owner {
            mode >> 6
        } else if ctx.in_group(group) {
            mode >> 3
        } else {
            mode
        } as u64
            & 7;
        if mask & !bits & 7 != 0 {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// access(2)/faccessat(2) on this node: `mode` is `F_OK` or a mix of `R_OK`, `W_OK`,
    /// `X_OK` (EINVAL otherwise). The kernel passes a context with the real ids unless
    /// AT_EACCESS is given.
    pub fn access(&self, ctx: &dyn ProcessContext, mode: u64) -> Result<()> {
        if mode & !(R_OK | W_OK | X_OK) != 0 {
            return Err(Errno::EINVAL);
        }
        self.permission(ctx, mode)
    }

    /// Whether the caller owns the node or is root (inode_owner_or_capable).
    pub(crate) fn owner_or_root(&self, ctx: &dyn ProcessContext) -> bool {
        let uid = ctx.fsuid();
        uid == 0 || uid == self.meta.lock().uid
    }

    pub(crate) fn touch_mtime(&self) {
        let now = self.now();
        let mut m = self.meta.lock();
        m.mtime = now;
        m.ctime = now;
    }

    pub(crate) fn touch_ctime(&self) {
        let now = self.now();
        self.meta.lock().ctime = now;
    }

    /// chmod(2)/fchmod(2): EPERM unless owner or root, EROFS on a read-only file system.
    /// A non-root caller outside the file's group loses S_ISGID, as on Linux.
    pub fn chmod(&self, ctx: &dyn ProcessContext, mode: u32) -> Result<()> {
        if self.sb.read_only {
            return Err(Errno::EROFS);
        }
        if !self.owner_or_root(ctx) {
            return Err(Errno::EPERM);
        }
        let now = self.now();
        let mut m = self.meta.lock();
        let mut perm = mode & S_IALLUGO;
        if ctx.fsuid() != 0 && !ctx.in_group(m.gid) {
            perm &= !S_ISGID;
        }
        m.mode = (m.mode & S_IFMT) | perm;
        m.ctime = now;
        Ok(())
    }

    /// chown(2): `None` leaves an id unchanged. Only root may change the owner; the owner may
    /// change the group to one of its own groups (EPERM otherwise). Changing an id of a
    /// non-directory clears S_ISUID, and S_ISGID when group-executable (Linux's
    /// should_remove_suid).
    pub fn chown(
        &self,
        ctx: &dyn ProcessContext,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<()> {
        if self.sb.read_only {
            return Err(Errno::EROFS);
        }
        let caller = ctx.fsuid();
        let now = self.now();
        let mut m = self.meta.lock();
        if caller != 0 {
            if uid.is_some_and(|u| caller != m.uid || u != m.uid) {
                return Err(Errno::EPERM);
            }
            if gid.is_some_and(|g| caller != m.uid || (g != m.gid && !ctx.in_group(g))) {
                return Err(Errno::EPERM);
            }
        }
        if let Some(u) = uid {
            m.uid = u;
        }
        if let Some(g) = gid {
            m.gid = g;
        }
        if (uid.is_some() || gid.is_some()) && m.mode & S_IFMT != S_IFDIR {
            m.mode &= !fs::S_ISUID;
            if m.mode & 0o010 != 0 {
                m.mode &= !S_ISGID;
            }
        }
        m.ctime = now;
        Ok(())
    }

    /// utimensat(2) on this node. Each time is `None` (now; same as `UTIME_NOW`), or a
    /// timespec whose tv_nsec may be `UTIME_NOW` or `UTIME_OMIT`. Setting explicit times needs
    /// ownership (EPERM); setting both to now also works with write permission (EACCES).
    pub fn set_times(
        &self,
        ctx: &dyn ProcessContext,
        atime: Option<Timespec>,
        mtime: Option<Timespec>,
    ) -> Result<()> {
        let is = |t: Option<Timespec>, v: i64| t.is_some_and(|t| t.tv_nsec == v);
        let explicit =
            |t: Option<Timespec>| !(t.is_none() || is(t, UTIME_NOW) || is(t, UTIME_OMIT));
        for t in [atime, mtime].into_iter().flatten() {
            if t.tv_nsec != UTIME_NOW
                && t.tv_nsec != UTIME_OMIT
                && !(0..1_000_000_000).contains(&t.tv_nsec)
            {
                return Err(Errno::EINVAL);
            }
        }
        if is(atime, UTIME_OMIT) && is(mtime, UTIME_OMIT) {
            return Ok(());
        }
        if self.sb.read_only {
            return Err(Errno::EROFS);
        }
        if !self.owner_or_root(ctx) {
            if explicit(atime) || explicit(mtime) {
                return Err(Errno::EPERM);
            }
            self.permission(ctx, W_OK)?;
        }
        let now = self.now();
        let resolve = |t: Option<Timespec>| match t {
            None => Some(now),
            Some(t) if t.tv_nsec == UTIME_NOW => Some(now),
            Some(t) if t.tv_nsec == UTIME_OMIT => None,
            Some(t) => Some(t),
        };
        let mut m = self.meta.lock();
        if let Some(a) = resolve(atime) {
            m.atime = a;
        }
        if let Some(t) = resolve(mtime) {
            m.mtime = t;
        }
        m.ctime = now;
        Ok(())
    }

    /// Truncates a regular file to `len` by path (truncate(2)): EISDIR for directories,
    /// EINVAL for other non-regular files or a negative length, EACCES/EROFS per
    /// [`Node::permission`].
    pub fn truncate(&self, ctx: &dyn ProcessContext, len: i64) -> Result<()> {
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        match &self.kind {
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Regular(_) => {
                self.permission(ctx, W_OK)?;
                self.set_len(len as u64)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Sets a regular file's size and its mtime/ctime (no permission checks).
    pub(crate) fn set_len(&self, len: u64) -> Result<()> {
        let data = self.file_data().ok_or(Errno::EINVAL)?;
        data.lock().set_len(len, &*self.sb.platform)?;
        self.touch_mtime();
        Ok(())
    }

    /// `struct stat` for this node.
    pub fn stat(&self) -> Stat {
        let size = self.size();
        let nlink = self.nlink();
        let blocks = self.blocks(size);
        let m = self.meta.lock();
        Stat {
            st_dev: self.sb.dev,
            st_ino: self.ino,
            st_nlink: nlink,
            st_mode: m.mode,
            st_uid: m.uid,
            st_gid: m.gid,
            st_rdev: self.rdev().unwrap_or(0),
            st_size: size as i64,
            st_blksize: BLOCK_SIZE as i64,
            st_blocks: blocks as i64,
            st_atime: m.atime.tv_sec,
            st_atime_nsec: m.atime.tv_nsec,
            st_mtime: m.mtime.tv_sec,
            st_mtime_nsec: m.mtime.tv_nsec,
            st_ctime: m.ctime.tv_sec,
            st_ctime_nsec: m.ctime.tv_nsec,
            ..Stat::default()
        }
    }

    /// `struct statx` for this node. `mask` is the caller's request; EINVAL if it has
    /// `STATX__RESERVED`. As on Linux, everything available is returned whatever was asked.
    pub fn statx(&self, mask: u32) -> Result<Statx> {
        if mask & STATX__RESERVED != 0 {
            return Err(Errno::EINVAL);
        }
        let st = self.stat();
        let btime = self.meta.lock().btime;
        let ts = |sec: i64, nsec: i64| StatxTimestamp {
            tv_sec: sec,
            tv_nsec: nsec as u32,
            __reserved: 0,
        };
        Ok(Statx {
            stx_mask: STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID,
            stx_blksize: st.st_blksize as u32,
            stx_nlink: st.st_nlink as u32,
            stx_uid: st.st_uid,
            stx_gid: st.st_gid,
            stx_mode: st.st_mode as u16,
            stx_ino: st.st_ino,
            stx_size: st.st_size as u64,
            stx_blocks: st.st_blocks as u64,
            stx_atime: ts(st.st_atime, st.st_atime_nsec),
            stx_btime: ts(btime.tv_sec, btime.tv_nsec),
            stx_ctime: ts(st.st_ctime, st.st_ctime_nsec),
            stx_mtime: ts(st.st_mtime, st.st_mtime_nsec),
            stx_rdev_major: fs::major(st.st_rdev),
            stx_rdev_minor: fs::minor(st.st_rdev),
            stx_dev_major: fs::major(st.st_dev),
            stx_dev_minor: fs::minor(st.st_dev),
            stx_mnt_id: self.sb.mnt_id,
            ..Statx::default()
        })
    }

    /// 512-byte blocks: whole pages for file data (as tmpfs), nothing for anything else.
    fn blocks(&self, size: u64) -> u64 {
        match self.kind {
            Kind::Regular(_) => size.div_ceil(BLOCK_SIZE) * (BLOCK_SIZE / 512),
            _ => 0,
        }
    }
}
