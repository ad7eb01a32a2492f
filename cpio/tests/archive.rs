//! Writer/reader round trips, robustness against damaged archives, and interoperability with
//! GNU cpio (when it is installed).

use ktls_cpio::{entries, Entry, Error, Writer, S_IFDIR, S_IFLNK, S_IFREG};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A small archive exercising every padding case (data lengths 0..=5, names of several lengths).
fn sample() -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    w.add_dir("/", 0o755).unwrap();
    w.add_dir("/bin", 0o755).unwrap();
    for len in 0..=5usize {
        let data: Vec<u8> = (0..len as u8).map(|i| b'a' + i).collect();
        w.add_file(format!("/bin/f{}", "x".repeat(len)), 0o644, &data)
            .unwrap();
    }
    w.add_symlink("/bin/sh", "busybox").unwrap();
    w.add_dir("/.ktls", 0o700).unwrap();
    w.add_file("/.ktls/argv", 0o444, b"sh\0-c\0echo hi\0")
        .unwrap();
    w.finish().unwrap()
}

fn collect(archive: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    entries(archive).collect()
}

#[test]
fn round_trip() {
    let a = sample();
    assert_eq!(a.len() % 4, 0);
    let v = collect(&a).unwrap();
    let names: Vec<&[u8]> = v.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            &b"."[..],
            b"bin",
            b"bin/f",
            b"bin/fx",
            b"bin/fxx",
            b"bin/fxxx",
            b"bin/fxxxx",
            b"bin/fxxxxx",
            b"bin/sh",
            b".ktls",
            b".ktls/argv"
        ]
    );
    assert!(v[0].is_root() && v[0].is_dir());
    assert_eq!(v[1].mode, S_IFDIR | 0o755);
    for len in 0..=5 {
        let e = &v[2 + len];
        assert_eq!(e.mode, S_IFREG | 0o644);
        assert_eq!(e.data.len(), len);
        assert_eq!(e.data, &b"abcde"[..len]);
        assert_eq!(e.nlink, 1);
    }
    assert_eq!(v[8].mode, S_IFLNK | 0o777);
    assert!(v[8].is_symlink());
    assert_eq!(v[8].data, b"busybox");
    assert_eq!(v[9].permissions(), 0o700);
    assert_eq!(v[10].data, b"sh\0-c\0echo hi\0");
    // Inode numbers are unique.
    let mut inos: Vec<u32> = v.iter().map(|e| e.ino).collect();
    inos.sort();
    inos.dedup();
    assert_eq!(inos.len(), v.len());
    // Every header is 4-aligned and data slices point into the archive.
    for e in &v {
        assert_eq!(e.offset % 4, 0);
        let start = e.data.as_ptr() as usize - a.as_ptr() as usize;
        assert_eq!(start % 4, 0);
        assert!(start + e.data.len() <= a.len());
    }
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = Writer::new(Vec::new());
    assert!(w.add_file("a\0b", 0o644, b"").is_err());
    assert!(w.add_file("TRAILER!!!", 0o644, b"").is_err());
    assert!(w.add_symlink("l", "").is_err());
    // Type bits in `mode` are ignored: the writer decides the type.
    w.add_file("f", S_IFDIR | 0o4755, b"x").unwrap();
    let a = w.finish().unwrap();
    let v = collect(&a).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].mode, S_IFREG | 0o4755);
}

