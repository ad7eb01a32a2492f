//! A Rust `no_std` program on the ktls libc shim: the shim's `_start` sets up TLS and the
//! KTLS area and calls `main` below; the program reads its ids three ways in the main thread
//! and in four threads, and uses `alloc` through the shim's allocator.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::ffi::{c_char, c_void};

use ktls_shim::ids::off;
use ktls_shim::vdso::{self, Sym};
use ktls_shim::{println, sys};

#[global_allocator]
static ALLOC: ktls_shim::ShimAlloc = ktls_shim::ShimAlloc;

/// Reads tid and uid three ways; returns whether every available way agreed.
fn report(who: &str) -> bool {
    let mut equal = true;
    for (what, field, sym, syscall) in [
        ("tid", off::TID, Sym::Gettid, sys::gettid() as u32),
        ("uid", off::UID, Sym::Getuid, sys::getuid()),
    ] {
        let raw = ktls_shim::ktls_read(field);
        let via_vdso = vdso::id(sym);
        equal &= raw.is_none_or(|v| v == syscall) && via_vdso.is_none_or(|v| v == syscall);
        println!(
            "[{who}] {what}: raw KTLS load {:?} | vDSO {:?} | syscall {syscall}",
            raw, via_vdso
        );
    }
    println!(
        "[{who}] registration {:?}",
        ktls_shim::current_registration()
    );
    equal
}

extern "C" fn worker(arg: *mut c_void) -> *mut c_void {
    let n = arg as usize;
    let mut who = [0u8; 8];
    who[..7].copy_from_slice(b"thread ");
    who[7] = b'0' + n as u8;
    let ok = report(core::str::from_utf8(&who).unwrap());
    // The allocator from several threads at once.
    let v: Vec<u64> = (0..10_000).map(|i| i * n as u64).collect();
    let sum: u64 = v.iter().sum();
    (ok && sum == 49_995_000 * n as u64) as usize as *mut c_void
}

#[no_mangle]
pub extern "C" fn main(
    _argc: i32,
    _argv: *const *const c_char,
    _envp: *const *const c_char,
) -> i32 {
    println!(
        "rust no_std on the ktls shim: __ktls_offset {}, __ktls_size {}, level built with {}",
        ktls_shim::ktls_offset(),
        ktls_shim::ktls_size(),
        ktls_shim::LEVEL_BUILT_WITH
    );
    let mut ok = report("main");
    let threads: Vec<_> = (1..=4usize)
        .map(|i| ktls_shim::spawn(worker, i as *mut c_void).expect("spawn"))
        .collect();
    for t in threads {
        ok &= !t.join().is_null();
    }
    if ok {
        println!("all equal");
        0
    } else {
        println!("MISMATCH");
        1
    }
}
