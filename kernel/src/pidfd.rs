//! pidfds: file descriptors that refer to a process. Made by clone/clone3 with CLONE_PIDFD
//! and by pidfd_open; used by pidfd_send_signal, waitid(P_PIDFD) and poll, which reports
//! POLLIN once the process has ended (a zombie) and POLLIN | POLLHUP once it is reaped.
//!
//! A pidfd is an anonymous file (mode 0600, no file type) whose driver names the process by a
//! weak reference: it keeps no memory of the process alive, and once the process is reaped
//! the reference (or the pid table) says so. Reading or writing it is EINVAL, as on Linux.

use crate::fs::{vfs, Ctx};
use crate::process::{self, Process};
use alloc::sync::{Arc, Weak};
use ktls_abi::fs::{O_NONBLOCK, O_RDWR};
use ktls_abi::Errno;
use ktls_vfs::{CharDevice, OpenFile, PollEvents};

pub struct Pidfd {
    pid: u32,
    process: Weak<Process>,
}

impl Pidfd {
    /// The process, unless it has been reaped.
    pub fn process(&self) -> Option<Arc<Process>> {
        let p = self.process.upgrade()?;
        // Reaped processes leave the pid table; the pid may since name another process.
        process::find_process(self.pid)
            .filter(|q| Arc::ptr_eq(q, &p))
            .map(|_| p)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl CharDevice for Pidfd {
    fn read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write(&self, _buf: &[u8]) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn poll(&self) -> PollEvents {
        match self.process() {
            None => PollEvents(PollEvents::READABLE.bits() | PollEvents::HUP.bits()),
            Some(p) if p.zombie.lock().is_some() => PollEvents::READABLE,
            Some(_) => PollEvents::empty(),
        }
    }

    fn as_any(&self) -> Option<&dyn core::any::Any> {
        Some(self)
    }
}

/// A new pidfd open file for `p` (O_RDWR, plus O_NONBLOCK if asked), owned by the caller.
pub fn open_file(caller: &Process, p: &Arc<Process>, nonblock: bool) -> Arc<OpenFile> {
    let driver = Arc::new(Pidfd {
        pid: p.pid,
        process: Arc::downgrade(p),
    });
    let flags = O_RDWR | if nonblock { O_NONBLOCK } else { 0 };
    vfs().anon_file(&Ctx::of(caller), driver, flags)
}

/// The pidfd behind an open file, if it is one.
pub fn of_file(f: &OpenFile) -> Option<&Pidfd> {
    f.device()?.as_any()?.downcast_ref::<Pidfd>()
}
