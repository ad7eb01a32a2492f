//! open() semantics and open file descriptions: read, write, seek, pread/pwrite, truncate,
//! flags, access checks.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{Errno, PollEvents, MAX_FILE_SIZE};

#[test]
fn read_static_file_and_offset() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(f.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(f.position(), 5);
    let mut rest = [0u8; 100];
    assert_eq!(f.read(&mut rest).unwrap(), HELLO.len() - 5);
    assert_eq!(f.read(&mut rest).unwrap(), 0, "EOF");
    // The data is borrowed from the image, not copied.
    let node = e.lookup("/bin/hello").unwrap();
    assert_eq!(node.static_data().unwrap().as_ptr(), HELLO.as_ptr());
}

#[test]
fn access_mode_is_enforced_on_the_description() {
    let e = env();
    let r = e.open("/tmp", O_RDONLY | O_DIRECTORY).unwrap();
    assert_eq!(r.write(b"x").unwrap_err(), Errno::EBADF);
    e.write_file("/tmp/f", b"data");
    let w = e.open("/tmp/f", O_WRONLY).unwrap();
    assert_eq!(w.read(&mut [0; 4]).unwrap_err(), Errno::EBADF);
    assert_eq!(w.pread(&mut [0; 4], 0).unwrap_err(), Errno::EBADF);
    let r = e.open("/tmp/f", O_RDONLY).unwrap();
    assert_eq!(r.write(b"x").unwrap_err(), Errno::EBADF);
    assert_eq!(r.pwrite(b"x", 0).unwrap_err(), Errno::EBADF);
    let rw = e.open("/tmp/f", O_RDWR).unwrap();
    assert_eq!(rw.write(b"D").unwrap(), 1);
    assert_eq!(read_all(&rw), b"ata");
    assert_eq!(e.read_file("/tmp/f"), b"Data");
}

#[test]
fn directories_cannot_be_opened_for_writing_or_read() {
    let e = env();
    assert_eq!(e.open("/tmp", O_WRONLY).unwrap_err(), Errno::EISDIR);
    assert_eq!(e.open("/tmp", O_RDWR).unwrap_err(), Errno::EISDIR);
    assert_eq!(
        e.open("/tmp", O_RDONLY | O_TRUNC).unwrap_err(),
        Errno::EISDIR
    );
    assert_eq!(
        e.open("/tmp", O_RDONLY | O_CREAT).unwrap_err(),
        Errno::EISDIR
    );
    let d = e.open("/tmp", O_RDONLY).unwrap();
    assert_eq!(d.read(&mut [0; 8]).unwrap_err(), Errno::EISDIR);
    assert_eq!(d.pread(&mut [0; 8], 0).unwrap_err(), Errno::EISDIR);
}

#[test]
fn erofs_outside_tmpfs() {
    let e = env();
    assert_eq!(e.open("/bin/hello", O_WRONLY).unwrap_err(), Errno::EROFS);
    assert_eq!(e.open("/bin/hello", O_RDWR).unwrap_err(), Errno::EROFS);
    assert_eq!(
        e.open("/bin/hello", O_RDONLY | O_TRUNC).unwrap_err(),
        Errno::EROFS
    );
    assert_eq!(
        e.open("/bin/new", O_WRONLY | O_CREAT).unwrap_err(),
        Errno::EROFS
    );
    // Existing file with O_CREAT (no write) is fine on a read-only file system.
    assert!(e.open("/bin/hello", O_RDONLY | O_CREAT).is_ok());
    // O_EXCL on an existing file: EEXIST wins over EROFS.
    assert_eq!(
        e.open("/bin/hello", O_RDONLY | O_CREAT | O_EXCL)
            .unwrap_err(),
        Errno::EEXIST
    );
    // Devices on a read-only file system can still be written (Linux checks only files,
    // directories and symlinks).
    let w = e.open("/dev/null", O_WRONLY).unwrap();
    assert_eq!(w.write(b"abc").unwrap(), 3);
}

