//! Pipes and FIFOs: EOF, EPIPE, EAGAIN, atomicity, wraparound, readiness, open semantics.

mod common;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{Errno, FdTable, PollEvents, PIPE_CAPACITY};

#[test]
fn data_flows_and_eof_after_last_writer() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    assert_eq!(
        r.read(&mut [0; 8]).unwrap_err(),
        Errno::EAGAIN,
        "empty, writer alive"
    );
    assert_eq!(w.write(b"hello").unwrap(), 5);
    let mut buf = [0u8; 3];
    assert_eq!(r.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf, b"hel");
    let mut buf = [0u8; 10];
    assert_eq!(r.read(&mut buf).unwrap(), 2, "a read returns what is there");
    assert_eq!(&buf[..2], b"lo");
    assert_eq!(r.read(&mut []).unwrap(), 0);
    w.write(b"tail").unwrap();
    drop(w);
    // Data written before the close is still read, then EOF.
    assert_eq!(r.read(&mut buf).unwrap(), 4);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
}

#[test]
fn writer_count_follows_descriptions_not_descriptors() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    let mut fds = FdTable::new();
    let wfd = fds.insert(w, false).unwrap();
    let copy = fds.dup(wfd).unwrap();
    let mut child = fds.clone();
    fds.close(wfd).unwrap();
    assert_eq!(
        r.read(&mut [0; 4]).unwrap_err(),
        Errno::EAGAIN,
        "still a writer"
    );
    fds.close(copy).unwrap();
    assert_eq!(
        r.read(&mut [0; 4]).unwrap_err(),
        Errno::EAGAIN,
        "the child's copy"
    );
    child.get(copy).unwrap().write(b"x").unwrap();
    child.close_on_exec();
    assert_eq!(r.read(&mut [0; 4]).unwrap(), 1);
    child.close(copy).unwrap();
    child.close(wfd).unwrap();
    assert_eq!(
        r.read(&mut [0; 4]).unwrap(),
        0,
        "EOF once every copy is closed"
    );
}

#[test]
fn epipe_without_readers() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    w.write(b"x").unwrap();
    drop(r);
    assert_eq!(w.write(b"y").unwrap_err(), Errno::EPIPE);
    assert_eq!(w.write(b"").unwrap(), 0, "an empty write is not an error");
    assert!(w.poll().contains(PollEvents::ERR));
}

#[test]
fn full_pipe_partial_and_atomic_writes() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), O_NONBLOCK).unwrap();
    let big = vec![7u8; PIPE_CAPACITY + 100];
    // A large write fills the pipe and reports how much went in.
    assert_eq!(w.write(&big).unwrap(), PIPE_CAPACITY);
    assert_eq!(w.write(b"x").unwrap_err(), Errno::EAGAIN);
    assert_eq!(w.write(&big).unwrap_err(), Errno::EAGAIN);
    // Free 100 bytes.
    assert_eq!(r.read(&mut [0u8; 100]).unwrap(), 100);
    // Writes up to PIPE_BUF are all or nothing.
    assert_eq!(w.write(&[1u8; 101]).unwrap_err(), Errno::EAGAIN);
    assert_eq!(w.write(&[1u8; PIPE_BUF]).unwrap_err(), Errno::EAGAIN);
    assert_eq!(w.write(&[1u8; 100]).unwrap(), 100);
    // Larger writes may be partial.
    assert_eq!(r.read(&mut [0u8; 50]).unwrap(), 50);
    assert_eq!(w.write(&[2u8; PIPE_BUF + 1]).unwrap(), 50);
    assert_eq!(r.readable_bytes(), Some(PIPE_CAPACITY as u64));
    // Everything comes out in order.
    let mut out = vec![0u8; PIPE_CAPACITY];
    assert_eq!(r.read(&mut out).unwrap(), PIPE_CAPACITY);
    let mut want = vec![7u8; PIPE_CAPACITY - 150];
    want.extend([1u8; 100]);
    want.extend([2u8; 50]);
    assert_eq!(out, want);
}

#[test]
fn wraparound_keeps_order() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    // Chunks that do not divide the capacity, so the ring wraps at every offset.
    for round in 0..200 {
        let n = 1000 + (round * 37) % 3000;
        let chunk: Vec<u8> = (0..n).map(|i| ((next_in + i) % 251) as u8).collect();
        assert_eq!(w.write(&chunk).unwrap(), chunk.len());
        next_in += n;
        let mut buf = vec![0u8; 2500];
        let got = r.read(&mut buf).unwrap();
        for (i, b) in buf[..got].iter().enumerate() {
            assert_eq!(*b, ((next_out + i as u32) % 251) as u8, "round {round}");
        }
        next_out += got as u32;
    }
    drop(w);
    let mut buf = vec![0u8; PIPE_CAPACITY];
    loop {
        let got = r.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        for (i, b) in buf[..got].iter().enumerate() {
            assert_eq!(*b, ((next_out + i as u32) % 251) as u8);
        }
        next_out += got as u32;
    }
    assert_eq!(next_in, next_out);
}

