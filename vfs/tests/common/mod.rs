//! Shared helpers for the VFS tests: a fake platform, process contexts, a sample initramfs.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ktls_abi::fs::{S_IFDIR, S_IFLNK, S_IFREG};
use ktls_abi::time::Timespec;
use ktls_vfs::{
    Errno, FsKind, InitramfsEntry, NodeRef, OpenFile, Platform, ProcessContext, Result, Vfs,
    WaitKey,
};

/// A clock that the test advances, a deterministic byte stream, and a log of wake-ups.
pub struct TestPlatform {
    pub secs: AtomicI64,
    counter: AtomicU64,
    pub wakes: Mutex<Vec<WaitKey>>,
    /// The largest allocation `can_allocate` allows (usize::MAX: any).
    pub mem_limit: AtomicUsize,
}

impl TestPlatform {
    pub fn new() -> Arc<Self> {
        Arc::new(TestPlatform {
            secs: AtomicI64::new(1_000),
            counter: AtomicU64::new(0),
            wakes: Mutex::new(Vec::new()),
            mem_limit: AtomicUsize::new(usize::MAX),
        })
    }

    pub fn set_time(&self, secs: i64) {
        self.secs.store(secs, Ordering::SeqCst);
    }

    pub fn wake_count(&self, key: WaitKey) -> usize {
        self.wakes
            .lock()
            .unwrap()
            .iter()
            .filter(|&&k| k == key)
            .count()
    }
}

impl Platform for TestPlatform {
    fn now(&self) -> Timespec {
        Timespec {
            tv_sec: self.secs.load(Ordering::SeqCst),
            tv_nsec: 500,
        }
    }
    fn fill_random(&self, buf: &mut [u8]) {
        for b in buf {
            *b = (self.counter.fetch_add(1, Ordering::SeqCst) as u8).wrapping_mul(37) ^ 0x5a;
        }
    }
    fn wake(&self, key: WaitKey) {
        self.wakes.lock().unwrap().push(key);
    }
    fn can_allocate(&self, bytes: usize) -> bool {
        bytes <= self.mem_limit.load(Ordering::SeqCst)
    }
}

/// A process: credentials, umask, executable.
#[derive(Clone)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    pub exe: Option<Vec<u8>>,
}

impl ProcessContext for Ctx {
    fn fsuid(&self) -> u32 {
        self.uid
    }
    fn fsgid(&self) -> u32 {
        self.gid
    }
    fn in_group(&self, gid: u32) -> bool {
        gid == self.gid || self.groups.contains(&gid)
    }
    fn umask(&self) -> u32 {
        self.umask
    }
    fn pid(&self) -> u32 {
        42
    }
    fn exe_path(&self) -> Result<Vec<u8>> {
        self.exe.clone().ok_or(Errno::ENOENT)
    }
}

pub fn root() -> Ctx {
    Ctx {
        uid: 0,
        gid: 0,
        groups: vec![],
        umask: 0o022,
        exe: Some(b"/bin/hello".to_vec()),
    }
}

pub fn user(uid: u32, gid: u32) -> Ctx {
    Ctx {
        uid,
        gid,
        groups: vec![],
        umask: 0o022,
        exe: None,
    }
}

pub fn entry(name: &'static str, mode: u32, data: &'static [u8]) -> InitramfsEntry<'static> {
    InitramfsEntry {
        name: name.as_bytes(),
        mode,
        uid: 0,
        gid: 0,
        mtime: 123,
        data,
        rdev_major: 0,
        rdev_minor: 0,
        ino: 0,
        nlink: 1,
        dev_major: 0,
        dev_minor: 0,
    }
}

pub static HELLO: &[u8] = b"hello world\n";

