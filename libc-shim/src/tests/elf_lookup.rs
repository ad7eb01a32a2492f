//! vDSO symbol lookup on the host's vDSO: both hash tables, versions, and robustness against
//! truncated or corrupted images.

use super::host_init;
use super::mem::Rng;
use crate::elf::{self, Dso, HashKind};
use crate::vdso;

const LINUX: &[u8] = b"LINUX_2.6";
const NAMES: [&str; 6] = [
    "__vdso_clock_gettime",
    "__vdso_gettimeofday",
    "__vdso_time",
    "__vdso_getcpu",
    "__vdso_clock_getres",
    "clock_gettime",
];

#[test]
fn hashes() {
    assert_eq!(elf::elf_hash(b""), 0);
    assert_eq!(elf::elf_hash(b"printf"), 0x077905a6);
    assert_eq!(elf::elf_hash(b"LINUX_2.6"), 0x3ae75f6);
    assert_eq!(elf::gnu_hash(b""), 5381);
    assert_eq!(elf::gnu_hash(b"printf"), 0x156b2bb8);
}

#[test]
fn host_vdso_lookups() {
    host_init();
    let image = vdso::image().expect("the host has a vDSO");
    let dso = Dso::parse(image).unwrap();
    assert!(dso.has(HashKind::Gnu) || dso.has(HashKind::Sysv));
    for name in NAMES {
        let found: Vec<_> = [HashKind::Gnu, HashKind::Sysv]
            .into_iter()
            .filter(|&k| dso.has(k))
            .map(|k| dso.lookup_with(k, name.as_bytes(), LINUX))
            .collect();
        assert!(
            found.iter().all(|f| f.is_some() && *f == found[0]),
            "{name}: {found:?}"
        );
        assert_eq!(
            vdso::lookup(name.as_bytes(), LINUX),
            Some(image.as_ptr() as usize + found[0].unwrap())
        );
        for kind in [HashKind::Gnu, HashKind::Sysv] {
            if dso.has(kind) {
                assert_eq!(
                    vdso::lookup_with(kind, name.as_bytes(), LINUX),
                    vdso::lookup(name.as_bytes(), LINUX)
                );
                // Another version, or a missing symbol, is not found.
                assert_eq!(dso.lookup_with(kind, name.as_bytes(), b"LINUX_2.5"), None);
                assert_eq!(dso.lookup_with(kind, name.as_bytes(), b"KTLS_1"), None);
            }
        }
    }
    for missing in ["__vdso_gettid", "__vdso_getuid", "nope", ""] {
        assert_eq!(vdso::lookup(missing.as_bytes(), b"KTLS_1"), None);
        assert_eq!(vdso::lookup(missing.as_bytes(), LINUX), None);
    }
    // The startup table found the same functions.
    assert_eq!(
        vdso::addr(vdso::Sym::ClockGettime),
        vdso::lookup(b"__vdso_clock_gettime", LINUX)
    );
    assert_eq!(
        vdso::addr(vdso::Sym::Getcpu),
        vdso::lookup(b"__vdso_getcpu", LINUX)
    );
    assert_eq!(vdso::Sym::Getegid.name(), "__vdso_getegid");
    assert_eq!(vdso::Sym::Getegid.version(), "KTLS_1");
}

#[test]
fn damaged_images_never_panic() {
    host_init();
    let image = vdso::image().expect("the host has a vDSO").to_vec();
    let try_all = |data: &[u8]| {
        if let Some(d) = Dso::parse(data) {
            for name in NAMES {
                for kind in [HashKind::Gnu, HashKind::Sysv] {
                    let _ = d.lookup_with(kind, name.as_bytes(), LINUX);
                }
            }
        }
        let _ = elf::mapped_len(data);
    };
    for len in (0..image.len()).step_by(7) {
        try_all(&image[..len]);
    }
    let mut rng = Rng(7);
    for _ in 0..3000 {
        let mut copy = image.clone();
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(copy.len());
            copy[i] = rng.next() as u8;
        }
        try_all(&copy);
    }
    assert!(Dso::parse(b"not an ELF file at all").is_none());
}