#[test]
fn no_memory_for_a_bigger_ring() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), O_NONBLOCK).unwrap();
    e.platform
        .mem_limit
        .store(512, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(w.write(b"x").unwrap(), 1);
    // The ring stays at 512 bytes: an atomic write that does not fit fails, a longer one is
    // partial.
    assert_eq!(w.write(&[7u8; 600]).unwrap_err(), Errno::ENOMEM);
    assert_eq!(w.write(&[7u8; 5000]).unwrap(), 511);
    let mut buf = vec![0u8; 1024];
    assert_eq!(r.read(&mut buf).unwrap(), 512);
    assert_eq!(buf[0], b'x');
    assert!(buf[1..512].iter().all(|&b| b == 7));
    e.platform
        .mem_limit
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(w.write(&[1u8; 3000]).unwrap(), 3000);
    assert_eq!(r.read(&mut buf).unwrap(), 1024);
}

#[test]
fn poll_readiness() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    assert_eq!(r.poll(), PollEvents::empty());
    assert_eq!(w.poll(), PollEvents::WRITABLE);
    w.write(b"x").unwrap();
    assert_eq!(r.poll(), PollEvents::READABLE);
    // Writable only while PIPE_BUF bytes fit.
    w.write(&vec![0u8; PIPE_CAPACITY - PIPE_BUF - 1]).unwrap();
    assert_eq!(w.poll(), PollEvents::WRITABLE);
    w.write(b"y").unwrap();
    assert_eq!(w.poll(), PollEvents::empty());
    r.read(&mut [0u8; 1]).unwrap();
    assert_eq!(w.poll(), PollEvents::WRITABLE);
    // Writer gone: HUP, and IN while data remains.
    let w2 = w.clone();
    drop(w);
    assert_eq!(r.poll(), PollEvents::READABLE);
    drop(w2);
    assert_eq!(r.poll(), PollEvents::READABLE | PollEvents::HUP);
    let mut buf = vec![0u8; PIPE_CAPACITY];
    r.read(&mut buf).unwrap();
    assert_eq!(r.poll(), PollEvents::HUP);
    // Reader gone: ERR on the write end.
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    drop(r);
    assert_eq!(w.poll(), PollEvents::WRITABLE | PollEvents::ERR);
}

#[test]
fn wake_ups_carry_the_files_key() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    let key = r.wait_key().unwrap();
    assert_eq!(w.wait_key(), Some(key));
    let before = e.platform.wake_count(key);
    w.write(b"abc").unwrap();
    assert_eq!(e.platform.wake_count(key), before + 1);
    r.read(&mut [0u8; 3]).unwrap();
    assert_eq!(e.platform.wake_count(key), before + 2);
    // Failed attempts change nothing and wake nobody.
    assert!(r.read(&mut [0u8; 3]).is_err());
    assert_eq!(e.platform.wake_count(key), before + 2);
    drop(w);
    assert_eq!(e.platform.wake_count(key), before + 3);
    // Another pipe has another key.
    let (r2, _w2) = e.vfs.pipe(&root(), 0).unwrap();
    assert_ne!(r2.wait_key(), Some(key));
}

#[test]
fn pipe_files() {
    let e = env();
    let u = user(1000, 1000);
    assert_eq!(e.vfs.pipe(&u, O_DIRECT).unwrap_err(), Errno::EINVAL);
    assert_eq!(e.vfs.pipe(&u, O_APPEND).unwrap_err(), Errno::EINVAL);
    let (r, w) = e.vfs.pipe(&u, O_NONBLOCK | O_CLOEXEC).unwrap();
    assert_eq!(r.flags(), O_RDONLY | O_NONBLOCK);
    assert_eq!(w.flags(), O_WRONLY | O_NONBLOCK);
    assert!(r.is_nonblocking());
    let st = r.stat();
    assert_eq!(st.st_mode, S_IFIFO | 0o600);
    assert_eq!((st.st_uid, st.st_gid), (1000, 1000));
    assert_eq!(st.st_blksize, 4096);
    assert_eq!(st, w.stat(), "both ends are one inode");
    let (r2, _) = e.vfs.pipe(&u, 0).unwrap();
    assert_ne!(r2.stat().st_ino, st.st_ino);
    assert_ne!(st.st_dev, e.tmp.stat().st_dev);
    assert_eq!(r.seek(0, SEEK_SET).unwrap_err(), Errno::ESPIPE);
    assert_eq!(w.seek(0, SEEK_CUR).unwrap_err(), Errno::ESPIPE);
    assert_eq!(r.pread(&mut [0; 1], 0).unwrap_err(), Errno::ESPIPE);
    assert_eq!(w.pwrite(b"x", 0).unwrap_err(), Errno::ESPIPE);
    assert_eq!(r.write(b"x").unwrap_err(), Errno::EBADF);
    assert_eq!(w.read(&mut [0; 1]).unwrap_err(), Errno::EBADF);
    assert_eq!(w.truncate(0).unwrap_err(), Errno::EINVAL);
    assert_eq!(r.ioctl(0x5401, 0).unwrap_err(), Errno::ENOTTY);
}

