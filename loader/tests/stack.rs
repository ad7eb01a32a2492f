//! The initial stack: round trips, alignment, auxv order, limits, and a byte-for-byte
//! comparison with the stack Linux builds for a real program.

mod common;

use std::process::Command;

use common::*;
use ktls_abi::auxv::*;
use ktls_abi::mm::{MAX_ARG_STRLEN, MMAP_MIN_ADDR};
use ktls_abi::{Errno, USER_SPACE_END};
use ktls_loader::{
    auxv_entries, build_stack, build_stack_with_limit, parse_stack, AuxvParams, LoadError,
    StackArgs, StackImage, DEFAULT_ARG_LIMIT,
};

const TOP: u64 = 0x7fff_ffff_f000;
const RANDOM: [u8; 16] = *b"0123456789abcdef";

fn params() -> AuxvParams {
    AuxvParams {
        sysinfo_ehdr: Some(0x7fff_f7ff_d000),
        minsigstksz: MINSIGSTKSZ,
        hwcap: 0x1f8b_fbff,
        pagesz: 4096,
        clktck: CLKTCK,
        phdr: 0x400040,
        phent: 56,
        phnum: 6,
        base: 0,
        flags: 0,
        entry: 0x401000,
        uid: 1000,
        euid: 1001,
        gid: 100,
        egid: 101,
        secure: false,
        hwcap2: HWCAP2_FSGSBASE,
        extra: vec![(AT_RSEQ_FEATURE_SIZE, 28), (AT_RSEQ_ALIGN, 32)],
    }
}

fn args<'a>(argv: &'a [&'a [u8]], envp: &'a [&'a [u8]], auxv: &'a [(u64, u64)]) -> StackArgs<'a> {
    StackArgs {
        argv,
        envp,
        execfn: b"/bin/prog",
        platform: PLATFORM.as_bytes(),
        random: RANDOM,
        auxv,
    }
}

fn word(img: &StackImage, addr: u64) -> u64 {
    let off = (addr - img.sp) as usize;
    u64::from_le_bytes(img.bytes[off..off + 8].try_into().unwrap())
}

fn cstr(img: &StackImage, addr: u64) -> &[u8] {
    let rest = &img.bytes[(addr - img.sp) as usize..];
    &rest[..rest.iter().position(|&b| b == 0).unwrap()]
}

#[test]
fn round_trip_and_alignment_for_every_parity() {
    let auxv = auxv_entries(&params());
    let pool: Vec<Vec<u8>> = (0..7).map(|i| vec![b'a' + i as u8; i * 3 + 1]).collect();
    for argc in 0..6 {
        for envc in 0..6 {
            for top in [TOP, TOP - 16, TOP - 0x1008 + 8] {
                let argv: Vec<&[u8]> = pool[..argc].iter().map(|v| v.as_slice()).collect();
                let envp: Vec<&[u8]> = pool[1..1 + envc].iter().map(|v| v.as_slice()).collect();
                let img = build_stack(top, &args(&argv, &envp, &auxv)).unwrap();
                assert_eq!(img.sp % 16, 0, "argc {argc} envc {envc}");
                assert_eq!(img.sp + img.bytes.len() as u64, top);
                assert_eq!(word(&img, top - 8), 0, "end marker");
                assert_eq!(word(&img, img.sp), argc as u64);

                let parsed = parse_stack(&img.bytes, img.sp, top).unwrap();
                assert_eq!(parsed.argv, argv);
                assert_eq!(parsed.envp, envp);
                assert_eq!(parsed.execfn.as_deref(), Some(&b"/bin/prog"[..]));
                assert_eq!(parsed.platform.as_deref(), Some(PLATFORM.as_bytes()));
                assert_eq!(parsed.random, Some(RANDOM));

                // Strings are contiguous, argv then envp, as /proc/PID/cmdline expects.
                let region = |s: u64, e: u64| {
                    img.bytes[(s - img.sp) as usize..(e - img.sp) as usize].to_vec()
                };
                let joined = |v: &[&[u8]]| {
                    v.iter()
                        .flat_map(|s| s.iter().copied().chain([0]))
                        .collect::<Vec<u8>>()
                };
                assert_eq!(region(img.arg_start, img.arg_end), joined(&argv));
                assert_eq!(img.arg_end, img.env_start);
                assert_eq!(region(img.env_start, img.env_end), joined(&envp));
                assert_eq!(parsed.aux(AT_EXECFN), Some(img.env_end));
                if argc > 0 {
                    assert_eq!(parsed.argv_addrs[0], img.arg_start);
                }
            }
        }
    }
}

