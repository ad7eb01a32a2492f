//! Link as a static, non-PIE executable without the C library's startup files: the shim's
//! `_start` (its `start` feature) is the entry point and the shim is the only runtime.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
