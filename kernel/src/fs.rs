//! The kernel's side of the file system: the one `Vfs`, what it needs from the kernel
//! (`Platform`: clock, randomness, wake-ups), the calling process as `ProcessContext`, the
//! console devices, and blocking: the VFS never waits, so a read or write that would block
//! returns EAGAIN and `blocking` sleeps on the file's wait key until poll says it is ready.

use crate::mm::uaccess::UserPtr;
use crate::process::{Creds, Process};
use crate::sched::WaitQueue;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ktls_abi::tty::{
    Termios, Winsize, FIONREAD, TCGETS, TCSETS, TCSETSF, TCSETSW, TIOCGPGRP, TIOCGWINSZ, TIOCSPGRP,
    TIOCSWINSZ,
};
use ktls_abi::Errno;
use ktls_vfs::{CharDevice, FsKind, OpenFile, PollEvents, ProcessContext, Vfs, WaitKey};
use spin::{Mutex, Once};

static VFS: Once<Vfs> = Once::new();

pub fn vfs() -> &'static Vfs {
    VFS.get().expect("VFS not initialised")
}

struct KernelPlatform;

impl ktls_vfs::Platform for KernelPlatform {
    fn now(&self) -> ktls_abi::time::Timespec {
        ktls_abi::time::Timespec::from_nanos(crate::time::realtime_ns())
    }

    fn fill_random(&self, buf: &mut [u8]) {
        crate::random::fill(buf);
    }

    fn wake(&self, key: WaitKey) {
        bucket(key).wake_all();
    }

    fn can_allocate(&self, bytes: usize) -> bool {
        crate::mm::heap::can_spare(bytes)
    }
}

/// Wait queues for wait keys, hashed into buckets (a wake-up may wake a neighbour too; every
/// waiter re-checks its condition).
const BUCKETS: usize = 64;
static WAIT_BUCKETS: [WaitQueue; BUCKETS] = [const { WaitQueue::new() }; BUCKETS];

fn bucket(key: WaitKey) -> &'static WaitQueue {
    &WAIT_BUCKETS[(key.0 >> 4) % BUCKETS]
}

/// The wait key of the console's input.
const CONSOLE_KEY: WaitKey = WaitKey(0x10);

/// Called from the console interrupt: readers may proceed.
pub fn console_input_arrived() {
    bucket(CONSOLE_KEY).wake_all();
}

/// Runs `op` until it stops saying EAGAIN, sleeping until `file` is ready for `want` in
/// between (unless the file is O_NONBLOCK). A signal ends the wait with ERESTARTSYS. The
/// caller is the wait site the hang report shows.
#[track_caller]
pub fn blocking<T>(
    file: &OpenFile,
    want: PollEvents,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> Result<T, Errno> {
    loop {
        match op() {
            Err(Errno::EAGAIN) if !file.is_nonblocking() => {}
            r => return r,
        }
        let ready = PollEvents(want.bits() | PollEvents::HUP.bits() | PollEvents::ERR.bits());
        match file.wait_key() {
            Some(key) => bucket(key)
                .wait(true, || file.poll().intersects(ready).then_some(()))
                .map_err(|_| Errno::ERESTARTSYS)?,
            None => {
                // No wake-ups from this file: look again after a tick.
                let t = crate::process::current();
                if crate::signal::pending(t) {
                    return Err(Errno::ERESTARTSYS);
                }
                let step = crate::time::monotonic_ns() + 10_000_000;
                crate::sched::sleep_unless(Some(step), || crate::signal::pending(t));
            }
        }
    }
}

/// A process as path resolution and permission checks see it.
pub struct Ctx<'a> {
    pub process: &'a Process,
    pub creds: Creds,
}

impl<'a> Ctx<'a> {
    pub fn of(process: &'a Process) -> Self {
        Ctx {
            process,
            creds: *process.creds.lock(),
        }
    }
}

impl ProcessContext for Ctx<'_> {
    fn fsuid(&self) -> u32 {
        self.creds.fsuid
    }

    fn fsgid(&self) -> u32 {
        self.creds.fsgid
    }

    fn umask(&self) -> u32 {
        self.process
            .umask
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    fn pid(&self) -> u32 {
        self.process.pid
    }

    fn exe_path(&self) -> Result<Vec<u8>, Errno> {
        let exe = self.process.exe.lock().clone();
        if exe.is_empty() {
            Err(Errno::ENOENT)
        } else {
            Ok(exe)
        }
    }
}

/// The console as a tty device; the stderr flavour writes to the stderr port.
struct ConsoleDevice {
    stderr: bool,
    termios: Mutex<Termios>,
    winsize: Mutex<Winsize>,
}

