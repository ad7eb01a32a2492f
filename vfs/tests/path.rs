//! Path resolution: absolute/relative, `.`/`..`, slashes, symlinks, errors.

mod common;

use common::*;
use ktls_abi::fs::{NAME_MAX, PATH_MAX, S_IFDIR, S_IFLNK, S_IFREG};
use ktls_vfs::{Errno, KernelContext, MAX_SYMLINKS};

#[test]
fn absolute_and_relative() {
    let e = env();
    let hello = e.lookup("/bin/hello").unwrap();
    assert_eq!(hello.file_type(), S_IFREG);
    let bin = e.lookup("/bin").unwrap();
    let rel = e.vfs.lookup(&root(), &bin, b"hello", true).unwrap();
    assert!(std::sync::Arc::ptr_eq(&hello, &rel));
    // An absolute path ignores the start directory.
    let abs = e.vfs.lookup(&root(), &bin, b"/etc/passwd", true).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &abs,
        &e.lookup("/etc/passwd").unwrap()
    ));
}

#[test]
fn dots_and_slashes() {
    let e = env();
    let hello = e.lookup("/bin/hello").unwrap();
    for p in [
        "//bin///hello",
        "/./bin/./hello",
        "/bin/../bin/hello",
        "/../../bin/hello",
        "/usr/lib/../../bin/hello",
        "bin/hello",
        "./bin/hello",
    ] {
        let n = e.lookup(p).unwrap_or_else(|err| panic!("{p}: {err:?}"));
        assert!(std::sync::Arc::ptr_eq(&n, &hello), "{p}");
    }
    // `..` of the root is the root.
    for p in ["/..", "/../..", "..", "/.", "/", "///"] {
        assert!(
            std::sync::Arc::ptr_eq(&e.lookup(p).unwrap(), e.root()),
            "{p}"
        );
    }
    // `..` out of a mounted file system goes back to the parent.
    assert!(std::sync::Arc::ptr_eq(
        &e.lookup("/tmp/..").unwrap(),
        e.root()
    ));
    assert!(std::sync::Arc::ptr_eq(
        &e.lookup("/dev/..").unwrap(),
        e.root()
    ));
}

