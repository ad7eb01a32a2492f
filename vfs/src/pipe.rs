//! Pipes and FIFOs: a ring buffer of up to 64 KiB with reader and writer counts.
//!
//! The ring is sized to what the pipe holds, as Linux allocates a pipe's pages as data
//! arrives: it starts at [`MIN_RING`] bytes with the first write and doubles as needed up to
//! [`PIPE_CAPACITY`], so a thousand pipes holding a page each take a few MiB, not 64 MiB.
//! Growing may fail (no memory): a write then takes what fits or fails with ENOMEM.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ktls_abi::fs::PIPE_BUF;
use ktls_abi::Errno;
use spin::Mutex;

use crate::poll::PollEvents;
use crate::{Platform, Result, WaitKey};

/// Bytes a pipe holds (Linux's default: 16 pages).
pub const PIPE_CAPACITY: usize = 16 * 4096;
/// The smallest ring (a power of two, like every ring size).
const MIN_RING: usize = 512;

pub(crate) struct Pipe {
    state: Mutex<PipeState>,
    platform: Arc<dyn Platform>,
}

struct PipeState {
    /// The ring (empty, or a power of two up to PIPE_CAPACITY bytes); allocated at the
    /// first write, grown as needed, freed when the last end closes.
    buf: Vec<u8>,
    /// Index of the oldest byte.
    head: usize,
    /// Bytes buffered.
    len: usize,
    readers: u32,
    writers: u32,
    /// How many times a read end / write end was ever opened (fifo_open's r_counter and
    /// w_counter): a blocking FIFO open waits for the other one to move.
    r_counter: u64,
    w_counter: u64,
}

impl Pipe {
    pub(crate) fn new(platform: Arc<dyn Platform>) -> Arc<Pipe> {
        Arc::new(Pipe {
            state: Mutex::new(PipeState {
                buf: Vec::new(),
                head: 0,
                len: 0,
                readers: 0,
                writers: 0,
                r_counter: 0,
                w_counter: 0,
            }),
            platform,
        })
    }

    /// The key the VFS passes to [`Platform::wake`] when this pipe's readiness may change.
    pub(crate) fn key(&self) -> WaitKey {
        WaitKey(self as *const Pipe as usize)
    }

    fn wake(&self) {
        self.platform.wake(self.key());
    }

    /// Both ends of a new anonymous pipe (pipe(2)).
    pub(crate) fn anonymous(pipe: &Arc<Pipe>) -> (PipeEnd, PipeEnd) {
        let mut s = pipe.state.lock();
        s.readers = 1;
        s.writers = 1;
        s.r_counter = 1;
        s.w_counter = 1;
        drop(s);
        let end = |read, write| PipeEnd {
            pipe: pipe.clone(),
            read,
            write,
            w_seen: 0,
            open_wait: None,
        };
        (end(true, false), end(false, true))
    }

    /// Opens an end of a named FIFO (fifo_open). ENXIO for a non-blocking write-only open
    /// with no reader; EINVAL for access mode 3.
    pub(crate) fn open_fifo(
        pipe: &Arc<Pipe>,
        read: bool,
        write: bool,
        nonblock: bool,
    ) -> Result<PipeEnd> {
        let mut s = pipe.state.lock();
        let mut w_seen = 0;
        let mut open_wait = None;
        match (read, write) {
            (true, true) => {
                s.readers += 1;
                s.writers += 1;
                s.r_counter += 1;
                s.w_counter += 1;
            }
            (true, false) => {
                s.readers += 1;
                s.r_counter += 1;
                if s.writers == 0 {
                    if nonblock {
                        // No POLLHUP until a writer has come (and gone).
                        w_seen = s.w_counter;
                    } else {
                        open_wait = Some(OpenWait::Writer(s.w_counter));
                    }
                }
            }
            (false, true) => {
                if s.readers == 0 && nonblock {
                    return Err(Errno::ENXIO);
                }
                s.writers += 1;
                s.w_counter += 1;
                if s.readers == 0 {
                    open_wait = Some(OpenWait::Reader(s.r_counter));
                }
            }
            (false, false) => return Err(Errno::EINVAL),
        }
        drop(s);
        pipe.wake();
        Ok(PipeEnd {
            pipe: pipe.clone(),
            read,
            write,
            w_seen,
            open_wait,
        })
    }

    fn close(&self, read: bool, write: bool) {
        let mut s = self.state.lock();
        if read {
            s.readers -= 1;
        }
        if write {
            s.writers -= 1;
        }
        if s.readers == 0 && s.writers == 0 {
            // Like Linux freeing the pipe: a FIFO's unread data is discarded.
            s.buf = Vec::new();
            s.head = 0;
            s.len = 0;
        }
        drop(s);
        self.wake();
    }