/// The sample initramfs.
pub fn sample_entries() -> Vec<InitramfsEntry<'static>> {
    let mut home = entry("home/user", S_IFDIR | 0o755, b"");
    home.uid = 1000;
    home.gid = 1000;
    let mut private = entry("home/user/private", S_IFDIR | 0o700, b"");
    private.uid = 1000;
    private.gid = 1000;
    vec![
        entry(".", S_IFDIR | 0o755, b""),
        entry("bin", S_IFDIR | 0o755, b""),
        entry("bin/hello", S_IFREG | 0o755, HELLO),
        entry(
            "./etc/passwd",
            S_IFREG | 0o644,
            b"root:x:0:0::/root:/bin/sh\n",
        ),
        entry("etc/secret", S_IFREG | 0o600, b"s3cret"),
        entry("etc/noexec", S_IFREG | 0o644, b"#!/bin/sh\n"),
        entry("usr/lib/libc.so", S_IFREG | 0o755, b"\x7fELF"),
        home,
        private,
        entry("link_to_hello", S_IFLNK | 0o777, b"/bin/hello"),
        entry("bin/rel_link", S_IFLNK | 0o777, b"hello"),
        entry("usrlink", S_IFLNK | 0o777, b"usr"),
        entry("dangling", S_IFLNK | 0o777, b"/nonexistent"),
        entry("loop1", S_IFLNK | 0o777, b"/loop2"),
        entry("loop2", S_IFLNK | 0o777, b"/loop1"),
        entry("dotdot_link", S_IFLNK | 0o777, b"usr/lib/.."),
        entry("tmp", S_IFDIR | 0o755, b""),
    ]
}

pub struct Env {
    pub platform: Arc<TestPlatform>,
    pub vfs: Vfs,
    pub tmp: NodeRef,
}

impl Env {
    pub fn root(&self) -> &NodeRef {
        self.vfs.root()
    }

    pub fn lookup(&self, path: &str) -> Result<NodeRef> {
        self.vfs.lookup(&root(), self.root(), path.as_bytes(), true)
    }

    pub fn open(&self, path: &str, flags: u64) -> Result<Arc<OpenFile>> {
        self.vfs
            .open(&root(), self.root(), path.as_bytes(), flags, 0o666)
    }

    pub fn open_as(&self, ctx: &Ctx, path: &str, flags: u64) -> Result<Arc<OpenFile>> {
        self.vfs
            .open(ctx, self.root(), path.as_bytes(), flags, 0o666)
    }

    /// Creates a tmpfs file with `data`.
    pub fn write_file(&self, path: &str, data: &[u8]) {
        use ktls_abi::fs::{O_CREAT, O_TRUNC, O_WRONLY};
        let f = self.open(path, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
        assert_eq!(f.write(data).unwrap(), data.len());
    }

    pub fn read_file(&self, path: &str) -> Vec<u8> {
        read_all(&self.open(path, ktls_abi::fs::O_RDONLY).unwrap())
    }
}

/// The sample tree with /tmp (tmpfs, 1777), /dev and /proc.
pub fn env() -> Env {
    let platform = TestPlatform::new();
    let vfs = Vfs::new(platform.clone());
    vfs.populate(sample_entries()).unwrap();
    let tmp = vfs.mount(b"/tmp", FsKind::Tmpfs, 0o1777).unwrap();
    vfs.install_dev().unwrap();
    vfs.install_proc().unwrap();
    Env { platform, vfs, tmp }
}

pub fn read_all(f: &OpenFile) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// One parsed linux_dirent64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    pub ino: u64,
    pub off: i64,
    pub reclen: usize,
    pub dtype: u8,
    pub name: Vec<u8>,
}

pub fn parse_dirents(mut buf: &[u8]) -> Vec<Dirent> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let ino = u64::from_ne_bytes(buf[0..8].try_into().unwrap());
        let off = i64::from_ne_bytes(buf[8..16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[16..18].try_into().unwrap()) as usize;
        let dtype = buf[18];
        let name_area = &buf[19..reclen];
        let nul = name_area
            .iter()
            .position(|&b| b == 0)
            .expect("NUL-terminated name");
        assert_eq!(reclen % 8, 0, "records are 8-byte aligned");
        out.push(Dirent {
            ino,
            off,
            reclen,
            dtype,
            name: name_area[..nul].to_vec(),
        });
        buf = &buf[reclen..];
    }
    out
}

/// Reads a whole directory with a buffer of `bufsize` bytes per call.
pub fn list_dir(f: &OpenFile, bufsize: usize) -> Vec<Dirent> {
    let mut buf = vec![0u8; bufsize];
    let mut all = Vec::new();
    loop {
        let n = f.getdents64(&mut buf).unwrap();
        if n == 0 {
            return all;
        }
        all.extend(parse_dirents(&buf[..n]));
    }
}

pub fn names(entries: &[Dirent]) -> Vec<String> {
    entries
        .iter()
        .map(|d| String::from_utf8(d.name.clone()).unwrap())
        .collect()
}
