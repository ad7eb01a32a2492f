//! getdents64: records, `.` and `..`, buffer sizes, resumption, cookies.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::Errno;

#[test]
fn lists_dot_dotdot_and_entries_with_types() {
    let e = env();
    let f = e.open("/", O_RDONLY | O_DIRECTORY).unwrap();
    let all = list_dir(&f, 4096);
    let n = names(&all);
    assert_eq!(&n[..2], [".", ".."]);
    for want in [
        "bin",
        "etc",
        "usr",
        "home",
        "link_to_hello",
        "tmp",
        "dev",
        "proc",
    ] {
        assert!(n.contains(&want.to_string()), "{want} in {n:?}");
    }
    let get = |name: &str| all.iter().find(|d| d.name == name.as_bytes()).unwrap();
    let root_ino = e.root().ino();
    assert_eq!(get(".").ino, root_ino);
    assert_eq!(get("..").ino, root_ino, "`..` of / is /");
    assert_eq!(get(".").dtype, DT_DIR);
    assert_eq!(get("bin").dtype, DT_DIR);
    assert_eq!(get("bin").ino, e.lookup("/bin").unwrap().ino());
    assert_eq!(get("link_to_hello").dtype, DT_LNK);
    let bin = e.open("/bin", O_RDONLY).unwrap();
    let bin_entries = list_dir(&bin, 4096);
    let hello = bin_entries.iter().find(|d| d.name == b"hello").unwrap();
    assert_eq!(hello.dtype, DT_REG);
    assert_eq!(bin_entries[1].ino, root_ino, "`..` of /bin is /");
    let dev = list_dir(&e.open("/dev", O_RDONLY).unwrap(), 4096);
    assert_eq!(
        dev.iter().find(|d| d.name == b"null").unwrap().dtype,
        DT_CHR
    );
    e.vfs
        .mknod(&root(), e.root(), b"/tmp/fifo", S_IFIFO | 0o600, 0)
        .unwrap();
    let tmp = list_dir(&e.open("/tmp", O_RDONLY).unwrap(), 4096);
    assert_eq!(names(&tmp), [".", "..", "fifo"]);
    assert_eq!(tmp[2].dtype, DT_FIFO);
}

#[test]
fn offsets_are_cookies_for_the_next_entry() {
    let e = env();
    for i in 0..5 {
        e.write_file(&format!("/tmp/f{i}"), b"");
    }
    let f = e.open("/tmp", O_RDONLY).unwrap();
    let all = list_dir(&f, 4096);
    assert_eq!(names(&all), [".", "..", "f0", "f1", "f2", "f3", "f4"]);
    // Seeking to an entry's d_off continues right after it.
    for (i, d) in all.iter().enumerate() {
        f.seek(d.off, SEEK_SET).unwrap();
        let rest = list_dir(&f, 4096);
        assert_eq!(names(&rest), names(&all[i + 1..]), "after {:?}", d.name);
    }
    // Back to the start.
    f.seek(0, SEEK_SET).unwrap();
    assert_eq!(list_dir(&f, 4096).len(), 7);
    // At the end: 0 and it stays 0.
    assert_eq!(f.getdents64(&mut [0; 512]).unwrap(), 0);
    assert_eq!(f.getdents64(&mut [0; 512]).unwrap(), 0);
}

