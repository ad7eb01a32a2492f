//! Thread safety: the shared types are Send + Sync, and concurrent namespace changes and
//! lookups neither deadlock nor corrupt the tree.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use ktls_abi::fs::*;
use ktls_vfs::{Errno, FdTable, Node, OpenFile, Vfs};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn shared_types_are_send_and_sync() {
    assert_send_sync::<Vfs>();
    assert_send_sync::<Node>();
    assert_send_sync::<OpenFile>();
    assert_send_sync::<FdTable>();
}

/// Runs `threads` closures to completion, failing (instead of hanging) after a deadline.
fn run_with_watchdog(threads: Vec<Box<dyn FnOnce() + Send>>) {
    let (tx, rx) = mpsc::channel();
    let n = threads.len();
    for t in threads {
        let tx = tx.clone();
        std::thread::spawn(move || {
            t();
            tx.send(()).unwrap();
        });
    }
    for _ in 0..n {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a thread did not finish: deadlock?");
    }
}

#[test]
fn concurrent_renames_lookups_and_removals() {
    let e = Arc::new(env());
    let ctx = root();
    for d in ["/tmp/a", "/tmp/b", "/tmp/a/x", "/tmp/b/y"] {
        e.vfs.mkdir(&ctx, e.root(), d.as_bytes(), 0o755).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    // Two threads move directories between /tmp/a and /tmp/b in opposite directions (each
    // holds both parent locks while moving).
    for (from, to, name) in [("a", "b", "x"), ("b", "a", "y")] {
        let e = e.clone();
        threads.push(Box::new(move || {
            let ctx = root();
            for i in 0..2000 {
                let (src, dst) = if i % 2 == 0 { (from, to) } else { (to, from) };
                let old = format!("/tmp/{src}/{name}");
                let new = format!("/tmp/{dst}/{name}");
                e.vfs
                    .rename(&ctx, e.root(), old.as_bytes(), e.root(), new.as_bytes(), 0)
                    .unwrap();
            }
        }));
    }
    // One thread creates and removes directories inside the moving ones.
    {
        let e = e.clone();
        threads.push(Box::new(move || {
            let ctx = root();
            for i in 0..2000 {
                let base = if i % 2 == 0 { "a" } else { "b" };
                for name in ["x", "y"] {
                    let p = format!("/tmp/{base}/{name}/inner");
                    // The parent may move between the calls: ENOENT, or EEXIST for an
                    // `inner` left behind by an earlier round that missed it.
                    match e.vfs.mkdir(&ctx, e.root(), p.as_bytes(), 0o755) {
                        Ok(_) | Err(Errno::EEXIST) => {
                            match e.vfs.rmdir(&ctx, e.root(), p.as_bytes()) {
                                Ok(()) | Err(Errno::ENOENT) => {}
                                Err(err) => panic!("rmdir: {err:?}"),
                            }
                        }
                        Err(Errno::ENOENT) => {}
                        Err(err) => panic!("mkdir: {err:?}"),
                    }
                }
            }
        }));
    }
    // Readers walk paths, list directories and compute getcwd until the writers are done.
    for _ in 0..2 {
        let e = e.clone();
        let stop = stop.clone();
        threads.push(Box::new(move || {
            let ctx = root();
            while !stop.load(Ordering::Relaxed) {
                for p in ["/tmp/a/x", "/tmp/b/x", "/tmp/a/y/..", "/tmp/b/y/inner"] {
                    if let Ok(n) = e.vfs.lookup(&ctx, e.root(), p.as_bytes(), true) {
                        let path = e.vfs.path_of(&n);
                        assert!(matches!(&path, Ok(p) if p.starts_with(b"/tmp")) || path.is_err());
                    }
                }
                let d = e.open("/tmp/a", O_RDONLY).unwrap();
                list_dir(&d, 64);
            }
        }));
    }
    let (writers, readers): (Vec<_>, Vec<_>) =
        threads.into_iter().enumerate().partition(|(i, _)| *i < 3);
    let stopper = stop.clone();
    let mut all: Vec<Box<dyn FnOnce() + Send>> = readers.into_iter().map(|(_, t)| t).collect();
    let writers: Vec<Box<dyn FnOnce() + Send>> = writers.into_iter().map(|(_, t)| t).collect();
    all.push(Box::new(move || {
        run_with_watchdog(writers);
        stopper.store(true, Ordering::Relaxed);
    }));
    run_with_watchdog(all);

    // Each moving directory is in exactly one place, with a consistent `..`.
    for name in ["x", "y"] {
        let in_a = e.lookup(&format!("/tmp/a/{name}")).ok();
        let in_b = e.lookup(&format!("/tmp/b/{name}")).ok();
        assert!(
            in_a.is_some() != in_b.is_some(),
            "{name} in exactly one place"
        );
        let node = in_a.or(in_b).unwrap();
        let parent = e.vfs.lookup(&root(), &node, b"..", true).unwrap();
        assert!(e
            .vfs
            .path_of(&node)
            .unwrap()
            .starts_with(&e.vfs.path_of(&parent).unwrap()));
    }
    assert_eq!(
        e.lookup("/tmp/a").unwrap().nlink() + e.lookup("/tmp/b").unwrap().nlink(),
        6
    );
}

#[test]
fn concurrent_creates_in_one_directory() {
    let e = Arc::new(env());
    let threads: Vec<Box<dyn FnOnce() + Send>> = (0..4)
        .map(|t| {
            let e = e.clone();
            Box::new(move || {
                for i in 0..250 {
                    // Everyone races for the shared names; O_EXCL admits one winner.
                    let shared = format!("/tmp/shared{i}");
                    match e.open(&shared, O_WRONLY | O_CREAT | O_EXCL) {
                        Ok(f) => {
                            f.write(format!("{t}").as_bytes()).unwrap();
                        }
                        Err(Errno::EEXIST) => {}
                        Err(err) => panic!("{err:?}"),
                    }
                    e.write_file(&format!("/tmp/own{t}_{i}"), b"mine");
                }
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    run_with_watchdog(threads);
    let d = e.open("/tmp", O_RDONLY).unwrap();
    let entries = list_dir(&d, 4096);
    assert_eq!(entries.len(), 2 + 250 + 4 * 250);
    for i in 0..250 {
        assert_eq!(e.read_file(&format!("/tmp/shared{i}")).len(), 1);
    }
}
