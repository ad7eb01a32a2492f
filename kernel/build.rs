// The vDSO build, shared with the runner's tests: `build_vdso` and `VDSO_RUSTFLAGS`.
include!("../vdso/build_support.rs");

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-z");
    println!("cargo:rustc-link-arg-bins=max-page-size=4096");

    // The kernel embeds the vDSO image (src/vdso.rs), so it builds it first, with the vDSO's
    // own flags into target/vdso (see vdso/build_support.rs).
    let workspace = std::path::Path::new(&dir)
        .parent()
        .expect("the kernel lives inside the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let image = build_vdso(&cargo, workspace).unwrap_or_else(|e| panic!("{e}"));
    println!("cargo:rustc-env=KTLS_VDSO_IMAGE={}", image.display());
    for input in ["vdso", "abi/src", "abi/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
}
