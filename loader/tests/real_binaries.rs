//! Plans for real executables: programs compiled here (gcc -static, gcc -static-pie,
//! musl-gcc -static), /bin/busybox, and the refusal of a dynamically linked /bin/ls.
//!
//! The oracle is Linux itself where possible: the compiled program prints what the host
//! kernel gave it (AT_PHDR, AT_ENTRY, AT_PHNUM, addresses of its variables), and busybox dumps
//! its own /proc/self/auxv. Memory contents are checked in a simulation of the plan.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use ktls_abi::auxv::{AT_ENTRY, AT_PHDR, AT_PHENT, AT_PHNUM};
use ktls_loader::{plan, LoadError, LoadPlan, Prot};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <sys/auxv.h>
__thread int tls_init = 0x12345678;
__thread char tls_zero[64];
int data_var = 0x5eed1e55;
char big_bss[1 << 20];
int main(int argc, char **argv) {
    tls_zero[argc] = 1;
    big_bss[argc] = 1;
    printf("%lx %lx %lx %lx %lx %lx\n", getauxval(AT_PHDR), getauxval(AT_ENTRY),
           getauxval(AT_PHNUM), (unsigned long)&data_var, (unsigned long)big_bss,
           (unsigned long)tls_init);
    return 0;
}
"#;

/// Symbol values from the file's symbol table (goblin's full parser: a different code path
/// from the loader's).
fn symbol(file: &[u8], name: &str) -> u64 {
    let elf = goblin::elf::Elf::parse(file).expect("goblin parses the test program");
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .unwrap_or_else(|| panic!("no symbol {name}"))
        .st_value
}

fn prot_at(plan: &LoadPlan, addr: u64) -> Prot {
    plan.pages
        .iter()
        .find(|r| r.start <= addr && addr < r.end)
        .map(|r| r.prot)
        .unwrap_or_else(|| panic!("{addr:#x} not mapped"))
}

/// Checks common to every real executable: the plan's invariants, that the program headers
/// and the TLS initialization image are really in simulated memory, that entry is executable.
fn check_real(file: &[u8], plan: &LoadPlan) -> Memory {
    check_plan(file, plan, PIE_BASE);
    let (ehdr, phdrs) = read_headers(file).unwrap();
    let mem = Memory::load(file, plan);
    let table = &file[ehdr.e_phoff as usize..][..ehdr.e_phnum as usize * 56];
    assert_eq!(
        mem.read(plan.phdr_addr, table.len()),
        table,
        "AT_PHDR memory"
    );
    assert!(prot_at(plan, plan.entry).contains(Prot::EXEC | Prot::READ));
    if let Some(tls) = plan.tls {
        let ph = phdrs.iter().find(|p| p.p_type == PT_TLS).unwrap();
        let image = &file[ph.p_offset as usize..][..ph.p_filesz as usize];
        assert_eq!(mem.read(tls.vaddr, image.len()), image, "TLS image");
    }
    // Every byte of every segment past its file part reads as zero (bss).
    for ph in phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_memsz > p.p_filesz)
    {
        let start = ph.p_vaddr.wrapping_add(plan.load_bias) + ph.p_filesz;
        let len = (ph.p_memsz - ph.p_filesz) as usize;
        assert!(mem.read(start, len).iter().all(|&b| b == 0), "bss not zero");
    }
    mem
}

/// Compiles PROGRAM, plans it, and compares with what Linux did when running it.
fn compiled_program(cc: &str, flags: &[&str], name: &str, want_pie: bool) {
    let Some(path) = compile(cc, flags, PROGRAM, name) else {
        return;
    };
    let file = read(&path);
    let plan = plan(&file, PIE_BASE).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(plan.is_pie, want_pie, "{name}");
    if want_pie {
        assert_eq!(plan.pages[0].start, PIE_BASE);
    }
    let mem = check_real(&file, &plan);

    // TLS template: tls_init's initial value at its template offset, tls_zero in the zero part.
    let tls = plan.tls.expect("PT_TLS");
    let off = symbol(&file, "tls_init");
    assert_eq!(mem.read(tls.vaddr + off, 4), 0x12345678u32.to_le_bytes());
    let zero_off = symbol(&file, "tls_zero");
    assert!(zero_off >= tls.filesz && zero_off + 64 <= tls.memsz);

    // What Linux did.
    let out = Command::new(&path).output().expect("run test program");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|w| u64::from_str_radix(w, 16).unwrap())
        .collect();
    let [phdr, entry, phnum, data_var, big_bss, tls_val] = v[..] else {
        panic!("bad output {text:?}")
    };
    assert_eq!(tls_val, 0x12345678);
    // Linux's bias vs ours: same layout, possibly a different base.
    let linux_bias = entry.wrapping_sub(plan.entry.wrapping_sub(plan.load_bias));
    if !want_pie {
        assert_eq!(linux_bias, 0);
    }
    let ours = |linux: u64| linux.wrapping_sub(linux_bias).wrapping_add(plan.load_bias);
    assert_eq!(ours(entry), plan.entry);
    assert_eq!(ours(phdr), plan.phdr_addr);
    assert_eq!(phnum, plan.phnum);
    assert_eq!(mem.read(ours(data_var), 4), 0x5eed1e55u32.to_le_bytes());
    assert!(prot_at(&plan, ours(data_var)).contains(Prot::READ | Prot::WRITE));
    assert!(mem.read(ours(big_bss), 1 << 20).iter().all(|&b| b == 0));
    assert!(prot_at(&plan, ours(big_bss) + (1 << 20) - 1).contains(Prot::WRITE));
    assert!(plan.brk_start >= ours(big_bss) + (1 << 20));
    assert!(!plan.stack_executable);
}

