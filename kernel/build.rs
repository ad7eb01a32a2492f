fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-z");
    println!("cargo:rustc-link-arg-bins=max-page-size=4096");
    embed_vdso(std::path::Path::new(&dir));
}

/// The kernel embeds the vDSO image (src/vdso.rs): build it (with its own flags, into
/// target/vdso: see vdso/image/src/build.rs), refuse an image the kernel could not map as it
/// is, and tell src/vdso.rs where it is.
fn embed_vdso(kernel_dir: &std::path::Path) {
    let workspace = kernel_dir
        .parent()
        .expect("the kernel lives inside the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let image =
        ktls_vdso_image::build::build_vdso(&cargo, workspace).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let summary = ktls_vdso_image::check::check(&bytes).unwrap_or_else(|problems| {
        panic!(
            "the vDSO image {} is unusable:\n  {}",
            image.display(),
            problems.join("\n  ")
        )
    });
    println!("cargo:rustc-env=KTLS_VDSO_IMAGE={}", image.display());
    // The exception table, as a sorted Rust array the page-fault path searches (src/vdso.rs).
    let entries: String = summary
        .extable
        .iter()
        .map(|e| format!("    ({:#x}, {:#x}),\n", e.load, e.fixup))
        .collect();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vdso_extable.rs");
    std::fs::write(
        &out,
        format!(
            "/// (load, fixup) offsets in the vDSO image, sorted by load.\n\
             static EXTABLE: [(u64, u64); {}] = [\n{entries}];\n",
            summary.extable.len()
        ),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    for input in ["vdso", "abi/src", "abi/Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
}