#[test]
fn fifo_open_semantics() {
    let e = env();
    let ctx = root();
    e.vfs
        .mknod(&ctx, e.root(), b"/tmp/fifo", S_IFIFO | 0o666, 0)
        .unwrap();
    // Write-only non-blocking with no reader: ENXIO.
    assert_eq!(
        e.open("/tmp/fifo", O_WRONLY | O_NONBLOCK).unwrap_err(),
        Errno::ENXIO
    );
    // Read-only non-blocking: opens at once, no wait, reads EOF (no writer), no HUP yet.
    let r = e.open("/tmp/fifo", O_RDONLY | O_NONBLOCK).unwrap();
    assert!(!r.open_pending());
    assert_eq!(r.read(&mut [0; 4]).unwrap(), 0);
    assert_eq!(r.poll(), PollEvents::empty());
    // Now a writer can open without blocking.
    let w = e.open("/tmp/fifo", O_WRONLY | O_NONBLOCK).unwrap();
    assert!(!w.open_pending());
    w.write(b"through the fifo").unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(r.read(&mut buf).unwrap(), 16);
    assert_eq!(&buf[..16], b"through the fifo");
    drop(w);
    assert_eq!(r.poll(), PollEvents::HUP, "a writer came and went");
    drop(r);
    // Blocking read open with no writer: pending until a writer opens.
    let r = e.open("/tmp/fifo", O_RDONLY).unwrap();
    assert!(r.open_pending());
    let key = r.wait_key().unwrap();
    let wakes = e.platform.wake_count(key);
    let w = e.open("/tmp/fifo", O_WRONLY).unwrap();
    assert!(
        e.platform.wake_count(key) > wakes,
        "the waiting reader is woken"
    );
    assert!(!r.open_pending());
    assert!(!w.open_pending(), "a reader was there");
    drop(w);
    assert!(!r.open_pending(), "still satisfied after the writer left");
    drop(r);
    // Blocking write open with no reader: pending until a reader opens.
    let w = e.open("/tmp/fifo", O_WRONLY).unwrap();
    assert!(w.open_pending());
    let r = e.open("/tmp/fifo", O_RDONLY | O_NONBLOCK).unwrap();
    assert!(!w.open_pending());
    // O_RDWR never waits.
    drop((w, r));
    let rw = e.open("/tmp/fifo", O_RDWR).unwrap();
    assert!(!rw.open_pending());
    rw.write(b"self").unwrap();
    assert_eq!(rw.read(&mut buf).unwrap(), 4);
    assert_eq!(rw.seek(0, SEEK_SET).unwrap_err(), Errno::ESPIPE);
    assert_eq!(
        e.open("/tmp/fifo", O_ACCMODE).unwrap_err(),
        Errno::EINVAL,
        "access mode 3"
    );
}

#[test]
fn fifo_data_is_discarded_when_everyone_closes() {
    let e = env();
    e.vfs
        .mknod(&root(), e.root(), b"/tmp/fifo", S_IFIFO | 0o666, 0)
        .unwrap();
    let rw = e.open("/tmp/fifo", O_RDWR).unwrap();
    rw.write(b"lost").unwrap();
    drop(rw);
    let r = e.open("/tmp/fifo", O_RDONLY | O_NONBLOCK).unwrap();
    assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
    // While someone holds it open, data stays.
    let w = e.open("/tmp/fifo", O_WRONLY).unwrap();
    w.write(b"kept").unwrap();
    drop(w);
    assert_eq!(r.read(&mut [0; 8]).unwrap(), 4);
}

#[test]
fn fifo_in_the_initramfs_works_on_a_read_only_fs() {
    let ctx = root();
    let platform = TestPlatform::new();
    let vfs = ktls_vfs::Vfs::new(platform);
    vfs.populate([entry("run/fifo", S_IFIFO | 0o600, b"")])
        .unwrap();
    let w = vfs.open(&ctx, vfs.root(), b"/run/fifo", O_RDWR, 0).unwrap();
    w.write(b"ok").unwrap();
    assert_eq!(w.read(&mut [0; 2]).unwrap(), 2);
}

#[test]
fn pipes_across_threads() {
    let e = env();
    let (r, w) = e.vfs.pipe(&root(), 0).unwrap();
    let total: usize = 1 << 20;
    let writer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
        let mut off = 0;
        while off < total {
            match w.write(&data[off..(off + 10_000).min(total)]) {
                Ok(n) => off += n,
                Err(Errno::EAGAIN) => std::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 7000];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for (i, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, ((got + i) % 253) as u8);
                }
                got += n;
            }
            Err(Errno::EAGAIN) => std::thread::yield_now(),
            Err(e) => panic!("{e:?}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(got, total);
}
