//! The vDSO checker: the built image passes, and each kind of broken image is rejected with
//! the reason (each case breaks a copy of the real image in one place).

use goblin::elf::dynamic::{DT_HASH, DT_RELA};
use goblin::elf::program_header::{PF_W, PT_GNU_EH_FRAME, PT_LOAD, PT_NOTE, PT_NULL};
use goblin::elf::section_header::SHT_RELA;
use goblin::elf::Elf;
use ktls_vdso_image::check::{check, REQUIRED};

fn image() -> Vec<u8> {
    let path = ktls_vdso_image::image().unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Breaks a copy of the image with `edit` and expects the checker to name the problem.
fn rejects(what: &str, edit: impl FnOnce(&Elf, &mut Vec<u8>)) {
    let good = image();
    let mut bad = good.clone();
    let elf = Elf::parse(&good).unwrap();
    edit(&elf, &mut bad);
    match check(&bad) {
        Ok(_) => panic!("the checker accepted an image with {what}"),
        Err(problems) => assert!(
            problems.iter().any(|p| p.contains(what)),
            "the checker did not report {what:?}, only {problems:?}"
        ),
    }
}

fn put_u32(img: &mut [u8], at: usize, v: u32) {
    img[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(img: &mut [u8], at: usize, v: u64) {
    img[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offset of program header `i` (ELF64).
fn phdr(elf: &Elf, i: usize) -> usize {
    elf.header.e_phoff as usize + i * elf.header.e_phentsize as usize
}

fn phdr_index(elf: &Elf, ty: u32) -> usize {
    elf.program_headers
        .iter()
        .position(|p| p.p_type == ty)
        .unwrap()
}

/// File offset of the section header named `name`.
fn shdr(elf: &Elf, name: &str) -> usize {
    let i = elf
        .section_headers
        .iter()
        .position(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no section {name}"));
    elf.header.e_shoff as usize + i * elf.header.e_shentsize as usize
}

fn section_offset(elf: &Elf, name: &str) -> usize {
    let s = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        .unwrap();
    s.sh_offset as usize
}

/// Index of the dynamic symbol `name`.
fn dynsym(elf: &Elf, name: &str) -> usize {
    elf.dynsyms
        .iter()
        .position(|s| elf.dynstrtab.get_at(s.st_name) == Some(name))
        .unwrap()
}

#[test]
fn the_built_image_passes() {
    let summary = check(&image()).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert_eq!(summary.symbols.len(), REQUIRED.len());
    // Small enough to be two pages (the mapping is the file, rounded up).
    assert!(
        summary.size <= 2 * 4096,
        "the image is {} bytes",
        summary.size
    );
}

#[test]
fn rejects_a_writable_segment() {
    rejects("writable segment", |elf, img| {
        let at = phdr(elf, phdr_index(elf, PT_LOAD)) + 4; // p_flags
        let flags = elf.program_headers[phdr_index(elf, PT_LOAD)].p_flags;
        put_u32(img, at, flags | PF_W);
    });
}

#[test]
fn rejects_two_loadable_segments() {
    rejects("2 PT_LOAD segments", |elf, img| {
        put_u32(img, phdr(elf, phdr_index(elf, PT_GNU_EH_FRAME)), PT_LOAD);
    });
}

#[test]
fn rejects_bss() {
    rejects(".bss", |elf, img| {
        let i = phdr_index(elf, PT_LOAD);
        let memsz = elf.program_headers[i].p_memsz;
        put_u64(img, phdr(elf, i) + 40, memsz + 4096); // p_memsz
    });
}

#[test]
fn rejects_a_missing_note() {
    rejects("no PT_NOTE", |elf, img| {
        put_u32(img, phdr(elf, phdr_index(elf, PT_NOTE)), PT_NULL);
    });
}

#[test]
fn rejects_a_missing_eh_frame_header() {
    rejects("no PT_GNU_EH_FRAME", |elf, img| {
        put_u32(img, phdr(elf, phdr_index(elf, PT_GNU_EH_FRAME)), PT_NULL);
    });
}

#[test]
fn rejects_a_relocation_section() {
    rejects("relocation section .eh_frame", |elf, img| {
        put_u32(img, shdr(elf, ".eh_frame") + 4, SHT_RELA); // sh_type
    });
}

#[test]
fn rejects_dynamic_relocations() {
    rejects("DT_RELA", |elf, img| {
        // Turn DT_HASH into DT_RELA: a relocation table where the hash table is.
        let dynamic = section_offset(elf, ".dynamic");
        let n = elf.dynamic.as_ref().unwrap().dyns.len();
        let i = (0..n)
            .find(|&i| elf.dynamic.as_ref().unwrap().dyns[i].d_tag == DT_HASH)
            .unwrap();
        put_u64(img, dynamic + 16 * i, DT_RELA);
    });
}

#[test]
fn rejects_a_missing_hash_table() {
    rejects("no DT_HASH", |elf, img| {
        let dynamic = section_offset(elf, ".dynamic");
        let dyns = &elf.dynamic.as_ref().unwrap().dyns;
        let i = dyns.iter().position(|d| d.d_tag == DT_HASH).unwrap();
        put_u64(img, dynamic + 16 * i, 21); // DT_DEBUG
    });
}

#[test]
fn rejects_a_missing_version_definition_section() {
    rejects("no .gnu.version_d", |elf, img| {
        // Rename the section header: ".gnu.version_d" becomes ".gnu.version_x".
        let name = elf.section_headers[elf
            .section_headers
            .iter()
            .position(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".gnu.version_d"))
            .unwrap()]
        .sh_name;
        let at = section_offset(elf, ".shstrtab") + name + ".gnu.version_".len();
        img[at] = b'x';
    });
}

#[test]
fn rejects_a_missing_exception_table() {
    rejects("no .ktls_extable section", |elf, img| {
        let name = elf.section_headers[elf
            .section_headers
            .iter()
            .position(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".ktls_extable"))
            .unwrap()]
        .sh_name;
        let at = section_offset(elf, ".shstrtab") + name + ".ktls_".len();
        img[at] = b'X';
    });
}

#[test]
fn rejects_an_exception_table_entry_outside_the_code() {
    rejects("points outside the code", |elf, img| {
        // The first entry's load offset, made to point at the ELF header.
        let at = section_offset(elf, ".ktls_extable");
        put_u32(img, at, (at as i32).wrapping_neg() as u32);
    });
}

#[test]
fn the_exception_table_covers_the_getters() {
    let img = image();
    let summary = ktls_vdso_image::check::check(&img).unwrap();
    // Two loads (ktls_live and the field) in each of 12 getters, three in getcpu.
    assert_eq!(summary.extable.len(), 12 * 2 + 3, "{:x?}", summary.extable);
    for (name, version, addr) in &summary.symbols {
        if version == "KTLS_1" || name == "__vdso_getcpu" {
            let inside = summary
                .extable
                .iter()
                .filter(|e| e.load > *addr && e.load < addr + 64);
            assert!(inside.count() >= 2, "{name} has no exception-table entries");
        }
    }
}

#[test]
fn rejects_an_unversioned_symbol() {
    rejects("__vdso_getuid is unversioned", |elf, img| {
        let at = section_offset(elf, ".gnu.version") + 2 * dynsym(elf, "__vdso_getuid");
        img[at..at + 2].copy_from_slice(&1u16.to_le_bytes()); // VER_NDX_GLOBAL
    });
}

#[test]
fn rejects_a_symbol_with_the_wrong_version() {
    rejects(
        "__vdso_getuid has version LINUX_2.6, want KTLS_1",
        |elf, img| {
            let linux = section_offset(elf, ".gnu.version") + 2 * dynsym(elf, "clock_gettime");
            let v = [img[linux], img[linux + 1]];
            let at = section_offset(elf, ".gnu.version") + 2 * dynsym(elf, "__vdso_getuid");
            img[at..at + 2].copy_from_slice(&v);
        },
    );
}

#[test]
fn rejects_a_missing_symbol() {
    rejects("missing symbol __vdso_getpid@KTLS_1", |elf, img| {
        let s = &elf.dynsyms.get(dynsym(elf, "__vdso_getpid")).unwrap();
        let at = section_offset(elf, ".dynstr") + s.st_name + "__vdso_getpi".len();
        img[at] = b'X';
    });
}