    fn read(&self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut s = self.state.lock();
        if s.len == 0 {
            return if s.writers == 0 {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let size = s.buf.len();
        let n = out.len().min(s.len);
        let first = n.min(size - s.head);
        let head = s.head;
        out[..first].copy_from_slice(&s.buf[head..head + first]);
        out[first..n].copy_from_slice(&s.buf[..n - first]);
        s.len -= n;
        // An emptied ring starts again at 0, so the next write need not wrap.
        s.head = if s.len == 0 { 0 } else { (head + n) % size };
        drop(s);
        self.wake();
        Ok(n)
    }

    fn write(&self, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let mut s = self.state.lock();
        if s.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let free = PIPE_CAPACITY - s.len;
        if free == 0 || (data.len() <= PIPE_BUF && free < data.len()) {
            return Err(Errno::EAGAIN);
        }
        let mut n = free.min(data.len());
        let want = s.len + n;
        if want > s.buf.len() && !s.grow(want, &*self.platform) {
            // No memory for a bigger ring: write what fits (all or nothing up to PIPE_BUF),
            // as Linux's pipe_write stops with ENOMEM when it cannot get a page.
            let room = s.buf.len() - s.len;
            if room == 0 || (data.len() <= PIPE_BUF && room < data.len()) {
                return Err(Errno::ENOMEM);
            }
            n = room.min(n);
        }
        let size = s.buf.len();
        let tail = (s.head + s.len) % size;
        let first = n.min(size - tail);
        s.buf[tail..tail + first].copy_from_slice(&data[..first]);
        s.buf[..n - first].copy_from_slice(&data[first..n]);
        s.len += n;
        drop(s);
        self.wake();
        Ok(n)
    }
}

impl PipeState {
    /// Replaces the ring with one of at least `want` bytes (a power of two, at most
    /// PIPE_CAPACITY) holding the same data from index 0; false if there is no memory.
    fn grow(&mut self, want: usize, platform: &dyn Platform) -> bool {
        let size = want.next_power_of_two().clamp(MIN_RING, PIPE_CAPACITY);
        if size <= self.buf.len() || !platform.can_allocate(size) {
            return false;
        }
        let mut ring = Vec::new();
        if ring.try_reserve_exact(size).is_err() {
            return false;
        }
        ring.resize(size, 0);
        let old = self.buf.len();
        if old > 0 {
            let first = self.len.min(old - self.head);
            ring[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
            ring[first..self.len].copy_from_slice(&self.buf[..self.len - first]);
        }
        self.buf = ring;
        self.head = 0;
        true
    }
}

/// What a blocking FIFO open still waits for.
#[derive(Clone, Copy)]
enum OpenWait {
    /// A writer to open: w_counter was this at our open.
    Writer(u64),
    /// A reader to open: r_counter was this at our open.
    Reader(u64),
}

/// One open end of a pipe or FIFO. Holding it counts as a reader and/or writer; dropping it
/// (when the last reference to its open file goes) gives that up.
pub(crate) struct PipeEnd {
    pipe: Arc<Pipe>,
    read: bool,
    write: bool,
    /// POLLHUP on the read end only once w_counter differs from this.
    w_seen: u64,
    open_wait: Option<OpenWait>,
}

impl PipeEnd {
    pub(crate) fn read(&self, out: &mut [u8]) -> Result<usize> {
        debug_assert!(self.read);
        self.pipe.read(out)
    }

    pub(crate) fn write(&self, data: &[u8]) -> Result<usize> {
        debug_assert!(self.write);
        self.pipe.write(data)
    }

    pub(crate) fn key(&self) -> WaitKey {
        self.pipe.key()
    }

    pub(crate) fn buffered(&self) -> usize {
        self.pipe.state.lock().len
    }

    pub(crate) fn poll(&self) -> PollEvents {
        let s = self.pipe.state.lock();
        let mut ev = PollEvents::empty();
        if self.read {
            if s.len > 0 {
                ev |= PollEvents::READABLE;
            }
            if s.writers == 0 && s.w_counter != self.w_seen {
                ev |= PollEvents::HUP;
            }
        }
        if self.write {
            if PIPE_CAPACITY - s.len >= PIPE_BUF {
                ev |= PollEvents::WRITABLE;
            }
            if s.readers == 0 {
                ev |= PollEvents::ERR;
            }
        }
        ev
    }

    /// Whether a blocking FIFO open is still waiting for its partner.
    pub(crate) fn open_pending(&self) -> bool {
        let s = self.pipe.state.lock();
        match self.open_wait {
            None => false,
            Some(OpenWait::Writer(c)) => s.w_counter == c,
            Some(OpenWait::Reader(c)) => s.r_counter == c,
        }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.pipe.close(self.read, self.write);
    }
}
