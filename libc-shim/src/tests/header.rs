//! include/ktls.h against the `ktls-abi` crate: every number and field offset, checked by the
//! C compiler with static assertions generated from the crate, for both levels.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use ktls_abi::{auxv, clone, ktls, rseq, syscall};

fn assertions(level: u32) -> String {
    let mut c = String::from("#include \"ktls.h\"\n");
    let mut eq = |what: &str, v: u64| {
        writeln!(c, "_Static_assert(({what}) == {v}ULL, \"{what}\");").unwrap();
    };
    eq("KTLS_ABI_VERSION", ktls::KTLS_ABI_VERSION.into());
    eq("AT_KTLS_FEATURE_SIZE", auxv::AT_KTLS_FEATURE_SIZE);
    eq("AT_KTLS_ALIGN", auxv::AT_KTLS_ALIGN);
    eq("AT_RSEQ_FEATURE_SIZE", auxv::AT_RSEQ_FEATURE_SIZE);
    eq("AT_RSEQ_ALIGN", auxv::AT_RSEQ_ALIGN);
    eq("AT_SYSINFO_EHDR", auxv::AT_SYSINFO_EHDR);
    eq("RSEQ_FLAG_KTLS", ktls::RSEQ_FLAG_KTLS.into());
    eq("CLONE_RSEQ_KTLS", clone::CLONE_RSEQ_KTLS);
    eq("RSEQ_SIG", rseq::RSEQ_SIG.into());
    eq("KTLS_ALIGN", ktls::KTLS_ALIGN.into());
    eq("KTLS_BASE", ktls::KTLS_BASE.into());
    eq("KTLS_MAX_LEVEL", ktls::MAX_LEVEL.into());
    eq("KTLS_FEATURE_SIZE_LEVEL_1", ktls::feature_size(1).into());
    eq("KTLS_FEATURE_SIZE_LEVEL_2", ktls::feature_size(2).into());
    eq(
        "KTLS_AREA_SIZE",
        core::mem::size_of::<ktls::KtlsArea>() as u64,
    );
    eq(
        "sizeof(struct ktls_area)",
        core::mem::size_of::<ktls::KtlsArea>() as u64,
    );
    eq(
        "_Alignof(struct ktls_area)",
        core::mem::align_of::<ktls::KtlsArea>() as u64,
    );
    eq("KTLS_LIVE", ktls::KTLS_LIVE.into());
    for (name, nr) in [
        ("getpid", syscall::SYS_GETPID),
        ("getuid", syscall::SYS_GETUID),
        ("getgid", syscall::SYS_GETGID),
        ("geteuid", syscall::SYS_GETEUID),
        ("getegid", syscall::SYS_GETEGID),
        ("gettid", syscall::SYS_GETTID),
        ("sched_yield", syscall::SYS_SCHED_YIELD),
        ("getcpu", syscall::SYS_GETCPU),
    ] {
        eq(&format!("KTLS_SYS_{name}"), nr as u64);
    }
    for f in ktls::FIELDS.iter().filter(|f| f.level <= level) {
        eq(
            &format!("offsetof(struct ktls_area, {})", f.name),
            f.offset.into(),
        );
        eq(
            &format!("sizeof(((struct ktls_area *)0)->{})", f.name),
            f.size.into(),
        );
        eq(&format!("KTLS_FIELD_END({})", f.name), f.end().into());
    }
    for (name, r) in [
        ("KTLS_REG_NONE", crate::Registration::None),
        ("KTLS_REG_RSEQ", crate::Registration::Rseq),
        ("KTLS_REG_KTLS_RSEQ", crate::Registration::KtlsRseq),
        ("KTLS_REG_KTLS_CLONE3", crate::Registration::KtlsClone3),
    ] {
        eq(name, r as u64);
    }
    // A level-1 program must not see the level-2 fields at all.
    if level < 2 {
        for f in ktls::FIELDS.iter().filter(|f| f.level > level) {
            writeln!(c, "struct ktls_area probe_{0} = {{ .{0} = 1 }};", f.name).unwrap();
        }
    }
    c
}

fn compile(cc: &str, level: u32, source: &str, must_fail: bool) {
    let dir = crate::tests::c_programs::out_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("header-{cc}-{level}-{must_fail}.c"));
    std::fs::write(&file, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = match Command::new(cc)
        .args([
            "-fsyntax-only",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
        ])
        .arg(format!("-DKTLS_LEVEL_BUILT_WITH={level}"))
        .arg("-I")
        .arg(&include)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) if cc != "gcc" => {
            crate::tests::c_programs::note(&format!("{cc} not available ({e}); skipped"));
            return;
        }
        Err(e) => panic!("{cc}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if must_fail {
        assert!(
            !out.status.success(),
            "{cc} level {level}: compiled:\n{source}"
        );
    } else {
        assert!(out.status.success(), "{cc} level {level}:\n{stderr}");
    }
}

#[test]
fn header_numbers_and_layout_match_the_abi_crate() {
    for cc in ["gcc", "musl-gcc"] {
        compile(cc, 2, &assertions(2), false);
        let l1 = assertions(1);
        let (ok, probes) = l1.split_at(l1.find("struct ktls_area probe_").unwrap());
        compile(cc, 1, ok, false);
        // Each level-2 field is unknown to a level-1 program.
        for probe in probes.lines() {
            compile(cc, 1, &format!("#include \"ktls.h\"\n{probe}\n"), true);
        }
    }
}
