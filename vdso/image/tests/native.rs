//! The vDSO, run natively on this Linux host: the image is loaded like the kernel maps it (the
//! file copied to a page-aligned address, made read+execute, with a vvar page laid out by
//! `ktls_abi::vvar::Vvar` right below it), its functions are found through its own dynamic
//! symbol table (DT_GNU_HASH and DT_HASH, with versions) and called directly.
//!
//! * clocks: with the host's TSC calibrated into the vvar page, against the host's
//!   clock_gettime; without a clock (clock_mode 0), and for clocks the vDSO does not serve,
//!   they are the host's system calls;
//! * KTLS getters: with the vvar page pointing at a fake area at a known offset from this
//!   thread's FS base, they return the area's (made-up) values; in every case where the spec
//!   says "system call" (no KTLS, dead area, field not filled, an area in the kernel half or
//!   nowhere, FS base 0) they return the host's getuid()/gettid()... . The host kernel does not
//!   know the vDSO's exception table, so a SIGSEGV/SIGBUS handler does what ktls's page-fault
//!   path does (kernel/src/vdso.rs): a fault at one of the table's loads resumes at its fixup.
//!
//! Each test loads its own copy, so tests running in parallel do not share a vvar page.

use ktls_abi::ktls::{self, KtlsArea};
use ktls_abi::time::{Timespec, Timeval, Timezone, NSEC_PER_SEC};
use ktls_abi::vvar::{Vvar, VCLOCK_NONE, VCLOCK_TSC, VVAR_SIZE};
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::mem::offset_of;
use std::ptr;

const PAGE: usize = 4096;

/// A loaded vDSO: `vvar` (one page, read-write here so tests can change it) and the image
/// right above it, read+execute.
struct Vdso {
    map: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by the Vdso and the seqlock test only reads the vDSO's code
// from another thread while this one writes the vvar page with volatile stores.
unsafe impl Send for Vdso {}
unsafe impl Sync for Vdso {}

impl Vdso {
    fn load() -> Vdso {
        let path = ktls_vdso_image::image().unwrap_or_else(|e| panic!("{e}"));
        let image = std::fs::read(&path).unwrap();
        let image_len = image.len().div_ceil(PAGE) * PAGE;
        let len = VVAR_SIZE + image_len;
        // SAFETY: a fresh anonymous mapping; we own it until Drop.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let map = map.cast::<u8>();
        // SAFETY: the image fits in the mapping above the vvar page; then the image pages
        // become read+execute, as the kernel maps them.
        unsafe {
            ptr::copy_nonoverlapping(image.as_ptr(), map.add(VVAR_SIZE), image.len());
            assert_eq!(
                libc::mprotect(
                    map.add(VVAR_SIZE).cast(),
                    image_len,
                    libc::PROT_READ | libc::PROT_EXEC
                ),
                0
            );
        }
        let v = Vdso { map, len };
        v.set(offset_of!(Vvar, version), 1u32);
        fixups::register(v.base() as u64, &image);
        v
    }

    fn base(&self) -> *const u8 {
        // SAFETY: inside the mapping.
        unsafe { self.map.add(VVAR_SIZE) }
    }

    /// Writes a vvar field (volatile: the vDSO may be reading it on another thread).
    fn set<T: Copy>(&self, off: usize, v: T) {
        assert!(off + size_of::<T>() <= VVAR_SIZE);
        // SAFETY: a field of the vvar page, which this Vdso owns.
        unsafe { self.map.add(off).cast::<T>().write_volatile(v) }
    }

    fn get<T: Copy>(&self, off: usize) -> T {
        // SAFETY: as for set.
        unsafe { self.map.add(off).cast::<T>().read_volatile() }
    }

    fn u8_at(&self, addr: u64) -> u8 {
        // SAFETY: callers pass addresses inside the image (from its own headers).
        unsafe { *self.base().add(addr as usize) }
    }

    fn u16_at(&self, addr: u64) -> u16 {
        u16::from_le_bytes([self.u8_at(addr), self.u8_at(addr + 1)])
    }

