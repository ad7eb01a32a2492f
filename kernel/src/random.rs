//! Random bytes for AT_RANDOM, getrandom and /dev/urandom: ChaCha20 keyed from RDSEED/RDRAND
//! when the CPU has them, else from the TSC and the RTC at boot (weak, and logged as such).
//! Written here rather than taken from a crate: the block function is 30 lines, and the
//! crates that have it bring std-oriented RNG traits the kernel does not need.

use crate::arch::cpu;
use spin::Mutex;

struct ChaCha {
    key: [u32; 8],
    counter: u64,
}

static RNG: Mutex<ChaCha> = Mutex::new(ChaCha {
    key: [0; 8],
    counter: 0,
});

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

fn block(key: &[u32; 8], counter: u64) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    s[4..12].copy_from_slice(key);
    s[12] = counter as u32;
    s[13] = (counter >> 32) as u32;
    let init = s;
    for _ in 0..10 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[i * 4..i * 4 + 4].copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

pub fn init(features: &cpu::Features) {
    let mut rng = RNG.lock();
    let mut hw = true;
    for i in 0..4 {
        let v = cpu::hw_random(features).unwrap_or_else(|| {
            hw = false;
            cpu::rdtsc().rotate_left(i * 17) ^ crate::time::realtime_ns()
        });
        rng.key[i as usize * 2] = v as u32;
        rng.key[i as usize * 2 + 1] = (v >> 32) as u32;
    }
    if !hw {
        warn!("no RDSEED/RDRAND: random numbers are seeded from the clocks only");
    }
}

/// Fills `buf` with random bytes; rekeys after each call so earlier output cannot be
/// recomputed from the state (fast key erasure).
pub fn fill(buf: &mut [u8]) {
    cpu::without_interrupts(|| {
        let mut rng = RNG.lock();
        for chunk in buf.chunks_mut(64) {
            let b = block(&rng.key, rng.counter);
            rng.counter += 1;
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let next = block(&rng.key, rng.counter);
        rng.counter += 1;
        for i in 0..8 {
            rng.key[i] = u32::from_le_bytes(next[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
    });
}
