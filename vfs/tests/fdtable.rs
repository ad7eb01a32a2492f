//! The file descriptor table.

mod common;

use std::sync::Arc;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{Errno, FdTable, OpenFile, DEFAULT_NOFILE};

fn file(e: &Env) -> Arc<OpenFile> {
    e.open("/bin/hello", O_RDONLY).unwrap()
}

#[test]
fn lowest_free_descriptor() {
    let e = env();
    let mut t = FdTable::new();
    assert!(t.is_empty());
    assert_eq!(t.insert(file(&e), false).unwrap(), 0);
    assert_eq!(t.insert(file(&e), false).unwrap(), 1);
    assert_eq!(t.insert(file(&e), false).unwrap(), 2);
    t.close(1).unwrap();
    assert_eq!(t.insert(file(&e), false).unwrap(), 1);
    assert_eq!(t.insert(file(&e), false).unwrap(), 3);
    assert_eq!(t.len(), 4);
    let fds: Vec<i32> = t.iter().map(|(fd, _, _)| fd).collect();
    assert_eq!(fds, [0, 1, 2, 3]);
}

#[test]
fn bad_descriptors() {
    let e = env();
    let mut t = FdTable::new();
    t.insert(file(&e), false).unwrap();
    for fd in [-1, 1, 1000, i32::MAX] {
        assert_eq!(t.get(fd).unwrap_err(), Errno::EBADF);
        assert_eq!(t.close(fd).unwrap_err(), Errno::EBADF);
        assert_eq!(t.dup(fd).unwrap_err(), Errno::EBADF);
        assert_eq!(t.cloexec(fd).unwrap_err(), Errno::EBADF);
        assert_eq!(t.set_cloexec(fd, true).unwrap_err(), Errno::EBADF);
    }
    t.close(0).unwrap();
    assert_eq!(t.close(0).unwrap_err(), Errno::EBADF, "double close");
}

#[test]
fn emfile_at_the_limit() {
    let e = env();
    let mut t = FdTable::new();
    assert_eq!(t.limit(), DEFAULT_NOFILE);
    let f = file(&e);
    for i in 0..DEFAULT_NOFILE {
        assert_eq!(t.insert(f.clone(), false).unwrap(), i as i32);
    }
    assert_eq!(t.insert(f.clone(), false).unwrap_err(), Errno::EMFILE);
    assert_eq!(t.dup(0).unwrap_err(), Errno::EMFILE);
    t.close(500).unwrap();
    assert_eq!(t.dup(0).unwrap(), 500);
    // Lowering the limit keeps open descriptors but allocates below it.
    let mut t = FdTable::new();
    for _ in 0..10 {
        t.insert(f.clone(), false).unwrap();
    }
    t.set_limit(5).unwrap();
    assert!(t.get(9).is_ok());
    assert_eq!(t.insert(f.clone(), false).unwrap_err(), Errno::EMFILE);
    t.close(2).unwrap();
    assert_eq!(t.insert(f.clone(), false).unwrap(), 2);
    assert_eq!(t.set_limit(NR_OPEN + 1).unwrap_err(), Errno::EPERM);
    t.set_limit(NR_OPEN).unwrap();
    assert_eq!(t.insert(f, false).unwrap(), 10);
}

#[test]
fn dup_shares_the_description() {
    let e = env();
    let mut t = FdTable::new();
    let fd = t.insert(file(&e), true).unwrap();
    let d = t.dup(fd).unwrap();
    assert_eq!(d, 1);
    assert!(Arc::ptr_eq(&t.get(fd).unwrap(), &t.get(d).unwrap()));
    assert!(t.cloexec(fd).unwrap());
    assert!(!t.cloexec(d).unwrap(), "dup clears FD_CLOEXEC");
    t.get(fd).unwrap().read(&mut [0; 6]).unwrap();
    assert_eq!(t.get(d).unwrap().position(), 6, "one shared offset");
}