#[test]
fn auxv_order_is_linux() {
    let full = [
        AT_SYSINFO_EHDR,
        AT_MINSIGSTKSZ,
        AT_HWCAP,
        AT_PAGESZ,
        AT_CLKTCK,
        AT_PHDR,
        AT_PHENT,
        AT_PHNUM,
        AT_BASE,
        AT_FLAGS,
        AT_ENTRY,
        AT_UID,
        AT_EUID,
        AT_GID,
        AT_EGID,
        AT_SECURE,
        AT_RANDOM,
        AT_HWCAP2,
        AT_EXECFN,
        AT_PLATFORM,
        AT_RSEQ_FEATURE_SIZE,
        AT_RSEQ_ALIGN,
    ];
    let p = params();
    let auxv = auxv_entries(&p);
    let img = build_stack(TOP, &args(&[b"x"], &[], &auxv)).unwrap();
    let parsed = parse_stack(&img.bytes, img.sp, TOP).unwrap();
    let keys: Vec<u64> = parsed.auxv.iter().map(|e| e.0).collect();
    assert_eq!(keys, full);
    // Values made it through.
    assert_eq!(parsed.aux(AT_UID), Some(1000));
    assert_eq!(parsed.aux(AT_EUID), Some(1001));
    assert_eq!(parsed.aux(AT_GID), Some(100));
    assert_eq!(parsed.aux(AT_EGID), Some(101));
    assert_eq!(parsed.aux(AT_HWCAP2), Some(HWCAP2_FSGSBASE));
    assert_eq!(parsed.aux(AT_ENTRY), Some(0x401000));
    assert_eq!(parsed.aux(AT_SYSINFO_EHDR), Some(0x7fff_f7ff_d000));
    // The last pair on the stack is AT_NULL.
    let aux_end = img.sp + 8 * (1 + 1 + 1 + 1) + 16 * full.len() as u64;
    assert_eq!((word(&img, aux_end), word(&img, aux_end + 8)), (AT_NULL, 0));

    // Without a vDSO, without extras, secure, and without a platform string.
    let p = AuxvParams {
        sysinfo_ehdr: None,
        extra: vec![],
        secure: true,
        ..params()
    };
    let auxv = auxv_entries(&p);
    let mut a = args(&[b"x"], &[], &auxv);
    a.platform = b"";
    let img = build_stack(TOP, &a).unwrap();
    let parsed = parse_stack(&img.bytes, img.sp, TOP).unwrap();
    let keys: Vec<u64> = parsed.auxv.iter().map(|e| e.0).collect();
    let want: Vec<u64> = full[1..20]
        .iter()
        .copied()
        .filter(|&k| k != AT_PLATFORM)
        .collect();
    assert_eq!(keys, want);
    assert_eq!(parsed.aux(AT_SECURE), Some(1));
    assert_eq!(parsed.platform, None);
}

