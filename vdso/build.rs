//! Links the vDSO as a prelinked shared object: vdso.lds gives the layout (one R+X PT_LOAD,
//! PT_DYNAMIC, PT_NOTE, PT_GNU_EH_FRAME) and the symbol versions; both hash tables are
//! emitted because musl's lookup reads only DT_HASH and glibc prefers DT_GNU_HASH.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/vdso.lds");
    for arg in [
        // rustc links a position-independent binary as a PIE; -shared instead.
        "--no-pie".to_string(),
        "-shared".into(),
        format!("-T{dir}/vdso.lds"),
        "--hash-style=both".into(),
        "-soname=linux-vdso.so.1".into(),
        "--eh-frame-hdr".into(),
        "--build-id=sha1".into(),
        "--no-undefined".into(),
        "-z".into(),
        "max-page-size=4096".into(),
        "-z".into(),
        "noexecstack".into(),
        "-z".into(),
        "norelro".into(),
        "--strip-debug".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