/// Builds a shared object shaped like ktls's vDSO (KTLS_1 and LINUX_2.6 versions) with the
/// given hash style and optional version script; returns its file bytes (the lookup converts
/// addresses through the PT_LOADs, so a file works as well as a mapped image).
fn build_dso(hash_style: &str, versioned: bool) -> Vec<u8> {
    let dir = super::c_programs::out_dir().join("dso");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("fake_vdso.c");
    std::fs::write(
        &src,
        "int __vdso_gettid(void) { return 1; }\n\
         int __vdso_getuid(void) { return 2; }\n\
         int __vdso_getcpu(void) { return 3; }\n\
         int not_exported(void) { return 4; }\n",
    )
    .unwrap();
    let lds = dir.join("fake_vdso.lds");
    std::fs::write(
        &lds,
        "LINUX_2.6 { global: __vdso_getcpu; local: *; };\n\
         KTLS_1 { global: __vdso_gettid; __vdso_getuid; };\n",
    )
    .unwrap();
    let out = dir.join(format!("fake_vdso-{hash_style}-{versioned}.so"));
    let mut cmd = std::process::Command::new("gcc");
    cmd.args(["-O2", "-shared", "-fPIC", "-nostdlib"])
        .arg(format!("-Wl,--hash-style={hash_style}"))
        .arg("-o")
        .arg(&out)
        .arg(&src);
    if versioned {
        cmd.arg(format!("-Wl,--version-script={}", lds.display()));
    }
    let r = cmd.output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::fs::read(&out).unwrap()
}

/// `mov $n, %eax; ret`: the body of `int f(void) { return n; }` at -O2.
fn returns(data: &[u8], off: usize, n: u8) -> bool {
    data.get(off..off + 6) == Some(&[0xb8, n, 0, 0, 0, 0xc3][..])
}

#[test]
fn ktls_shaped_dso_lookups() {
    for style in ["both", "gnu", "sysv"] {
        let data = build_dso(style, true);
        let d = Dso::parse(&data).unwrap();
        assert_eq!(d.has(HashKind::Gnu), style != "sysv");
        assert_eq!(d.has(HashKind::Sysv), style != "gnu");
        for kind in [HashKind::Gnu, HashKind::Sysv] {
            if !d.has(kind) {
                assert_eq!(d.lookup_with(kind, b"__vdso_gettid", b"KTLS_1"), None);
                continue;
            }
            let gettid = d.lookup_with(kind, b"__vdso_gettid", b"KTLS_1").unwrap();
            let getuid = d.lookup_with(kind, b"__vdso_getuid", b"KTLS_1").unwrap();
            let getcpu = d.lookup_with(kind, b"__vdso_getcpu", LINUX).unwrap();
            assert!(returns(&data, gettid, 1) && returns(&data, getuid, 2));
            assert!(returns(&data, getcpu, 3), "{style} {kind:?}");
            // Each symbol only under its own version; local symbols not at all.
            assert_eq!(d.lookup_with(kind, b"__vdso_gettid", LINUX), None);
            assert_eq!(d.lookup_with(kind, b"__vdso_getcpu", b"KTLS_1"), None);
            assert_eq!(d.lookup_with(kind, b"not_exported", b"KTLS_1"), None);
            assert_eq!(d.lookup_with(kind, b"__vdso_getpid", b"KTLS_1"), None);
        }
        assert_eq!(
            d.lookup(b"__vdso_gettid", b"KTLS_1"),
            d.lookup_with(
                if style == "sysv" {
                    HashKind::Sysv
                } else {
                    HashKind::Gnu
                },
                b"__vdso_gettid",
                b"KTLS_1"
            )
        );
    }
    // Without version information every version matches (parse_vdso.c's rule).
    let data = build_dso("both", false);
    let d = Dso::parse(&data).unwrap();
    let any = d.lookup(b"__vdso_gettid", b"whatever").unwrap();
    assert!(returns(&data, any, 1));
    assert!(returns(
        &data,
        d.lookup(b"not_exported", b"KTLS_1").unwrap(),
        4
    ));
}
