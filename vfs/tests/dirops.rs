//! Namespace operations on the tmpfs and their errors elsewhere.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_abi::time::Timespec;
use ktls_vfs::Errno;

fn mkdir(e: &Env, p: &str) -> Result<(), Errno> {
    e.vfs
        .mkdir(&root(), e.root(), p.as_bytes(), 0o755)
        .map(|_| ())
}
fn rmdir(e: &Env, p: &str) -> Result<(), Errno> {
    e.vfs.rmdir(&root(), e.root(), p.as_bytes())
}
fn unlink(e: &Env, p: &str) -> Result<(), Errno> {
    e.vfs.unlink(&root(), e.root(), p.as_bytes())
}
fn rename(e: &Env, a: &str, b: &str) -> Result<(), Errno> {
    e.vfs
        .rename(&root(), e.root(), a.as_bytes(), e.root(), b.as_bytes(), 0)
}
fn rename2(e: &Env, a: &str, b: &str, flags: u64) -> Result<(), Errno> {
    e.vfs.rename(
        &root(),
        e.root(),
        a.as_bytes(),
        e.root(),
        b.as_bytes(),
        flags,
    )
}

#[test]
fn mkdir_rules() {
    let e = env();
    let ctx = Ctx {
        umask: 0o027,
        ..user(1000, 1000)
    };
    let d = e.vfs.mkdir(&ctx, e.root(), b"/tmp/d", 0o777).unwrap();
    let st = d.stat();
    assert_eq!(st.st_mode, S_IFDIR | 0o750);
    assert_eq!((st.st_uid, st.st_gid), (1000, 1000));
    assert_eq!(st.st_nlink, 2);
    // Trailing slash is fine for mkdir.
    mkdir(&e, "/tmp/d2/").unwrap();
    assert_eq!(mkdir(&e, "/tmp/d").unwrap_err(), Errno::EEXIST);
    assert_eq!(mkdir(&e, "/tmp/d/.").unwrap_err(), Errno::EEXIST);
    assert_eq!(mkdir(&e, "/tmp/d/..").unwrap_err(), Errno::EEXIST);
    assert_eq!(mkdir(&e, "/").unwrap_err(), Errno::EEXIST);
    assert_eq!(mkdir(&e, "/tmp/no/d").unwrap_err(), Errno::ENOENT);
    assert_eq!(mkdir(&e, "/bin/hello/d").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(mkdir(&e, "/bin/new").unwrap_err(), Errno::EROFS);
    assert_eq!(
        mkdir(&e, "/bin").unwrap_err(),
        Errno::EEXIST,
        "EEXIST before EROFS"
    );
    assert_eq!(mkdir(&e, "/proc/new").unwrap_err(), Errno::EPERM);
    let long = format!("/tmp/{}", "x".repeat(NAME_MAX + 1));
    assert_eq!(mkdir(&e, &long).unwrap_err(), Errno::ENAMETOOLONG);
    // Without write permission on the parent.
    assert_eq!(
        e.vfs
            .mkdir(&user(2000, 2000), e.root(), b"/tmp/d/x", 0o755)
            .unwrap_err(),
        Errno::EACCES
    );
    // The parent's link count counts subdirectories.
    assert_eq!(e.tmp.nlink(), 4);
    mkdir(&e, "/tmp/d/sub").unwrap();
    assert_eq!(d.nlink(), 3);
}

#[test]
fn setgid_directories_pass_on_their_group() {
    let e = env();
    let ctx = Ctx {
        groups: vec![77],
        ..user(1000, 1000)
    };
    let d = e.vfs.mkdir(&ctx, e.root(), b"/tmp/g", 0o777).unwrap();
    d.chown(&ctx, None, Some(77)).unwrap();
    d.chmod(&ctx, 0o2777).unwrap();
    let sub = e.vfs.mkdir(&ctx, e.root(), b"/tmp/g/sub", 0o755).unwrap();
    assert_eq!(sub.gid(), 77);
    assert_eq!(sub.mode() & S_ISGID, S_ISGID);
    let f = e.open_as(&ctx, "/tmp/g/f", O_RDWR | O_CREAT).unwrap();
    assert_eq!(f.node().gid(), 77);
}

#[test]
fn rmdir_rules() {
    let e = env();
    mkdir(&e, "/tmp/d").unwrap();
    mkdir(&e, "/tmp/d/sub").unwrap();
    e.write_file("/tmp/f", b"");
    assert_eq!(rmdir(&e, "/tmp/d").unwrap_err(), Errno::ENOTEMPTY);
    assert_eq!(rmdir(&e, "/tmp/d/sub/..").unwrap_err(), Errno::ENOTEMPTY);
    assert_eq!(rmdir(&e, "/tmp/d/sub/.").unwrap_err(), Errno::EINVAL);
    assert_eq!(rmdir(&e, "/").unwrap_err(), Errno::EBUSY);
    assert_eq!(rmdir(&e, "/tmp/f").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(rmdir(&e, "/tmp/nope").unwrap_err(), Errno::ENOENT);
    assert_eq!(rmdir(&e, "/bin").unwrap_err(), Errno::EROFS);
    assert_eq!(
        rmdir(&e, "/bin/nope").unwrap_err(),
        Errno::EROFS,
        "EROFS before ENOENT"
    );
    assert_eq!(rmdir(&e, "/tmp").unwrap_err(), Errno::EROFS);
    assert_eq!(rmdir(&e, "/proc/self").unwrap_err(), Errno::EPERM);
    rmdir(&e, "/tmp/d/sub/").unwrap();
    rmdir(&e, "/tmp/d").unwrap();
    assert_eq!(e.lookup("/tmp/d").unwrap_err(), Errno::ENOENT);
    // A mounted file system's root inside a writable one is busy.
    mkdir(&e, "/tmp/mnt").unwrap();
    e.vfs
        .mount(b"/tmp/mnt", ktls_vfs::FsKind::Tmpfs, 0o755)
        .unwrap();
    assert_eq!(rmdir(&e, "/tmp/mnt").unwrap_err(), Errno::EBUSY);
}

#[test]
fn removed_directory_stays_usable_as_a_handle() {
    let e = env();
    let d = e.vfs.mkdir(&root(), e.root(), b"/tmp/d", 0o755).unwrap();
    let open = e.open("/tmp/d", O_RDONLY).unwrap();
    rmdir(&e, "/tmp/d").unwrap();
    assert_eq!(d.nlink(), 0);
    assert_eq!(open.getdents64(&mut [0; 256]).unwrap_err(), Errno::ENOENT);
    // Creating inside it: ENOENT.
    assert_eq!(
        e.vfs.mkdir(&root(), &d, b"x", 0o755).unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(
        e.vfs
            .open(&root(), &d, b"f", O_RDWR | O_CREAT, 0o644)
            .unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn unlink_rules() {
    let e = env();
    e.write_file("/tmp/f", b"data");
    mkdir(&e, "/tmp/d").unwrap();
    assert_eq!(unlink(&e, "/tmp/d").unwrap_err(), Errno::EISDIR);
    assert_eq!(unlink(&e, "/tmp/d/.").unwrap_err(), Errno::EISDIR);
    assert_eq!(unlink(&e, "/tmp/d/..").unwrap_err(), Errno::EISDIR);
    assert_eq!(unlink(&e, "/tmp/f/").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(unlink(&e, "/tmp/d/").unwrap_err(), Errno::EISDIR);
    assert_eq!(unlink(&e, "/tmp/nope/").unwrap_err(), Errno::ENOENT);
    assert_eq!(unlink(&e, "/tmp/nope").unwrap_err(), Errno::ENOENT);
    assert_eq!(unlink(&e, "/bin/hello").unwrap_err(), Errno::EROFS);
    assert_eq!(unlink(&e, "/bin/nope").unwrap_err(), Errno::EROFS);
    assert_eq!(unlink(&e, "/proc/self/exe").unwrap_err(), Errno::EPERM);
    // An open file outlives its name.
    let f = e.open("/tmp/f", O_RDWR).unwrap();
    unlink(&e, "/tmp/f").unwrap();
    assert_eq!(e.lookup("/tmp/f").unwrap_err(), Errno::ENOENT);
    assert_eq!(f.stat().st_nlink, 0);
    assert_eq!(read_all(&f), b"data");
    f.write(b"more").unwrap();
    // Unlinking a symlink removes the link, not the target.
    e.vfs
        .symlink(&root(), b"/bin/hello", e.root(), b"/tmp/l")
        .unwrap();
    unlink(&e, "/tmp/l").unwrap();
    assert!(e.lookup("/bin/hello").is_ok());
}

#[test]
fn sticky_directory() {
    let e = env();
    let alice = user(1000, 1000);
    let bob = user(2000, 2000);
    e.vfs
        .open(&alice, e.root(), b"/tmp/a", O_WRONLY | O_CREAT, 0o666)
        .unwrap();
    let adir = e.vfs.mkdir(&alice, e.root(), b"/tmp/adir", 0o777).unwrap();
    adir.chmod(&alice, 0o777).unwrap();
    // /tmp is 1777: bob may create but not remove or rename alice's entries.
    assert_eq!(
        e.vfs.unlink(&bob, e.root(), b"/tmp/a").unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(
        e.vfs.rmdir(&bob, e.root(), b"/tmp/adir").unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(
        e.vfs
            .rename(&bob, e.root(), b"/tmp/a", e.root(), b"/tmp/b", 0)
            .unwrap_err(),
        Errno::EPERM
    );
    e.vfs
        .open(&bob, e.root(), b"/tmp/bobs", O_WRONLY | O_CREAT, 0o666)
        .unwrap();
    // Nor replace alice's file by renaming onto it.
    assert_eq!(
        e.vfs
            .rename(&bob, e.root(), b"/tmp/bobs", e.root(), b"/tmp/a", 0)
            .unwrap_err(),
        Errno::EPERM
    );
    e.vfs.unlink(&bob, e.root(), b"/tmp/bobs").unwrap();
    e.vfs.unlink(&alice, e.root(), b"/tmp/a").unwrap();
    // In a non-sticky directory writable by bob, he may.
    e.vfs
        .open(&alice, e.root(), b"/tmp/adir/x", O_WRONLY | O_CREAT, 0o666)
        .unwrap();
    e.vfs.unlink(&bob, e.root(), b"/tmp/adir/x").unwrap();
}

#[test]
fn rename_files() {
    let e = env();
    e.write_file("/tmp/a", b"A");
    e.write_file("/tmp/b", b"B");
    let a = e.lookup("/tmp/a").unwrap();
    let b = e.lookup("/tmp/b").unwrap();
    rename(&e, "/tmp/a", "/tmp/c").unwrap();
    assert_eq!(e.lookup("/tmp/a").unwrap_err(), Errno::ENOENT);
    assert!(Arc::ptr_eq(&e.lookup("/tmp/c").unwrap(), &a));
    // Replacing a file.
    let open_b = e.open("/tmp/b", O_RDONLY).unwrap();
    rename(&e, "/tmp/c", "/tmp/b").unwrap();
    assert_eq!(e.read_file("/tmp/b"), b"A");
    assert_eq!(b.nlink(), 0, "the replaced file lost its name");
    assert_eq!(read_all(&open_b), b"B");
    // Same file under two names: nothing happens.
    e.vfs
        .link(&root(), e.root(), b"/tmp/b", false, e.root(), b"/tmp/b2")
        .unwrap();
    rename(&e, "/tmp/b", "/tmp/b2").unwrap();
    assert!(e.lookup("/tmp/b").is_ok() && e.lookup("/tmp/b2").is_ok());
    rename(&e, "/tmp/b", "/tmp/b").unwrap();
    // Errors.
    assert_eq!(
        rename(&e, "/tmp/nope", "/tmp/x").unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(
        rename(&e, "/tmp/b", "/tmp/no/x").unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(rename(&e, "/tmp/b/", "/tmp/x").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(rename(&e, "/tmp/b", "/tmp/x/").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(rename(&e, "/tmp/b", "/tmp/.").unwrap_err(), Errno::EBUSY);
    assert_eq!(rename(&e, "/tmp/.", "/tmp/x").unwrap_err(), Errno::EBUSY);
    assert_eq!(rename(&e, "/tmp/b", "/tmp/..").unwrap_err(), Errno::EBUSY);
    assert_eq!(rename(&e, "/tmp/b", "/bin/x").unwrap_err(), Errno::EXDEV);
    assert_eq!(
        rename(&e, "/bin/hello", "/tmp/x").unwrap_err(),
        Errno::EXDEV
    );
    assert_eq!(
        rename(&e, "/bin/hello", "/bin/x").unwrap_err(),
        Errno::EROFS
    );
    assert_eq!(rename(&e, "/tmp", "/tmp2").unwrap_err(), Errno::EROFS);
    assert_eq!(rename(&e, "/dev/null", "/dev/null2").unwrap(), ());
    assert!(e.open("/dev/null2", O_WRONLY).is_ok());
}

#[test]
fn rename_directories() {
    let e = env();
    mkdir(&e, "/tmp/a").unwrap();
    mkdir(&e, "/tmp/a/sub").unwrap();
    mkdir(&e, "/tmp/empty").unwrap();
    mkdir(&e, "/tmp/full").unwrap();
    e.write_file("/tmp/full/x", b"");
    e.write_file("/tmp/file", b"");
    let sub = e.lookup("/tmp/a/sub").unwrap();
    // Directory onto a file, file onto a directory.
    assert_eq!(
        rename(&e, "/tmp/a", "/tmp/file").unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        rename(&e, "/tmp/file", "/tmp/empty").unwrap_err(),
        Errno::EISDIR
    );
    // Onto a non-empty directory.
    assert_eq!(
        rename(&e, "/tmp/a", "/tmp/full").unwrap_err(),
        Errno::ENOTEMPTY
    );
    // Into itself or a descendant.
    assert_eq!(
        rename(&e, "/tmp/a", "/tmp/a/sub/x").unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(rename(&e, "/tmp/a", "/tmp/a/x").unwrap_err(), Errno::EINVAL);
    // Onto an ancestor of the source.
    assert_eq!(
        rename(&e, "/tmp/a/sub", "/tmp/a").unwrap_err(),
        Errno::ENOTEMPTY
    );
    // Onto an empty directory: replaces it; a trailing slash is fine for directories.
    let empty = e.lookup("/tmp/empty").unwrap();
    rename(&e, "/tmp/a/", "/tmp/empty/").unwrap();
    assert_eq!(empty.nlink(), 0);
    assert!(Arc::ptr_eq(&e.lookup("/tmp/empty/sub").unwrap(), &sub));
    assert_eq!(e.vfs.path_of(&sub).unwrap(), b"/tmp/empty/sub");
    // Moving a directory to another parent: `..` and link counts follow.
    let full = e.lookup("/tmp/full").unwrap();
    assert_eq!(full.nlink(), 2);
    rename(&e, "/tmp/empty/sub", "/tmp/full/sub").unwrap();
    assert_eq!(full.nlink(), 3);
    assert_eq!(e.lookup("/tmp/empty").unwrap().nlink(), 2);
    assert!(Arc::ptr_eq(
        &e.vfs.lookup(&root(), &sub, b"..", true).unwrap(),
        &full
    ));
    // Moving a directory needs write permission on it (its `..` changes).
    let u = user(1000, 1000);
    e.vfs.mkdir(&u, e.root(), b"/tmp/u", 0o777).unwrap();
    e.vfs.mkdir(&u, e.root(), b"/tmp/u/ro", 0o555).unwrap();
    e.vfs.mkdir(&u, e.root(), b"/tmp/u/dst", 0o777).unwrap();
    assert_eq!(
        e.vfs
            .rename(&u, e.root(), b"/tmp/u/ro", e.root(), b"/tmp/u/dst/ro", 0)
            .unwrap_err(),
        Errno::EACCES
    );
    e.vfs
        .rename(&u, e.root(), b"/tmp/u/ro", e.root(), b"/tmp/u/ro2", 0)
        .unwrap();
}

#[test]
fn rename_flags() {
    let e = env();
    e.write_file("/tmp/a", b"A");
    e.write_file("/tmp/b", b"B");
    mkdir(&e, "/tmp/d").unwrap();
    assert_eq!(
        rename2(&e, "/tmp/a", "/tmp/b", RENAME_NOREPLACE).unwrap_err(),
        Errno::EEXIST
    );
    rename2(&e, "/tmp/a", "/tmp/c", RENAME_NOREPLACE).unwrap();
    assert_eq!(
        rename2(&e, "/tmp/c", "/tmp/nope", RENAME_EXCHANGE).unwrap_err(),
        Errno::ENOENT
    );
    rename2(&e, "/tmp/c", "/tmp/b", RENAME_EXCHANGE).unwrap();
    assert_eq!(e.read_file("/tmp/b"), b"A");
    assert_eq!(e.read_file("/tmp/c"), b"B");
    // Exchanging a directory and a file is allowed.
    let d = e.lookup("/tmp/d").unwrap();
    rename2(&e, "/tmp/d", "/tmp/c", RENAME_EXCHANGE).unwrap();
    assert!(Arc::ptr_eq(&e.lookup("/tmp/c").unwrap(), &d));
    assert_eq!(e.read_file("/tmp/d"), b"B");
    assert_eq!(e.vfs.path_of(&d).unwrap(), b"/tmp/c");
    assert_eq!(
        rename2(&e, "/tmp/b", "/tmp/c", RENAME_EXCHANGE | RENAME_NOREPLACE).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        rename2(&e, "/tmp/b", "/tmp/c", RENAME_WHITEOUT).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        rename2(&e, "/tmp/b", "/tmp/c", 8).unwrap_err(),
        Errno::EINVAL
    );
    mkdir(&e, "/tmp/c/inner").unwrap();
    assert_eq!(
        rename2(&e, "/tmp/c", "/tmp/c/inner", RENAME_EXCHANGE).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        rename2(&e, "/tmp/c/inner", "/tmp/c", RENAME_EXCHANGE).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn hard_links() {
    let e = env();
    let ctx = root();
    e.write_file("/tmp/f", b"F");
    let link = |a: &str, b: &str, follow| {
        e.vfs
            .link(&ctx, e.root(), a.as_bytes(), follow, e.root(), b.as_bytes())
    };
    link("/tmp/f", "/tmp/g", false).unwrap();
    let f = e.lookup("/tmp/f").unwrap();
    assert!(Arc::ptr_eq(&f, &e.lookup("/tmp/g").unwrap()));
    assert_eq!(f.nlink(), 2);
    unlink(&e, "/tmp/f").unwrap();
    assert_eq!(f.nlink(), 1);
    assert_eq!(e.read_file("/tmp/g"), b"F");
    assert_eq!(link("/tmp/g", "/tmp/g", false).unwrap_err(), Errno::EEXIST);
    assert_eq!(
        link("/tmp/nope", "/tmp/x", false).unwrap_err(),
        Errno::ENOENT
    );
    assert_eq!(link("/tmp/g", "/tmp/x/", false).unwrap_err(), Errno::ENOENT);
    assert_eq!(link("/tmp/g", "/tmp/.", false).unwrap_err(), Errno::EEXIST);
    mkdir(&e, "/tmp/d").unwrap();
    assert_eq!(link("/tmp/d", "/tmp/d2", false).unwrap_err(), Errno::EPERM);
    assert_eq!(
        link("/bin/hello", "/tmp/h", false).unwrap_err(),
        Errno::EXDEV
    );
    assert_eq!(link("/tmp/g", "/bin/g", false).unwrap_err(), Errno::EROFS);
    assert_eq!(
        link("/bin/hello", "/bin/h", false).unwrap_err(),
        Errno::EROFS
    );
    // A symlink is linked itself unless following.
    e.vfs.symlink(&ctx, b"g", e.root(), b"/tmp/s").unwrap();
    link("/tmp/s", "/tmp/s2", false).unwrap();
    let s2 = e.vfs.lookup(&ctx, e.root(), b"/tmp/s2", false).unwrap();
    assert!(s2.is_symlink());
    assert_eq!(s2.nlink(), 2);
    link("/tmp/s", "/tmp/s3", true).unwrap();
    assert!(Arc::ptr_eq(
        &e.vfs.lookup(&ctx, e.root(), b"/tmp/s3", false).unwrap(),
        &e.lookup("/tmp/g").unwrap()
    ));
    // Without write permission in the target directory.
    assert_eq!(
        e.vfs
            .link(
                &user(5, 5),
                e.root(),
                b"/tmp/g",
                false,
                e.root(),
                b"/tmp/d/x"
            )
            .unwrap_err(),
        Errno::EACCES
    );
    // A file whose last name is gone cannot get a new one.
    let open = e.open("/tmp/g", O_RDONLY).unwrap();
    unlink(&e, "/tmp/g").unwrap();
    unlink(&e, "/tmp/s3").unwrap();
    assert_eq!(
        e.vfs
            .link_node(&ctx, open.node(), e.root(), b"/tmp/back")
            .unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn symlink_and_readlink() {
    let e = env();
    let ctx = root();
    let s = e
        .vfs
        .symlink(&ctx, b"some/where", e.root(), b"/tmp/s")
        .unwrap();
    let st = s.stat();
    assert_eq!(st.st_mode, S_IFLNK | 0o777);
    assert_eq!(st.st_size, 10);
    assert_eq!(
        e.vfs.readlink(&ctx, e.root(), b"/tmp/s").unwrap(),
        b"some/where"
    );
    assert_eq!(
        e.vfs.readlink(&ctx, e.root(), b"/tmp").unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.vfs.readlink(&ctx, e.root(), b"/bin/hello").unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        e.vfs.readlink(&ctx, e.root(), b"/nope").unwrap_err(),
        Errno::ENOENT
    );
    // readlink of a path through a symlink reads the last link itself.
    assert_eq!(
        e.vfs
            .readlink(&ctx, e.root(), b"/usrlink/../link_to_hello")
            .unwrap(),
        b"/bin/hello"
    );
    let sym = |t: &[u8], p: &str| e.vfs.symlink(&ctx, t, e.root(), p.as_bytes()).map(|_| ());
    assert_eq!(sym(b"x", "/tmp/s").unwrap_err(), Errno::EEXIST);
    assert_eq!(sym(b"", "/tmp/e").unwrap_err(), Errno::ENOENT);
    assert_eq!(
        sym(&[b'a'; PATH_MAX], "/tmp/e").unwrap_err(),
        Errno::ENAMETOOLONG
    );
    assert_eq!(sym(b"x", "/tmp/new/").unwrap_err(), Errno::ENOENT);
    assert_eq!(sym(b"x", "/tmp/s/").unwrap_err(), Errno::EEXIST);
    assert_eq!(sym(b"x", "/bin/s").unwrap_err(), Errno::EROFS);
    assert_eq!(sym(b"x", "/tmp/nodir/s").unwrap_err(), Errno::ENOENT);
}

#[test]
fn chmod_chown() {
    let e = env();
    let alice = Ctx {
        groups: vec![20],
        ..user(1000, 1000)
    };
    let bob = user(2000, 2000);
    let f = e
        .vfs
        .open(&alice, e.root(), b"/tmp/f", O_WRONLY | O_CREAT, 0o644)
        .unwrap();
    let n = f.node().clone();
    e.platform.set_time(5000);
    n.chmod(&alice, 0o4755).unwrap();
    assert_eq!(n.mode(), S_IFREG | 0o4755);
    assert_eq!(n.stat().st_ctime, 5000);
    assert_eq!(n.chmod(&bob, 0o777).unwrap_err(), Errno::EPERM);
    assert_eq!(
        e.lookup("/bin/hello")
            .unwrap()
            .chmod(&root(), 0o777)
            .unwrap_err(),
        Errno::EROFS
    );
    // Only root changes the owner; the owner may change the group to one of theirs.
    assert_eq!(n.chown(&alice, Some(2000), None).unwrap_err(), Errno::EPERM);
    assert_eq!(n.chown(&bob, None, Some(2000)).unwrap_err(), Errno::EPERM);
    assert_eq!(n.chown(&alice, None, Some(30)).unwrap_err(), Errno::EPERM);
    n.chown(&alice, Some(1000), Some(20)).unwrap();
    assert_eq!((n.uid(), n.gid()), (1000, 20));
    // chown clears set-uid.
    assert_eq!(n.mode() & S_ISUID, 0);
    n.chown(&root(), Some(2000), None).unwrap();
    assert_eq!(n.uid(), 2000);
    // A non-member setting S_ISGID loses it.
    n.chmod(&bob, 0o2755).unwrap();
    assert_eq!(n.mode() & S_ISGID, 0);
}

#[test]
fn utimens() {
    let e = env();
    e.write_file("/tmp/f", b"");
    let n = e.lookup("/tmp/f").unwrap();
    let ts = |s, ns| {
        Some(Timespec {
            tv_sec: s,
            tv_nsec: ns,
        })
    };
    n.set_times(&root(), ts(10, 1), ts(20, 2)).unwrap();
    let st = n.stat();
    assert_eq!(
        (st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec),
        (10, 1, 20, 2)
    );
    e.platform.set_time(7777);
    n.set_times(&root(), ts(0, UTIME_OMIT), ts(0, UTIME_NOW))
        .unwrap();
    let st = n.stat();
    assert_eq!((st.st_atime, st.st_mtime, st.st_ctime), (10, 7777, 7777));
    assert_eq!(
        n.set_times(&root(), ts(1, 1_000_000_000), None)
            .unwrap_err(),
        Errno::EINVAL
    );
    // Others: explicit times need ownership; "now" needs write permission.
    let other = user(2000, 2000);
    assert_eq!(
        n.set_times(&other, ts(1, 0), None).unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(n.set_times(&other, None, None).unwrap_err(), Errno::EACCES);
    n.chmod(&root(), 0o666).unwrap();
    n.set_times(&other, None, None).unwrap();
    assert_eq!(
        e.lookup("/bin/hello")
            .unwrap()
            .set_times(&root(), None, None)
            .unwrap_err(),
        Errno::EROFS
    );
}

#[test]
fn mknod_rules() {
    let e = env();
    let ctx = root();
    let mk = |c: &Ctx, p: &str, mode, dev| {
        e.vfs
            .mknod(c, e.root(), p.as_bytes(), mode, dev)
            .map(|_| ())
    };
    mk(&ctx, "/tmp/reg", 0o644, 0).unwrap();
    assert_eq!(e.lookup("/tmp/reg").unwrap().file_type(), S_IFREG);
    mk(&ctx, "/tmp/fifo", S_IFIFO | 0o666, 0).unwrap();
    assert_eq!(
        e.lookup("/tmp/fifo").unwrap().stat().st_mode,
        S_IFIFO | 0o644
    );
    mk(&ctx, "/tmp/null2", S_IFCHR | 0o666, makedev(1, 3)).unwrap();
    let st = e.lookup("/tmp/null2").unwrap().stat();
    assert_eq!(st.st_rdev, makedev(1, 3));
    // Same driver as /dev/null.
    let f = e.open("/tmp/null2", O_RDWR).unwrap();
    assert_eq!(f.read(&mut [0; 4]).unwrap(), 0);
    let u = user(1000, 1000);
    assert_eq!(
        mk(&u, "/tmp/c", S_IFCHR | 0o666, 0).unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(
        mk(&ctx, "/tmp/d", S_IFDIR | 0o755, 0).unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(
        mk(&ctx, "/tmp/bad", 0o170000, 0).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(mk(&ctx, "/tmp/reg", 0o644, 0).unwrap_err(), Errno::EEXIST);
    assert_eq!(
        mk(&ctx, "/bin/x", S_IFIFO | 0o644, 0).unwrap_err(),
        Errno::EROFS
    );
}

#[test]
fn directory_times_change_with_entries() {
    let e = env();
    e.platform.set_time(2000);
    mkdir(&e, "/tmp/d").unwrap();
    let d = e.lookup("/tmp/d").unwrap();
    assert_eq!(d.stat().st_mtime, 2000);
    e.platform.set_time(3000);
    e.write_file("/tmp/d/f", b"x");
    let st = d.stat();
    assert_eq!((st.st_mtime, st.st_ctime), (3000, 3000));
    e.platform.set_time(4000);
    unlink(&e, "/tmp/d/f").unwrap();
    assert_eq!(d.stat().st_mtime, 4000);
    // Writing a file updates its mtime and ctime but not the directory's.
    e.write_file("/tmp/d/g", b"x");
    e.platform.set_time(5000);
    let f = e.open("/tmp/d/g", O_WRONLY).unwrap();
    f.write(b"y").unwrap();
    let st = f.stat();
    assert_eq!(
        (st.st_mtime, st.st_ctime, st.st_mtime_nsec),
        (5000, 5000, 500)
    );
    assert_eq!(d.stat().st_mtime, 4000);
}