#[test]
fn small_buffers() {
    let e = env();
    e.write_file("/tmp/a_rather_long_file_name_for_a_record", b"");
    let f = e.open("/tmp", O_RDONLY).unwrap();
    // "." needs 24 bytes: less is EINVAL and consumes nothing.
    let dot = dirent64_reclen(1);
    assert_eq!(dot, 24);
    assert_eq!(
        f.getdents64(&mut vec![0; dot - 1]).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(f.getdents64(&mut []).unwrap_err(), Errno::EINVAL);
    assert_eq!(f.position(), 0);
    // Exactly one record fits.
    let mut buf = vec![0u8; dot];
    assert_eq!(f.getdents64(&mut buf).unwrap(), dot);
    assert_eq!(parse_dirents(&buf)[0].name, b".");
    // Room for ".." plus part of the next: only ".." is returned.
    let mut buf = vec![0u8; dot + 10];
    assert_eq!(f.getdents64(&mut buf).unwrap(), dot);
    assert_eq!(parse_dirents(&buf[..dot])[0].name, b"..");
    // The long name does not fit in 24 bytes: EINVAL, position kept.
    let pos = f.position();
    assert_eq!(f.getdents64(&mut vec![0; dot]).unwrap_err(), Errno::EINVAL);
    assert_eq!(f.position(), pos);
    let need = dirent64_reclen("a_rather_long_file_name_for_a_record".len());
    let mut buf = vec![0u8; need];
    assert_eq!(f.getdents64(&mut buf).unwrap(), need);
    assert_eq!(f.getdents64(&mut buf).unwrap(), 0);
}

#[test]
fn every_buffer_size_yields_the_same_listing() {
    let e = env();
    for i in 0..20 {
        e.write_file(&format!("/tmp/{}", "n".repeat(i + 1)), b"");
    }
    let reference = list_dir(&e.open("/tmp", O_RDONLY).unwrap(), 65536);
    assert_eq!(reference.len(), 22);
    let largest = reference.iter().map(|d| d.reclen).max().unwrap();
    for size in largest..largest + 100 {
        let got = list_dir(&e.open("/tmp", O_RDONLY).unwrap(), size);
        assert_eq!(got, reference, "buffer of {size}");
    }
}

#[test]
fn changes_during_iteration() {
    let e = env();
    for name in ["a", "b", "c", "d"] {
        e.write_file(&format!("/tmp/{name}"), b"");
    }
    let f = e.open("/tmp", O_RDONLY).unwrap();
    // Read ".", "..", "a".
    let mut buf = vec![0u8; 24 * 3];
    let n = f.getdents64(&mut buf).unwrap();
    assert_eq!(names(&parse_dirents(&buf[..n])), [".", "..", "a"]);
    // Remove one not yet read, one already read; add one.
    e.vfs.unlink(&root(), e.root(), b"/tmp/c").unwrap();
    e.vfs.unlink(&root(), e.root(), b"/tmp/a").unwrap();
    e.write_file("/tmp/e", b"");
    let rest = list_dir(&f, 4096);
    assert_eq!(names(&rest), ["b", "d", "e"]);
}

#[test]
fn dotdot_of_a_mount_root_and_nested() {
    let e = env();
    e.vfs.mkdir(&root(), e.root(), b"/tmp/sub", 0o755).unwrap();
    let all = list_dir(&e.open("/tmp/sub", O_RDONLY).unwrap(), 4096);
    assert_eq!(all[1].ino, e.tmp.ino());
    assert_eq!(all[0].ino, e.lookup("/tmp/sub").unwrap().ino());
    // A mount root's `..` entry names the root itself (its d_parent), as on Linux; path
    // walking still leaves the mount.
    let tmp = list_dir(&e.open("/tmp", O_RDONLY).unwrap(), 4096);
    assert_eq!(tmp[1].ino, e.tmp.ino());
    assert!(Arc::ptr_eq(&e.lookup("/tmp/..").unwrap(), e.root()));
}

#[test]
fn not_a_directory() {
    let e = env();
    let f = e.open("/bin/hello", O_RDONLY).unwrap();
    assert_eq!(f.getdents64(&mut [0; 256]).unwrap_err(), Errno::ENOTDIR);
    let n = e.open("/dev/null", O_RDONLY).unwrap();
    assert_eq!(n.getdents64(&mut [0; 256]).unwrap_err(), Errno::ENOTDIR);
    let (r, _w) = e.vfs.pipe(&root(), 0).unwrap();
    assert_eq!(r.getdents64(&mut [0; 256]).unwrap_err(), Errno::ENOTDIR);
}
