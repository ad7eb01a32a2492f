//! File syscalls: the user-memory side of the VFS. Paths and buffers are copied through the
//! copy layer; everything about files themselves is `ktls-vfs`'s, which never blocks: reads
//! and writes that would block go through `fs::blocking`.

use super::SysResult;
use crate::fs::{blocking, vfs, Ctx, FileBytes};
use crate::mm::uaccess::{self, copy_from_user_partial, copy_to_user_partial, read_cstr, UserPtr};
use crate::process::{current, Process};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::fs::*;
use ktls_abi::poll::PollFd;
use ktls_abi::signal::{SigSet, SIGPIPE, SIGSET_SIZE, UNBLOCKABLE};
use ktls_abi::time::Timespec;
use ktls_abi::Errno;
use ktls_vfs::{NodeRef, OpenFile, PollEvents};

/// Bytes moved per step between user memory and a file.
const CHUNK: usize = 64 * 1024;
/// Linux caps one read or write at MAX_RW_COUNT.
const MAX_RW_COUNT: u64 = 0x7fff_f000;

fn me() -> Arc<Process> {
    current().process.clone()
}

fn file(fd: u64) -> Result<Arc<OpenFile>, Errno> {
    let fd = i32::try_from(fd as i64).map_err(|_| Errno::EBADF)?;
    current().process.files().lock().get(fd)
}

fn path_arg(ptr: u64) -> Result<Vec<u8>, Errno> {
    read_cstr(ptr, PATH_MAX)
}

/// The directory a relative path starts from: the cwd for AT_FDCWD, else the dirfd's node.
fn start_dir(p: &Process, dirfd: u64) -> Result<NodeRef, Errno> {
    if dirfd as i32 == AT_FDCWD {
        return Ok(p.cwd.lock().clone());
    }
    let f = file(dirfd)?;
    Ok(f.node().clone())
}

/// Resolves (dirfd, path, follow) with AT_EMPTY_PATH handling.
fn resolve(
    p: &Process,
    dirfd: u64,
    path: &[u8],
    follow: bool,
    empty_ok: bool,
) -> Result<NodeRef, Errno> {
    if path.is_empty() {
        if !empty_ok {
            return Err(Errno::ENOENT);
        }
        return start_dir(p, dirfd);
    }
    let start = start_dir(p, dirfd)?;
    vfs().lookup(&Ctx::of(p), &start, path, follow)
}

fn send_sigpipe<T>(r: Result<T, Errno>) -> Result<T, Errno> {
    if r.as_ref().err() == Some(&Errno::EPIPE) {
        crate::signal::send_to_thread(&crate::process::current_arc(), SIGPIPE, None);
    }
    r
}

pub fn read(fd: u64, buf: u64, len: u64) -> SysResult {
    let f = file(fd)?;
    read_file(&f, buf, len.min(MAX_RW_COUNT), None)
}

/// Reads into user memory; `offset` for pread. Regular files are read until `len` or the end;
/// anything else returns after the first read that gets data (after blocking for it).
fn read_file(f: &OpenFile, buf: u64, len: u64, offset: Option<i64>) -> SysResult {
    if !f.is_readable() {
        return Err(Errno::EBADF);
    }
    if f.node().is_dir() {
        return Err(Errno::EISDIR);
    }
    if !uaccess::is_user_range(buf, len as usize) {
        return Err(Errno::EFAULT);
    }
    let regular = f.node().is_regular();
    if !regular && consumes_data(f) {
        uaccess::probe_writable(buf, len.min(CHUNK as u64) as usize)?;
    }
    let mut kbuf = alloc::vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(kbuf.len());
        let n = match offset {
            Some(off) => f.pread(&mut kbuf[..want], off + done as i64)?,
            // A regular file's offset moves by what reaches user memory, not by what was read.
            None if regular => {
                let n = f.pread(&mut kbuf[..want], f.position() as i64)?;
                let copied = copy_to_user_partial(buf + done, &kbuf[..n]);
                f.seek(copied as i64, SEEK_CUR)?;
                done += copied as u64;
                if copied < n {
                    return if done == 0 {
                        Err(Errno::EFAULT)
                    } else {
                        Ok(done)
                    };
                }
                if n < want {
                    break;
                }
                continue;
            }
            None if done == 0 => blocking(f, PollEvents::READABLE, || f.read(&mut kbuf[..want]))?,
            None => f.read(&mut kbuf[..want])?,
        };
        if n == 0 {
            break;
        }
        let copied = copy_to_user_partial(buf + done, &kbuf[..n]);
        done += copied as u64;
        if copied < n {
            return if done == 0 {
                Err(Errno::EFAULT)
            } else {
                Ok(done)
            };
        }
        if !regular || n < want {
            break;
        }
    }
    Ok(done)
}

