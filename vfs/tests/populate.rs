//! Unpacking the initramfs and taking the boot request.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{BootRequest, BootRequestError, Errno, InitramfsEntry, PopulateError, Vfs};

fn fresh() -> Vfs {
    Vfs::new(TestPlatform::new())
}

#[test]
fn sample_tree() {
    let e = env();
    let st = e.lookup("/etc/passwd").unwrap().stat();
    assert_eq!(st.st_mode, S_IFREG | 0o644);
    assert_eq!(e.read_file("/etc/passwd"), b"root:x:0:0::/root:/bin/sh\n");
    // Missing parents were created as 0755 root directories.
    let usr = e.lookup("/usr").unwrap().stat();
    assert_eq!(usr.st_mode, S_IFDIR | 0o755);
    assert_eq!((usr.st_uid, usr.st_gid), (0, 0));
    assert!(e.lookup("/usr/lib/libc.so").is_ok());
    let home = e.lookup("/home/user").unwrap().stat();
    assert_eq!((home.st_uid, home.st_gid), (1000, 1000));
    assert_eq!(
        e.lookup("/home/user/private").unwrap().mode(),
        S_IFDIR | 0o700
    );
    assert_eq!(e.lookup("/bin").unwrap().nlink(), 2);
    // bin, etc, usr, home, tmp, dev, proc.
    assert_eq!(e.root().nlink(), 2 + 7);
}

#[test]
fn names_are_normalized_and_entries_replace() {
    let vfs = fresh();
    let ctx = root();
    vfs.populate([
        entry("./a/b/file", S_IFREG | 0o600, b"one"),
        entry("/a/b/file", S_IFREG | 0o644, b"two"),
        entry("a//c/", S_IFDIR | 0o700, b""),
        entry("a/c", S_IFDIR | 0o711, b""),
        entry("a/b", S_IFDIR | 0o750, b""),
        entry("a/x", S_IFREG | 0o644, b"file first"),
        entry("a/x", S_IFLNK | 0o777, b"b/file"),
        entry("TRAILER!!!", 0, b""),
    ])
    .unwrap();
    let file = vfs.lookup(&ctx, vfs.root(), b"/a/b/file", true).unwrap();
    assert_eq!(file.mode(), S_IFREG | 0o644);
    assert_eq!(file.static_data().unwrap(), b"two");
    // A directory entry over an existing directory keeps its content.
    let b = vfs.lookup(&ctx, vfs.root(), b"/a/b", true).unwrap();
    assert_eq!(b.mode(), S_IFDIR | 0o750);
    assert!(vfs.lookup(&ctx, vfs.root(), b"/a/b/file", true).is_ok());
    assert_eq!(
        vfs.lookup(&ctx, vfs.root(), b"/a/c", true).unwrap().mode(),
        S_IFDIR | 0o711
    );
    // A different type replaces.
    assert!(Arc::ptr_eq(
        &vfs.lookup(&ctx, vfs.root(), b"/a/x", true).unwrap(),
        &file
    ));
    assert!(vfs.lookup(&ctx, vfs.root(), b"/TRAILER!!!", true).is_err());
}

#[test]
fn every_node_type() {
    let vfs = fresh();
    let ctx = root();
    let mut chr = entry("dev/ttyS0", S_IFCHR | 0o620, b"");
    chr.rdev_major = 4;
    chr.rdev_minor = 64;
    chr.gid = 5;
    let mut blk = entry("dev/sda", S_IFBLK | 0o660, b"");
    blk.rdev_major = 8;
    vfs.populate([
        chr,
        blk,
        entry("run/fifo", S_IFIFO | 0o644, b""),
        entry("run/sock", S_IFSOCK | 0o755, b""),
        entry("bin/sh", S_IFREG | 0o4755, b"#!"),
    ])
    .unwrap();
    let st = |p: &[u8]| vfs.lookup(&ctx, vfs.root(), p, false).unwrap().stat();
    let c = st(b"/dev/ttyS0");
    assert_eq!(
        (c.st_mode, c.st_rdev, c.st_gid),
        (S_IFCHR | 0o620, makedev(4, 64), 5)
    );
    assert_eq!(st(b"/dev/sda").st_rdev, makedev(8, 0));
    assert_eq!(st(b"/run/fifo").st_mode, S_IFIFO | 0o644);
    assert_eq!(st(b"/run/sock").st_mode, S_IFSOCK | 0o755);
    assert_eq!(st(b"/bin/sh").st_mode, S_IFREG | 0o4755, "set-id bits kept");
    // Everything unpacked is read-only for user space.
    assert_eq!(
        vfs.open(&ctx, vfs.root(), b"/bin/sh", O_WRONLY, 0)
            .unwrap_err(),
        Errno::EROFS
    );
    assert_eq!(
        vfs.mkdir(&ctx, vfs.root(), b"/new", 0o755).unwrap_err(),
        Errno::EROFS
    );
}

