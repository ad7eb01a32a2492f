//! Character devices: the trait the kernel implements for its devices, and the memory
//! devices (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`).

use alloc::sync::Arc;

use ktls_abi::fs::makedev;
use ktls_abi::Errno;

use crate::poll::PollEvents;
use crate::{Platform, Result, WaitKey};

/// Linux's device numbers for the devices ktls provides.
pub const DEV_NULL: u64 = makedev(1, 3);
pub const DEV_ZERO: u64 = makedev(1, 5);
pub const DEV_FULL: u64 = makedev(1, 7);
pub const DEV_RANDOM: u64 = makedev(1, 8);
pub const DEV_URANDOM: u64 = makedev(1, 9);
pub const DEV_TTY: u64 = makedev(5, 0);
pub const DEV_CONSOLE: u64 = makedev(5, 1);

/// A character device driver. Registered with [`crate::Vfs::register_char_device`] under its
/// device number; every device node with that number opens it.
///
/// All methods are non-blocking: a read with nothing available returns `Err(EAGAIN)` (a
/// write that cannot proceed, likewise), and [`CharDevice::poll`] reports readiness. The
/// kernel's blocking layer waits (on [`CharDevice::wait_key`] if given) and retries unless the
/// file is O_NONBLOCK.
pub trait CharDevice: Send + Sync {
    /// Reads up to `buf.len()` bytes. `Ok(0)` is end of file.
    fn read(&self, buf: &mut [u8]) -> Result<usize>;

    /// Writes some of `buf`, returning how much.
    fn write(&self, buf: &[u8]) -> Result<usize>;

    /// Current readiness (POLLIN, POLLOUT, POLLHUP, ...).
    fn poll(&self) -> PollEvents;

    /// A device ioctl. `arg` is passed through untouched: the driver, being kernel code,
    /// accesses user memory itself. Linux's answer for a device without ioctls is ENOTTY.
    fn ioctl(&self, cmd: u64, arg: u64) -> Result<u64> {
        let _ = (cmd, arg);
        Err(Errno::ENOTTY)
    }

    /// Whether this is a terminal (for isatty-style checks in the kernel).
    fn is_tty(&self) -> bool {
        false
    }

    /// Whether lseek/pread/pwrite are allowed. The memory devices say yes (lseek returns 0,
    /// the offset is ignored, as Linux's null_lseek); terminals say no (ESPIPE).
    fn seekable(&self) -> bool {
        false
    }

    /// Called for each open (not for O_PATH opens), with the open flags; an error fails the
    /// open.
    fn open(&self, flags: u64) -> Result<()> {
        let _ = flags;
        Ok(())
    }

    /// Called when an open file description of this device goes away (the last close).
    fn release(&self) {}

    /// What the kernel sleeps on while this device is not ready, if the driver wakes waiters
    /// through [`Platform::wake`]. `None`: the kernel must poll again by other means.
    fn wait_key(&self) -> Option<WaitKey> {
        None
    }

    /// The driver as `Any`, for a kernel that needs its own type back from an open file
    /// (a pidfd's process); `None` by default.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }
}

/// `/dev/null`: reads end at once, writes vanish.
pub struct NullDevice;

impl CharDevice for NullDevice {
    fn read(&self, _buf: &mut [u8]) -> Result<usize> {
        Ok(0)
    }
    fn write(&self, buf: &[u8]) -> Result<usize> {
        Ok(buf.len())
    }
    fn poll(&self) -> PollEvents {
        PollEvents::DEFAULT
    }
    fn seekable(&self) -> bool {
        true
    }
}

/// `/dev/zero`: reads give zeros, writes vanish.
pub struct ZeroDevice;

impl CharDevice for ZeroDevice {
    fn read(&self, buf: &mut [u8]) -> Result<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
    fn write(&self, buf: &[u8]) -> Result<usize> {
        Ok(buf.len())
    }
    fn poll(&self) -> PollEvents {
        PollEvents::DEFAULT
    }
    fn seekable(&self) -> bool {
        true
    }
}

/// `/dev/full`: reads give zeros, writes fail with ENOSPC.
pub struct FullDevice;

impl CharDevice for FullDevice {
    fn read(&self, buf: &mut [u8]) -> Result<usize> {
        buf.fill(0);
        Ok(buf.len())
    }
    fn write(&self, _buf: &[u8]) -> Result<usize> {
        Err(Errno::ENOSPC)
    }
    fn poll(&self) -> PollEvents {
        PollEvents::DEFAULT
    }
    fn seekable(&self) -> bool {
        true
    }
}

/// `/dev/random` and `/dev/urandom`: reads come from [`Platform::fill_random`]; writes are
/// accepted (Linux mixes them into the pool; here they are dropped).
pub struct RandomDevice {
    platform: Arc<dyn Platform>,
}

impl RandomDevice {
    pub fn new(platform: Arc<dyn Platform>) -> Self {
        RandomDevice { platform }
    }
}

impl CharDevice for RandomDevice {
    fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.platform.fill_random(buf);
        Ok(buf.len())
    }
    fn write(&self, buf: &[u8]) -> Result<usize> {
        Ok(buf.len())
    }
    fn poll(&self) -> PollEvents {
        PollEvents::DEFAULT
    }
    fn seekable(&self) -> bool {
        true
    }
}
