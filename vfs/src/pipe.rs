//! Pipes and FIFOs: a 64 KiB ring buffer with reader and writer counts.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ktls_abi::fs::PIPE_BUF;
use ktls_abi::Errno;
use spin::Mutex;

use crate::poll::PollEvents;
use crate::{Platform, Result, WaitKey};

/// Bytes a pipe holds (Linux's default: 16 pages).
pub const PIPE_CAPACITY: usize = 16 * 4096;

pub(crate) struct Pipe {
    state: Mutex<PipeState>,
    platform: Arc<dyn Platform>,
}

struct PipeState {
    /// The ring; allocated at the first write, freed when the last end closes.
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
        let n = out.len().min(s.len);
        let first = n.min(PIPE_CAPACITY - s.head);
        let head = s.head;
        out[..first].copy_from_slice(&s.buf[head..head + first]);
        out[first..n].copy_from_slice(&s.buf[..n - first]);
        s.head = (head + n) % PIPE_CAPACITY;
        s.len -= n;
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
        if s.buf.is_empty() {
            s.buf
                .try_reserve_exact(PIPE_CAPACITY)
                .map_err(|_| Errno::ENOMEM)?;
            s.buf.resize(PIPE_CAPACITY, 0);
        }
        let n = free.min(data.len());
        let tail = (s.head + s.len) % PIPE_CAPACITY;
        let first = n.min(PIPE_CAPACITY - tail);
        s.buf[tail..tail + first].copy_from_slice(&data[..first]);
        s.buf[..n - first].copy_from_slice(&data[first..n]);
        s.len += n;
        drop(s);
        self.wake();
        Ok(n)
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