    fn u32_at(&self, addr: u64) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| self.u8_at(addr + i as u64)))
    }

    fn u64_at(&self, addr: u64) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.u8_at(addr + i as u64)))
    }

    fn str_at(&self, addr: u64) -> &str {
        // SAFETY: a NUL-terminated string of the image's string table.
        unsafe { CStr::from_ptr(self.base().add(addr as usize).cast()) }
            .to_str()
            .unwrap()
    }

    /// The dynamic section's value for `tag` (addresses are relative to the image).
    fn dyn_tag(&self, tag: u64) -> Option<u64> {
        let phoff = self.u64_at(32);
        let phentsize = self.u16_at(54) as u64;
        let phnum = self.u16_at(56) as u64;
        let dynamic = (0..phnum)
            .map(|i| phoff + i * phentsize)
            .find(|&ph| self.u32_at(ph) == 2) // PT_DYNAMIC
            .map(|ph| self.u64_at(ph + 16))?; // p_vaddr
        (0..)
            .map(|i| dynamic + 16 * i)
            .map(|d| (self.u64_at(d), self.u64_at(d + 8)))
            .take_while(|&(t, _)| t != 0)
            .find(|&(t, _)| t == tag)
            .map(|(_, v)| v)
    }

    /// Whether dynamic symbol `i` is called `name` and has version `version` (default).
    fn sym_matches(&self, i: u64, name: &str, version: &str) -> bool {
        let symtab = self.dyn_tag(6).unwrap(); // DT_SYMTAB
        let strtab = self.dyn_tag(5).unwrap(); // DT_STRTAB
        let sym = symtab + 24 * i;
        if self.str_at(strtab + self.u32_at(sym) as u64) != name || self.u16_at(sym + 6) == 0 {
            return false;
        }
        let versym = self.dyn_tag(0x6fff_fff0).unwrap(); // DT_VERSYM
        let ndx = self.u16_at(versym + 2 * i);
        if ndx & 0x8000 != 0 {
            return false; // hidden: not the default version
        }
        let mut def = self.dyn_tag(0x6fff_fffc).unwrap(); // DT_VERDEF
        loop {
            if self.u16_at(def + 4) == ndx {
                let aux = def + self.u32_at(def + 12) as u64;
                return self.str_at(strtab + self.u32_at(aux) as u64) == version;
            }
            match self.u32_at(def + 16) {
                0 => return false,
                next => def += next as u64,
            }
        }
    }

    /// Looks `name@version` up with DT_GNU_HASH (as glibc does).
    fn gnu_lookup(&self, name: &str, version: &str) -> Option<u64> {
        let h = self.dyn_tag(0x6fff_fef5)?; // DT_GNU_HASH
        let (nbuckets, symoffset) = (self.u32_at(h) as u64, self.u32_at(h + 4) as u64);
        let (bloom_size, bloom_shift) = (self.u32_at(h + 8) as u64, self.u32_at(h + 12));
        let hash = name
            .bytes()
            .fold(5381u32, |h, b| h.wrapping_mul(33).wrapping_add(b as u32));
        let word = self.u64_at(h + 16 + 8 * ((hash as u64 / 64) % bloom_size));
        let mask = (1u64 << (hash % 64)) | (1u64 << ((hash >> bloom_shift) % 64));
        if word & mask != mask {
            return None;
        }
        let buckets = h + 16 + 8 * bloom_size;
        let chains = buckets + 4 * nbuckets;
        let mut i = self.u32_at(buckets + 4 * (hash as u64 % nbuckets)) as u64;
        if i == 0 {
            return None;
        }
        loop {
            let ch = self.u32_at(chains + 4 * (i - symoffset));
            if ch | 1 == hash | 1 && self.sym_matches(i, name, version) {
                return Some(self.u64_at(self.dyn_tag(6).unwrap() + 24 * i + 8));
            }
            if ch & 1 != 0 {
                return None;
            }
            i += 1;
        }
    }

    /// Looks `name@version` up with DT_HASH (as musl does).
    fn sysv_lookup(&self, name: &str, version: &str) -> Option<u64> {
        let h = self.dyn_tag(4)?; // DT_HASH
        let nbucket = self.u32_at(h) as u64;
        let hash = name.bytes().fold(0u32, |h, b| {
            let h = (h << 4).wrapping_add(b as u32);
            (h ^ ((h & 0xf000_0000) >> 24)) & 0x0fff_ffff
        });
        let chains = h + 8 + 4 * nbucket;
        let mut i = self.u32_at(h + 8 + 4 * (hash as u64 % nbucket)) as u64;
        while i != 0 {
            if self.sym_matches(i, name, version) {
                return Some(self.u64_at(self.dyn_tag(6).unwrap() + 24 * i + 8));
            }
            i = self.u32_at(chains + 4 * i) as u64;
        }
        None
    }

    /// The address of `name@version`; both hash tables must agree.
    fn sym(&self, name: &str, version: &str) -> *const c_void {
        let gnu = self.gnu_lookup(name, version);
        assert_eq!(gnu, self.sysv_lookup(name, version), "{name}@{version}");
        let addr = gnu.unwrap_or_else(|| panic!("no {name}@{version}"));
        self.base().wrapping_add(addr as usize).cast()
    }

    fn getter(&self, name: &str) -> extern "C" fn() -> c_int {
        // SAFETY: the KTLS getters are `int f(void)` functions of the image.
        unsafe { std::mem::transmute(self.sym(name, "KTLS_1")) }
    }

    fn area_getter(&self, name: &str) -> extern "C" fn(*const c_void) -> c_int {
        // SAFETY: the explicit-area getters are `int f(const void *)`.
        unsafe { std::mem::transmute(self.sym(name, "KTLS_1")) }
    }

    /// clock_gettime(2) through the vDSO.
    fn clock_gettime(&self, clk: c_int) -> (c_int, Timespec) {
        // SAFETY: `int clock_gettime(clockid_t, struct timespec *)`.
        let f: extern "C" fn(c_int, *mut Timespec) -> c_int =
            unsafe { std::mem::transmute(self.sym("__vdso_clock_gettime", "LINUX_2.6")) };
        let mut ts = Timespec::default();
        let r = f(clk, &mut ts);
        (r, ts)
    }

    /// Calibrates the vvar clock against this host's CLOCK_MONOTONIC and CLOCK_REALTIME.
    fn set_host_clock(&self) {
        let (t0, c0) = tsc_at_mono();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (t1, c1) = tsc_at_mono();
        let hz = (c1 - c0) as u128 * NSEC_PER_SEC as u128 / (t1 - t0) as u128;
        let shift = 32;
        let offset = host_ns(libc::CLOCK_REALTIME) as i64 - host_ns(libc::CLOCK_MONOTONIC) as i64;
        self.set(offset_of!(Vvar, tsc_shift), shift);
        self.set(
            offset_of!(Vvar, tsc_mult),
            (((NSEC_PER_SEC as u128) << shift) / hz) as u64,
        );
        self.set(offset_of!(Vvar, base_tsc), c1);
        self.set(offset_of!(Vvar, base_mono_ns), t1);
        self.set(offset_of!(Vvar, realtime_offset_ns), offset);
        self.set(offset_of!(Vvar, clock_mode), VCLOCK_TSC);
    }

    /// Points the vvar page's KTLS parameters at `area` (relative to this thread's FS base).
    fn set_ktls(&self, area: *const KtlsArea, filled: u32) {
        let offset = (area as u64).wrapping_sub(fs_base()) as i64;
        self.set(offset_of!(Vvar, ktls_offset), offset);
        self.set(offset_of!(Vvar, ktls_level), ktls::level_for_size(filled));
        self.set(offset_of!(Vvar, ktls_feature_size), filled);
        self.set(offset_of!(Vvar, ktls_enabled), 1u32);
    }
}

