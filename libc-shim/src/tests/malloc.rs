//! The allocator: sizes, alignment, realloc keeping data, and a multi-threaded stress test.

use super::mem::Rng;
use crate::malloc::*;

#[test]
fn blocks_are_aligned_and_big_enough() {
    for size in [
        0usize,
        1,
        15,
        16,
        17,
        100,
        2032,
        2033,
        4080,
        4081,
        70_000,
        1 << 20,
    ] {
        let p = malloc(size);
        assert!(!p.is_null());
        assert_eq!(p as usize % 16, 0);
        // SAFETY: p is live.
        let usable = unsafe { usable_size(p) };
        assert!(usable >= size, "{size}: {usable}");
        // SAFETY: the whole usable size is ours.
        unsafe {
            core::ptr::write_bytes(p, 0xab, usable);
            free(p);
        }
    }
    // SAFETY: null is ignored.
    unsafe { free(core::ptr::null_mut()) };
}

#[test]
fn calloc_realloc_aligned() {
    let p = calloc(100, 41);
    // SAFETY: 4100 bytes.
    assert!(unsafe { core::slice::from_raw_parts(p, 4100) }
        .iter()
        .all(|&b| b == 0));
    // SAFETY: p is live.
    unsafe { free(p) };
    assert!(calloc(usize::MAX / 2, 3).is_null());
    // realloc keeps the contents across classes and into a mapping of its own.
    let mut p = malloc(10);
    // SAFETY: the block has 10 bytes.
    unsafe { core::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10) };
    for size in [20, 5000, 300_000, 7, 64] {
        // SAFETY: p is live; the first min(10, size) bytes keep the pattern.
        unsafe {
            p = realloc(p, size);
            let keep = size.min(10);
            assert_eq!(core::slice::from_raw_parts(p, keep), &b"0123456789"[..keep]);
            if size < 10 {
                // Put the rest back for the next round.
                p = realloc(p, 10);
                core::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            }
        }
    }
    // SAFETY: realloc(p, 0) frees p; realloc(null, n) allocates.
    unsafe {
        assert!(realloc(p, 0).is_null());
        let q = realloc(core::ptr::null_mut(), 33);
        assert!(!q.is_null());
        free(q);
    }
    for align in [32usize, 64, 4096, 1 << 16] {
        let p = aligned_alloc(align, 100);
        assert_eq!(p as usize % align, 0);
        // SAFETY: 100 bytes, then freed once.
        unsafe {
            assert!(usable_size(p) >= 100);
            core::ptr::write_bytes(p, 1, 100);
            free(p);
        }
    }
    assert!(aligned_alloc(48, 10).is_null());
}

#[test]
fn stress_from_many_threads() {
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng(t * 7919 + 1);
                let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
                for _ in 0..20_000 {
                    if live.len() > 200 || (!live.is_empty() && rng.below(3) == 0) {
                        let (p, n, tag) = live.swap_remove(rng.below(live.len()));
                        // SAFETY: p is live with n bytes of pattern `tag`.
                        unsafe {
                            assert!(core::slice::from_raw_parts(p, n).iter().all(|&b| b == tag));
                            free(p);
                        }
                    } else {
                        let n = if rng.below(50) == 0 {
                            rng.below(200_000)
                        } else {
                            rng.below(3000)
                        };
                        let tag = rng.next() as u8;
                        let p = malloc(n);
                        assert!(!p.is_null());
                        // SAFETY: a fresh n-byte block.
                        unsafe { core::ptr::write_bytes(p, tag, n) };
                        live.push((p, n, tag));
                    }
                }
                for (p, n, tag) in live {
                    // SAFETY: as above.
                    unsafe {
                        assert!(core::slice::from_raw_parts(p, n).iter().all(|&b| b == tag));
                        free(p);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