#[test]
fn create_excl_trunc() {
    let e = env();
    let ctx = user(1000, 1000);
    let f = e
        .vfs
        .open(
            &ctx,
            e.root(),
            b"/tmp/new",
            O_RDWR | O_CREAT | O_EXCL,
            0o666,
        )
        .unwrap();
    let st = f.stat();
    assert_eq!(st.st_mode, S_IFREG | 0o644, "umask 022 applied");
    assert_eq!((st.st_uid, st.st_gid), (1000, 1000));
    assert_eq!(st.st_nlink, 1);
    f.write(b"hello").unwrap();
    assert_eq!(
        e.vfs
            .open(
                &ctx,
                e.root(),
                b"/tmp/new",
                O_RDWR | O_CREAT | O_EXCL,
                0o666
            )
            .unwrap_err(),
        Errno::EEXIST
    );
    // O_CREAT without O_EXCL opens the existing file and keeps its mode.
    let g = e
        .vfs
        .open(&ctx, e.root(), b"/tmp/new", O_RDONLY | O_CREAT, 0o600)
        .unwrap();
    assert!(Arc::ptr_eq(f.node(), g.node()));
    assert_eq!(g.stat().st_mode, S_IFREG | 0o644);
    assert_eq!(read_all(&g), b"hello");
    // O_TRUNC empties it; O_RDONLY|O_TRUNC too (as Linux).
    e.open("/tmp/new", O_RDONLY | O_TRUNC).unwrap();
    assert_eq!(f.node().size(), 0);
    // A read-only mode on a new file does not stop the creating open from writing.
    let h = e
        .vfs
        .open(
            &ctx,
            e.root(),
            b"/tmp/ro",
            O_WRONLY | O_CREAT | O_TRUNC,
            0o444,
        )
        .unwrap();
    assert_eq!(h.write(b"x").unwrap(), 1);
    // ... but the next open for writing is refused for a non-root user.
    assert_eq!(
        e.vfs
            .open(&ctx, e.root(), b"/tmp/ro", O_WRONLY, 0)
            .unwrap_err(),
        Errno::EACCES
    );
    // Trailing slash with O_CREAT.
    assert_eq!(
        e.open("/tmp/x/", O_RDWR | O_CREAT).unwrap_err(),
        Errno::EISDIR
    );
    // O_CREAT | O_DIRECTORY is EINVAL.
    assert_eq!(
        e.open("/tmp/y", O_RDWR | O_CREAT | O_DIRECTORY)
            .unwrap_err(),
        Errno::EINVAL
    );
    // Missing parent.
    assert_eq!(
        e.open("/tmp/no/x", O_RDWR | O_CREAT).unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(e.open("/tmp/nofile", O_RDONLY).unwrap_err(), Errno::ENOENT);
}

#[test]
fn create_through_a_dangling_symlink() {
    let e = env();
    let ctx = root();
    e.vfs
        .symlink(&ctx, b"target", e.root(), b"/tmp/link")
        .unwrap();
    // O_EXCL refuses even a dangling link.
    assert_eq!(
        e.open("/tmp/link", O_WRONLY | O_CREAT | O_EXCL)
            .unwrap_err(),
        Errno::EEXIST
    );
    // O_NOFOLLOW: the link itself, ELOOP.
    assert_eq!(
        e.open("/tmp/link", O_WRONLY | O_CREAT | O_NOFOLLOW)
            .unwrap_err(),
        Errno::ELOOP
    );
    let f = e.open("/tmp/link", O_WRONLY | O_CREAT).unwrap();
    f.write(b"via link").unwrap();
    assert_eq!(e.read_file("/tmp/target"), b"via link");
}

#[test]
fn directory_nofollow_path_flags() {
    let e = env();
    assert_eq!(
        e.open("/bin/hello", O_RDONLY | O_DIRECTORY).unwrap_err(),
        Errno::ENOTDIR
    );
    assert!(e.open("/usrlink", O_RDONLY | O_DIRECTORY).is_ok());
    assert_eq!(
        e.open("/link_to_hello", O_RDONLY | O_NOFOLLOW).unwrap_err(),
        Errno::ELOOP
    );
    // O_NOFOLLOW only concerns the last component.
    assert!(e
        .open("/usrlink/lib/libc.so", O_RDONLY | O_NOFOLLOW)
        .is_ok());

    // O_PATH: no permission needed on the file, no I/O, usable for fstat.
    let secret = e
        .open_as(&user(2000, 2000), "/etc/secret", O_PATH | O_RDWR)
        .unwrap();
    assert!(secret.is_path());
    assert_eq!(secret.flags(), O_PATH);
    assert_eq!(secret.read(&mut [0; 4]).unwrap_err(), Errno::EBADF);
    assert_eq!(secret.write(b"x").unwrap_err(), Errno::EBADF);
    assert_eq!(secret.seek(0, SEEK_SET).unwrap_err(), Errno::EBADF);
    assert_eq!(secret.getdents64(&mut [0; 64]).unwrap_err(), Errno::EBADF);
    assert_eq!(secret.truncate(0).unwrap_err(), Errno::EBADF);
    assert_eq!(secret.ioctl(0x5401, 0).unwrap_err(), Errno::EBADF);
    assert_eq!(
        secret.set_status_flags(&root(), O_NONBLOCK).unwrap_err(),
        Errno::EBADF
    );
    assert_eq!(secret.poll(), PollEvents::NVAL);
    assert_eq!(secret.stat().st_size, 6);
    // O_PATH | O_NOFOLLOW on a symlink refers to the link.
    let l = e.open("/link_to_hello", O_PATH | O_NOFOLLOW).unwrap();
    assert_eq!(l.node().file_type(), S_IFLNK);
    assert_eq!(l.node().readlink(&root()).unwrap(), b"/bin/hello");
    assert_eq!(
        e.open("/bin/hello", O_PATH | O_DIRECTORY).unwrap_err(),
        Errno::ENOTDIR
    );
    // A FIFO opened O_PATH does not count as a reader or writer.
    e.vfs
        .mknod(&root(), e.root(), b"/tmp/fifo", S_IFIFO | 0o644, 0)
        .unwrap();
    let _p = e.open("/tmp/fifo", O_PATH).unwrap();
    assert_eq!(
        e.open("/tmp/fifo", O_WRONLY | O_NONBLOCK).unwrap_err(),
        Errno::ENXIO
    );
}

#[test]
fn tmpfile() {
    let e = env();
    assert_eq!(
        e.open("/tmp", O_TMPFILE | O_RDONLY).unwrap_err(),
        Errno::EINVAL
    );
    let tmpfile_bit = O_TMPFILE & !O_DIRECTORY;
    assert_eq!(
        e.open("/tmp", tmpfile_bit | O_RDWR).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.open("/tmp", O_TMPFILE | O_CREAT | O_RDWR).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.open("/bin", O_TMPFILE | O_RDWR).unwrap_err(),
        Errno::EROFS
    );
    assert_eq!(
        e.open("/proc", O_TMPFILE | O_RDWR).unwrap_err(),
        Errno::EOPNOTSUPP
    );
    assert_eq!(
        e.open("/tmp/nope", O_TMPFILE | O_RDWR).unwrap_err(),
        Errno::ENOENT
    );
    let f = e.open("/tmp", O_TMPFILE | O_RDWR).unwrap();
    assert_eq!(f.stat().st_nlink, 0);
    f.write(b"anon").unwrap();
    // It can be given a name (linkat with AT_EMPTY_PATH).
    e.vfs
        .link_node(&root(), f.node(), e.root(), b"/tmp/named")
        .unwrap();
    assert_eq!(e.read_file("/tmp/named"), b"anon");
    assert_eq!(f.stat().st_nlink, 1);
    // With O_EXCL it cannot.
    let g = e.open("/tmp", O_TMPFILE | O_RDWR | O_EXCL).unwrap();
    assert_eq!(
        e.vfs
            .link_node(&root(), g.node(), e.root(), b"/tmp/named2")
            .unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn permission_checks_use_the_callers_ids() {
    let e = env();
    let owner = user(1000, 1000);
    let group = Ctx {
        groups: vec![50],
        ..user(3000, 3000)
    };
    let other = user(2000, 2000);
    let f = e
        .vfs
        .open(&owner, e.root(), b"/tmp/f", O_WRONLY | O_CREAT, 0o640)
        .unwrap();
    f.node().chown(&root(), None, Some(50)).unwrap();
    // Owner: rw-, group: r--, other: ---.
    assert!(e.open_as(&owner, "/tmp/f", O_RDWR).is_ok());
    assert!(e.open_as(&group, "/tmp/f", O_RDONLY).is_ok());
    assert_eq!(
        e.open_as(&group, "/tmp/f", O_WRONLY).unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.open_as(&other, "/tmp/f", O_RDONLY).unwrap_err(),
        Errno::EACCES
    );
    // Root reads and writes anything.
    assert!(e.open_as(&root(), "/tmp/f", O_RDWR).is_ok());
    assert!(e.open_as(&root(), "/etc/secret", O_RDONLY).is_ok());
    assert_eq!(
        e.open_as(&other, "/etc/secret", O_RDONLY).unwrap_err(),
        Errno::EACCES
    );
    // The owner's bits apply to the owner even if "other" has more.
    f.node().chmod(&owner, 0o047).unwrap();
    assert_eq!(
        e.open_as(&owner, "/tmp/f", O_RDONLY).unwrap_err(),
        Errno::EACCES
    );
    assert!(e.open_as(&other, "/tmp/f", O_RDWR).is_ok());
}

#[test]
fn access_checks() {
    let e = env();
    let ctx = root();
    let other = user(2000, 2000);
    let a = |c: &Ctx, p: &str, m| e.vfs.access(c, e.root(), p.as_bytes(), m, true);
    assert!(a(&ctx, "/bin/hello", F_OK).is_ok());
    assert!(a(&ctx, "/bin/hello", R_OK | X_OK).is_ok());
    assert_eq!(a(&ctx, "/bin/hello", W_OK).unwrap_err(), Errno::EROFS);
    // Root needs some x bit to execute.
    assert_eq!(a(&ctx, "/etc/noexec", X_OK).unwrap_err(), Errno::EACCES);
    assert!(a(&ctx, "/etc", X_OK).is_ok());
    assert_eq!(a(&other, "/etc/secret", R_OK).unwrap_err(), Errno::EACCES);
    assert!(a(&other, "/etc/passwd", R_OK).is_ok());
    assert_eq!(a(&ctx, "/nope", F_OK).unwrap_err(), Errno::ENOENT);
    assert_eq!(a(&ctx, "/bin/hello", 8).unwrap_err(), Errno::EINVAL);
    assert_eq!(a(&ctx, "/dangling", F_OK).unwrap_err(), Errno::ENOENT);
    assert!(e
        .vfs
        .access(&ctx, e.root(), b"/dangling", F_OK, false)
        .is_ok());
    assert!(a(&ctx, "/tmp", W_OK).is_ok());
}

#[test]
fn write_append_and_sparse() {
    let e = env();
    let f = e.open("/tmp/f", O_RDWR | O_CREAT).unwrap();
    assert_eq!(f.write(b"abc").unwrap(), 3);
    let a = e.open("/tmp/f", O_WRONLY | O_APPEND).unwrap();
    assert_eq!(a.write(b"def").unwrap(), 3);
    // Another description's write at its own offset overwrites.
    assert_eq!(f.write(b"XY").unwrap(), 2);
    assert_eq!(e.read_file("/tmp/f"), b"abcXYf");
    // O_APPEND always writes at the end, even with pwrite (Linux).
    a.seek(0, SEEK_SET).unwrap();
    a.write(b"!").unwrap();
    a.pwrite(b"?", 0).unwrap();
    assert_eq!(e.read_file("/tmp/f"), b"abcXYf!?");
    assert_eq!(a.position(), 7, "pwrite leaves the offset alone");
    // Writing past the end fills the gap with zeros.
    f.seek(10, SEEK_SET).unwrap();
    f.write(b"Z").unwrap();
    assert_eq!(e.read_file("/tmp/f"), b"abcXYf!?\0\0Z");
    assert_eq!(f.write(b"").unwrap(), 0);
    // EFBIG at the maximum size.
    assert_eq!(
        f.pwrite(b"x", MAX_FILE_SIZE as i64).unwrap_err(),
        Errno::EFBIG
    );
}

#[test]
fn written_static_file_is_copied_not_changed() {
    // A file borrowing static data on a writable file system becomes owned at the first
    // write; the image itself is untouched.
    let e = env();
    static DATA: &[u8] = b"original";
    let n = e
        .vfs
        .create_node(
            &e.tmp,
            b"s",
            ktls_vfs::NewNode::StaticFile(DATA),
            0o644,
            0,
            0,
        )
        .unwrap();
    assert!(n.static_data().is_some());
    let f = e.open("/tmp/s", O_RDWR).unwrap();
    f.write(b"O").unwrap();
    assert!(n.static_data().is_none());
    assert_eq!(e.read_file("/tmp/s"), b"Original");
    assert_eq!(DATA, b"original");
}

#[test]
fn seek_rules() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    let size = HELLO.len() as u64;
    assert_eq!(f.seek(3, SEEK_SET).unwrap(), 3);
    assert_eq!(f.seek(2, SEEK_CUR).unwrap(), 5);
    assert_eq!(f.seek(-1, SEEK_CUR).unwrap(), 4);
    assert_eq!(f.seek(0, SEEK_END).unwrap(), size);
    assert_eq!(f.seek(-2, SEEK_END).unwrap(), size - 2);
    assert_eq!(
        f.seek(100, SEEK_END).unwrap(),
        size + 100,
        "past the end is fine"
    );
    assert_eq!(f.read(&mut [0; 4]).unwrap(), 0);
    assert_eq!(f.seek(-1, SEEK_SET).unwrap_err(), Errno::EINVAL);
    assert_eq!(
        f.seek(-(size as i64) - 101, SEEK_CUR).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        f.seek(-(size as i64) - 1, SEEK_END).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(f.seek(0, 5).unwrap_err(), Errno::EINVAL);
    assert_eq!(f.seek(i64::MAX, SEEK_SET).unwrap(), i64::MAX as u64);
    assert_eq!(f.seek(1, SEEK_CUR).unwrap_err(), Errno::EINVAL, "overflow");
    // A failed seek keeps the offset.
    assert_eq!(f.position(), i64::MAX as u64);
    assert_eq!(f.seek(2, SEEK_DATA).unwrap(), 2);
    assert_eq!(f.seek(2, SEEK_HOLE).unwrap(), size);
    assert_eq!(f.seek(size as i64, SEEK_DATA).unwrap_err(), Errno::ENXIO);
    assert_eq!(f.seek(size as i64, SEEK_HOLE).unwrap_err(), Errno::ENXIO);
    // Directories: SEEK_END is EINVAL.
    let d = e.open("/bin", O_RDONLY).unwrap();
    assert_eq!(d.seek(0, SEEK_END).unwrap_err(), Errno::EINVAL);
    assert_eq!(d.seek(1, SEEK_SET).unwrap(), 1);
    // Pipes and terminals: ESPIPE. (The pipe case is in the pipe tests.)
    let n = e.open("/dev/null", O_RDWR).unwrap();
    assert_eq!(n.seek(100, SEEK_SET).unwrap(), 0, "null_lseek");
}

#[test]
fn pread_pwrite() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(f.pread(&mut buf, 6).unwrap(), 5);
    assert_eq!(&buf, b"world");
    assert_eq!(f.position(), 0);
    assert_eq!(f.pread(&mut buf, 1000).unwrap(), 0);
    assert_eq!(f.pread(&mut buf, -1).unwrap_err(), Errno::EINVAL);
    let g = e.open("/tmp/g", O_RDWR | O_CREAT).unwrap();
    assert_eq!(g.pwrite(b"xyz", 2).unwrap(), 3);
    assert_eq!(g.position(), 0);
    assert_eq!(read_all(&g), b"\0\0xyz");
    assert_eq!(g.pwrite(b"xyz", -5).unwrap_err(), Errno::EINVAL);
}

#[test]
fn offset_is_shared_between_holders_of_one_description() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    let dup = f.clone();
    let mut buf = [0u8; 6];
    f.read(&mut buf).unwrap();
    dup.read(&mut buf).unwrap();
    assert_eq!(&buf[..5], b"world");
    // A separate open has its own offset.
    let other = e.open("/bin/hello", O_RDONLY).unwrap();
    assert_eq!(other.position(), 0);
}

#[test]
fn truncate_rules() {
    let e = env();
    e.write_file("/tmp/t", b"0123456789");
    let f = e.open("/tmp/t", O_RDWR).unwrap();
    f.truncate(4).unwrap();
    assert_eq!(e.read_file("/tmp/t"), b"0123");
    f.truncate(6).unwrap();
    assert_eq!(e.read_file("/tmp/t"), b"0123\0\0");
    assert_eq!(f.truncate(-1).unwrap_err(), Errno::EINVAL);
    let r = e.open("/tmp/t", O_RDONLY).unwrap();
    assert_eq!(r.truncate(0).unwrap_err(), Errno::EINVAL);
    let d = e.open("/tmp", O_RDONLY).unwrap();
    assert_eq!(d.truncate(0).unwrap_err(), Errno::EINVAL);
    let n = e.open("/dev/null", O_RDWR).unwrap();
    assert_eq!(n.truncate(0).unwrap_err(), Errno::EINVAL);
    // By path.
    let ctx = root();
    e.vfs.truncate(&ctx, e.root(), b"/tmp/t", 1).unwrap();
    assert_eq!(e.read_file("/tmp/t"), b"0");
    assert_eq!(
        e.vfs.truncate(&ctx, e.root(), b"/tmp", 0).unwrap_err(),
        Errno::EISDIR
    );
    assert_eq!(
        e.vfs
            .truncate(&ctx, e.root(), b"/bin/hello", 0)
            .unwrap_err(),
        Errno::EROFS
    );
    assert_eq!(
        e.vfs.truncate(&ctx, e.root(), b"/dev/null", 0).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.vfs.truncate(&ctx, e.root(), b"/tmp/t", -1).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.vfs
            .truncate(&user(2000, 2000), e.root(), b"/tmp/t", 0)
            .unwrap_err(),
        Errno::EACCES
    );
    // Shrinking a static file on a writable file system needs no copy.
    static DATA: &[u8] = b"static";
    let n = e
        .vfs
        .create_node(
            &e.tmp,
            b"s",
            ktls_vfs::NewNode::StaticFile(DATA),
            0o644,
            0,
            0,
        )
        .unwrap();
    n.truncate(&ctx, 3).unwrap();
    assert_eq!(n.static_data().unwrap(), b"sta");
    n.truncate(&ctx, 5).unwrap();
    assert_eq!(e.read_file("/tmp/s"), b"sta\0\0");
}

#[test]
fn status_flags() {
    let e = env();
    let f = e
        .open("/tmp/f", O_RDWR | O_CREAT | O_CLOEXEC | O_EXCL)
        .unwrap();
    // F_GETFL: access mode and status flags, O_LARGEFILE, no creation flags or O_CLOEXEC.
    assert_eq!(f.flags(), O_RDWR | O_LARGEFILE);
    assert!(!f.is_nonblocking());
    f.set_status_flags(&root(), O_APPEND | O_NONBLOCK | O_WRONLY | O_TRUNC)
        .unwrap();
    assert_eq!(f.flags(), O_RDWR | O_LARGEFILE | O_APPEND | O_NONBLOCK);
    assert!(f.is_nonblocking());
    f.set_status_flags(&root(), 0).unwrap();
    assert_eq!(f.flags(), O_RDWR | O_LARGEFILE);
    // O_NOATIME needs ownership.
    assert_eq!(
        f.set_status_flags(&user(5, 5), O_NOATIME).unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(
        e.open_as(&user(5, 5), "/etc/passwd", O_RDONLY | O_NOATIME)
            .unwrap_err(),
        Errno::EPERM
    );
    // O_DIRECT: tmpfs files yes, initramfs files and devices no.
    f.set_status_flags(&root(), O_DIRECT).unwrap();
    assert_eq!(
        e.open("/bin/hello", O_RDONLY | O_DIRECT).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.open("/dev/null", O_WRONLY | O_DIRECT).unwrap_err(),
        Errno::EINVAL
    );
    let n = e.open("/dev/null", O_WRONLY).unwrap();
    assert_eq!(
        n.set_status_flags(&root(), O_DIRECT).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn open_exec() {
    let e = env();
    let ctx = root();
    let f = e.vfs.open_exec(&ctx, e.root(), b"/link_to_hello").unwrap();
    assert_eq!(read_all(&f), HELLO);
    assert_eq!(
        e.vfs.open_exec(&ctx, e.root(), b"/bin").unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.vfs.open_exec(&ctx, e.root(), b"/etc/noexec").unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.vfs.open_exec(&ctx, e.root(), b"/dev/null").unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        e.vfs.open_exec(&ctx, e.root(), b"/nope").unwrap_err(),
        Errno::ENOENT
    );
    // Execute-only file: a user may exec it without read permission.
    let g = e.open("/tmp/xonly", O_WRONLY | O_CREAT).unwrap();
    g.write(b"code").unwrap();
    g.node().chmod(&ctx, 0o711).unwrap();
    let u = user(2000, 2000);
    assert_eq!(
        e.open_as(&u, "/tmp/xonly", O_RDONLY).unwrap_err(),
        Errno::EACCES
    );
    let x = e.vfs.open_exec(&u, e.root(), b"/tmp/xonly").unwrap();
    assert_eq!(read_all(&x), b"code");
}

#[test]
fn regular_files_are_always_ready() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    assert_eq!(f.poll(), PollEvents::DEFAULT);
    assert_eq!(f.wait_key(), None);
    assert_eq!(f.ioctl(0x5401, 0).unwrap_err(), Errno::ENOTTY);
    assert_eq!(f.readable_bytes(), Some(HELLO.len() as u64));
    assert!(!f.is_tty());
    assert!(!f.open_pending());
}

#[test]
fn sockets_and_block_devices_cannot_be_opened() {
    let e = env();
    let ctx = root();
    e.vfs
        .mknod(&ctx, e.root(), b"/tmp/sock", S_IFSOCK | 0o666, 0)
        .unwrap();
    e.vfs
        .mknod(&ctx, e.root(), b"/tmp/blk", S_IFBLK | 0o666, makedev(8, 0))
        .unwrap();
    e.vfs
        .mknod(&ctx, e.root(), b"/tmp/chr", S_IFCHR | 0o666, makedev(99, 0))
        .unwrap();
    assert_eq!(e.open("/tmp/sock", O_RDWR).unwrap_err(), Errno::ENXIO);
    assert_eq!(e.open("/tmp/blk", O_RDWR).unwrap_err(), Errno::ENXIO);
    // A character device with no driver.
    assert_eq!(e.open("/tmp/chr", O_RDWR).unwrap_err(), Errno::ENXIO);
    // But O_PATH works for all of them.
    assert!(e.open("/tmp/sock", O_PATH).is_ok());
}