impl Drop for Vdso {
    fn drop(&mut self) {
        fixups::unregister(self.base() as u64);
        // SAFETY: our mapping; nothing refers to it any more.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

fn host_ns(clk: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    assert_eq!(unsafe { libc::clock_gettime(clk, &mut ts) }, 0);
    ts.tv_sec as u64 * NSEC_PER_SEC + ts.tv_nsec as u64
}

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged on Linux.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A TSC reading and CLOCK_MONOTONIC at the same moment: the tightest of a few brackets.
fn tsc_at_mono() -> (u64, u64) {
    (0..50)
        .map(|_| {
            let a = host_ns(libc::CLOCK_MONOTONIC);
            let c = rdtsc();
            let b = host_ns(libc::CLOCK_MONOTONIC);
            (b - a, a + (b - a) / 2, c)
        })
        .min()
        .map(|(_, t, c)| (t, c))
        .unwrap()
}

/// This thread's FS base (its thread pointer).
fn fs_base() -> u64 {
    let mut base = 0u64;
    // SAFETY: ARCH_GET_FS writes the base to `base`.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1003, &mut base as *mut u64) };
    assert_eq!(r, 0);
    base
}

fn host_hwcap2() -> u32 {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) as u32 }
}

fn host_ids() -> [c_int; 6] {
    // SAFETY: these calls cannot fail.
    unsafe {
        [
            libc::gettid(),
            libc::getpid(),
            libc::getuid() as c_int,
            libc::geteuid() as c_int,
            libc::getgid() as c_int,
            libc::getegid() as c_int,
        ]
    }
}