#[test]
fn builder_entries_point_at_the_right_bytes() {
    let auxv = auxv_entries(&params());
    let argv: [&[u8]; 2] = [b"prog", b"arg one"];
    let envp: [&[u8]; 1] = [b"HOME=/root"];
    let img = build_stack(TOP, &args(&argv, &envp, &auxv)).unwrap();
    // Read through the raw image, not parse_stack.
    let mut at = img.sp + 8 * (1 + 2 + 1 + 1 + 1);
    let mut aux = Vec::new();
    loop {
        let (k, v) = (word(&img, at), word(&img, at + 8));
        at += 16;
        if k == AT_NULL {
            break;
        }
        aux.push((k, v));
    }
    let get = |k| aux.iter().find(|e| e.0 == k).unwrap().1;
    let r = (get(AT_RANDOM) - img.sp) as usize;
    assert_eq!(img.bytes[r..r + 16], RANDOM);
    assert_eq!(cstr(&img, get(AT_EXECFN)), b"/bin/prog");
    assert_eq!(cstr(&img, get(AT_PLATFORM)), PLATFORM.as_bytes());
    assert_eq!(cstr(&img, word(&img, img.sp + 8)), b"prog");
    assert_eq!(cstr(&img, word(&img, img.sp + 16)), b"arg one");
    assert_eq!(word(&img, img.sp + 24), 0);
    assert_eq!(cstr(&img, word(&img, img.sp + 32)), b"HOME=/root");
    assert_eq!(word(&img, img.sp + 40), 0);
    // Linux's placement: execfn right under the end marker, the platform string right under
    // the 16-aligned bottom of the argument strings, the random bytes right under it.
    assert_eq!(get(AT_EXECFN), TOP - 8 - b"/bin/prog\0".len() as u64);
    assert_eq!(get(AT_PLATFORM), (img.arg_start & !15) - 7);
    assert_eq!(get(AT_RANDOM), get(AT_PLATFORM) - 16);
    // Nothing above the vectors but the random bytes and strings; the gap is zero.
    assert!(img.bytes[(at - img.sp) as usize..r].iter().all(|&b| b == 0));
    assert!(r - (at - img.sp) as usize <= 15);
}

#[test]
fn argument_limits() {
    let auxv = auxv_entries(&params());
    // One string: MAX_ARG_STRLEN includes the NUL.
    let long = vec![b'x'; MAX_ARG_STRLEN - 1];
    assert!(build_stack(TOP, &args(&[&long], &[], &auxv)).is_ok());
    let too_long = vec![b'x'; MAX_ARG_STRLEN];
    for (argv, envp) in [
        (&[&too_long[..]][..], &[][..]),
        (&[&b"a"[..]][..], &[&too_long[..]][..]),
    ] {
        let e = build_stack(TOP, &args(argv, envp, &auxv)).unwrap_err();
        assert!(matches!(e, LoadError::ArgTooLong { len, .. } if len == MAX_ARG_STRLEN));
        assert_eq!(e.errno(), Errno::E2BIG);
    }
    let mut a = args(&[b"a"], &[], &auxv);
    a.execfn = &too_long;
    assert!(matches!(
        build_stack(TOP, &a),
        Err(LoadError::ArgTooLong { what: "execfn", .. })
    ));

    // Total: strings with NULs + execfn + 8 per pointer (argc counted as at least 1).
    // argv ["ab"] envp ["c"]: 3 + 2 + 10 ("/bin/prog\0") + 16 = 31 bytes.
    let a = args(&[b"ab"], &[b"c"], &auxv);
    assert!(build_stack_with_limit(TOP, &a, 31).is_ok());
    let e = build_stack_with_limit(TOP, &a, 30).unwrap_err();
    assert_eq!(
        e,
        LoadError::ArgsTooLarge {
            size: 31,
            limit: 30
        }
    );
    assert_eq!(e.errno(), Errno::E2BIG);
    let a = args(&[], &[], &auxv);
    assert!(build_stack_with_limit(TOP, &a, 18).is_ok());
    assert!(build_stack_with_limit(TOP, &a, 17).is_err());

    // The default limit: 2 MiB.
    assert_eq!(DEFAULT_ARG_LIMIT, 2 << 20);
    let chunk = vec![b'e'; 100_000];
    let envp: Vec<&[u8]> = (0..21).map(|_| &chunk[..]).collect(); // 2.1 MB
    let e = build_stack(TOP, &args(&[b"x"], &envp, &auxv)).unwrap_err();
    assert!(matches!(e, LoadError::ArgsTooLarge { .. }), "{e}");
    let envp: Vec<&[u8]> = (0..20).map(|_| &chunk[..]).collect(); // 2.0 MB < 2 MiB
    let img = build_stack(TOP, &args(&[b"x"], &envp, &auxv)).unwrap();
    assert_eq!(parse_stack(&img.bytes, img.sp, TOP).unwrap().envp.len(), 20);
    // Many tiny strings: the pointers count too.
    let tiny: Vec<&[u8]> = vec![b""; 200_000]; // 200k * (1 + 8) = 1.8 MB
    assert!(build_stack(TOP, &args(&tiny, &[], &auxv)).is_ok());
    let tiny: Vec<&[u8]> = vec![b""; 240_000]; // 2.16 MB
    assert!(build_stack(TOP, &args(&tiny, &[], &auxv)).is_err());
}