pub fn write(fd: u64, buf: u64, len: u64) -> SysResult {
    let f = file(fd)?;
    send_sigpipe(write_file(&f, buf, len.min(MAX_RW_COUNT), None))
}

fn write_file(f: &OpenFile, buf: u64, len: u64, offset: Option<i64>) -> SysResult {
    if !f.is_writable() {
        return Err(Errno::EBADF);
    }
    if !uaccess::is_user_range(buf, len as usize) {
        return Err(Errno::EFAULT);
    }
    let mut kbuf = alloc::vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(kbuf.len());
        let got = copy_from_user_partial(&mut kbuf[..want], buf + done);
        // Pipes and terminals take a chunk whole or not at all (as Linux's pipe_write).
        if got == 0 || (got < want && consumes_data(f)) {
            return if done == 0 {
                Err(Errno::EFAULT)
            } else {
                Ok(done)
            };
        }
        let mut off = 0;
        while off < got {
            let r = match offset {
                Some(o) => f.pwrite(&kbuf[off..got], o + (done + off as u64) as i64),
                None => blocking(f, PollEvents::WRITABLE, || f.write(&kbuf[off..got])),
            };
            match r {
                Ok(n) => off += n,
                Err(e) if done + off as u64 > 0 && e != Errno::EFAULT => {
                    return Ok(done + off as u64)
                }
                Err(e) => return Err(e),
            }
        }
        done += got as u64;
        if got < want {
            return Ok(done);
        }
    }
    Ok(done)
}

/// Files whose data is gone once read (pipes, FIFOs, terminals), unlike regular files and
/// the memory devices.
fn consumes_data(f: &OpenFile) -> bool {
    f.node().file_type() == S_IFIFO || f.is_tty()
}