const GETTERS: [&str; 6] = ["gettid", "getpid", "getuid", "geteuid", "getgid", "getegid"];

/// The six getters through the vDSO, implicit-area and explicit-area forms.
fn vdso_ids(v: &Vdso, area: *const c_void) -> ([c_int; 6], [c_int; 6]) {
    let own = GETTERS.map(|g| v.getter(&format!("__vdso_{g}"))());
    let named = GETTERS.map(|g| v.area_getter(&format!("__vdso_ktls_{g}"))(area));
    (own, named)
}

/// A KTLS area with made-up ids, distinct from the host's, so a result shows where it came
/// from.
fn fake_area() -> Box<KtlsArea> {
    let mut a: Box<KtlsArea> = Box::new(zerocopy::FromZeros::new_zeroed());
    a.ktls_live = ktls::KTLS_LIVE;
    a.tid = 1_000_001;
    a.pid = 1_000_002;
    a.uid = 1_000_003;
    a.euid = 1_000_004;
    a.gid = 1_000_005;
    a.egid = 1_000_006;
    a.rseq.cpu_id = 5;
    a.rseq.node_id = 3;
    a
}

const FAKE: [c_int; 6] = [
    1_000_001, 1_000_002, 1_000_003, 1_000_004, 1_000_005, 1_000_006,
];

#[test]
fn symbols_resolve_through_both_hash_tables_with_versions() {
    let v = Vdso::load();
    for &(name, version) in ktls_vdso_image::check::REQUIRED {
        assert!(!v.sym(name, version).is_null());
    }
    // Plain names are aliases of the __vdso_ ones.
    for f in [
        "clock_gettime",
        "gettimeofday",
        "time",
        "clock_getres",
        "getcpu",
    ] {
        assert_eq!(
            v.sym(f, "LINUX_2.6"),
            v.sym(&format!("__vdso_{f}"), "LINUX_2.6")
        );
    }
    // The version is part of the lookup.
    assert_eq!(v.gnu_lookup("__vdso_getuid", "LINUX_2.6"), None);
    assert_eq!(v.sysv_lookup("__vdso_clock_gettime", "KTLS_1"), None);
    assert_eq!(v.gnu_lookup("__vdso_nonexistent", "KTLS_1"), None);
}

