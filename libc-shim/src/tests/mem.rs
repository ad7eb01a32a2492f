//! The shim's memory and string functions against glibc's, on random data.

use crate::mem;

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn copies_fills_and_moves_match_glibc() {
    let mut rng = Rng(0x1234_5678);
    for _ in 0..2000 {
        let len = rng.below(300);
        let src: Vec<u8> = (0..len + 64).map(|_| rng.next() as u8).collect();
        let (off_s, off_d, n) = (rng.below(32), rng.below(32), rng.below(len + 1));
        let mut ours = vec![0u8; len + 64];
        let mut theirs = ours.clone();
        // SAFETY: offsets + n stay within the buffers.
        unsafe {
            mem::memcpy(ours.as_mut_ptr().add(off_d), src.as_ptr().add(off_s), n);
            libc::memcpy(
                theirs.as_mut_ptr().add(off_d).cast(),
                src.as_ptr().add(off_s).cast(),
                n,
            );
        }
        assert_eq!(ours, theirs);
        let c = rng.next() as i32;
        // SAFETY: as above.
        unsafe {
            mem::memset(ours.as_mut_ptr().add(off_s), c, n);
            libc::memset(theirs.as_mut_ptr().add(off_s).cast(), c, n);
        }
        assert_eq!(ours, theirs);
        // Overlapping moves in both directions.
        let mut ours = src.clone();
        let mut theirs = src.clone();
        // SAFETY: both ranges are inside the buffer (len + 64 >= 32 + len).
        unsafe {
            mem::memmove(ours.as_mut_ptr().add(off_d), ours.as_ptr().add(off_s), n);
            libc::memmove(
                theirs.as_mut_ptr().add(off_d).cast(),
                theirs.as_ptr().add(off_s).cast(),
                n,
            );
        }
        assert_eq!(ours, theirs, "memmove {off_s} -> {off_d}, {n} bytes");
    }
}

#[test]
fn comparisons_and_lengths_match_glibc() {
    let mut rng = Rng(99);
    let sign = |v: i32| v.signum();
    for _ in 0..3000 {
        let n = rng.below(40);
        let a: Vec<u8> = (0..n).map(|_| b'a' + rng.below(3) as u8).collect();
        let mut b = a.clone();
        if n > 0 && rng.below(2) == 0 {
            let i = rng.below(n);
            b[i] = rng.next() as u8;
        }
        // SAFETY: both are n bytes long.
        unsafe {
            let ours = mem::memcmp(a.as_ptr(), b.as_ptr(), n);
            assert_eq!(
                sign(ours),
                sign(libc::memcmp(a.as_ptr().cast(), b.as_ptr().cast(), n))
            );
            assert_eq!(ours == 0, mem::bcmp(a.as_ptr(), b.as_ptr(), n) == 0);
        }
        let mut ca = a.clone();
        ca.push(0);
        let mut cb: Vec<u8> = b.iter().map(|&c| if c == 0 { 1 } else { c }).collect();
        cb.push(0);
        let k = rng.below(n + 2);
        // SAFETY: NUL-terminated strings.
        unsafe {
            assert_eq!(mem::strlen(ca.as_ptr()), libc::strlen(ca.as_ptr().cast()));
            assert_eq!(
                mem::strnlen(ca.as_ptr(), k),
                libc::strnlen(ca.as_ptr().cast(), k)
            );
            assert_eq!(
                sign(mem::strcmp(ca.as_ptr(), cb.as_ptr())),
                sign(libc::strcmp(ca.as_ptr().cast(), cb.as_ptr().cast()))
            );
            assert_eq!(
                sign(mem::strncmp(ca.as_ptr(), cb.as_ptr(), k)),
                sign(libc::strncmp(ca.as_ptr().cast(), cb.as_ptr().cast(), k))
            );
        }
    }
}