#[test]
fn trailing_slash_requires_a_directory() {
    let e = env();
    assert_eq!(e.lookup("/bin/").unwrap().file_type(), S_IFDIR);
    assert_eq!(e.lookup("/bin/hello/").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(e.lookup("/bin/hello/.").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(e.lookup("/bin/hello/..").unwrap_err(), Errno::ENOTDIR);
    // A trailing slash follows a final symlink even without follow.
    let usr = e
        .vfs
        .lookup(&root(), e.root(), b"/usrlink/", false)
        .unwrap();
    assert_eq!(usr.file_type(), S_IFDIR);
    assert_eq!(
        e.vfs
            .lookup(&root(), e.root(), b"/link_to_hello/", false)
            .unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn middle_component_not_a_directory() {
    let e = env();
    assert_eq!(e.lookup("/bin/hello/x").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(
        e.lookup("/etc/passwd/../passwd").unwrap_err(),
        Errno::ENOTDIR
    );
    // Relative path from a non-directory start.
    let hello = e.lookup("/bin/hello").unwrap();
    assert_eq!(
        e.vfs.lookup(&root(), &hello, b"x", true).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        e.vfs.lookup(&root(), &hello, b".", true).unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn missing_and_empty() {
    let e = env();
    assert_eq!(e.lookup("").unwrap_err(), Errno::ENOENT);
    assert_eq!(e.lookup("/nope").unwrap_err(), Errno::ENOENT);
    assert_eq!(e.lookup("/nope/x").unwrap_err(), Errno::ENOENT);
    assert_eq!(e.lookup("/bin/nope").unwrap_err(), Errno::ENOENT);
}

#[test]
fn name_and_path_length_limits() {
    let e = env();
    let long = "a".repeat(NAME_MAX + 1);
    assert_eq!(
        e.lookup(&format!("/{long}")).unwrap_err(),
        Errno::ENAMETOOLONG
    );
    assert_eq!(
        e.lookup(&format!("/{long}/x")).unwrap_err(),
        Errno::ENAMETOOLONG
    );
    // NAME_MAX itself is fine (just absent).
    let max = "a".repeat(NAME_MAX);
    assert_eq!(e.lookup(&format!("/{max}")).unwrap_err(), Errno::ENOENT);
    // A missing directory before an over-long name reports ENOENT first.
    assert_eq!(
        e.lookup(&format!("/nope/{long}")).unwrap_err(),
        Errno::ENOENT
    );
    // Paths of PATH_MAX bytes or more are too long, PATH_MAX - 1 is not.
    let path = "/".repeat(PATH_MAX - "bin/hello".len() - 1) + "bin/hello";
    assert_eq!(path.len(), PATH_MAX - 1);
    assert!(e.lookup(&path).is_ok());
    let path = "/".repeat(PATH_MAX - "bin/hello".len()) + "bin/hello";
    assert_eq!(e.lookup(&path).unwrap_err(), Errno::ENAMETOOLONG);
}

#[test]
fn symlinks_followed_or_not() {
    let e = env();
    let hello = e.lookup("/bin/hello").unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &e.lookup("/link_to_hello").unwrap(),
        &hello
    ));
    // Relative target: from the link's directory.
    assert!(std::sync::Arc::ptr_eq(
        &e.lookup("/bin/rel_link").unwrap(),
        &hello
    ));
    // Symlink in the middle is always followed.
    assert!(std::sync::Arc::ptr_eq(
        &e.vfs
            .lookup(&root(), e.root(), b"/usrlink/lib/libc.so", false)
            .unwrap(),
        &e.lookup("/usr/lib/libc.so").unwrap()
    ));
    // Not following the last one.
    let link = e
        .vfs
        .lookup(&root(), e.root(), b"/link_to_hello", false)
        .unwrap();
    assert_eq!(link.file_type(), S_IFLNK);
    assert_eq!(link.readlink(&root()).unwrap(), b"/bin/hello");
    // `..` inside a target applies to the target's directories.
    assert!(std::sync::Arc::ptr_eq(
        &e.lookup("/dotdot_link").unwrap(),
        &e.lookup("/usr").unwrap()
    ));
    assert_eq!(e.lookup("/dangling").unwrap_err(), Errno::ENOENT);
    assert!(e.vfs.lookup(&root(), e.root(), b"/dangling", false).is_ok());
}

#[test]
fn symlink_loops_and_the_limit() {
    let e = env();
    assert_eq!(e.lookup("/loop1").unwrap_err(), Errno::ELOOP);
    assert_eq!(e.lookup("/loop1/x").unwrap_err(), Errno::ELOOP);
    // Not following the last component: no loop.
    assert!(e.vfs.lookup(&root(), e.root(), b"/loop1", false).is_ok());

    // A chain of exactly 40 links (Linux's MAXSYMLINKS) resolves; one more is ELOOP.
    assert_eq!(MAX_SYMLINKS, 40);
    let ctx = root();
    let n = 40;
    e.vfs
        .symlink(&ctx, b"/bin/hello", e.root(), b"/tmp/l0")
        .unwrap();
    for i in 1..=n {
        let target = format!("l{}", i - 1);
        let name = format!("/tmp/l{i}");
        e.vfs
            .symlink(&ctx, target.as_bytes(), e.root(), name.as_bytes())
            .unwrap();
    }
    // l{n-1} takes n links to reach /bin/hello.
    assert!(e.lookup(&format!("/tmp/l{}", n - 1)).is_ok());
    assert_eq!(e.lookup(&format!("/tmp/l{n}")).unwrap_err(), Errno::ELOOP);
}

#[test]
fn search_permission() {
    let e = env();
    let owner = user(1000, 1000);
    let other = user(2000, 2000);
    e.vfs.mkdir(&owner, e.root(), b"/tmp/p", 0o700).unwrap();
    e.vfs.mkdir(&owner, e.root(), b"/tmp/p/sub", 0o777).unwrap();
    assert!(e.vfs.lookup(&owner, e.root(), b"/tmp/p/sub", true).is_ok());
    assert_eq!(
        e.vfs
            .lookup(&other, e.root(), b"/tmp/p/sub", true)
            .unwrap_err(),
        Errno::EACCES
    );
    // Even `.` and `..` need search permission on the directory walked through.
    assert_eq!(
        e.vfs
            .lookup(&other, e.root(), b"/tmp/p/.", true)
            .unwrap_err(),
        Errno::EACCES
    );
    // The directory itself may be looked up (its parent is searchable).
    assert!(e.vfs.lookup(&other, e.root(), b"/tmp/p", true).is_ok());
    // Root bypasses.
    assert!(e.vfs.lookup(&root(), e.root(), b"/tmp/p/sub", true).is_ok());
}

#[test]
fn getcwd_and_realpath() {
    let e = env();
    let ctx = root();
    assert_eq!(e.vfs.path_of(e.root()).unwrap(), b"/");
    let lib = e.lookup("/usr/lib").unwrap();
    assert_eq!(e.vfs.path_of(&lib).unwrap(), b"/usr/lib");
    assert_eq!(e.vfs.path_of(&e.lookup("/tmp").unwrap()).unwrap(), b"/tmp");
    assert_eq!(
        e.vfs.path_of(&e.lookup("/proc/self").unwrap()).unwrap(),
        b"/proc/self"
    );
    assert_eq!(
        e.vfs.path_of(&e.lookup("/bin/hello").unwrap()).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        e.vfs.realpath(&ctx, e.root(), b"/bin/rel_link").unwrap(),
        b"/bin/hello"
    );
    assert_eq!(
        e.vfs.realpath(&ctx, e.root(), b"usrlink/lib/").unwrap(),
        b"/usr/lib"
    );
    assert_eq!(
        e.vfs.realpath(&ctx, &lib, b"../../link_to_hello").unwrap(),
        b"/bin/hello"
    );
    assert_eq!(
        e.vfs.realpath(&ctx, e.root(), b"/dotdot_link").unwrap(),
        b"/usr"
    );

    // A removed cwd has no path; a renamed one has the new one.
    e.vfs.mkdir(&ctx, e.root(), b"/tmp/a", 0o755).unwrap();
    let a = e.vfs.mkdir(&ctx, e.root(), b"/tmp/a/b", 0o755).unwrap();
    e.vfs
        .rename(&ctx, e.root(), b"/tmp/a", e.root(), b"/tmp/c", 0)
        .unwrap();
    assert_eq!(e.vfs.path_of(&a).unwrap(), b"/tmp/c/b");
    e.vfs.rmdir(&ctx, e.root(), b"/tmp/c/b").unwrap();
    assert_eq!(e.vfs.path_of(&a).unwrap_err(), Errno::ENOENT);
    // Lookups inside it find nothing; `..` still leads out.
    assert_eq!(
        e.vfs.lookup(&ctx, &a, b"x", true).unwrap_err(),
        Errno::ENOENT
    );
    assert!(std::sync::Arc::ptr_eq(
        &e.vfs.lookup(&ctx, &a, b"..", true).unwrap(),
        &e.lookup("/tmp/c").unwrap()
    ));
}

#[test]
fn chdir_lookup() {
    let e = env();
    assert!(e.vfs.lookup_dir(&root(), e.root(), b"/usrlink").is_ok());
    assert_eq!(
        e.vfs
            .lookup_dir(&root(), e.root(), b"/bin/hello")
            .unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(
        e.vfs
            .lookup_dir(&user(2000, 2000), e.root(), b"/home/user/private")
            .unwrap_err(),
        Errno::EACCES
    );
}

#[test]
fn proc_self_exe_is_per_process() {
    let e = env();
    let mut ctx = root();
    assert_eq!(
        e.vfs.readlink(&ctx, e.root(), b"/proc/self/exe").unwrap(),
        b"/bin/hello"
    );
    assert!(std::sync::Arc::ptr_eq(
        &e.vfs
            .lookup(&ctx, e.root(), b"/proc/self/exe", true)
            .unwrap(),
        &e.lookup("/bin/hello").unwrap()
    ));
    ctx.exe = Some(b"/usr/lib/libc.so".to_vec());
    assert_eq!(
        e.vfs
            .lookup(&ctx, e.root(), b"/proc/self/exe", true)
            .unwrap()
            .size(),
        4
    );
    let link = e
        .vfs
        .lookup(&ctx, e.root(), b"/proc/self/exe", false)
        .unwrap();
    assert_eq!(link.file_type(), S_IFLNK);
    // The kernel (no executable): ENOENT.
    assert_eq!(
        e.vfs
            .lookup(&KernelContext, e.root(), b"/proc/self/exe", true)
            .unwrap_err(),
        Errno::ENOENT
    );
}