#[test]
fn dup2_and_dup3() {
    let e = env();
    let mut t = FdTable::new();
    let a = t.insert(file(&e), false).unwrap();
    let b = t
        .insert(e.open("/etc/passwd", O_RDONLY).unwrap(), true)
        .unwrap();
    let old_b = t.get(b).unwrap();
    // dup2 onto an open descriptor closes what was there.
    assert_eq!(t.dup2(a, b).unwrap(), b);
    assert!(Arc::ptr_eq(&t.get(a).unwrap(), &t.get(b).unwrap()));
    assert_eq!(
        Arc::strong_count(&old_b),
        1,
        "the table let go of the old file"
    );
    assert!(!t.cloexec(b).unwrap());
    // Onto a high descriptor.
    assert_eq!(t.dup2(a, 100).unwrap(), 100);
    assert_eq!(t.len(), 3);
    assert_eq!(t.insert(file(&e), false).unwrap(), 2, "still lowest-free");
    // Same descriptor: only validated.
    assert_eq!(t.dup2(a, a).unwrap(), a);
    assert_eq!(t.dup2(50, 50).unwrap_err(), Errno::EBADF);
    assert_eq!(t.dup2(50, 51).unwrap_err(), Errno::EBADF);
    assert_eq!(t.dup2(a, -1).unwrap_err(), Errno::EBADF);
    assert_eq!(t.dup2(a, DEFAULT_NOFILE as i32).unwrap_err(), Errno::EBADF);
    // dup3.
    assert_eq!(t.dup3(a, a, 0).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.dup3(a, 7, O_NONBLOCK).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.dup3(50, 7, 0).unwrap_err(), Errno::EBADF);
    assert_eq!(t.dup3(a, 7, O_CLOEXEC).unwrap(), 7);
    assert!(t.cloexec(7).unwrap());
    assert_eq!(t.dup3(a, 8, 0).unwrap(), 8);
    assert!(!t.cloexec(8).unwrap());
}

#[test]
fn f_dupfd() {
    let e = env();
    let mut t = FdTable::new();
    let a = t.insert(file(&e), false).unwrap();
    assert_eq!(t.dup_min(a, 10, false).unwrap(), 10);
    assert_eq!(t.dup_min(a, 10, true).unwrap(), 11);
    assert!(t.cloexec(11).unwrap());
    assert_eq!(t.dup_min(a, 0, false).unwrap(), 1);
    assert_eq!(t.dup_min(a, -1, false).unwrap_err(), Errno::EINVAL);
    assert_eq!(
        t.dup_min(a, DEFAULT_NOFILE as i32, false).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(t.dup_min(99, 5, false).unwrap_err(), Errno::EBADF);
    // EMFILE when everything from min up is taken.
    t.set_limit(12).unwrap();
    assert_eq!(t.dup_min(a, 10, false).unwrap_err(), Errno::EMFILE);
}

#[test]
fn cloexec_and_exec() {
    let e = env();
    let mut t = FdTable::new();
    let a = t.insert(file(&e), true).unwrap();
    let b = t.insert(file(&e), false).unwrap();
    let c = t.insert(file(&e), false).unwrap();
    t.set_cloexec(c, true).unwrap();
    t.set_cloexec(a, false).unwrap();
    t.close_on_exec();
    assert!(t.get(a).is_ok());
    assert!(t.get(b).is_ok());
    assert_eq!(t.get(c).unwrap_err(), Errno::EBADF);
}

#[test]
fn close_range() {
    let e = env();
    let mut t = FdTable::new();
    for _ in 0..10 {
        t.insert(file(&e), false).unwrap();
    }
    assert_eq!(t.close_range(5, 4, 0).unwrap_err(), Errno::EINVAL);
    assert_eq!(t.close_range(0, 1, 1).unwrap_err(), Errno::EINVAL);
    t.close_range(3, 5, 0).unwrap();
    let fds: Vec<i32> = t.iter().map(|(fd, _, _)| fd).collect();
    assert_eq!(fds, [0, 1, 2, 6, 7, 8, 9]);
    t.close_range(7, u32::MAX, CLOSE_RANGE_CLOEXEC).unwrap();
    assert!(!t.cloexec(6).unwrap());
    assert!(t.cloexec(7).unwrap() && t.cloexec(9).unwrap());
    t.close_range(8, u32::MAX, CLOSE_RANGE_UNSHARE).unwrap();
    assert_eq!(t.len(), 5);
    // Ranges past the end are fine.
    t.close_range(100, 200, 0).unwrap();
    t.close_range(0, u32::MAX, 0).unwrap();
    assert!(t.is_empty());
}

#[test]
fn fork_shares_open_files_but_not_the_table() {
    let e = env();
    let mut parent = FdTable::new();
    let fd = parent.insert(file(&e), true).unwrap();
    let mut child = parent.clone();
    assert!(Arc::ptr_eq(
        &parent.get(fd).unwrap(),
        &child.get(fd).unwrap()
    ));
    assert!(child.cloexec(fd).unwrap(), "FD_CLOEXEC is inherited");
    child.close(fd).unwrap();
    assert!(parent.get(fd).is_ok());
    child.insert(file(&e), false).unwrap();
    child.insert(file(&e), false).unwrap();
    assert_eq!(parent.len(), 1);
}