#[test]
fn bad_inputs() {
    let auxv = auxv_entries(&params());
    for (argv, envp, what, index) in [
        (&[&b"ok"[..], b"b\0d"][..], &[][..], "argument", 1),
        (
            &[&b"ok"[..]][..],
            &[&b"A=\0"[..]][..],
            "environment string",
            0,
        ),
    ] {
        let e = build_stack(TOP, &args(argv, envp, &auxv)).unwrap_err();
        assert_eq!(e, LoadError::NulInString { what, index });
    }
    let mut a = args(&[b"x"], &[], &auxv);
    a.execfn = b"/bin/\0x";
    assert!(matches!(
        build_stack(TOP, &a),
        Err(LoadError::NulInString { what: "execfn", .. })
    ));
    for key in [AT_NULL, AT_RANDOM, AT_EXECFN, AT_PLATFORM] {
        let mut bad = auxv.clone();
        bad.push((key, 0));
        assert_eq!(
            build_stack(TOP, &args(&[b"x"], &[], &bad)),
            Err(LoadError::BadAuxv { key })
        );
    }
    for top in [
        TOP + 8,
        USER_SPACE_END + 16,
        0xffff_ffff_ffff_fff0,
        0,
        MMAP_MIN_ADDR + 64,
    ] {
        let e = build_stack(top, &args(&[b"x"], &[], &auxv)).unwrap_err();
        assert!(matches!(e, LoadError::BadStackTop { .. }), "{top:#x}: {e}");
    }
    // The highest and the lowest usable tops.
    assert!(build_stack(USER_SPACE_END, &args(&[b"x"], &[], &auxv)).is_ok());
    assert!(build_stack(MMAP_MIN_ADDR + 0x1000, &args(&[b"x"], &[], &auxv)).is_ok());
}

#[test]
fn parse_stack_rejects_malformed_images() {
    let auxv = auxv_entries(&params());
    let img = build_stack(TOP, &args(&[b"a", b"b"], &[b"E=1"], &auxv)).unwrap();
    let parse = |bytes: &[u8], sp: u64| parse_stack(bytes, sp, sp + bytes.len() as u64);
    assert!(parse(&img.bytes, img.sp).is_ok());
    // Wrong length / misaligned sp.
    assert!(parse_stack(&img.bytes, img.sp, TOP + 8).is_err());
    assert!(parse(&img.bytes[8..], img.sp + 8).is_err());
    // Huge argc, dangling pointers, missing terminators.
    let mut b = img.bytes.clone();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse(&b, img.sp).is_err());
    let mut b = img.bytes.clone();
    b[8..16].copy_from_slice(&(TOP + 100).to_le_bytes());
    assert!(parse(&b, img.sp).is_err());
    let mut b = img.bytes.clone();
    b[24..32].copy_from_slice(&1u64.to_le_bytes()); // argv NULL replaced
    assert!(parse(&b, img.sp).is_err());
    // Every truncation from the top: either an error or (never) a panic.
    for cut in 1..img.bytes.len() {
        let r = parse(&img.bytes[..cut], img.sp);
        assert!(r.is_err() || cut >= img.bytes.len() - 8, "cut {cut}");
    }
    // Random corruption: never a panic.
    let mut rng = Rng(7);
    for _ in 0..3000 {
        let mut b = img.bytes.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next() as u8;
        }
        let _ = parse(&b, img.sp);
    }
}

