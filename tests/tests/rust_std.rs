//! A Rust std program (tests/rust-hello, x86_64-unknown-linux-musl, a static PIE) natively and
//! on ktls.

use ktls_tests::{build_rust_hello, Case};

#[test]
fn rust_hello() {
    let exe = build_rust_hello().unwrap_or_else(|e| panic!("building tests/rust-hello: {e}"));
    Case::new("rust-hello", exe)
        .arg("5")
        .arg("two words")
        .status(5)
        .stdout_is(
            "hello from Rust std\n\
             args: [\"5\", \"two words\"]\n\
             squares [1, 4, 9, 16, 25, 36, 49, 64, 81, 100] sum 385\n\
             word counts: brown=1 dog=1 end=1 fox=1 jumps=1 lazy=1 over=1 quick=1 the=3\n\
             formatting: [   right] [left  ] [  mid  ] [-012.346] [0xbeef] [1.2345e3]\n\
             a 10000-byte String: len 10000 ends \"abab\"\n\
             KTLS_GREETING=hello from the harness\n\
             HOME set: true\n",
        )
        .run();
}