#[test]
fn root_attributes_from_dot() {
    let vfs = fresh();
    let mut dot = entry(".", S_IFDIR | 0o700, b"");
    dot.mtime = 77;
    vfs.populate([dot]).unwrap();
    let st = vfs.root().stat();
    assert_eq!((st.st_mode, st.st_mtime), (S_IFDIR | 0o700, 77));
}

#[test]
fn bad_entries() {
    let cases: [(InitramfsEntry<'static>, Errno); 6] = [
        (entry("a/../b", S_IFREG | 0o644, b""), Errno::EINVAL),
        (entry("weird", 0o170000 | 0o644, b""), Errno::EINVAL),
        (entry("badlink", S_IFLNK | 0o777, b""), Errno::EINVAL),
        (entry("f/x", S_IFREG | 0o644, b""), Errno::ENOTDIR),
        (entry(".", S_IFREG | 0o644, b""), Errno::EINVAL),
        (
            entry(
                Box::leak(format!("d/{}", "n".repeat(256)).into_boxed_str()),
                S_IFREG | 0o644,
                b"",
            ),
            Errno::ENAMETOOLONG,
        ),
    ];
    for (bad, errno) in cases {
        let vfs = fresh();
        let name = bad.name.to_vec();
        let err = vfs
            .populate([
                entry("f", S_IFREG | 0o644, b""),
                bad,
                entry("after", S_IFDIR | 0o755, b""),
            ])
            .unwrap_err();
        assert_eq!(err, PopulateError { name, errno });
        // It stopped there.
        assert!(vfs.lookup(&root(), vfs.root(), b"/after", true).is_err());
    }
}

fn request(files: &[(&'static str, &'static [u8])]) -> Vfs {
    let vfs = fresh();
    let mut entries = vec![entry("bin/prog", S_IFREG | 0o755, b"\x7fELF")];
    for (name, data) in files {
        let path: &'static str = Box::leak(format!(".ktls/{name}").into_boxed_str());
        entries.push(entry(path, S_IFREG | 0o644, data));
    }
    vfs.populate(entries).unwrap();
    vfs
}

#[test]
fn boot_request() {
    let vfs = request(&[
        ("exe", b"/bin/prog"),
        ("argv", b"prog\0-v\0\0last arg\0"),
        ("envp", b"A=1\0PATH=/bin\0"),
        ("cwd", b"/bin"),
    ]);
    let req = vfs.take_boot_request().unwrap().unwrap();
    assert_eq!(
        req,
        BootRequest {
            exe: b"/bin/prog".to_vec(),
            argv: vec![
                b"prog".to_vec(),
                b"-v".to_vec(),
                b"".to_vec(),
                b"last arg".to_vec()
            ],
            envp: vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()],
            cwd: b"/bin".to_vec(),
        }
    );
    // /.ktls is gone, from lookups and from listings.
    let ctx = root();
    assert_eq!(
        vfs.lookup(&ctx, vfs.root(), b"/.ktls", true).unwrap_err(),
        Errno::ENOENT
    );
    let dir = vfs.open(&ctx, vfs.root(), b"/", O_RDONLY, 0).unwrap();
    assert_eq!(names(&list_dir(&dir, 1024)), [".", "..", "bin"]);
    assert_eq!(vfs.take_boot_request().unwrap(), None);
}

#[test]
fn boot_request_defaults_and_errors() {
    let vfs = request(&[("exe", b"/bin/prog"), ("argv", b"prog\0"), ("envp", b"")]);
    let req = vfs.take_boot_request().unwrap().unwrap();
    assert_eq!(req.cwd, b"/");
    assert!(req.envp.is_empty());

    let vfs = request(&[("exe", b"/bin/prog"), ("envp", b"")]);
    let err = vfs.take_boot_request().unwrap_err();
    assert_eq!(
        err,
        BootRequestError {
            file: "argv",
            errno: Errno::ENOENT
        }
    );
    assert_eq!(
        err.to_string(),
        "/.ktls/argv: No such file or directory (ENOENT)"
    );
    // Removed even though it was malformed.
    assert_eq!(
        vfs.lookup(&root(), vfs.root(), b"/.ktls", true)
            .unwrap_err(),
        Errno::ENOENT
    );

    let vfs = request(&[("exe", b"/bin/prog"), ("argv", b"prog"), ("envp", b"")]);
    assert_eq!(
        vfs.take_boot_request().unwrap_err(),
        BootRequestError {
            file: "argv",
            errno: Errno::EINVAL
        }
    );
    let vfs = request(&[("argv", b"prog\0"), ("envp", b"")]);
    assert_eq!(vfs.take_boot_request().unwrap_err().file, "exe");

    let vfs = fresh();
    vfs.populate([
        entry(".ktls/exe", S_IFDIR | 0o755, b""),
        entry(".ktls/argv", S_IFREG | 0o644, b"x\0"),
        entry(".ktls/envp", S_IFREG | 0o644, b""),
    ])
    .unwrap();
    assert_eq!(
        vfs.take_boot_request().unwrap_err(),
        BootRequestError {
            file: "exe",
            errno: Errno::EINVAL
        }
    );
    assert_eq!(fresh().take_boot_request().unwrap(), None);
}