impl CharDevice for ConsoleDevice {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        crate::console::read(buf)
    }

    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        crate::console::write(buf, self.stderr);
        Ok(buf.len())
    }

    fn poll(&self) -> PollEvents {
        if crate::console::readable() {
            PollEvents(PollEvents::READABLE.bits() | PollEvents::WRITABLE.bits())
        } else {
            PollEvents::WRITABLE
        }
    }

    fn ioctl(&self, cmd: u64, arg: u64) -> Result<u64, Errno> {
        match cmd {
            TCGETS => UserPtr::<Termios>::new(arg)
                .write(&self.termios.lock())
                .map(|_| 0),
            TCSETS | TCSETSW | TCSETSF => {
                let t = UserPtr::<Termios>::new(arg).read()?;
                *self.termios.lock() = t;
                Ok(0)
            }
            TIOCGWINSZ => UserPtr::<Winsize>::new(arg)
                .write(&self.winsize.lock())
                .map(|_| 0),
            TIOCSWINSZ => {
                *self.winsize.lock() = UserPtr::<Winsize>::new(arg).read()?;
                Ok(0)
            }
            TIOCGPGRP => {
                let pgid = crate::process::current()
                    .process
                    .pgid
                    .load(core::sync::atomic::Ordering::Relaxed);
                UserPtr::<i32>::new(arg).write(&(pgid as i32)).map(|_| 0)
            }
            TIOCSPGRP => UserPtr::<i32>::new(arg).read().map(|_| 0),
            FIONREAD => {
                let n = if crate::console::readable() { 1 } else { 0 };
                UserPtr::<i32>::new(arg).write(&n).map(|_| 0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn is_tty(&self) -> bool {
        true
    }

    fn wait_key(&self) -> Option<WaitKey> {
        (!self.stderr).then_some(CONSOLE_KEY)
    }
}

/// Linux's rdev of /dev/console (5:1) and of the second serial port, /dev/ttyS1 (4:65), which
/// carries stderr.
const DEV_CONSOLE: u64 = ktls_abi::fs::makedev(5, 1);
const DEV_TTYS1: u64 = ktls_abi::fs::makedev(4, 65);

/// Builds the tree: the initramfs, /tmp, /dev (with the consoles) and /proc. Returns the boot
/// request found in /.ktls.
pub fn init(initrd: &'static [u8]) -> Result<ktls_vfs::BootRequest, alloc::string::String> {
    use alloc::format;
    let vfs = VFS.call_once(|| Vfs::new(Arc::new(KernelPlatform)));
    let mut bad = None;
    let entries = ktls_cpio::entries(initrd).map_while(|e| match e {
        Ok(e) => Some(ktls_vfs::InitramfsEntry {
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
        }),
        Err(err) => {
            bad = Some(err);
            None
        }
    });
    vfs.populate(entries)
        .map_err(|e| format!("initramfs: {e:?}"))?;
    if let Some(err) = bad {
        return Err(format!("initramfs: {err}"));
    }
    let request = vfs
        .take_boot_request()
        .map_err(|e| format!("boot request: {e}"))?
        .ok_or_else(|| alloc::string::String::from("no /.ktls boot request in the initramfs"))?;
    // The initramfs may carry files under /tmp (a program the runner packed from the host's
    // /tmp): the tmpfs mounted there starts with copies of them (copied on first write).
    let old_tmp = snapshot_dir(vfs, b"/tmp");
    let tmp = vfs
        .mount(b"/tmp", FsKind::Tmpfs, 0o1777)
        .map_err(|e| format!("/tmp: {e}"))?;
    restore_dir(vfs, &tmp, &old_tmp).map_err(|e| format!("/tmp: {e}"))?;
    let dev = vfs.install_dev().map_err(|e| format!("/dev: {e}"))?;
    for (name, rdev, stderr) in [
        (&b"console"[..], DEV_CONSOLE, false),
        (b"ttyS1", DEV_TTYS1, true),
    ] {
        let driver = Arc::new(ConsoleDevice {
            stderr,
            termios: Mutex::new(Termios::linux_default()),
            winsize: Mutex::new(Winsize {
                ws_row: 24,
                ws_col: 80,
                ..Default::default()
            }),
        });
        vfs.add_char_device(&dev, name, rdev, 0o620, driver)
            .map_err(|e| format!("/dev: {e}"))?;
    }
    let proc = vfs.install_proc().map_err(|e| format!("/proc: {e}"))?;
    let meminfo = ktls_vfs::NewNode::Generated(Arc::new(|_: &dyn ProcessContext| Ok(meminfo())));
    vfs.create_node(&proc, b"meminfo", meminfo, 0o444, 0, 0)
        .map_err(|e| format!("/proc/meminfo: {e}"))?;
    Ok(request)
}

/// /proc/meminfo: Linux's first lines, from the frame allocator and the kernel heap (what the
/// leak tests compare before and after a workload).
fn meminfo() -> Vec<u8> {
    let kib = |frames: usize| frames * crate::mm::PAGE_SIZE / 1024;
    let heap_used = crate::mm::heap::used() / 1024;
    let heap_size = crate::mm::heap::size() / 1024;
    alloc::format!(
        "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\nKernelHeap:     {:8} kB\nKernelHeapUsed: {:8} kB\n",
        kib(crate::mm::frame::total_count()) + heap_size,
        kib(crate::mm::frame::free_count()),
        kib(crate::mm::frame::free_count()) + heap_size - heap_used,
        heap_size,
        heap_used,
    )
    .into_bytes()
}

/// A directory tree read from the initramfs before something is mounted over it.
enum Entry {
    Dir(Vec<u8>, u32, Vec<Entry>),
    File(Vec<u8>, u32, &'static [u8]),
    Symlink(Vec<u8>, Vec<u8>),
}

fn snapshot_dir(vfs: &Vfs, path: &[u8]) -> Vec<Entry> {
    let ctx = ktls_vfs::KernelContext;
    let flags = ktls_abi::fs::O_RDONLY | ktls_abi::fs::O_DIRECTORY;
    let Ok(dir) = vfs.open(&ctx, vfs.root(), path, flags, 0) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut buf = alloc::vec![0u8; 4096];
    while let Ok(n) = dir.getdents64(&mut buf) {
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name_bytes = &buf[off + ktls_abi::fs::DIRENT64_NAME_OFFSET..off + reclen];
            let name = &name_bytes[..name_bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_bytes.len())];
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
            off += reclen;
        }
    }
    let mut out = Vec::new();
    for name in names {
        let mut child = path.to_vec();
        child.push(b'/');
        child.extend_from_slice(&name);
        let Ok(node) = vfs.lookup(&ctx, vfs.root(), &child, false) else {
            continue;
        };
        let perm = node.mode() & 0o7777;
        if node.is_dir() {
            out.push(Entry::Dir(name, perm, snapshot_dir(vfs, &child)));
        } else if node.is_symlink() {
            if let Ok(target) = node.readlink(&ctx) {
                out.push(Entry::Symlink(name, target));
            }
        } else if let Some(data) = node.static_data() {
            out.push(Entry::File(name, perm, data));
        }
    }
    out
}

fn restore_dir(vfs: &Vfs, dir: &ktls_vfs::NodeRef, entries: &[Entry]) -> Result<(), Errno> {
    use ktls_vfs::NewNode;
    for e in entries {
        match e {
            Entry::Dir(name, perm, children) => {
                let d = vfs.create_node(dir, name, NewNode::Dir, *perm, 0, 0)?;
                restore_dir(vfs, &d, children)?;
            }
            Entry::File(name, perm, data) => {
                vfs.create_node(dir, name, NewNode::StaticFile(data), *perm, 0, 0)?;
            }
            Entry::Symlink(name, target) => {
                vfs.create_node(dir, name, NewNode::Symlink(target), 0o777, 0, 0)?;
            }
        }
    }
    Ok(())
}

/// Opens the initial process's stdin, stdout (the console) and stderr (the stderr port).
pub fn open_stdio(p: &Process) -> Result<(), Errno> {
    let ctx = Ctx::of(p);
    let root = vfs().root().clone();
    let files = p.files();
    let mut files = files.lock();
    let flags = ktls_abi::fs::O_RDWR;
    for path in [&b"/dev/console"[..], b"/dev/console", b"/dev/ttyS1"] {
        let f = vfs().open(&ctx, &root, path, flags, 0)?;
        files.insert(f, false)?;
    }
    Ok(())
}

/// The bytes of an executable, opened with execve's checks (a regular file, execute
/// permission): borrowed from the initramfs, or copied out of tmpfs.
/// Also returns the file's absolute path (for /proc/self/exe).
pub fn read_executable(
    ctx: &dyn ProcessContext,
    cwd: &ktls_vfs::NodeRef,
    path: &[u8],
) -> Result<(FileBytes, Vec<u8>), Errno> {
    let file = vfs().open_exec(ctx, cwd, path)?;
    let node = file.node().clone();
    let abs = vfs()
        .realpath(ctx, cwd, path)
        .unwrap_or_else(|_| path.to_vec());
    Ok((file_bytes(&node)?, abs))
}

/// A regular file's contents: borrowed from the initramfs, or copied out of tmpfs.
pub fn file_bytes(node: &ktls_vfs::NodeRef) -> Result<FileBytes, Errno> {
    if let Some(data) = node.static_data() {
        return Ok(FileBytes::Static(data));
    }
    let size = node.size() as usize;
    if !crate::mm::heap::can_spare(size) {
        return Err(Errno::ENOMEM);
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(size).map_err(|_| Errno::ENOMEM)?;
    buf.resize(size, 0);
    let n = node.read_at(0, &mut buf)?;
    buf.truncate(n);
    Ok(FileBytes::Owned(buf))
}

pub enum FileBytes {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl FileBytes {
    pub fn bytes(&self) -> &[u8] {
        match self {
            FileBytes::Static(s) => s,
            FileBytes::Owned(v) => v,
        }
    }
}