#[test]
fn clocks_follow_the_host() {
    let v = Vdso::load();
    v.set_host_clock();
    // Served clocks: between two host readings, give or take the calibration's error.
    let slack = 2_000_000; // 2 ms
    for (clk, host) in [
        (libc::CLOCK_MONOTONIC, libc::CLOCK_MONOTONIC),
        (libc::CLOCK_MONOTONIC_RAW, libc::CLOCK_MONOTONIC),
        (libc::CLOCK_MONOTONIC_COARSE, libc::CLOCK_MONOTONIC),
        (libc::CLOCK_BOOTTIME, libc::CLOCK_MONOTONIC),
        (libc::CLOCK_REALTIME, libc::CLOCK_REALTIME),
        (libc::CLOCK_REALTIME_COARSE, libc::CLOCK_REALTIME),
    ] {
        for _ in 0..100 {
            let before = host_ns(host);
            let (r, ts) = v.clock_gettime(clk);
            let after = host_ns(host);
            assert_eq!(r, 0);
            assert!(ts.is_valid(), "{ts:?}");
            let ns = ts.to_nanos();
            assert!(
                ns + slack >= before && ns <= after + slack,
                "clock {clk}: {ns} not within [{before}, {after}] +- {slack}"
            );
        }
    }
    // Monotonic, read after read.
    let mut last = 0;
    for _ in 0..10_000 {
        let ns = v.clock_gettime(libc::CLOCK_MONOTONIC).1.to_nanos();
        assert!(ns >= last);
        last = ns;
    }

    // gettimeofday and time agree with CLOCK_REALTIME; the time zone is zeros.
    // SAFETY: the Linux signatures of these functions.
    let gettimeofday: extern "C" fn(*mut Timeval, *mut Timezone) -> c_int =
        unsafe { std::mem::transmute(v.sym("gettimeofday", "LINUX_2.6")) };
    let time: extern "C" fn(*mut i64) -> i64 =
        unsafe { std::mem::transmute(v.sym("time", "LINUX_2.6")) };
    let mut tv = Timeval::default();
    let mut tz = Timezone {
        tz_minuteswest: 99,
        tz_dsttime: 99,
    };
    let before = host_ns(libc::CLOCK_REALTIME) / 1000;
    assert_eq!(gettimeofday(&mut tv, &mut tz), 0);
    let after = host_ns(libc::CLOCK_REALTIME) / 1000;
    let us = tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    assert!(
        us + 2000 >= before && us <= after + 2000,
        "{us} vs [{before}, {after}]"
    );
    assert!((0..1_000_000).contains(&tv.tv_usec));
    assert_eq!(tz, Timezone::default());
    assert_eq!(gettimeofday(ptr::null_mut(), ptr::null_mut()), 0);
    let mut t = 0i64;
    let secs = time(&mut t);
    assert_eq!(secs, t);
    assert!((secs - (host_ns(libc::CLOCK_REALTIME) / NSEC_PER_SEC) as i64).abs() <= 1);
    assert!((time(ptr::null_mut()) - secs).abs() <= 1);

    // clock_getres: 1 ns for the TSC clocks; the coarse clocks ask the (host) kernel.
    // SAFETY: `int clock_getres(clockid_t, struct timespec *)`.
    let getres: extern "C" fn(c_int, *mut Timespec) -> c_int =
        unsafe { std::mem::transmute(v.sym("clock_getres", "LINUX_2.6")) };
    let mut res = Timespec::default();
    assert_eq!(getres(libc::CLOCK_MONOTONIC, &mut res), 0);
    assert_eq!(
        res,
        Timespec {
            tv_sec: 0,
            tv_nsec: 1
        }
    );
    assert_eq!(getres(libc::CLOCK_REALTIME, ptr::null_mut()), 0);
    let mut host = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut host) };
    assert_eq!(getres(libc::CLOCK_MONOTONIC_COARSE, &mut res), 0);
    assert_eq!(res.tv_nsec, host.tv_nsec);
    assert_eq!(getres(12345, &mut res), -libc::EINVAL);
}

#[test]
fn clocks_fall_back_to_the_system_call() {
    let v = Vdso::load();
    // No clock in the vvar page (all zeros): every clock is the host's system call.
    assert_eq!(v.get::<u32>(offset_of!(Vvar, clock_mode)), VCLOCK_NONE);
    for clk in [
        libc::CLOCK_MONOTONIC,
        libc::CLOCK_REALTIME,
        libc::CLOCK_BOOTTIME,
    ] {
        let before = host_ns(clk);
        let (r, ts) = v.clock_gettime(clk);
        let after = host_ns(clk);
        assert_eq!(r, 0);
        assert!((before..=after).contains(&ts.to_nanos()), "clock {clk}");
    }
    // With a clock, those the vDSO does not serve still come from the system call.
    v.set_host_clock();
    let (r, ts) = v.clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID);
    assert_eq!(r, 0);
    assert!(ts.to_nanos() > 0);
    let before = host_ns(libc::CLOCK_TAI);
    let (r, ts) = v.clock_gettime(libc::CLOCK_TAI);
    assert_eq!(r, 0);
    assert!(ts.to_nanos() >= before);
    // Errors are the system call's, raw (-errno), as Linux's vDSO returns them.
    assert_eq!(v.clock_gettime(12345).0, -libc::EINVAL);
    assert_eq!(v.clock_gettime(-1).0, -libc::EINVAL);
}

