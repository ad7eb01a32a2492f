//! The tree as a whole: mounts, namespace operations and open.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ktls_abi::fs::{
    makedev, NAME_MAX, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_EXCL, O_LARGEFILE,
    O_NOATIME, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC,
    O_WRONLY, PATH_MAX, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT, R_OK, S_IFBLK, S_IFCHR,
    S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, S_ISGID, S_ISVTX, W_OK, X_OK,
};
use ktls_abi::Errno;
use spin::Mutex;

use crate::dev::{
    CharDevice, FullDevice, NullDevice, RandomDevice, ZeroDevice, DEV_FULL, DEV_NULL, DEV_RANDOM,
    DEV_URANDOM, DEV_ZERO,
};
use crate::file::{direct_io_supported, FileKind, OpenFile};
use crate::node::{Dir, FileData, FsKind, Kind, Node, NodeRef, Superblock};
use crate::path::{lookup_child, Last, ParentPath, Walker};
use crate::pipe::Pipe;
use crate::proc::{DynamicLink, ExeLink, Generator};
use crate::{KernelContext, Platform, ProcessContext, Result};

/// What [`Vfs::create_node`] makes.
pub enum NewNode<'a> {
    Dir,
    /// A regular file borrowing `data` (read-only initramfs content, or copied on first write
    /// on a writable file system).
    StaticFile(&'static [u8]),
    /// A regular file owning its data.
    File(Vec<u8>),
    Symlink(&'a [u8]),
    /// A per-process symlink (`/proc/self/exe`).
    DynSymlink(Arc<dyn DynamicLink>),
    /// A character device node with this device number (see [`Vfs::register_char_device`]).
    CharDev(u64),
    /// A block device node (ktls has no block drivers: opening it is ENXIO).
    BlockDev(u64),
    Fifo,
    /// A socket node (opening it is ENXIO).
    Socket,
    /// A file whose content is generated at open.
    Generated(Arc<dyn Generator>),
}

/// The file system tree. See the crate documentation for how the kernel uses it.
pub struct Vfs {
    root: NodeRef,
    platform: Arc<dyn Platform>,
    drivers: Mutex<BTreeMap<u64, Arc<dyn CharDevice>>>,
    next_anon_minor: AtomicU32,
    next_mnt_id: AtomicU64,
    /// Serializes every change to the namespace (create, remove, rename, mount), so such an
    /// operation sees a stable tree and may hold two directory locks at once. Lookups never
    /// take it.
    tree_lock: Mutex<()>,
    pipefs: Arc<Superblock>,
}

fn new_superblock(
    platform: &Arc<dyn Platform>,
    minor: &AtomicU32,
    mnt_id: &AtomicU64,
    kind: FsKind,
    read_only: bool,
) -> Arc<Superblock> {
    Superblock::new(
        makedev(0, minor.fetch_add(1, Ordering::Relaxed)),
        mnt_id.fetch_add(1, Ordering::Relaxed),
        kind,
        read_only,
        platform.clone(),
    )
}

fn node_kind(spec: NewNode<'_>, platform: &Arc<dyn Platform>) -> Kind {
    match spec {
        NewNode::Dir => Kind::Dir(Mutex::new(Dir::new(None, b""))),
        NewNode::StaticFile(d) => Kind::Regular(Mutex::new(FileData::Static(d))),
        NewNode::File(v) => Kind::Regular(Mutex::new(FileData::Mem(v))),
        NewNode::Symlink(t) => Kind::Symlink(t.into()),
        NewNode::DynSymlink(l) => Kind::DynSymlink(l),
        NewNode::CharDev(r) => Kind::CharDev(r),
        NewNode::BlockDev(r) => Kind::BlockDev(r),
        NewNode::Fifo => Kind::Fifo(Pipe::new(platform.clone())),
        NewNode::Socket => Kind::Socket,
        NewNode::Generated(g) => Kind::Generated(g),
    }
}

/// A name the kernel may give a node: not empty, `.` or `..`, no slash, at most NAME_MAX.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// EROFS when `dir`'s file system is read-only (Linux's mnt_want_write on the parent).
fn want_write(dir: &NodeRef) -> Result<()> {
    if dir.sb.read_only {
        Err(Errno::EROFS)
    } else {
        Ok(())
    }
}

/// Linux's may_create (after the EEXIST and EROFS checks): ENOENT in a removed directory,
/// EACCES without write and search permission.
fn may_create(ctx: &dyn ProcessContext, dir: &NodeRef) -> Result<()> {
    if dir.dir().ok_or(Errno::ENOTDIR)?.lock().removed {
        return Err(Errno::ENOENT);
    }
    dir.permission(ctx, W_OK | X_OK)
}

/// Linux's may_delete: EACCES without write and search permission on `dir`, EPERM in a
/// sticky directory unless the caller owns the victim or the directory (or is root),
/// ENOTDIR/EISDIR when the victim's type does not match `isdir`, EBUSY for a mounted file
/// system's root.
fn may_delete(
    ctx: &dyn ProcessContext,
    dir: &NodeRef,
    victim: &NodeRef,
    isdir: bool,
) -> Result<()> {
    dir.permission(ctx, W_OK | X_OK)?;
    let uid = ctx.fsuid();
    if dir.mode() & S_ISVTX != 0 && uid != 0 && uid != victim.uid() && uid != dir.uid() {
        return Err(Errno::EPERM);
    }
    if isdir {
        if !victim.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if victim.is_fs_root() {
            return Err(Errno::EBUSY);
        }
    } else if victim.is_dir() {
        return Err(Errno::EISDIR);
    }
    Ok(())
}

/// The owner of a node created in `dir` by `ctx`, and whether `dir` is set-group-ID (the new
/// node then takes the directory's group, and a new directory keeps S_ISGID).
fn new_owner(ctx: &dyn ProcessContext, dir: &NodeRef) -> (u32, u32, bool) {
    let m = dir.meta.lock();
    if m.mode & S_ISGID != 0 {
        (ctx.fsuid(), m.gid, true)
    } else {
        (ctx.fsuid(), ctx.fsgid(), false)
    }
}

/// The name a create-like operation makes: EEXIST for `.`, `..` and `/`.
fn create_name(p: &ParentPath) -> Result<&[u8]> {
    match &p.last {
        Last::Name(n) => Ok(n),
        _ => Err(Errno::EEXIST),
    }
}

impl Vfs {
    /// An empty read-only root directory (the initramfs file system: fill it with
    /// [`Vfs::populate`]) and the pipe file system.
    pub fn new(platform: Arc<dyn Platform>) -> Vfs {
        let minor = AtomicU32::new(1);
        let mnt_id = AtomicU64::new(1);
        let rootfs = new_superblock(&platform, &minor, &mnt_id, FsKind::Initramfs, true);
        let pipefs = new_superblock(&platform, &minor, &mnt_id, FsKind::Pipefs, false);
        let root = Node::new(
            &rootfs,
            Kind::Dir(Mutex::new(Dir::new(None, b""))),
            0o755,
            0,
            0,
            platform.now(),
        );
        Vfs {
            root,
            platform,
            drivers: Mutex::new(BTreeMap::new()),
            next_anon_minor: minor,
            next_mnt_id: mnt_id,
            tree_lock: Mutex::new(()),
            pipefs,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &NodeRef {
        &self.root
    }

    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.platform
    }

    fn walker<'a>(&'a self, ctx: &'a dyn ProcessContext) -> Walker<'a> {
        Walker::new(&self.root, ctx)
    }

    // ---- Kernel-side construction -------------------------------------------------------

    /// Mounts a new, empty file system of `kind` (Tmpfs, Devtmpfs or Proc; EINVAL otherwise)
    /// on the absolute `path`, whose parent must exist. Whatever was at `path` is hidden
    /// (dropped from the tree). Returns the new file system's root directory.
    pub fn mount(&self, path: &[u8], kind: FsKind, mode: u32) -> Result<NodeRef> {
        if !matches!(kind, FsKind::Tmpfs | FsKind::Devtmpfs | FsKind::Proc) {
            return Err(Errno::EINVAL);
        }
        let ctx = KernelContext;
        let p = self.walker(&ctx).parent(&self.root, path)?;
        let name = match &p.last {
            Last::Name(n) => n.clone(),
            _ => return Err(Errno::EBUSY),
        };
        let sb = new_superblock(
            &self.platform,
            &self.next_anon_minor,
            &self.next_mnt_id,
            kind,
            false,
        );
        let root = Node::new(
            &sb,
            node_kind(NewNode::Dir, &self.platform),
            mode,
            0,
            0,
            self.platform.now(),
        );
        let _tree = self.tree_lock.lock();
        self.replace_entry(&p.dir, &name, root.clone());
        Ok(root)
    }

    /// Puts `node` at `name` in `dir`, dropping what was there. Tree lock held.
    fn replace_entry(&self, dir: &NodeRef, name: &[u8], node: NodeRef) {
        let mut d = dir.dir().expect("a directory").lock();
        if let Some(old) = d.remove(name) {
            if let Some(od) = old.dir() {
                od.lock().removed = true;
            }
        }
        d.insert(dir, name, node);
        drop(d);
        dir.touch_mtime();
    }

    /// Creates a node as the kernel (no permission or read-only checks): for `/dev` entries,
    /// `/proc` files, and the like. EEXIST if `name` is taken, ENOTDIR if `dir` is not a
    /// directory, EINVAL for a bad name.
    pub fn create_node(
        &self,
        dir: &NodeRef,
        name: &[u8],
        spec: NewNode<'_>,
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> Result<NodeRef> {
        check_name(name)?;
        let d = dir.dir().ok_or(Errno::ENOTDIR)?;
        let node = Node::new(
            &dir.sb,
            node_kind(spec, &self.platform),
            perm,
            uid,
            gid,
            self.platform.now(),
        );
        let _tree = self.tree_lock.lock();
        let mut d = d.lock();
        if d.get(name).is_some() {
            return Err(Errno::EEXIST);
        }
        d.insert(dir, name, node.clone());
        drop(d);
        dir.touch_mtime();
        Ok(node)
    }

    /// Kernel-side replace-or-create used when unpacking the initramfs. Tree lock not held.
    pub(crate) fn put_node(&self, dir: &NodeRef, name: &[u8], node: NodeRef) {
        let _tree = self.tree_lock.lock();
        self.replace_entry(dir, name, node);
    }

    /// A node for `dir`'s file system (not yet linked).
    pub(crate) fn make_node(
        &self,
        dir: &NodeRef,
        spec: NewNode<'_>,
        perm: u32,
        uid: u32,
        gid: u32,
        time: ktls_abi::time::Timespec,
    ) -> NodeRef {
        Node::new(
            &dir.sb,
            node_kind(spec, &self.platform),
            perm,
            uid,
            gid,
            time,
        )
    }

    /// Removes `name` from `dir` as the kernel (any type, directories with their content).
    /// ENOENT if absent.
    pub fn remove_node(&self, dir: &NodeRef, name: &[u8]) -> Result<()> {
        let _tree = self.tree_lock.lock();
        let mut d = dir.dir().ok_or(Errno::ENOTDIR)?.lock();
        let node = d.remove(name).ok_or(Errno::ENOENT)?;
        drop(d);
        Self::unlinked(&node);
        dir.touch_mtime();
        Ok(())
    }

    /// Bookkeeping for a node that lost a name.
    fn unlinked(node: &NodeRef) {
        match node.dir() {
            Some(d) => d.lock().removed = true,
            None => {
                let now = node.now();
                let mut m = node.meta.lock();
                m.nlink = m.nlink.saturating_sub(1);
                m.ctime = now;
            }
        }
    }

    /// Registers the driver for character device number `rdev` (replacing any earlier one).
    pub fn register_char_device(&self, rdev: u64, driver: Arc<dyn CharDevice>) {
        self.drivers.lock().insert(rdev, driver);
    }

    /// The driver registered for `rdev`.
    pub fn char_device(&self, rdev: u64) -> Option<Arc<dyn CharDevice>> {
        self.drivers.lock().get(&rdev).cloned()
    }

    /// Mounts the device file system on `/dev` and adds `null`, `zero`, `full`, `random` and
    /// `urandom` (mode 0666) with their drivers. The kernel then adds `console`, `tty`, ...
    /// with [`Vfs::add_char_device`]. Returns `/dev`.
    pub fn install_dev(&self) -> Result<NodeRef> {
        let dev = self.mount(b"/dev", FsKind::Devtmpfs, 0o755)?;
        let random: Arc<dyn CharDevice> = Arc::new(RandomDevice::new(self.platform.clone()));
        let devices: [(&[u8], u64, Arc<dyn CharDevice>); 5] = [
            (b"null", DEV_NULL, Arc::new(NullDevice)),
            (b"zero", DEV_ZERO, Arc::new(ZeroDevice)),
            (b"full", DEV_FULL, Arc::new(FullDevice)),
            (b"random", DEV_RANDOM, random.clone()),
            (b"urandom", DEV_URANDOM, random),
        ];
        for (name, rdev, driver) in devices {
            self.add_char_device(&dev, name, rdev, 0o666, driver)?;
        }
        Ok(dev)
    }

    /// Registers `driver` for `rdev` and makes the node `dir/name` for it.
    pub fn add_char_device(
        &self,
        dir: &NodeRef,
        name: &[u8],
        rdev: u64,
        perm: u32,
        driver: Arc<dyn CharDevice>,
    ) -> Result<NodeRef> {
        self.register_char_device(rdev, driver);
        self.create_node(dir, name, NewNode::CharDev(rdev), perm, 0, 0)
    }

    /// Mounts the proc file system on `/proc` with `/proc/self/exe`. Returns `/proc`; the
    /// kernel adds generated files with [`Vfs::create_node`] and [`NewNode::Generated`].
    pub fn install_proc(&self) -> Result<NodeRef> {
        let proc = self.mount(b"/proc", FsKind::Proc, 0o555)?;
        let this = self.create_node(&proc, b"self", NewNode::Dir, 0o555, 0, 0)?;
        self.create_node(
            &this,
            b"exe",
            NewNode::DynSymlink(Arc::new(ExeLink)),
            0o777,
            0,
            0,
        )?;
        Ok(proc)
    }

    // ---- Lookup ---------------------------------------------------------------------------

    /// Resolves `path` (relative ones from `start`: the cwd or a dirfd's node). With
    /// `follow` false a final symlink is returned itself (lstat, O_NOFOLLOW,
    /// AT_SYMLINK_NOFOLLOW). Empty paths are ENOENT: AT_EMPTY_PATH is the caller's.
    pub fn lookup(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        follow: bool,
    ) -> Result<NodeRef> {
        Ok(self.walker(ctx).resolve(start, path, follow)?.node)
    }

    /// chdir(2)'s lookup: the directory at `path`; ENOTDIR if it is not one, EACCES without
    /// search permission.
    pub fn lookup_dir(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
    ) -> Result<NodeRef> {
        let node = self.lookup(ctx, start, path, true)?;
        if !node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        node.permission(ctx, X_OK)?;
        Ok(node)
    }

    /// The absolute path of a directory (getcwd). ENOENT if it has been removed; ENOTDIR for
    /// a non-directory.
    pub fn path_of(&self, dir: &NodeRef) -> Result<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = dir.clone();
        loop {
            let d = cur.dir().ok_or(Errno::ENOTDIR)?.lock();
            if d.removed {
                return Err(Errno::ENOENT);
            }
            let parent = match &d.parent {
                None => break,
                Some(w) => w.upgrade().ok_or(Errno::ENOENT)?,
            };
            names.push(d.name.to_vec());
            drop(d);
            cur = parent;
        }
        let mut out = Vec::new();
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }

    /// The canonical absolute path of what `path` names, following every symlink (realpath;
    /// what `/proc/self/exe` should say for an executable).
    pub fn realpath(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
    ) -> Result<Vec<u8>> {
        let found = self.walker(ctx).resolve(start, path, true)?;
        match found.parent {
            Some((dir, name)) if !found.node.is_dir() => {
                let mut p = self.path_of(&dir)?;
                if p != b"/" {
                    p.push(b'/');
                }
                p.extend_from_slice(&name);
                Ok(p)
            }
            _ => self.path_of(&found.node),
        }
    }

    /// readlink(2) by path: EINVAL if `path` does not name a symlink.
    pub fn readlink(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
    ) -> Result<Vec<u8>> {
        self.lookup(ctx, start, path, false)?.readlink(ctx)
    }

    /// faccessat(2): F_OK or R_OK|W_OK|X_OK on `path`.
    pub fn access(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        mode: u64,
        follow: bool,
    ) -> Result<()> {
        if mode & !(R_OK | W_OK | X_OK) != 0 {
            return Err(Errno::EINVAL);
        }
        self.lookup(ctx, start, path, follow)?.access(ctx, mode)
    }

    // ---- Namespace operations ---------------------------------------------------------------

    /// The common path of mknod, symlink and link's new name: EEXIST when taken, ENOENT for a
    /// trailing slash, EROFS, ENOENT/EACCES per may_create, EPERM where user space may not
    /// create nodes (`/proc`). Tree lock held by the caller.
    fn check_create(&self, ctx: &dyn ProcessContext, p: &ParentPath, name: &[u8]) -> Result<()> {
        if lookup_child(&p.dir, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        if p.trailing_slash {
            return Err(Errno::ENOENT);
        }
        want_write(&p.dir)?;
        may_create(ctx, &p.dir)?;
        if !p.dir.sb.user_writable() {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    fn link_new(&self, dir: &NodeRef, name: &[u8], node: NodeRef) {
        dir.dir()
            .expect("a directory")
            .lock()
            .insert(dir, name, node);
        dir.touch_mtime();
    }

    /// mkdir(2). `mode` is masked with 01777 and the umask.
    pub fn mkdir(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        mode: u32,
    ) -> Result<NodeRef> {
        let p = self.walker(ctx).parent(start, path)?;
        let name = create_name(&p)?;
        let _tree = self.tree_lock.lock();
        if lookup_child(&p.dir, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        want_write(&p.dir)?;
        may_create(ctx, &p.dir)?;
        if !p.dir.sb.user_writable() {
            return Err(Errno::EPERM);
        }
        let (uid, gid, sgid) = new_owner(ctx, &p.dir);
        let perm = (mode & 0o1777 & !ctx.umask()) | if sgid { S_ISGID } else { 0 };
        let node = self.make_node(&p.dir, NewNode::Dir, perm, uid, gid, self.platform.now());
        self.link_new(&p.dir, name, node.clone());
        Ok(node)
    }

    /// mknod(2): regular files (type 0 or S_IFREG), FIFOs, sockets, and for root character
    /// and block devices (EPERM otherwise). EPERM for S_IFDIR, EINVAL for other types.
    pub fn mknod(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        mode: u32,
        rdev: u64,
    ) -> Result<NodeRef> {
        let spec = match mode & S_IFMT {
            0 | S_IFREG => NewNode::File(Vec::new()),
            S_IFIFO => NewNode::Fifo,
            S_IFSOCK => NewNode::Socket,
            S_IFCHR => NewNode::CharDev(rdev),
            S_IFBLK => NewNode::BlockDev(rdev),
            S_IFDIR => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        };
        let p = self.walker(ctx).parent(start, path)?;
        let name = create_name(&p)?;
        let _tree = self.tree_lock.lock();
        self.check_create(ctx, &p, name)?;
        if matches!(mode & S_IFMT, S_IFCHR | S_IFBLK) && ctx.fsuid() != 0 {
            return Err(Errno::EPERM);
        }
        let (uid, gid, _) = new_owner(ctx, &p.dir);
        let perm = mode & 0o7777 & !ctx.umask();
        let node = self.make_node(&p.dir, spec, perm, uid, gid, self.platform.now());
        self.link_new(&p.dir, name, node.clone());
        Ok(node)
    }

    /// symlink(2): makes `path` a symlink to `target`. ENOENT for an empty target,
    /// ENAMETOOLONG for one of PATH_MAX bytes or more.
    pub fn symlink(
        &self,
        ctx: &dyn ProcessContext,
        target: &[u8],
        start: &NodeRef,
        path: &[u8],
    ) -> Result<NodeRef> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let p = self.walker(ctx).parent(start, path)?;
        let name = create_name(&p)?;
        let _tree = self.tree_lock.lock();
        self.check_create(ctx, &p, name)?;
        let (uid, gid, _) = new_owner(ctx, &p.dir);
        let node = self.make_node(
            &p.dir,
            NewNode::Symlink(target),
            0o777,
            uid,
            gid,
            self.platform.now(),
        );
        self.link_new(&p.dir, name, node.clone());
        Ok(node)
    }

    /// link(2)/linkat(2): a new name `new_path` for what `old_path` names (`follow`:
    /// AT_SYMLINK_FOLLOW). EXDEV across file systems, EPERM for a directory, ENOENT for a
    /// file with no links left (except an O_TMPFILE file opened without O_EXCL).
    pub fn link(
        &self,
        ctx: &dyn ProcessContext,
        old_start: &NodeRef,
        old_path: &[u8],
        follow: bool,
        new_start: &NodeRef,
        new_path: &[u8],
    ) -> Result<()> {
        let old = self.lookup(ctx, old_start, old_path, follow)?;
        self.link_node(ctx, &old, new_start, new_path)
    }

    /// linkat(2) with AT_EMPTY_PATH: a new name for `old` itself.
    pub fn link_node(
        &self,
        ctx: &dyn ProcessContext,
        old: &NodeRef,
        new_start: &NodeRef,
        new_path: &[u8],
    ) -> Result<()> {
        let p = self.walker(ctx).parent(new_start, new_path)?;
        let name = create_name(&p)?;
        let _tree = self.tree_lock.lock();
        if lookup_child(&p.dir, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        if p.trailing_slash {
            return Err(Errno::ENOENT);
        }
        want_write(&p.dir)?;
        if !Arc::ptr_eq(&old.sb, &p.dir.sb) {
            return Err(Errno::EXDEV);
        }
        may_create(ctx, &p.dir)?;
        if !p.dir.sb.user_writable() || old.is_dir() {
            return Err(Errno::EPERM);
        }
        {
            let now = self.platform.now();
            let mut m = old.meta.lock();
            if m.nlink == 0 && !m.linkable {
                return Err(Errno::ENOENT);
            }
            m.nlink += 1;
            m.linkable = false;
            m.ctime = now;
        }
        self.link_new(&p.dir, name, old.clone());
        Ok(())
    }

    /// unlink(2): removes a non-directory name. EISDIR for a directory (and for `.`, `..`),
    /// EROFS, ENOENT, EACCES, EPERM in a sticky directory; with a trailing slash, ENOTDIR
    /// for a non-directory.
    pub fn unlink(&self, ctx: &dyn ProcessContext, start: &NodeRef, path: &[u8]) -> Result<()> {
        let p = self.walker(ctx).parent(start, path)?;
        let name = match &p.last {
            Last::Name(n) => n,
            _ => return Err(Errno::EISDIR),
        };
        want_write(&p.dir)?;
        let _tree = self.tree_lock.lock();
        let victim = lookup_child(&p.dir, name)?;
        if p.trailing_slash {
            return Err(if victim.is_dir() {
                Errno::EISDIR
            } else {
                Errno::ENOTDIR
            });
        }
        may_delete(ctx, &p.dir, &victim, false)?;
        if !p.dir.sb.user_writable() {
            return Err(Errno::EPERM);
        }
        p.dir.dir().expect("a directory").lock().remove(name);
        Self::unlinked(&victim);
        p.dir.touch_mtime();
        Ok(())
    }

    /// rmdir(2): removes an empty directory. ENOTEMPTY if it has entries (and for `..`),
    /// EINVAL for `.`, EBUSY for `/` and mount points, ENOTDIR for a non-directory.
    pub fn rmdir(&self, ctx: &dyn ProcessContext, start: &NodeRef, path: &[u8]) -> Result<()> {
        let p = self.walker(ctx).parent(start, path)?;
        let name = match &p.last {
            Last::Name(n) => n,
            Last::Dot => return Err(Errno::EINVAL),
            Last::DotDot => return Err(Errno::ENOTEMPTY),
            Last::Root => return Err(Errno::EBUSY),
        };
        want_write(&p.dir)?;
        let _tree = self.tree_lock.lock();
        let victim = lookup_child(&p.dir, name)?;
        may_delete(ctx, &p.dir, &victim, true)?;
        if !p.dir.sb.user_writable() {
            return Err(Errno::EPERM);
        }
        let mut parent = p.dir.dir().expect("a directory").lock();
        let mut vd = victim.dir().expect("a directory").lock();
        if !vd.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        vd.removed = true;
        drop(vd);
        parent.remove(name);
        drop(parent);
        victim.touch_ctime();
        p.dir.touch_mtime();
        Ok(())
    }

    /// Whether `a` is `b` or one of its ancestors. Tree lock held.
    fn is_ancestor(a: &NodeRef, b: &NodeRef) -> bool {
        let mut cur = b.clone();
        loop {
            if Arc::ptr_eq(a, &cur) {
                return true;
            }
            let parent = match cur.dir().map(|d| d.lock().parent.clone()) {
                Some(Some(w)) => w.upgrade(),
                _ => None,
            };
            match parent {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    /// rename(2)/renameat2(2) with Linux's rules: a directory replaces only an empty
    /// directory (ENOTEMPTY, ENOTDIR), a non-directory only a non-directory (EISDIR); EXDEV
    /// across file systems; EINVAL for moving a directory under itself; EBUSY for `.`, `..`
    /// and mount points; renaming onto another name of the same file does nothing.
    /// `flags`: RENAME_NOREPLACE (EEXIST), RENAME_EXCHANGE (swap; ENOENT if the target is
    /// missing); RENAME_WHITEOUT is not supported (EINVAL).
    pub fn rename(
        &self,
        ctx: &dyn ProcessContext,
        old_start: &NodeRef,
        old_path: &[u8],
        new_start: &NodeRef,
        new_path: &[u8],
        flags: u64,
    ) -> Result<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0 && flags & RENAME_EXCHANGE != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & RENAME_WHITEOUT != 0 {
            return Err(Errno::EINVAL);
        }
        let exchange = flags & RENAME_EXCHANGE != 0;
        let noreplace = flags & RENAME_NOREPLACE != 0;
        let op = self.walker(ctx).parent(old_start, old_path)?;
        let np = self.walker(ctx).parent(new_start, new_path)?;
        if !Arc::ptr_eq(&op.dir.sb, &np.dir.sb) {
            return Err(Errno::EXDEV);
        }
        let old_name = match &op.last {
            Last::Name(n) => n,
            _ => return Err(Errno::EBUSY),
        };
        let new_name = match &np.last {
            Last::Name(n) => n,
            _ if noreplace => return Err(Errno::EEXIST),
            _ => return Err(Errno::EBUSY),
        };
        want_write(&op.dir)?;
        let _tree = self.tree_lock.lock();
        let old = lookup_child(&op.dir, old_name)?;
        let new = match lookup_child(&np.dir, new_name) {
            Ok(n) => Some(n),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        if noreplace && new.is_some() {
            return Err(Errno::EEXIST);
        }
        if exchange {
            match &new {
                None => return Err(Errno::ENOENT),
                Some(n) if !n.is_dir() && np.trailing_slash => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        if !old.is_dir() && (op.trailing_slash || (!exchange && np.trailing_slash)) {
            return Err(Errno::ENOTDIR);
        }
        // Source must not be an ancestor of the target, nor the target of the source.
        if Self::is_ancestor(&old, &np.dir) {
            return Err(Errno::EINVAL);
        }
        if let Some(n) = &new {
            if Self::is_ancestor(n, &op.dir) {
                return Err(if exchange {
                    Errno::EINVAL
                } else {
                    Errno::ENOTEMPTY
                });
            }
            if Arc::ptr_eq(n, &old) {
                return Ok(());
            }
        }
        may_delete(ctx, &op.dir, &old, old.is_dir())?;
        match &new {
            None => may_create(ctx, &np.dir)?,
            Some(n) if exchange => may_delete(ctx, &np.dir, n, n.is_dir())?,
            Some(n) => may_delete(ctx, &np.dir, n, old.is_dir())?,
        }
        if !op.dir.sb.user_writable() {
            return Err(Errno::EPERM);
        }
        let moves_dir = !Arc::ptr_eq(&op.dir, &np.dir);
        if moves_dir {
            // A moved directory's `..` changes: that needs write permission on it.
            if old.is_dir() {
                old.permission(ctx, W_OK)?;
            }
            if let Some(n) = new.as_ref().filter(|n| exchange && n.is_dir()) {
                n.permission(ctx, W_OK)?;
            }
        }
        if let (false, Some(n)) = (exchange, &new) {
            if let Some(d) = n.dir() {
                if !d.lock().is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
            }
        }

        // Both directories stay locked while entries move, so a concurrent lookup sees the
        // rename happen at once. Holding two is safe under the tree lock.
        let od = op.dir.dir().expect("a directory");
        let nd = np.dir.dir().expect("a directory");
        let mut old_dir = od.lock();
        let mut new_dir = if moves_dir { Some(nd.lock()) } else { None };
        old_dir.remove(old_name);
        let target = match new_dir.as_mut() {
            Some(g) => g,
            None => &mut old_dir,
        };
        let replaced = target.remove(new_name);
        target.insert(&np.dir, new_name, old.clone());
        if exchange {
            let other = replaced.clone().expect("exchange target");
            old_dir.insert(&op.dir, old_name, other);
        }
        drop(new_dir);
        drop(old_dir);
        if let (false, Some(r)) = (exchange, replaced) {
            Self::unlinked(&r);
        }
        old.touch_ctime();
        if let (true, Some(n)) = (exchange, &new) {
            n.touch_ctime();
        }
        op.dir.touch_mtime();
        if moves_dir {
            np.dir.touch_mtime();
        }
        Ok(())
    }

    /// truncate(2) by path.
    pub fn truncate(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        len: i64,
    ) -> Result<()> {
        self.lookup(ctx, start, path, true)?.truncate(ctx, len)
    }

    // ---- Opening --------------------------------------------------------------------------

    /// openat(2) minus the fd number: resolves `path` from `start` and opens it with Linux's
    /// rules for O_CREAT, O_EXCL, O_TRUNC, O_DIRECTORY, O_NOFOLLOW, O_PATH and O_TMPFILE.
    /// `mode` is used when a file is created (masked with the umask). The kernel installs the
    /// result in its [`crate::FdTable`] with FD_CLOEXEC if `flags` has O_CLOEXEC, and for a
    /// FIFO waits while [`OpenFile::open_pending`].
    pub fn open(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        flags: u64,
        mode: u32,
    ) -> Result<Arc<OpenFile>> {
        // O_TMPFILE is __O_TMPFILE | O_DIRECTORY; the bit alone, or with O_CREAT, is EINVAL.
        if flags & (O_TMPFILE & !O_DIRECTORY) != 0 {
            if flags & (O_TMPFILE | O_CREAT) != O_TMPFILE {
                return Err(Errno::EINVAL);
            }
            return self.open_tmpfile(ctx, start, path, flags, mode);
        }
        if flags & O_PATH != 0 {
            let flags = flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW);
            let node = self.lookup(ctx, start, path, flags & O_NOFOLLOW == 0)?;
            if flags & O_DIRECTORY != 0 && !node.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            return Ok(OpenFile::new(node, flags, FileKind::Path));
        }
        if flags & O_CREAT != 0 && flags & O_DIRECTORY != 0 {
            return Err(Errno::EINVAL);
        }
        let (node, created) = if flags & O_CREAT != 0 {
            self.open_create(ctx, start, path, flags, mode)?
        } else {
            (
                self.lookup(ctx, start, path, flags & O_NOFOLLOW == 0)?,
                false,
            )
        };
        if flags & O_CREAT != 0 && node.is_dir() {
            return Err(Errno::EISDIR);
        }
        if flags & O_DIRECTORY != 0 && !node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let acc = flags & O_ACCMODE;
        let mut want = match acc {
            O_RDONLY => R_OK,
            O_WRONLY => W_OK,
            _ => R_OK | W_OK,
        };
        let mut truncate = false;
        if created {
            want = 0;
        } else if flags & O_TRUNC != 0 {
            want |= W_OK;
            truncate = node.is_regular();
        }
        // may_open
        match node.file_type() {
            ktls_abi::fs::S_IFLNK => return Err(Errno::ELOOP),
            S_IFDIR if want & W_OK != 0 => return Err(Errno::EISDIR),
            _ => {}
        }
        node.permission(ctx, want)?;
        if flags & O_NOATIME != 0 && !node.owner_or_root(ctx) {
            return Err(Errno::EPERM);
        }
        if flags & O_DIRECT != 0 && !direct_io_supported(&node) {
            return Err(Errno::EINVAL);
        }
        let stored = (flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE;
        let readable = matches!(acc, O_RDONLY | O_RDWR);
        let writable = matches!(acc, O_WRONLY | O_RDWR);
        let kind = match &node.kind {
            Kind::Regular(_) => {
                if truncate {
                    node.set_len(0)?;
                }
                FileKind::Regular
            }
            Kind::Dir(_) => FileKind::Directory,
            Kind::CharDev(rdev) => {
                let driver = self.char_device(*rdev).ok_or(Errno::ENXIO)?;
                driver.open(flags)?;
                FileKind::Device(driver)
            }
            Kind::Fifo(pipe) => FileKind::Pipe(Pipe::open_fifo(
                pipe,
                readable,
                writable,
                flags & O_NONBLOCK != 0,
            )?),
            Kind::Generated(g) => {
                if writable {
                    return Err(Errno::EACCES);
                }
                FileKind::Generated(g.generate(ctx)?.into_boxed_slice())
            }
            Kind::BlockDev(_) | Kind::Socket | Kind::Anon => return Err(Errno::ENXIO),
            Kind::Symlink(_) | Kind::DynSymlink(_) => return Err(Errno::ELOOP),
        };
        Ok(OpenFile::new(node, stored, kind))
    }

    /// The O_CREAT lookup: finds or creates the last component. Follows a final symlink
    /// (unless O_NOFOLLOW or O_EXCL), creating its target if missing, as Linux does.
    fn open_create(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        flags: u64,
        mode: u32,
    ) -> Result<(NodeRef, bool)> {
        let mut walker = self.walker(ctx);
        let mut start = start.clone();
        let mut path = path.to_vec();
        loop {
            let p = walker.parent(&start, &path)?;
            let name = match &p.last {
                Last::Name(n) => n.clone(),
                _ => {
                    let node = walker.finish(p, true)?.node;
                    return Ok((node, false));
                }
            };
            if p.trailing_slash {
                return Err(Errno::EISDIR);
            }
            match lookup_child(&p.dir, &name) {
                Ok(node) => {
                    if flags & O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    if node.is_symlink() && flags & O_NOFOLLOW == 0 {
                        walker.count_link()?;
                        path = node.readlink(ctx)?;
                        start = p.dir;
                        continue;
                    }
                    return Ok((node, false));
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(e),
            }
            let _tree = self.tree_lock.lock();
            if lookup_child(&p.dir, &name).is_ok() {
                // Created meanwhile: look again.
                continue;
            }
            want_write(&p.dir)?;
            may_create(ctx, &p.dir)?;
            if !p.dir.sb.user_writable() {
                return Err(Errno::EACCES);
            }
            let (uid, gid, _) = new_owner(ctx, &p.dir);
            let perm = mode & 0o7777 & !ctx.umask();
            let node = self.make_node(
                &p.dir,
                NewNode::File(Vec::new()),
                perm,
                uid,
                gid,
                self.platform.now(),
            );
            self.link_new(&p.dir, &name, node.clone());
            return Ok((node, true));
        }
    }

    /// O_TMPFILE: an unnamed regular file in the directory `path`. EINVAL without write
    /// access, EOPNOTSUPP where unsupported (`/proc`), EROFS on the initramfs.
    fn open_tmpfile(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
        flags: u64,
        mode: u32,
    ) -> Result<Arc<OpenFile>> {
        let acc = flags & O_ACCMODE;
        if acc != O_WRONLY && acc != O_RDWR {
            return Err(Errno::EINVAL);
        }
        let dir = self.lookup(ctx, start, path, flags & O_NOFOLLOW == 0)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        want_write(&dir)?;
        if !dir.sb.user_writable() {
            return Err(Errno::EOPNOTSUPP);
        }
        may_create(ctx, &dir)?;
        let (uid, gid, _) = new_owner(ctx, &dir);
        let perm = mode & 0o7777 & !ctx.umask();
        let node = self.make_node(
            &dir,
            NewNode::File(Vec::new()),
            perm,
            uid,
            gid,
            self.platform.now(),
        );
        {
            let mut m = node.meta.lock();
            m.nlink = 0;
            m.linkable = flags & O_EXCL == 0;
        }
        let stored = (flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE;
        Ok(OpenFile::new(node, stored, FileKind::Regular))
    }

    /// execve(2)'s open: a regular file the caller may execute (EACCES otherwise, including
    /// for directories), opened read-only whatever its read permission.
    pub fn open_exec(
        &self,
        ctx: &dyn ProcessContext,
        start: &NodeRef,
        path: &[u8],
    ) -> Result<Arc<OpenFile>> {
        let node = self.lookup(ctx, start, path, true)?;
        if !node.is_regular() {
            return Err(Errno::EACCES);
        }
        node.permission(ctx, X_OK)?;
        Ok(OpenFile::new(
            node,
            O_RDONLY | O_LARGEFILE,
            FileKind::Regular,
        ))
    }

    /// An anonymous file (Linux's anon_inode_getfile: a pidfd, ...): an open file of
    /// `driver` on a node in no directory, mode 0600 with no file type, owned by the caller.
    /// `flags` are its access mode and status flags.
    pub fn anon_file(
        &self,
        ctx: &dyn ProcessContext,
        driver: Arc<dyn CharDevice>,
        flags: u64,
    ) -> Arc<OpenFile> {
        let node = Node::new(
            &self.pipefs,
            Kind::Anon,
            0o600,
            ctx.fsuid(),
            ctx.fsgid(),
            self.platform.now(),
        );
        OpenFile::new(node, flags, FileKind::Device(driver))
    }

    /// pipe2(2): the read end and the write end of a new pipe. `flags` may have O_NONBLOCK
    /// (set on both ends) and O_CLOEXEC (the kernel's, for the descriptors); anything else,
    /// including O_DIRECT (packet mode, not implemented), is EINVAL.
    pub fn pipe(
        &self,
        ctx: &dyn ProcessContext,
        flags: u64,
    ) -> Result<(Arc<OpenFile>, Arc<OpenFile>)> {
        if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
            return Err(Errno::EINVAL);
        }
        let pipe = Pipe::new(self.platform.clone());
        let node = Node::new(
            &self.pipefs,
            Kind::Fifo(pipe.clone()),
            0o600,
            ctx.fsuid(),
            ctx.fsgid(),
            self.platform.now(),
        );
        let (r, w) = Pipe::anonymous(&pipe);
        let nonblock = flags & O_NONBLOCK;
        Ok((
            OpenFile::new(node.clone(), O_RDONLY | nonblock, FileKind::Pipe(r)),
            OpenFile::new(node, O_WRONLY | nonblock, FileKind::Pipe(w)),
        ))
    }
}
