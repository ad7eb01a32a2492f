//! Device nodes, kernel-implemented character devices, /proc, and stat/statx values.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use ktls_abi::fs::*;
use ktls_abi::tty::{TCGETS, TIOCGWINSZ};
use ktls_vfs::{
    CharDevice, Errno, FsKind, Generator, NewNode, PollEvents, ProcessContext, WaitKey,
    DEV_CONSOLE, DEV_FULL, DEV_NULL, DEV_RANDOM, DEV_URANDOM, DEV_ZERO,
};

#[test]
fn memory_devices() {
    let e = env();
    let null = e.open("/dev/null", O_RDWR).unwrap();
    assert_eq!(null.read(&mut [1; 16]).unwrap(), 0);
    assert_eq!(null.write(&[1; 100]).unwrap(), 100);
    assert_eq!(null.pread(&mut [1; 16], 5).unwrap(), 0);
    assert_eq!(null.pwrite(b"x", 5).unwrap(), 1);
    let zero = e.open("/dev/zero", O_RDWR).unwrap();
    let mut buf = [9u8; 64];
    assert_eq!(zero.read(&mut buf).unwrap(), 64);
    assert_eq!(buf, [0; 64]);
    assert_eq!(zero.write(b"ignored").unwrap(), 7);
    let full = e.open("/dev/full", O_RDWR).unwrap();
    assert_eq!(full.write(b"x").unwrap_err(), Errno::ENOSPC);
    let mut buf = [9u8; 8];
    assert_eq!(full.read(&mut buf).unwrap(), 8);
    assert_eq!(buf, [0; 8]);
    for dev in ["/dev/random", "/dev/urandom"] {
        let r = e.open(dev, O_RDONLY).unwrap();
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert_eq!(r.read(&mut a).unwrap(), 32);
        assert_eq!(r.read(&mut b).unwrap(), 32);
        assert_ne!(a, b, "{dev} gives fresh bytes");
        assert_eq!(r.poll(), PollEvents::DEFAULT);
    }
    for f in [&null, &zero, &full] {
        assert_eq!(f.poll(), PollEvents::DEFAULT);
        assert_eq!(f.seek(123, SEEK_SET).unwrap(), 0);
        assert_eq!(f.ioctl(TCGETS, 0).unwrap_err(), Errno::ENOTTY);
        assert!(!f.is_tty());
    }
}

#[test]
fn device_numbers_and_stat() {
    let e = env();
    let want = [
        ("/dev/null", DEV_NULL, (1, 3)),
        ("/dev/zero", DEV_ZERO, (1, 5)),
        ("/dev/full", DEV_FULL, (1, 7)),
        ("/dev/random", DEV_RANDOM, (1, 8)),
        ("/dev/urandom", DEV_URANDOM, (1, 9)),
    ];
    for (path, rdev, (maj, min)) in want {
        assert_eq!(rdev, makedev(maj, min));
        let st = e.lookup(path).unwrap().stat();
        assert_eq!(st.st_mode, S_IFCHR | 0o666, "{path}");
        assert_eq!(st.st_rdev, rdev, "{path}");
        assert_eq!(st.st_size, 0);
        assert_eq!(st.st_blocks, 0);
        let stx = e.lookup(path).unwrap().statx(STATX_BASIC_STATS).unwrap();
        assert_eq!((stx.stx_rdev_major, stx.stx_rdev_minor), (maj, min));
    }
    assert_eq!(DEV_CONSOLE, makedev(5, 1));
}

#[test]
fn file_systems_have_distinct_devices() {
    let e = env();
    let dev_of = |p: &str| e.lookup(p).unwrap().stat().st_dev;
    let root = dev_of("/bin/hello");
    assert_eq!(dev_of("/"), root);
    assert_eq!(dev_of("/etc"), root);
    let tmp = dev_of("/tmp");
    let dev = dev_of("/dev/null");
    let proc = dev_of("/proc/self");
    let (r, _w) = e.vfs.pipe(&root_ctx(), 0).unwrap();
    let pipe = r.stat().st_dev;
    let all = [root, tmp, dev, proc, pipe];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(e.lookup("/tmp").unwrap().fs_kind(), FsKind::Tmpfs);
    assert_eq!(e.lookup("/dev").unwrap().fs_kind(), FsKind::Devtmpfs);
    assert_eq!(e.lookup("/proc").unwrap().fs_kind(), FsKind::Proc);
    assert_eq!(e.lookup("/bin").unwrap().fs_kind(), FsKind::Initramfs);
    // Inode numbers are unique within a file system.
    let mut inos: Vec<u64> = [
        "/",
        "/bin",
        "/bin/hello",
        "/etc",
        "/etc/passwd",
        "/usr",
        "/usr/lib",
    ]
    .iter()
    .map(|p| e.lookup(p).unwrap().ino())
    .collect();
    inos.sort();
    inos.dedup();
    assert_eq!(inos.len(), 7);
}