#[test]
fn clocks_wait_for_the_seqlock() {
    let v = Vdso::load();
    v.set_host_clock();
    v.set(offset_of!(Vvar, seq), 1u32); // the kernel is "writing"
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = v.clock_gettime(libc::CLOCK_MONOTONIC);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "the vDSO read the clock while seq was odd"
        );
        v.set(offset_of!(Vvar, seq), 2u32);
        let (r, ts) = reader.join().unwrap();
        assert_eq!(r, 0);
        assert!(ts.to_nanos() > 0);
    });
}

/// The getters make the system calls (and do not fault) whenever the spec says so.
#[test]
fn getters_without_an_area_make_the_system_calls() {
    for hwcap2 in [0, host_hwcap2()] {
        let v = Vdso::load();
        v.set(offset_of!(Vvar, hwcap2), hwcap2);
        let area = fake_area();
        let a = &*area as *const KtlsArea;
        let host = host_ids();
        // No KTLS in the process (the vvar page says nothing).
        assert_eq!(
            vdso_ids(&v, a.cast()),
            (host, host),
            "hwcap2 {hwcap2}: no KTLS"
        );
        // KTLS, but this thread's area is not live.
        v.set_ktls(a, 100);
        // SAFETY: the test owns the area; the vDSO only reads it.
        unsafe { ptr::addr_of!((*a).ktls_live).cast_mut().write_volatile(0) };
        assert_eq!(vdso_ids(&v, a.cast()), (host, host), "dead area");
        // SAFETY: as above.
        unsafe { ptr::addr_of!((*a).ktls_live).cast_mut().write_volatile(1) };
        // Areas nowhere or outside user space: the loads fault, and the fixups make the
        // system calls.
        v.set(offset_of!(Vvar, ktls_offset), 0u64.wrapping_sub(fs_base()));
        let (own, _) = vdso_ids(&v, ptr::null());
        assert_eq!(own, host, "area at 0");
        v.set(
            offset_of!(Vvar, ktls_offset),
            (1u64 << 63).wrapping_sub(fs_base()),
        );
        assert_eq!(
            vdso_ids(&v, (1u64 << 63) as *const c_void),
            (host, host),
            "kernel area"
        );
        let top = (1u64 << 47) - 4096 - 64; // TASK_SIZE - 64: the area would cross TASK_SIZE
        assert_eq!(
            vdso_ids(&v, top as *const c_void).1,
            host,
            "area across TASK_SIZE"
        );
        // The explicit forms: a null area.
        assert_eq!(vdso_ids(&v, ptr::null()).1, host, "null area");
    }
}

#[test]
fn getters_read_a_live_area() {
    for hwcap2 in [0, host_hwcap2()] {
        let v = Vdso::load();
        v.set(offset_of!(Vvar, hwcap2), hwcap2);
        let area = fake_area();
        let a = &*area as *const KtlsArea;
        let host = host_ids();
        // Level 2 filled: every id from the area.
        v.set_ktls(a, 100);
        assert_eq!(
            vdso_ids(&v, a.cast()),
            (FAKE, FAKE),
            "hwcap2 {hwcap2}: level 2"
        );
        // An area registered with level 1's length: tid and pid from the area, the
        // credentials (not filled) from the system calls.
        v.set_ktls(a, 76);
        let level1 = [FAKE[0], FAKE[1], host[2], host[3], host[4], host[5]];
        assert_eq!(vdso_ids(&v, a.cast()), (level1, level1), "level 1");
        // uid's end exactly: present.
        v.set_ktls(a, 80);
        assert_eq!(vdso_ids(&v, a.cast()).0[2], FAKE[2], "filled up to uid");
        // getcpu from the area's cpu_id and node_id.
        v.set_ktls(a, 100);
        // SAFETY: `int getcpu(unsigned *, unsigned *, void *)`.
        let getcpu: extern "C" fn(*mut c_uint, *mut c_uint, *mut c_void) -> c_int =
            unsafe { std::mem::transmute(v.sym("getcpu", "LINUX_2.6")) };
        let (mut cpu, mut node) = (99, 99);
        assert_eq!(getcpu(&mut cpu, &mut node, ptr::null_mut()), 0);
        assert_eq!((cpu, node), (5, 3));
        assert_eq!(getcpu(ptr::null_mut(), ptr::null_mut(), ptr::null_mut()), 0);
        // Without KTLS: the host's getcpu.
        v.set(offset_of!(Vvar, ktls_feature_size), 0u32);
        v.set(offset_of!(Vvar, ktls_enabled), 0u32);
        assert_eq!(getcpu(&mut cpu, &mut node, ptr::null_mut()), 0);
        // SAFETY: no preconditions.
        let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) } as c_uint;
        assert!(cpu < ncpu, "cpu {cpu} of {ncpu}");
    }
}

