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