fn root_ctx() -> Ctx {
    root()
}

#[test]
fn stat_values_per_type() {
    let e = env();
    let f = e.lookup("/bin/hello").unwrap().stat();
    assert_eq!(f.st_mode, S_IFREG | 0o755);
    assert_eq!(f.st_size, HELLO.len() as i64);
    assert_eq!(f.st_blksize, 4096);
    assert_eq!(f.st_blocks, 8, "one page in 512-byte units");
    assert_eq!(f.st_nlink, 1);
    assert_eq!((f.st_mtime, f.st_atime), (123, 123), "from the archive");
    assert_eq!(f.st_ctime, 1000, "unpacking time");
    e.write_file("/tmp/big", &vec![1u8; 4097]);
    let st = e.lookup("/tmp/big").unwrap().stat();
    assert_eq!((st.st_size, st.st_blocks), (4097, 16));
    e.write_file("/tmp/empty", b"");
    assert_eq!(e.lookup("/tmp/empty").unwrap().stat().st_blocks, 0);
    let l = e
        .vfs
        .lookup(&root(), e.root(), b"/link_to_hello", false)
        .unwrap()
        .stat();
    assert_eq!(l.st_mode, S_IFLNK | 0o777);
    assert_eq!(l.st_size, 10);
    let d = e.lookup("/bin").unwrap().stat();
    assert_eq!(d.st_mode, S_IFDIR | 0o755);
    assert_eq!(d.st_nlink, 2);
    assert_eq!(
        d.st_size,
        20 * (2 + 2),
        "tmpfs-style: 20 per entry plus . and .."
    );
    assert_eq!(d.st_blocks, 0);

    let x = e.lookup("/bin/hello").unwrap().statx(0).unwrap();
    assert_eq!(x.stx_mask & STATX_BASIC_STATS, STATX_BASIC_STATS);
    assert_eq!(x.stx_mask & STATX_BTIME, STATX_BTIME);
    assert_eq!(x.stx_mode as u32, S_IFREG | 0o755);
    assert_eq!(x.stx_size, HELLO.len() as u64);
    assert_eq!(x.stx_blksize, 4096);
    assert_eq!(x.stx_ino, e.lookup("/bin/hello").unwrap().ino());
    assert_eq!(x.stx_mtime.tv_sec, 123);
    assert_eq!(x.stx_btime.tv_sec, 1000);
    let dev = e.lookup("/bin/hello").unwrap().dev();
    assert_eq!(makedev(x.stx_dev_major, x.stx_dev_minor), dev);
    assert_ne!(x.stx_mnt_id, e.tmp.statx(0).unwrap().stx_mnt_id);
    assert_eq!(
        e.lookup("/bin/hello")
            .unwrap()
            .statx(STATX__RESERVED)
            .unwrap_err(),
        Errno::EINVAL
    );
    let open = e.open("/bin/hello", O_RDONLY).unwrap();
    assert_eq!(open.stat(), e.lookup("/bin/hello").unwrap().stat());
    assert_eq!(open.statx(0).unwrap(), x);
}

/// A terminal-like device: input queue, output log, EAGAIN when empty.
struct FakeTty {
    input: Mutex<Vec<u8>>,
    output: Mutex<Vec<u8>>,
    eof: Mutex<bool>,
    opens: AtomicUsize,
    releases: AtomicUsize,
}