/// A thread whose FS base is 0: the getters' loads through FS fault (the area would be at
/// the offset itself, in the kernel half), and the fixups make the system calls.
#[test]
fn getters_with_fs_base_zero() {
    let v = Vdso::load();
    v.set(offset_of!(Vvar, hwcap2), host_hwcap2());
    let area = fake_area();
    v.set_ktls(&*area, 100);
    static RESULT: [std::sync::atomic::AtomicI64; 3] =
        [const { std::sync::atomic::AtomicI64::new(0) }; 3];
    extern "C" fn child(arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the parent's Vdso, alive until the parent has waited for us. This
        // thread has no TLS from here on: only raw system calls and the vDSO.
        let v = unsafe { &*(arg as *const Vdso) };
        let gettid = v.getter("__vdso_gettid");
        let getuid = v.getter("__vdso_getuid");
        // SAFETY: ARCH_SET_FS 0; the thread touches no TLS afterwards.
        unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1002, 0) };
        RESULT[0].store(gettid() as i64, std::sync::atomic::Ordering::SeqCst);
        RESULT[1].store(getuid() as i64, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: a raw system call.
        RESULT[2].store(
            unsafe { libc::syscall(libc::SYS_gettid) },
            std::sync::atomic::Ordering::SeqCst,
        );
        0
    }
    let mut stack = vec![0u8; 256 * 1024];
    // SAFETY: the child runs `child` on its own stack in our address space and ends with
    // exit(2) from glibc's clone wrapper; we wait for it before anything it uses goes away.
    let pid = unsafe {
        libc::clone(
            child,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            &v as *const Vdso as *mut c_void,
        )
    };
    assert!(pid > 0);
    let mut status = 0;
    // SAFETY: waits for our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
    let load = |i: usize| RESULT[i].load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(load(0), pid as i64);
    assert_eq!(load(0), load(2));
    // SAFETY: no preconditions.
    assert_eq!(load(1), unsafe { libc::getuid() } as i64);
    drop(stack);
}

/// What ktls's page-fault path does for the vDSO (kernel/src/vdso.rs), for the images this
/// process loaded: a SIGSEGV or SIGBUS at one of the exception table's loads resumes at its
/// fixup. The handler runs on threads whose FS base may be 0: it touches no TLS, takes no
/// lock and does not allocate, and only reads what `register` published before the image ran.
mod fixups {
    use ktls_vdso_image::check::ExtableEntry;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Once, OnceLock};

    /// The loaded images' bases (0: a free slot).
    static BASES: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
    /// The exception table, the same for every copy of the image.
    static TABLE: OnceLock<Vec<ExtableEntry>> = OnceLock::new();

    pub fn register(base: u64, image: &[u8]) {
        TABLE.get_or_init(|| ktls_vdso_image::check::extable(image).expect("the exception table"));
        static HANDLER: Once = Once::new();
        HANDLER.call_once(install);
        let free = BASES.iter().find(|b| {
            b.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        assert!(free.is_some(), "more than 64 vDSO copies at once");
    }

    pub fn unregister(base: u64) {
        for b in &BASES {
            let _ = b.compare_exchange(base, 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    fn install() {
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: a zeroed sigaction is valid; we fill handler, flags and mask.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            // SAFETY: installs a handler that only reads published statics (see the module).
            assert_eq!(
                unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) },
                0
            );
        }
    }

    extern "C" fn on_fault(sig: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a ucontext_t to an SA_SIGINFO handler.
        let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
        let rip = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        if let Some(table) = TABLE.get() {
            for b in &BASES {
                let base = b.load(Ordering::SeqCst);
                let Some(offset) = rip.checked_sub(base).filter(|_| base != 0) else {
                    continue;
                };
                if let Ok(i) = table.binary_search_by_key(&offset, |e| e.load) {
                    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = (base + table[i].fixup) as i64;
                    return;
                }
            }
        }
        // Not the vDSO's: die of the signal as without the handler.
        // SAFETY: restores the default action; returning re-runs the faulting instruction.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
