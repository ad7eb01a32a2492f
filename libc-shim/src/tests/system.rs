//! Ids, CPU, clocks and the C wrappers against glibc, in this (glibc-started) process: no KTLS
//! area here, so the shim takes the vDSO or the system call, as on Linux.

use ktls_abi::time::Timespec;
use ktls_abi::Errno;

use super::host_init;
use crate::vdso::{self, Sym};
use crate::{cabi, ids};

#[test]
fn no_ktls_area_in_this_process() {
    host_init();
    assert_eq!(ids::ktls_size(), 0);
    assert_eq!(crate::ktls_read(ids::off::TID), None);
    assert_eq!(ids::rseq_cpu(), None);
    // The host is Linux: no KTLS keys, so no KTLS accessors in its vDSO either.
    assert_eq!(crate::auxv::get(ktls_abi::auxv::AT_KTLS_FEATURE_SIZE), None);
    assert_eq!(vdso::addr(Sym::Gettid), None);
}

#[test]
fn ids_match_glibc() {
    host_init();
    // SAFETY: plain libc calls.
    unsafe {
        assert_eq!(ids::getpid(), libc::getpid());
        assert_eq!(ids::getuid(), libc::getuid());
        assert_eq!(ids::geteuid(), libc::geteuid());
        assert_eq!(ids::getgid(), libc::getgid());
        assert_eq!(ids::getegid(), libc::getegid());
        assert_eq!(cabi::getpid(), libc::getpid());
        assert_eq!(cabi::getuid(), libc::getuid());
    }
    // gettid differs per thread: compare in several.
    let ts: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                // SAFETY: plain libc call.
                let theirs = unsafe { libc::gettid() };
                assert_eq!(ids::gettid(), theirs);
                assert_eq!(cabi::gettid(), theirs);
                theirs
            })
        })
        .collect();
    let tids: Vec<_> = ts.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(tids.windows(2).all(|w| w[0] != w[1]));
}

/// Runs `f` pinned to one CPU, so the CPU cannot change under it.
fn pinned<R>(cpu: usize, f: impl FnOnce() -> R) -> Option<R> {
    // SAFETY: plain libc calls on a zeroed cpu_set_t for the calling thread.
    unsafe {
        let mut old: libc::cpu_set_t = core::mem::zeroed();
        libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut old);
        if !libc::CPU_ISSET(cpu, &old) {
            return None;
        }
        let mut one: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        if libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
            return None;
        }
        let r = f();
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &old);
        Some(r)
    }
}

#[test]
fn cpu_matches_glibc() {
    host_init();
    // The host's vDSO has __vdso_getcpu; the shim uses it.
    assert!(vdso::addr(Sym::Getcpu).is_some());
    std::thread::spawn(|| {
        let mut checked = 0;
        for cpu in 0..64 {
            let r = pinned(cpu, || {
                // SAFETY: plain libc call.
                let theirs = unsafe { libc::sched_getcpu() };
                (
                    theirs,
                    ids::sched_getcpu(),
                    ids::ktls_cpu(),
                    cabi::sched_getcpu(),
                )
            });
            if let Some((theirs, ours, ktls, c)) = r {
                assert_eq!(theirs, cpu as i32);
                assert_eq!(ours, Ok(cpu as u32));
                assert_eq!(ktls, Ok(cpu as u32));
                assert_eq!(c, cpu as i32);
                checked += 1;
            }
        }
        assert!(checked > 0);
    })
    .join()
    .unwrap();
}

fn ns(ts: &Timespec) -> i128 {
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

#[test]
fn clocks_match_glibc() {
    host_init();
    assert!(vdso::addr(Sym::ClockGettime).is_some());
    for clock in [
        libc::CLOCK_MONOTONIC,
        libc::CLOCK_REALTIME,
        libc::CLOCK_BOOTTIME,
    ] {
        let mut before = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut after = before;
        let mut ours = Timespec::default();
        let mut c = Timespec::default();
        // SAFETY: each call writes one timespec.
        unsafe {
            libc::clock_gettime(clock, &mut before);
            ids::clock_gettime(clock, &mut ours).unwrap();
            assert_eq!(cabi::clock_gettime(clock, &mut c), 0);
            libc::clock_gettime(clock, &mut after);
        }
        let (b, a) = (
            before.tv_sec as i128 * 1_000_000_000 + before.tv_nsec as i128,
            after.tv_sec as i128 * 1_000_000_000 + after.tv_nsec as i128,
        );
        assert!(
            b <= ns(&ours) && ns(&ours) <= ns(&c) && ns(&c) <= a,
            "clock {clock}"
        );
    }
    // A bad clock id: EINVAL, as glibc.
    let mut ts = Timespec::default();
    assert_eq!(ids::clock_gettime(12345, &mut ts), Err(Errno::EINVAL));
    // SAFETY: ts is writable.
    assert_eq!(unsafe { cabi::clock_gettime(12345, &mut ts) }, -1);
    // SAFETY: glibc's errno, which the shim's wrappers set in this process.
    assert_eq!(unsafe { *libc::__errno_location() }, libc::EINVAL);
}

#[test]
fn read_write_and_errno() {
    host_init();
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: valid buffers of the given lengths.
    unsafe {
        assert_eq!(cabi::write(fds[1], b"ktls".as_ptr().cast(), 4), 4);
        let mut buf = [0u8; 8];
        assert_eq!(cabi::read(fds[0], buf.as_mut_ptr().cast(), 8), 4);
        assert_eq!(&buf[..4], b"ktls");
        libc::close(fds[0]);
        libc::close(fds[1]);
        *libc::__errno_location() = 0;
        assert_eq!(cabi::read(fds[0], buf.as_mut_ptr().cast(), 8), -1);
        assert_eq!(*libc::__errno_location(), libc::EBADF);
    }
}

/// (Not AT_HWCAP: glibc's getauxval returns its own x86 platform bits for it.)
#[test]
fn getauxval_matches_glibc() {
    host_init();
    for key in [
        libc::AT_PAGESZ,
        libc::AT_UID,
        libc::AT_SYSINFO_EHDR,
        libc::AT_RANDOM,
        ktls_abi::auxv::AT_RSEQ_FEATURE_SIZE,
        ktls_abi::auxv::AT_KTLS_FEATURE_SIZE,
    ] {
        // SAFETY: plain libc call.
        assert_eq!(
            cabi::getauxval(key),
            unsafe { libc::getauxval(key) },
            "key {key}"
        );
    }
}