/// The stack Linux builds for a static program run with address randomization off
/// (`setarch -R`), decoded with parse_stack and rebuilt with build_stack: the two images must
/// be identical, byte for byte.
#[test]
fn identical_to_linux() {
    const DUMP: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
int main(int argc, char **argv) {
    unsigned long sp = (unsigned long)argv - 8;
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    unsigned long top = (unsigned long)execfn + strlen(execfn) + 1 + 8;
    fwrite(&sp, 8, 1, stdout);
    fwrite(&top, 8, 1, stdout);
    fwrite((void *)sp, 1, top - sp, stdout);
    return 0;
}
"#;
    if !have("setarch") {
        eprintln!("note: setarch not found, skipping");
        return;
    }
    let Some(prog) = compile("musl-gcc", &["-static", "-O1"], DUMP, "stackdump-musl")
        .or_else(|| compile("gcc", &["-static", "-O1"], DUMP, "stackdump-gcc"))
    else {
        return;
    };
    let argvs: [&[&str]; 3] = [&[], &["one"], &["a", "bb", "", "dddd e"]];
    let envs: [&[&str]; 3] = [
        &[],
        &["A=1"],
        &["HOME=/root", "X=", "LONG=aaaaaaaaaaaaaaaaaa"],
    ];
    for argv in argvs {
        for env in envs {
            let out = Command::new("setarch")
                .args(["x86_64", "-R", "env", "-i"])
                .args(env)
                .arg(&prog)
                .args(argv)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let sp = u64::from_le_bytes(out.stdout[..8].try_into().unwrap());
            let top = u64::from_le_bytes(out.stdout[8..16].try_into().unwrap());
            let linux = &out.stdout[16..];
            let parsed = parse_stack(linux, sp, top).expect("parse Linux's stack");

            let known = [
                AT_SYSINFO_EHDR,
                AT_MINSIGSTKSZ,
                AT_HWCAP,
                AT_PAGESZ,
                AT_CLKTCK,
                AT_PHDR,
                AT_PHENT,
                AT_PHNUM,
                AT_BASE,
                AT_FLAGS,
                AT_ENTRY,
                AT_UID,
                AT_EUID,
                AT_GID,
                AT_EGID,
                AT_SECURE,
                AT_RANDOM,
                AT_HWCAP2,
                AT_EXECFN,
                AT_PLATFORM,
                AT_RSEQ_FEATURE_SIZE,
                AT_RSEQ_ALIGN,
            ];
            if let Some(k) = parsed.auxv.iter().find(|e| !known.contains(&e.0)) {
                eprintln!("note: host auxv has key {} unknown here, skipping", k.0);
                return;
            }
            let get = |k| parsed.aux(k).unwrap_or(0);
            let after_platform = parsed
                .auxv
                .iter()
                .position(|e| e.0 == AT_PLATFORM)
                .expect("AT_PLATFORM")
                + 1;
            let params = AuxvParams {
                sysinfo_ehdr: parsed.aux(AT_SYSINFO_EHDR),
                minsigstksz: get(AT_MINSIGSTKSZ),
                hwcap: get(AT_HWCAP),
                pagesz: get(AT_PAGESZ),
                clktck: get(AT_CLKTCK),
                phdr: get(AT_PHDR),
                phent: get(AT_PHENT),
                phnum: get(AT_PHNUM),
                base: get(AT_BASE),
                flags: get(AT_FLAGS),
                entry: get(AT_ENTRY),
                uid: get(AT_UID),
                euid: get(AT_EUID),
                gid: get(AT_GID),
                egid: get(AT_EGID),
                secure: get(AT_SECURE) != 0,
                hwcap2: get(AT_HWCAP2),
                extra: parsed.auxv[after_platform..].to_vec(),
            };
            let auxv = auxv_entries(&params);
            let argv_b: Vec<&[u8]> = parsed.argv.iter().map(|v| v.as_slice()).collect();
            let envp_b: Vec<&[u8]> = parsed.envp.iter().map(|v| v.as_slice()).collect();
            let ours = build_stack(
                top,
                &StackArgs {
                    argv: &argv_b,
                    envp: &envp_b,
                    execfn: parsed.execfn.as_deref().unwrap(),
                    platform: parsed.platform.as_deref().unwrap(),
                    random: parsed.random.unwrap(),
                    auxv: &auxv,
                },
            )
            .unwrap();
            assert_eq!(ours.sp, sp, "argv {argv:?} env {env:?}");
            assert_eq!(ours.bytes, linux, "argv {argv:?} env {env:?}");
            assert_eq!(parsed.argv.len(), argv.len() + 1);
        }
    }
}
