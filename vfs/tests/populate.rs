//! Unpacking the initramfs and taking the boot request.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{
    BootRequest, BootRequestError, Errno, InitramfsEntry, InitramfsError, PopulateError, Vfs,
};

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
        entry("bin/nul_link", S_IFLNK | 0o777, b"sh\0"),
    ])
    .unwrap();
    assert_eq!(
        vfs.readlink(&ctx, vfs.root(), b"/bin/nul_link").unwrap(),
        b"sh"
    );
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
    let cases: [(InitramfsEntry<'static>, Errno); 7] = [
        (entry("a/../b", S_IFREG | 0o644, b""), Errno::EINVAL),
        (entry("weird", 0o170000 | 0o644, b""), Errno::EINVAL),
        (entry("badlink", S_IFLNK | 0o777, b""), Errno::EINVAL),
        (entry("nullink", S_IFLNK | 0o777, b"\0x"), Errno::EINVAL),
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

fn hardlink(name: &'static str, ino: u32, data: &'static [u8]) -> InitramfsEntry<'static> {
    InitramfsEntry {
        ino,
        nlink: 3,
        dev_major: 8,
        dev_minor: 1,
        ..entry(name, S_IFREG | 0o755, data)
    }
}

#[test]
fn hard_links_are_joined() {
    let vfs = fresh();
    let ctx = root();
    // As cpio stores them: the data with the last name only.
    vfs.populate([
        hardlink("bin/busybox", 7, b""),
        hardlink("bin/sh", 7, b""),
        entry("bin/other", S_IFREG | 0o755, b"other"),
        hardlink("bin/ls", 7, b"BUSYBOX"),
        // Same ino, different device: another file.
        InitramfsEntry {
            dev_minor: 2,
            ..hardlink("bin/elsewhere", 7, b"X")
        },
        // nlink 1: never joined even with a clashing ino.
        InitramfsEntry {
            ino: 7,
            dev_major: 8,
            dev_minor: 1,
            ..entry("bin/single", S_IFREG | 0o755, b"single")
        },
    ])
    .unwrap();
    let get = |p: &[u8]| vfs.lookup(&ctx, vfs.root(), p, true).unwrap();
    let bb = get(b"/bin/busybox");
    assert!(Arc::ptr_eq(&bb, &get(b"/bin/sh")));
    assert!(Arc::ptr_eq(&bb, &get(b"/bin/ls")));
    assert_eq!(bb.nlink(), 3);
    assert_eq!(bb.static_data().unwrap(), b"BUSYBOX");
    assert!(!Arc::ptr_eq(&bb, &get(b"/bin/elsewhere")));
    assert!(!Arc::ptr_eq(&bb, &get(b"/bin/single")));
    assert_eq!(get(b"/bin/single").static_data().unwrap(), b"single");
    // A repeated name of the same set is not counted twice.
    let vfs = fresh();
    vfs.populate([hardlink("a", 1, b""), hardlink("a", 1, b"data")])
        .unwrap();
    let a = vfs.lookup(&ctx, vfs.root(), b"/a", true).unwrap();
    assert_eq!(
        (a.nlink(), a.static_data().unwrap()),
        (1, b"data".as_slice())
    );
}

fn archive(build: impl FnOnce(&mut ktls_cpio::Writer<Vec<u8>>)) -> &'static [u8] {
    let mut w = ktls_cpio::Writer::new(Vec::new());
    build(&mut w);
    Box::leak(w.finish().unwrap().into_boxed_slice())
}

#[test]
fn from_a_cpio_archive() {
    let image = archive(|w| {
        w.set_mtime(4242);
        w.add_dir(".", 0o755).unwrap();
        w.add_dir("bin", 0o755).unwrap();
        w.add_file("bin/prog", 0o755, b"\x7fELF program").unwrap();
        w.add_symlink("bin/alias", b"prog").unwrap();
        w.add_file("deep/er/file", 0o600, b"deep").unwrap();
        w.add_file(".ktls/exe", 0o644, b"/bin/alias").unwrap();
        w.add_file(".ktls/argv", 0o644, b"alias\0").unwrap();
        w.add_file(".ktls/envp", 0o644, b"").unwrap();
    });
    let vfs = fresh();
    vfs.populate_cpio(image).unwrap();
    let ctx = root();
    let prog = vfs.lookup(&ctx, vfs.root(), b"/bin/alias", true).unwrap();
    let st = prog.stat();
    assert_eq!((st.st_mode, st.st_mtime), (S_IFREG | 0o755, 4242));
    // Zero-copy: the file's bytes are the archive's.
    let data = prog.static_data().unwrap();
    assert_eq!(data, b"\x7fELF program");
    let range = image.as_ptr_range();
    assert!(range.contains(&data.as_ptr()));
    assert_eq!(
        vfs.lookup(&ctx, vfs.root(), b"/deep/er/file", true)
            .unwrap()
            .mode(),
        S_IFREG | 0o600
    );
    let req = vfs.take_boot_request().unwrap().unwrap();
    assert_eq!(req.exe, b"/bin/alias");
    assert_eq!(
        vfs.realpath(&ctx, vfs.root(), &req.exe).unwrap(),
        b"/bin/prog"
    );
}

#[test]
fn cpio_errors() {
    // Truncated archive: the entries before the damage are in, then the reader's error.
    let good = archive(|w| {
        w.add_file("first", 0o644, b"1").unwrap();
        w.add_file("second", 0o644, b"22222222").unwrap();
    });
    let cut: &'static [u8] = &good[..good.len() - 130];
    let vfs = fresh();
    let err = vfs.populate_cpio(cut).unwrap_err();
    assert!(matches!(err, InitramfsError::Cpio(_)), "{err:?}");
    assert!(vfs.lookup(&root(), vfs.root(), b"/first", true).is_ok());
    // A bad entry in a well-formed archive.
    let bad = archive(|w| {
        w.add_file("f", 0o644, b"").unwrap();
        w.add_file("f/g", 0o644, b"").unwrap();
    });
    let err = fresh().populate_cpio(bad).unwrap_err();
    assert_eq!(
        err,
        InitramfsError::Entry(PopulateError {
            name: b"f/g".to_vec(),
            errno: Errno::ENOTDIR
        })
    );
    assert_eq!(
        err.to_string(),
        "initramfs entry \"f/g\": Not a directory (ENOTDIR)"
    );
    assert!(matches!(
        fresh().populate_cpio(b"garbage").unwrap_err(),
        InitramfsError::Cpio(ktls_cpio::Error::Truncated { offset: 0 })
    ));
    assert!(matches!(
        fresh().populate_cpio(&[b'x'; 200]).unwrap_err(),
        InitramfsError::Cpio(ktls_cpio::Error::BadMagic { offset: 0 })
    ));
}
