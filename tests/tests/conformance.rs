//! The conformance programs of `tests/programs/`, each built with every toolchain, run natively
//! and on ktls. One test per program and toolchain, e.g. `files::glibc_static_pie`.
//!
//! `KTLS_TESTS_NATIVE_ONLY=1 cargo test --release -p ktls-tests` checks just the native half.

use ktls_tests::{
    add_same_path, c_case, c_case_including, files_fixture, per_toolchain, run_all, DATA_FIRST_LINE,
};

/// FNV-1a, as the C programs compute it.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

per_toolchain!(hello, |tc| {
    let Some(case) = c_case("hello", tc) else {
        return;
    };
    let argv0 = case.program.display().to_string();
    // `hello 7` exits 7 and prints its argv and one variable.
    let seven = case.clone().arg("7").status(7).stdout_is(format!(
        "hello, world\nargc=2\nargv[0]={argv0}\nargv[1]=7\n\
             KTLS_GREETING=hello from the harness\n"
    ));
    // Arguments with spaces, an empty one and UTF-8 arrive intact.
    let odd_args = case
        .arg("0")
        .arg("two words")
        .arg("")
        .arg("ünïcödé ✓")
        .status(0)
        .stdout_is(format!(
            "hello, world\nargc=5\nargv[0]={argv0}\nargv[1]=0\nargv[2]=two words\nargv[3]=\n\
             argv[4]=ünïcödé ✓\nKTLS_GREETING=hello from the harness\n"
        ));
    run_all(&[seven, odd_args]);
});

per_toolchain!(tls_big, |tc| {
    let Some(case) = c_case("tls_big", tc) else {
        return;
    };
    // The pattern tls_big.c writes over its 1 MiB TLS array.
    let sum = fnv1a((0..1u32 << 20).map(|i| (i.wrapping_mul(7) + (i >> 12)) as u8));
    case.self_checking()
        .has_line(format!("checksum {sum:016x}"))
        .run();
});

/// Lines about the FSGSBASE instructions, which a run without them does not have.
fn without_fsgsbase_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| {
            !["rdfsbase", "wrfsbase", "rdgsbase", "wrgsbase"]
                .iter()
                .any(|w| l.contains(w))
        })
        .map(str::to_owned)
        .collect()
}

const NO_FSGSBASE_LINE: &str = "skip rdfsbase/wrfsbase: AT_HWCAP2 lacks HWCAP2_FSGSBASE";

per_toolchain!(fsbase, |tc| {
    let Some(case) = c_case("fsbase", tc) else {
        return;
    };
    let plain = case.clone().self_checking();
    // With `nofsgsbase` the kernel must not advertise HWCAP2_FSGSBASE; the program then checks
    // the syscall paths only (and must still see its FS and GS bases survive).
    let mut nofsgsbase = case
        .kernel_arg("nofsgsbase")
        .self_checking()
        .compare(|native, guest| {
            if !String::from_utf8_lossy(guest)
                .lines()
                .any(|l| l == NO_FSGSBASE_LINE)
            {
                return Err(format!("no line {NO_FSGSBASE_LINE:?}"));
            }
            let (n, g) = (
                without_fsgsbase_lines(native),
                without_fsgsbase_lines(guest),
            );
            if n == g {
                Ok(())
            } else {
                Err(format!(
                    "apart from the FSGSBASE lines: native {n:#?}\nktls {g:#?}"
                ))
            }
        });
    nofsgsbase.name.push_str(" nofsgsbase");
    run_all(&[plain, nofsgsbase]);
});

per_toolchain!(efault, |tc| {
    if let Some(case) = c_case("efault", tc) {
        case.self_checking().run();
    }
});

per_toolchain!(nullderef, |tc| {
    if let Some(case) = c_case("nullderef", tc) {
        // Killed by SIGSEGV: 128 + 11 = 139.
        case.status(128 + ktls_abi::signal::SIGSEGV as i32)
            .stdout_is("about to dereference NULL\n")
            .run();
    }
});

per_toolchain!(files, |tc| {
    let Some(case) = c_case("files", tc) else {
        return;
    };
    let fixture = files_fixture();
    let data = std::fs::read(fixture.join("data.txt")).expect("read the fixture");
    assert!(data.starts_with(DATA_FIRST_LINE.as_bytes()));
    let summary = format!(
        "data.txt: {} bytes, fnv1a {:016x}",
        data.len(),
        fnv1a(data.iter().copied())
    );
    case.arg(&fixture)
        .guest_add(add_same_path(&fixture))
        .self_checking()
        .has_line(summary)
        .run();
});

per_toolchain!(memory, |tc| {
    if let Some(case) = c_case("memory", tc) {
        case.self_checking().run();
    }
});

per_toolchain!(fork_memory, |tc| {
    if let Some(case) = c_case("fork_memory", tc) {
        case.self_checking().run();
    }
});

per_toolchain!(mlock, |tc| {
    if let Some(case) = c_case_including("mlock", tc, &["child.h"]) {
        case.self_checking().run();
    }
});

per_toolchain!(futex_fault, |tc| {
    if let Some(case) = c_case("futex_fault", tc) {
        case.self_checking().run();
    }
});

per_toolchain!(misc, |tc| {
    if let Some(case) = c_case("misc", tc) {
        case.self_checking().run();
    }
});

per_toolchain!(pidfd, |tc| {
    if let Some(case) = c_case("pidfd", tc) {
        case.self_checking().run();
    }
});