pub fn pread(fd: u64, buf: u64, len: u64, off: u64) -> SysResult {
    let f = file(fd)?;
    if (off as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    read_file(&f, buf, len.min(MAX_RW_COUNT), Some(off as i64))
}

pub fn pwrite(fd: u64, buf: u64, len: u64, off: u64) -> SysResult {
    let f = file(fd)?;
    if (off as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    send_sigpipe(write_file(&f, buf, len.min(MAX_RW_COUNT), Some(off as i64)))
}

fn read_iovecs(iov: u64, count: u64) -> Result<Vec<Iovec>, Errno> {
    if count > IOV_MAX as u64 {
        return Err(Errno::EINVAL);
    }
    let mut v = Vec::with_capacity(count as usize);
    let mut total: u64 = 0;
    for i in 0..count as usize {
        let e = UserPtr::<Iovec>::new(iov).add(i).read()?;
        total = total
            .checked_add(e.iov_len)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or(Errno::EINVAL)?;
        v.push(e);
    }
    Ok(v)
}

pub fn readv(fd: u64, iov: u64, count: u64) -> SysResult {
    let f = file(fd)?;
    each_iovec(iov, count, |base, len| read_file(&f, base, len, None))
}

pub fn writev(fd: u64, iov: u64, count: u64) -> SysResult {
    let f = file(fd)?;
    send_sigpipe(each_iovec(iov, count, |base, len| {
        write_file(&f, base, len, None)
    }))
}

/// readv/writev: `io(base, len)` for each buffer in turn, until one comes back short. An error
/// after some bytes moved is the count so far, as Linux; an error before any is the result.
fn each_iovec(iov: u64, count: u64, mut io: impl FnMut(u64, u64) -> SysResult) -> SysResult {
    let mut done = 0;
    for e in read_iovecs(iov, count)? {
        if e.iov_len == 0 {
            continue;
        }
        let n = match io(e.iov_base, e.iov_len.min(MAX_RW_COUNT)) {
            Ok(n) => n,
            Err(_) if done > 0 => return Ok(done),
            Err(e) => return Err(e),
        };
        done += n;
        if n < e.iov_len {
            break;
        }
    }
    Ok(done)
}

pub fn openat(dirfd: u64, path: u64, flags: u64, mode: u64) -> SysResult {
    crate::mm::heap::admit()?;
    let path = path_arg(path)?;
    let p = me();
    let start = if path.first() == Some(&b'/') {
        p.cwd.lock().clone()
    } else {
        start_dir(&p, dirfd)?
    };
    let f = vfs().open(&Ctx::of(&p), &start, &path, flags, (mode & 0o7777) as u32)?;
    if !f.is_path() {
        // Opening a FIFO without O_NONBLOCK waits for the other end.
        blocking(
            &f,
            PollEvents(PollEvents::READABLE.bits() | PollEvents::WRITABLE.bits()),
            || {
                if f.open_pending() {
                    Err(Errno::EAGAIN)
                } else {
                    Ok(())
                }
            },
        )?;
    }
    let fd = p.files().lock().insert(f, flags & O_CLOEXEC != 0)?;
    Ok(fd as u64)
}

pub fn close(fd: u64) -> SysResult {
    let fd = i32::try_from(fd as i64).map_err(|_| Errno::EBADF)?;
    current().process.files().lock().close(fd)?;
    Ok(0)
}

pub fn close_range(first: u64, last: u64, flags: u64) -> SysResult {
    current()
        .process
        .files()
        .lock()
        .close_range(first as u32, last as u32, flags)?;
    Ok(0)
}

pub fn fstat(fd: u64, buf: u64) -> SysResult {
    let f = file(fd)?;
    UserPtr::<Stat>::new(buf).write(&f.stat())?;
    Ok(0)
}

pub fn fstatat(dirfd: u64, path: u64, buf: u64, flags: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let p = me();
    let node = resolve(
        &p,
        dirfd,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    UserPtr::<Stat>::new(buf).write(&node.stat())?;
    Ok(0)
}

pub fn statx(dirfd: u64, path: u64, flags: u64, mask: u64, buf: u64) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
        || mask as u32 & STATX__RESERVED != 0
    {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let p = me();
    let node = resolve(
        &p,
        dirfd,
        &path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    UserPtr::<Statx>::new(buf).write(&node.statx(mask as u32)?)?;
    Ok(0)
}

pub fn lseek(fd: u64, off: u64, whence: u64) -> SysResult {
    file(fd)?.seek(off as i64, whence)
}

pub fn getdents64(fd: u64, buf: u64, len: u64) -> SysResult {
    let f = file(fd)?;
    let mut kbuf = alloc::vec![0u8; (len as usize).min(CHUNK)];
    let n = f.getdents64(&mut kbuf)?;
    uaccess::copy_to_user(buf, &kbuf[..n])?;
    Ok(n as u64)
}

const FIONCLEX: u64 = 0x5450;
const FIOCLEX: u64 = 0x5451;

pub fn ioctl(fd: u64, cmd: u64, arg: u64) -> SysResult {
    let f = file(fd)?;
    match cmd {
        FIOCLEX | FIONCLEX => {
            current()
                .process
                .files()
                .lock()
                .set_cloexec(fd as i32, cmd == FIOCLEX)?;
            Ok(0)
        }
        ktls_abi::tty::FIONREAD if !f.is_tty() => {
            let n = f.readable_bytes().ok_or(Errno::ENOTTY)?;
            UserPtr::<i32>::new(arg).write(&(n.min(i32::MAX as u64) as i32))?;
            Ok(0)
        }
        ktls_abi::tty::FIONBIO => {
            let on = UserPtr::<i32>::new(arg).read()? != 0;
            let flags = (f.flags() & !O_NONBLOCK) | if on { O_NONBLOCK } else { 0 };
            f.set_status_flags(&Ctx::of(&me()), flags)?;
            Ok(0)
        }
        _ => f.ioctl(cmd, arg),
    }
}

pub fn faccessat(dirfd: u64, path: u64, mode: u64, flags: u64) -> SysResult {
    if mode & !(R_OK | W_OK | X_OK) != 0
        || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0
    {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let p = me();
    let mut ctx = Ctx::of(&p);
    if flags & AT_EACCESS == 0 {
        // access(2) checks with the real ids.
        ctx.creds.fsuid = ctx.creds.uid;
        ctx.creds.fsgid = ctx.creds.gid;
    }
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        start_dir(&p, dirfd)?.access(&ctx, mode)?;
        return Ok(0);
    }
    let start = start_dir(&p, dirfd)?;
    vfs().access(&ctx, &start, &path, mode, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(0)
}

pub fn pipe2(fds: u64, flags: u64) -> SysResult {
    crate::mm::heap::admit()?;
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = me();
    let (r, w) = vfs().pipe(&Ctx::of(&p), flags)?;
    let files = p.files();
    let mut files = files.lock();
    let cloexec = flags & O_CLOEXEC != 0;
    let rfd = files.insert(r, cloexec)?;
    let wfd = match files.insert(w, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = files.close(rfd);
            return Err(e);
        }
    };
    if let Err(e) = uaccess::copy_to_user(fds, &[rfd.to_le_bytes(), wfd.to_le_bytes()].concat()) {
        let _ = files.close(rfd);
        let _ = files.close(wfd);
        return Err(e);
    }
    Ok(0)
}

pub fn dup(fd: u64) -> SysResult {
    crate::mm::heap::admit()?;
    Ok(current().process.files().lock().dup(fd as i32)? as u64)
}

pub fn dup2(old: u64, new: u64) -> SysResult {
    crate::mm::heap::admit()?;
    Ok(current()
        .process
        .files()
        .lock()
        .dup2(old as i32, new as i32)? as u64)
}

pub fn dup3(old: u64, new: u64, flags: u64) -> SysResult {
    crate::mm::heap::admit()?;
    Ok(current()
        .process
        .files()
        .lock()
        .dup3(old as i32, new as i32, flags)? as u64)
}

const F_GETPIPE_SZ: u64 = 1032;

pub fn fcntl(fd: u64, cmd: u64, arg: u64) -> SysResult {
    let p = me();
    let f = file(fd)?;
    let files = p.files();
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            crate::mm::heap::admit()?;
            let min = i32::try_from(arg as i64).map_err(|_| Errno::EINVAL)?;
            Ok(files
                .lock()
                .dup_min(fd as i32, min, cmd == F_DUPFD_CLOEXEC)? as u64)
        }
        F_GETFD => Ok(files.lock().cloexec(fd as i32)? as u64),
        F_SETFD => {
            files.lock().set_cloexec(fd as i32, arg & FD_CLOEXEC != 0)?;
            Ok(0)
        }
        F_GETFL => Ok(f.flags()),
        F_SETFL => {
            f.set_status_flags(&Ctx::of(&p), arg)?;
            Ok(0)
        }
        F_GETPIPE_SZ if f.node().file_type() == S_IFIFO => Ok(ktls_vfs::PIPE_CAPACITY as u64),
        F_GETLK | F_SETLK | F_SETLKW => super::unimplemented_op("fcntl record locks", cmd),
        _ => Err(Errno::EINVAL),
    }
}

pub fn ftruncate(fd: u64, len: u64) -> SysResult {
    let f = file(fd)?;
    if !f.is_writable() {
        return Err(Errno::EINVAL);
    }
    f.truncate(len as i64)?;
    Ok(0)
}

pub fn truncate(path: u64, len: u64) -> SysResult {
    let path = path_arg(path)?;
    let p = me();
    let cwd = p.cwd.lock().clone();
    vfs().truncate(&Ctx::of(&p), &cwd, &path, len as i64)?;
    Ok(0)
}

pub fn getcwd(buf: u64, size: u64) -> SysResult {
    let cwd = current().process.cwd.lock().clone();
    let mut path = vfs().path_of(&cwd)?;
    path.push(0);
    if (size as usize) < path.len() {
        return Err(Errno::ERANGE);
    }
    uaccess::copy_to_user(buf, &path)?;
    Ok(path.len() as u64)
}

pub fn chdir(path: u64) -> SysResult {
    let path = path_arg(path)?;
    let p = me();
    let start = p.cwd.lock().clone();
    let dir = vfs().lookup_dir(&Ctx::of(&p), &start, &path)?;
    dir.access(&Ctx::of(&p), X_OK)?;
    *p.cwd.lock() = dir;
    Ok(0)
}

pub fn fchdir(fd: u64) -> SysResult {
    let f = file(fd)?;
    let node = f.node().clone();
    if !node.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let p = me();
    node.access(&Ctx::of(&p), X_OK)?;
    *p.cwd.lock() = node;
    Ok(0)
}

pub fn mkdirat(dirfd: u64, path: u64, mode: u64) -> SysResult {
    crate::mm::heap::admit()?;
    let path = path_arg(path)?;
    let p = me();
    let start = start_dir(&p, dirfd)?;
    vfs().mkdir(&Ctx::of(&p), &start, &path, (mode & 0o7777) as u32)?;
    Ok(0)
}

pub fn unlinkat(dirfd: u64, path: u64, flags: u64) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let p = me();
    let start = start_dir(&p, dirfd)?;
    if flags & AT_REMOVEDIR != 0 {
        vfs().rmdir(&Ctx::of(&p), &start, &path)?;
    } else {
        vfs().unlink(&Ctx::of(&p), &start, &path)?;
    }
    Ok(0)
}

pub fn renameat(olddir: u64, old: u64, newdir: u64, new: u64) -> SysResult {
    renameat2(olddir, old, newdir, new, 0)
}

pub fn renameat2(olddir: u64, old: u64, newdir: u64, new: u64, flags: u64) -> SysResult {
    crate::mm::heap::admit()?;
    let (old, new) = (path_arg(old)?, path_arg(new)?);
    let p = me();
    let (os, ns) = (start_dir(&p, olddir)?, start_dir(&p, newdir)?);
    vfs().rename(&Ctx::of(&p), &os, &old, &ns, &new, flags)?;
    Ok(0)
}

pub fn symlinkat(target: u64, newdir: u64, path: u64) -> SysResult {
    crate::mm::heap::admit()?;
    let (target, path) = (path_arg(target)?, path_arg(path)?);
    let p = me();
    let start = start_dir(&p, newdir)?;
    vfs().symlink(&Ctx::of(&p), &target, &start, &path)?;
    Ok(0)
}

pub fn readlinkat(dirfd: u64, path: u64, buf: u64, size: u64) -> SysResult {
    if size as i64 <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(path)?;
    let p = me();
    let start = start_dir(&p, dirfd)?;
    let target = vfs().readlink(&Ctx::of(&p), &start, &path)?;
    let n = target.len().min(size as usize);
    uaccess::copy_to_user(buf, &target[..n])?;
    Ok(n as u64)
}

/// The revents of every pollfd; returns how many are nonzero.
fn poll_once(fds: &mut [PollFd]) -> usize {
    let files = current().process.files();
    let files = files.lock();
    let mut ready = 0;
    for pfd in fds.iter_mut() {
        pfd.revents = 0;
        if pfd.fd < 0 {
            continue;
        }
        let ev = match files.get(pfd.fd) {
            Ok(f) => {
                let always =
                    PollEvents::ERR.bits() | PollEvents::HUP.bits() | PollEvents::NVAL.bits();
                f.poll().bits() & (pfd.events | always)
            }
            Err(_) => PollEvents::NVAL.bits(),
        };
        pfd.revents = ev;
        if ev != 0 {
            ready += 1;
        }
    }
    ready
}

/// Waits until some of `fds` is ready, the deadline passes or a signal arrives; returns the
/// number of ready entries (their revents set). Steps of 10 ms: files give no common wait key.
fn poll_wait(fds: &mut [PollFd], deadline: Option<u64>) -> Result<usize, Errno> {
    let t = current();
    loop {
        let ready = poll_once(fds);
        let now = crate::time::monotonic_ns();
        if ready > 0 || deadline.is_some_and(|d| now >= d) {
            return Ok(ready);
        }
        if crate::signal::pending(t) {
            return Err(Errno::ERESTARTNOHAND);
        }
        let step = now + 10_000_000;
        crate::sched::sleep_unless(Some(deadline.map_or(step, |d| d.min(step))), || {
            crate::signal::pending(t)
        });
    }
}

/// poll/ppoll: copies the pollfds in, waits, copies the results out.
fn do_poll(fds_ptr: u64, nfds: u64, deadline: Option<u64>) -> SysResult {
    let limit = current().process.files().lock().limit() as u64;
    if nfds > limit {
        return Err(Errno::EINVAL);
    }
    let mut fds = alloc::vec![PollFd::default(); nfds as usize];
    for (i, pfd) in fds.iter_mut().enumerate() {
        *pfd = UserPtr::<PollFd>::new(fds_ptr).add(i).read()?;
    }
    let ready = poll_wait(&mut fds, deadline)?;
    for (i, pfd) in fds.iter().enumerate() {
        UserPtr::<PollFd>::new(fds_ptr).add(i).write(pfd)?;
    }
    Ok(ready as u64)
}

/// select/pselect6: fd_sets turned into pollfds (read: POLLIN, write: POLLOUT, except:
/// POLLPRI), and the answer written back as fd_sets; EBADF for a closed fd in any set.
fn do_select(nfds: u64, r: u64, w: u64, e: u64, deadline: Option<u64>) -> SysResult {
    let limit = current().process.files().lock().limit() as u64;
    let nfds = nfds.min(limit) as usize;
    let words = nfds.div_ceil(64);
    let read_set = |p: u64| -> Result<Vec<u64>, Errno> {
        let mut v = alloc::vec![0u64; words];
        if p != 0 {
            for (i, w) in v.iter_mut().enumerate() {
                *w = UserPtr::<u64>::new(p).add(i).read()?;
            }
        }
        Ok(v)
    };
    let (rs, ws, es) = (read_set(r)?, read_set(w)?, read_set(e)?);
    let bit = |set: &[u64], fd: usize| set[fd / 64] & (1 << (fd % 64)) != 0;
    let mut fds = Vec::new();
    for fd in 0..nfds {
        let mut events = 0;
        if bit(&rs, fd) {
            events |= PollEvents::READABLE.bits();
        }
        if bit(&ws, fd) {
            events |= PollEvents::WRITABLE.bits();
        }
        if bit(&es, fd) {
            events |= PollEvents::PRI.bits();
        }
        if events != 0 {
            file(fd as u64)?;
            fds.push(PollFd {
                fd: fd as i32,
                events,
                revents: 0,
            });
        }
    }
    poll_wait(&mut fds, deadline)?;
    let (mut ro, mut wo, mut eo) = (
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
        alloc::vec![0u64; words],
    );
    let mut count = 0;
    let err = PollEvents::ERR.bits() | PollEvents::HUP.bits();
    for pfd in &fds {
        let fd = pfd.fd as usize;
        let rev = pfd.revents;
        for (set, out, mask) in [
            (&rs, &mut ro, PollEvents::READABLE.bits() | err),
            (
                &ws,
                &mut wo,
                PollEvents::WRITABLE.bits() | PollEvents::ERR.bits(),
            ),
            (&es, &mut eo, PollEvents::PRI.bits()),
        ] {
            if bit(set, fd) && rev & mask != 0 {
                out[fd / 64] |= 1 << (fd % 64);
                count += 1;
            }
        }
    }
    for (p, out) in [(r, &ro), (w, &wo), (e, &eo)] {
        if p != 0 {
            for (i, v) in out.iter().enumerate() {
                UserPtr::<u64>::new(p).add(i).write(v)?;
            }
        }
    }
    Ok(count)
}

pub fn select(nfds: u64, r: u64, w: u64, e: u64, tv: u64, _unused: Option<()>) -> SysResult {
    if (nfds as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = if tv != 0 {
        let t = UserPtr::<ktls_abi::time::Timeval>::new(tv).read()?;
        if t.tv_sec < 0 || !(0..1_000_000).contains(&t.tv_usec) {
            return Err(Errno::EINVAL);
        }
        Some(
            crate::time::monotonic_ns() + t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000,
        )
    } else {
        None
    };
    do_select(nfds, r, w, e, deadline)
}

pub fn pselect6(nfds: u64, r: u64, w: u64, e: u64, ts: u64, sig: u64) -> SysResult {
    if (nfds as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = if ts != 0 {
        let t = UserPtr::<Timespec>::new(ts).read()?;
        if !t.is_valid() {
            return Err(Errno::EINVAL);
        }
        Some(crate::time::monotonic_ns().saturating_add(t.to_nanos()))
    } else {
        None
    };
    if sig != 0 {
        // struct { const sigset_t *ss; size_t ss_len; }
        let ss = UserPtr::<u64>::new(sig).read()?;
        let len = UserPtr::<u64>::new(sig + 8).read()?;
        if ss != 0 {
            if len as usize != SIGSET_SIZE {
                return Err(Errno::EINVAL);
            }
            let mask = UserPtr::<SigSet>::new(ss).read()? & !UNBLOCKABLE;
            let t = current();
            let old = t.sigmask.swap(mask, Relaxed);
            crate::signal::set_restore_mask(t, old);
        }
    }
    do_select(nfds, r, w, e, deadline)
}

pub fn poll(fds: u64, nfds: u64, timeout_ms: i64) -> SysResult {
    let deadline =
        (timeout_ms >= 0).then(|| crate::time::monotonic_ns() + timeout_ms as u64 * 1_000_000);
    do_poll(fds, nfds, deadline)
}

pub fn ppoll(fds: u64, nfds: u64, tsp: u64, sigmask: u64, sigsetsize: u64) -> SysResult {
    let deadline = if tsp != 0 {
        let ts = UserPtr::<Timespec>::new(tsp).read()?;
        if !ts.is_valid() {
            return Err(Errno::EINVAL);
        }
        Some(crate::time::monotonic_ns().saturating_add(ts.to_nanos()))
    } else {
        None
    };
    if sigmask != 0 {
        if sigsetsize as usize != SIGSET_SIZE {
            return Err(Errno::EINVAL);
        }
        let mask = UserPtr::<SigSet>::new(sigmask).read()? & !UNBLOCKABLE;
        let t = current();
        let old = t.sigmask.swap(mask, Relaxed);
        crate::signal::set_restore_mask(t, old);
    }
    do_poll(fds, nfds, deadline)
}

/// The contents of `fd` for a private (or read-only shared) file mapping, with mmap's checks.
pub fn mappable_file(fd: u64, prot: u64, flags: u64) -> Result<FileBytes, Errno> {
    use ktls_abi::mm::{MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE, PROT_WRITE};
    let f = file(fd)?;
    let node = f.node().clone();
    if !node.is_regular() {
        return Err(Errno::ENODEV);
    }
    if !f.is_readable() {
        return Err(Errno::EACCES);
    }
    let shared = matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE);
    if shared && prot & PROT_WRITE != 0 {
        if !f.is_writable() {
            return Err(Errno::EACCES);
        }
        // Writable shared file mappings would need the page cache this kernel does not have.
        return Err(Errno::ENODEV);
    }
    crate::fs::file_bytes(&node)
}