/// Every proper prefix of a valid archive is an error (it lacks at least the trailer), never a
/// panic, and the entries before the cut come out intact.
#[test]
fn every_truncation_is_an_error() {
    let a = sample();
    let full = collect(&a).unwrap();
    for cut in 0..a.len() {
        let part = &a[..cut];
        let mut ok = 0;
        let mut err = None;
        for item in entries(part) {
            match item {
                Ok(e) => {
                    assert_eq!(e, full[ok], "cut at {cut}");
                    ok += 1;
                }
                Err(e) => {
                    assert!(err.is_none(), "two errors at cut {cut}");
                    err = Some(e);
                }
            }
        }
        // Only the trailer's padding (3 bytes after "TRAILER!!!\0") may be cut off unnoticed.
        if a.len() - cut > 3 {
            assert!(
                err.is_some(),
                "truncation at {cut} of {} not detected",
                a.len()
            );
        } else {
            assert_eq!((ok, err), (full.len(), None), "cut at {cut}");
        }
        // Error messages render.
        if let Some(e) = err {
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random byte flips, random garbage and random cuts never panic, and whatever the reader
/// returns stays inside the input.
#[test]
fn random_damage_never_panics() {
    let a = sample();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let interesting = b"0123456789abcdefABCDEF\0\xff/.TRAILER!";
    for round in 0..20_000 {
        let mut b = a.clone();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let i = rng.below(b.len());
            b[i] = if rng.below(2) == 0 {
                rng.next() as u8
            } else {
                interesting[rng.below(interesting.len())]
            };
        }
        if round % 3 == 0 {
            let cut = rng.below(b.len() + 1);
            b.truncate(cut);
        }
        let range = b.as_ptr_range();
        let mut errors = 0;
        for item in entries(&b) {
            match item {
                Ok(e) => {
                    for s in [e.name, e.raw_name, e.data] {
                        if !s.is_empty() {
                            assert!(range.contains(&s.as_ptr()));
                            assert!(s.as_ptr() as usize + s.len() <= range.end as usize);
                        }
                    }
                    assert!(!e.raw_name.contains(&0));
                }
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1);
    }
    // Pure garbage.
    for _ in 0..2_000 {
        let len = rng.below(400);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 6 && rng.below(2) == 0 {
            b[..6].copy_from_slice(b"070701");
        }
        let results: Vec<_> = entries(&b).collect();
        assert!(results.iter().filter(|r| r.is_err()).count() <= 1);
    }
}

#[test]
fn crc_variant_is_checked() {
    let a = sample();
    // Turn every header into a 070702 one with the right checksums.
    let mut b = a.clone();
    let offsets: Vec<(usize, u32)> = collect(&a)
        .unwrap()
        .iter()
        .map(|e| (e.offset, e.data.iter().map(|&x| x as u32).sum()))
        .collect();
    for (off, sum) in &offsets {
        b[off + 5] = b'2';
        b[off + 102..off + 110].copy_from_slice(format!("{sum:08x}").as_bytes());
    }
    assert_eq!(collect(&b).unwrap().len(), offsets.len());
    // Corrupt one data byte of the first nonempty file.
    let e = collect(&a).unwrap()[3];
    let data_off = e.data.as_ptr() as usize - a.as_ptr() as usize;
    b[data_off] ^= 1;
    assert_eq!(collect(&b), Err(Error::BadChecksum { offset: e.offset }));
}

fn have_cpio() -> bool {
    let found = Command::new("cpio")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        eprintln!("note: `cpio` is not installed; skipping the GNU cpio interoperability test");
    }
    found
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ktls-cpio-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn make_tree(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    for len in 0..=5 {
        std::fs::write(root.join(format!("dir/f{len}")), &b"hello"[..len]).unwrap();
    }
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(root.join("dir/sub/big"), &big).unwrap();
    std::fs::set_permissions(
        root.join("dir/sub/big"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/big", root.join("dir/link")).unwrap();
}

/// Reads an archive made by GNU `cpio -o -H newc` (the same way initramfs images are made).
#[test]
fn reads_gnu_cpio_archives() {
    if !have_cpio() {
        return;
    }
    let root = temp_dir("gnu-read");
    let tree = root.join("tree");
    make_tree(&tree);
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(&tree)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = out.stdout;
    let v = collect(&archive).unwrap();
    let find = |name: &[u8]| {
        *v.iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(name)))
    };
    assert!(find(b".").is_dir());
    assert!(find(b"dir").is_dir());
    assert!(find(b"dir/sub").is_dir());
    for len in 0..=5 {
        let e = find(format!("dir/f{len}").as_bytes());
        assert!(e.is_file());
        assert_eq!(e.data, &b"hello"[..len]);
    }
    let big = find(b"dir/sub/big");
    assert_eq!(big.permissions(), 0o751);
    assert_eq!(big.data, std::fs::read(tree.join("dir/sub/big")).unwrap());
    let link = find(b"dir/link");
    assert!(link.is_symlink());
    assert_eq!(link.data, b"sub/big");
    assert_eq!(v.len(), 11);
    std::fs::remove_dir_all(&root).unwrap();
}

/// GNU cpio extracts what the writer wrote, byte for byte.
#[test]
fn gnu_cpio_extracts_our_archives() {
    if !have_cpio() {
        return;
    }
    let root = temp_dir("gnu-extract");
    let mut w = Writer::new(Vec::new());
    w.add_dir("/", 0o755).unwrap();
    w.add_dir("/d", 0o750).unwrap();
    for len in 0..=5 {
        w.add_file(format!("/d/f{len}"), 0o640, &b"hello"[..len])
            .unwrap();
    }
    let big: Vec<u8> = (0..9_999u32).map(|i| (i * 13) as u8).collect();
    w.add_file("/d/big", 0o755, &big).unwrap();
    w.add_symlink("/d/link", "big").unwrap();
    let archive = w.finish().unwrap();
    let archive_path = root.join("a.cpio");
    std::fs::write(&archive_path, &archive).unwrap();
    let out_dir = root.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("cpio -i -d --quiet --no-absolute-filenames < ../a.cpio")
        .current_dir(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    for len in 0..=5 {
        let p = out_dir.join(format!("d/f{len}"));
        assert_eq!(std::fs::read(&p).unwrap(), &b"hello"[..len]);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
    assert_eq!(std::fs::read(out_dir.join("d/big")).unwrap(), big);
    assert_eq!(
        std::fs::read_link(out_dir.join("d/link")).unwrap(),
        Path::new("big")
    );
    std::fs::remove_dir_all(&root).unwrap();
}