impl CharDevice for FakeTty {
    fn read(&self, buf: &mut [u8]) -> ktls_vfs::Result<usize> {
        let mut input = self.input.lock().unwrap();
        if input.is_empty() {
            let mut eof = self.eof.lock().unwrap();
            if *eof {
                *eof = false;
                return Ok(0);
            }
            return Err(Errno::EAGAIN);
        }
        let n = buf.len().min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        Ok(n)
    }
    fn write(&self, buf: &[u8]) -> ktls_vfs::Result<usize> {
        self.output.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn poll(&self) -> PollEvents {
        let mut ev = PollEvents::WRITABLE;
        if !self.input.lock().unwrap().is_empty() || *self.eof.lock().unwrap() {
            ev |= PollEvents::READABLE;
        }
        ev
    }
    fn ioctl(&self, cmd: u64, arg: u64) -> ktls_vfs::Result<u64> {
        match cmd {
            TCGETS | TIOCGWINSZ => Ok(arg),
            _ => Err(Errno::EINVAL),
        }
    }
    fn is_tty(&self) -> bool {
        true
    }
    fn open(&self, flags: u64) -> ktls_vfs::Result<()> {
        if flags & O_TRUNC != 0 && flags & O_NOCTTY != 0 {
            return Err(Errno::EBUSY);
        }
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn release(&self) {
        self.releases.fetch_add(1, Ordering::SeqCst);
    }
    fn wait_key(&self) -> Option<WaitKey> {
        Some(WaitKey(0xc0))
    }
}

#[test]
fn kernel_character_device() {
    let e = env();
    let tty = Arc::new(FakeTty {
        input: Mutex::new(Vec::new()),
        output: Mutex::new(Vec::new()),
        eof: Mutex::new(false),
        opens: AtomicUsize::new(0),
        releases: AtomicUsize::new(0),
    });
    let dev = e.lookup("/dev").unwrap();
    let node = e
        .vfs
        .add_char_device(&dev, b"console", DEV_CONSOLE, 0o600, tty.clone())
        .unwrap();
    assert_eq!(node.stat().st_rdev, makedev(5, 1));
    assert_eq!(node.stat().st_mode, S_IFCHR | 0o600);
    let f = e.open("/dev/console", O_RDWR).unwrap();
    assert_eq!(tty.opens.load(Ordering::SeqCst), 1);
    assert!(f.is_tty());
    assert_eq!(f.wait_key(), Some(WaitKey(0xc0)));
    // Non-blocking semantics: EAGAIN and readiness.
    assert_eq!(f.read(&mut [0; 8]).unwrap_err(), Errno::EAGAIN);
    assert_eq!(f.poll(), PollEvents::WRITABLE);
    tty.input.lock().unwrap().extend_from_slice(b"ls\n");
    assert!(f.poll().contains(PollEvents::IN));
    let mut buf = [0u8; 8];
    assert_eq!(f.read(&mut buf).unwrap(), 3);
    *tty.eof.lock().unwrap() = true;
    assert_eq!(f.read(&mut buf).unwrap(), 0, "end of file once");
    assert_eq!(f.read(&mut buf).unwrap_err(), Errno::EAGAIN);
    assert_eq!(f.write(b"out").unwrap(), 3);
    assert_eq!(*tty.output.lock().unwrap(), b"out");
    assert_eq!(f.ioctl(TIOCGWINSZ, 0x1234).unwrap(), 0x1234);
    assert_eq!(f.ioctl(0x9999, 0).unwrap_err(), Errno::EINVAL);
    // Terminals do not seek.
    assert_eq!(f.seek(0, SEEK_SET).unwrap_err(), Errno::ESPIPE);
    assert_eq!(f.pread(&mut buf, 0).unwrap_err(), Errno::ESPIPE);
    assert_eq!(f.pwrite(b"x", 0).unwrap_err(), Errno::ESPIPE);
    // The driver's open may refuse.
    assert_eq!(
        e.open("/dev/console", O_RDWR | O_TRUNC | O_NOCTTY)
            .unwrap_err(),
        Errno::EBUSY
    );
    // O_PATH does not open the device.
    let p = e.open("/dev/console", O_PATH).unwrap();
    drop(p);
    assert_eq!(tty.opens.load(Ordering::SeqCst), 1);
    // release when the last reference to the description goes.
    let dup = f.clone();
    drop(f);
    assert_eq!(tty.releases.load(Ordering::SeqCst), 0);
    drop(dup);
    assert_eq!(tty.releases.load(Ordering::SeqCst), 1);
    // Permission: console is 0600 root.
    assert_eq!(
        e.open_as(&user(1000, 1000), "/dev/console", O_RDWR)
            .unwrap_err(),
        Errno::EACCES
    );
    // A second node with the same number opens the same driver.
    e.vfs
        .mknod(
            &root(),
            e.root(),
            b"/tmp/cons",
            S_IFCHR | 0o600,
            DEV_CONSOLE,
        )
        .unwrap();
    e.open("/tmp/cons", O_WRONLY).unwrap().write(b"!").unwrap();
    assert_eq!(*tty.output.lock().unwrap(), b"out!");
}

#[test]
fn generated_files() {
    let e = env();
    let proc = e.lookup("/proc").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let meminfo = move |_ctx: &dyn ProcessContext| -> ktls_vfs::Result<Vec<u8>> {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Ok(format!("MemTotal: {} kB\n", 1000 + n).into_bytes())
    };
    let generator: Arc<dyn Generator> = Arc::new(meminfo);
    e.vfs
        .create_node(
            &proc,
            b"meminfo",
            NewNode::Generated(generator),
            0o444,
            0,
            0,
        )
        .unwrap();
    let pid = |ctx: &dyn ProcessContext| -> ktls_vfs::Result<Vec<u8>> {
        Ok(format!("{}\n", ctx.pid()).into_bytes())
    };
    let self_dir = e.lookup("/proc/self").unwrap();
    e.vfs
        .create_node(
            &self_dir,
            b"pid",
            NewNode::Generated(Arc::new(pid)),
            0o444,
            0,
            0,
        )
        .unwrap();
    let failing = |_: &dyn ProcessContext| -> ktls_vfs::Result<Vec<u8>> { Err(Errno::ESRCH) };
    e.vfs
        .create_node(
            &proc,
            b"gone",
            NewNode::Generated(Arc::new(failing)),
            0o444,
            0,
            0,
        )
        .unwrap();

    let st = e.lookup("/proc/meminfo").unwrap().stat();
    assert_eq!(st.st_mode, S_IFREG | 0o444);
    assert_eq!(st.st_size, 0, "like procfs");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "stat does not generate");
    let f = e.open("/proc/meminfo", O_RDONLY).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Reads and seeks work on the snapshot taken at open.
    let mut buf = [0u8; 9];
    assert_eq!(f.read(&mut buf).unwrap(), 9);
    assert_eq!(&buf, b"MemTotal:");
    f.seek(0, SEEK_SET).unwrap();
    assert_eq!(read_all(&f), b"MemTotal: 1000 kB\n");
    assert_eq!(f.pread(&mut buf, 10).unwrap(), 8);
    assert_eq!(&buf[..8], b"1000 kB\n");
    assert_eq!(f.seek(0, SEEK_END).unwrap_err(), Errno::EINVAL);
    assert_eq!(f.poll(), PollEvents::DEFAULT);
    assert_eq!(e.read_file("/proc/meminfo"), b"MemTotal: 1001 kB\n");
    assert_eq!(
        e.open("/proc/meminfo", O_WRONLY).unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.open_as(&user(1, 1), "/proc/meminfo", O_WRONLY)
            .unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(e.read_file("/proc/self/pid"), b"42\n");
    assert_eq!(e.open("/proc/gone", O_RDONLY).unwrap_err(), Errno::ESRCH);
    // Nothing can be created in /proc by user space.
    assert_eq!(
        e.open("/proc/new", O_WRONLY | O_CREAT).unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.vfs
            .symlink(&root(), b"x", e.root(), b"/proc/l")
            .unwrap_err(),
        Errno::EPERM
    );
}

#[test]
fn kernel_node_creation_errors() {
    let e = env();
    let bin = e.lookup("/bin").unwrap();
    let hello = e.lookup("/bin/hello").unwrap();
    let mk = |dir, name: &[u8]| {
        e.vfs
            .create_node(dir, name, NewNode::Dir, 0o755, 0, 0)
            .map(|_| ())
    };
    assert_eq!(mk(&bin, b"hello").unwrap_err(), Errno::EEXIST);
    assert_eq!(mk(&hello, b"x").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(mk(&bin, b"").unwrap_err(), Errno::EINVAL);
    assert_eq!(mk(&bin, b"..").unwrap_err(), Errno::EINVAL);
    assert_eq!(mk(&bin, b"a/b").unwrap_err(), Errno::EINVAL);
    assert_eq!(mk(&bin, &[b'x'; 256]).unwrap_err(), Errno::ENAMETOOLONG);
    // The kernel may add to the read-only tree.
    mk(&bin, b"kdir").unwrap();
    assert!(e.lookup("/bin/kdir").is_ok());
    e.vfs.remove_node(&bin, b"kdir").unwrap();
    assert_eq!(e.vfs.remove_node(&bin, b"kdir").unwrap_err(), Errno::ENOENT);
    assert_eq!(
        e.vfs
            .mount(b"/bin/x", FsKind::Initramfs, 0o755)
            .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.vfs.mount(b"/", FsKind::Tmpfs, 0o755).unwrap_err(),
        Errno::EBUSY
    );
    assert_eq!(
        e.vfs.mount(b"/nope/x", FsKind::Tmpfs, 0o755).unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn mount_hides_what_was_there() {
    let e = env();
    e.write_file("/tmp/old", b"");
    let before = e.lookup("/tmp").unwrap();
    let m = e.vfs.mount(b"/tmp", FsKind::Tmpfs, 0o700).unwrap();
    assert!(Arc::ptr_eq(&e.lookup("/tmp").unwrap(), &m));
    assert!(!Arc::ptr_eq(&before, &m));
    assert_eq!(e.lookup("/tmp/old").unwrap_err(), Errno::ENOENT);
    assert_eq!(m.stat().st_mode, S_IFDIR | 0o700);
    assert_eq!(m.ino(), 1);
}