#[test]
fn gcc_static() {
    compiled_program("gcc", &["-static", "-no-pie", "-O1"], "gcc-static", false);
}

#[test]
fn gcc_static_pie() {
    compiled_program(
        "gcc",
        &["-static-pie", "-fPIE", "-O1"],
        "gcc-static-pie",
        true,
    );
}

#[test]
fn musl_static() {
    compiled_program("musl-gcc", &["-static", "-O1"], "musl-static", false);
}

#[test]
fn gcc_executable_stack_is_reported() {
    let src = "int main(void) { return 0; }\n";
    let Some(path) = compile(
        "gcc",
        &["-static", "-no-pie", "-Wl,-z,execstack"],
        src,
        "gcc-execstack",
    ) else {
        return;
    };
    let file = read(&path);
    let plan = plan(&file, PIE_BASE).unwrap();
    check_plan(&file, &plan, PIE_BASE);
    assert!(plan.stack_executable);
}

/// Parses /proc/self/auxv as printed by `busybox od` would be fragile; read it raw via `cat`.
fn busybox_auxv(busybox: &Path) -> Option<Vec<(u64, u64)>> {
    let out = Command::new(busybox)
        .args(["cat", "/proc/self/auxv"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .chunks_exact(16)
            .map(|c| {
                (
                    u64::from_le_bytes(c[..8].try_into().unwrap()),
                    u64::from_le_bytes(c[8..].try_into().unwrap()),
                )
            })
            .collect(),
    )
}

#[test]
fn busybox() {
    let path = Path::new("/bin/busybox");
    if !path.exists() {
        eprintln!("note: /bin/busybox not present, skipping");
        return;
    }
    let file = read(path);
    let plan = plan(&file, PIE_BASE).unwrap_or_else(|e| panic!("busybox: {e}"));
    check_real(&file, &plan);
    // Linux's own view of busybox (a non-PIE static binary: no randomization of these).
    match busybox_auxv(path) {
        Some(auxv) => {
            let get = |k| auxv.iter().find(|e| e.0 == k).map(|e| e.1);
            assert_eq!(get(AT_PHENT), Some(plan.phent));
            assert_eq!(get(AT_PHNUM), Some(plan.phnum));
            if !plan.is_pie {
                assert_eq!(get(AT_PHDR), Some(plan.phdr_addr));
                assert_eq!(get(AT_ENTRY), Some(plan.entry));
            }
        }
        None => eprintln!("note: could not read busybox's /proc/self/auxv"),
    }
}

#[test]
fn dynamic_ls_is_refused() {
    let path = Path::new("/bin/ls");
    let Ok(file) = std::fs::read(path) else {
        eprintln!("note: /bin/ls not present, skipping");
        return;
    };
    let has_interp =
        read_headers(&file).is_some_and(|(_, phdrs)| phdrs.iter().any(|p| p.p_type == PT_INTERP));
    if !has_interp {
        eprintln!("note: /bin/ls is not dynamically linked here, skipping");
        return;
    }
    let err = plan(&file, PIE_BASE).unwrap_err();
    assert!(
        matches!(err, LoadError::DynamicallyLinked { interpreter: Some(ref i) } if i.contains("ld-linux")),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("dynamically linked"), "{msg}");
    assert!(msg.contains("static executables only"), "{msg}");
    assert_eq!(err.errno(), ktls_abi::Errno::ENOEXEC);
}

#[test]
fn dynamic_compiled_program_is_refused() {
    let Some(path) = compile("gcc", &["-O1"], PROGRAM, "gcc-dynamic") else {
        return;
    };
    let err = plan(&read(&path), PIE_BASE).unwrap_err();
    assert!(
        matches!(err, LoadError::DynamicallyLinked { .. }),
        "{err:?}"
    );
}
