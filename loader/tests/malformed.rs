//! Hand-made ELF files, one per error (and the accepted edge next to it), plus the fuzz-style
//! net: truncations and random header corruption must give Ok (with a plan that passes all
//! invariant checks) or Err, never a panic.

mod common;

use common::*;
use ktls_abi::mm::MMAP_MIN_ADDR;
use ktls_abi::{Errno, USER_SPACE_END};
use ktls_loader::{plan, LoadError, PageRange, Prot, TlsTemplate, MAX_PHDR_TABLE};

fn ok(spec: &Spec) -> ktls_loader::LoadPlan {
    let file = spec.bytes();
    let p = plan(&file, PIE_BASE).unwrap_or_else(|e| panic!("{e}"));
    check_plan(&file, &p, PIE_BASE);
    p
}

fn err(spec: &Spec) -> LoadError {
    let e = plan(&spec.bytes(), PIE_BASE).expect_err("should be refused");
    assert!(!e.to_string().is_empty());
    assert_eq!(e.errno(), Errno::ENOEXEC, "{e}");
    e
}

#[test]
fn baseline_exec() {
    let p = ok(&Spec::exec());
    assert_eq!(p.entry, 0x400100);
    assert_eq!(p.load_bias, 0);
    assert!(!p.is_pie);
    assert_eq!(
        p.pages,
        [
            PageRange {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::READ | Prot::EXEC
            },
            PageRange {
                start: 0x401000,
                end: 0x403000,
                prot: Prot::READ | Prot::WRITE
            },
        ]
    );
    assert_eq!(p.copies.len(), 2);
    assert_eq!(
        (p.copies[1].dest, p.copies[1].file_offset, p.copies[1].len),
        (0x401000, 0x1000, 0x10)
    );
    assert_eq!(p.phdr_addr, 0x400040);
    assert_eq!(p.phnum, 4);
    assert_eq!(
        p.tls,
        Some(TlsTemplate {
            vaddr: 0x401000,
            filesz: 8,
            memsz: 0x20,
            align: 8
        })
    );
    assert!(!p.stack_executable);
    assert_eq!(p.brk_start, 0x403000);
}

#[test]
fn baseline_pie() {
    let p = ok(&Spec::pie());
    assert!(p.is_pie);
    assert_eq!(p.load_bias, PIE_BASE);
    assert_eq!(p.entry, PIE_BASE + 0x100);
    assert_eq!(p.pages[0].start, PIE_BASE);
    assert_eq!(p.phdr_addr, PIE_BASE + 0x40);
    assert_eq!(p.tls.unwrap().vaddr, PIE_BASE + 0x1000);
    assert_eq!(p.brk_start, PIE_BASE + 0x3000);
}

#[test]
fn pie_linked_above_zero_lands_at_pie_base() {
    let mut s = Spec::pie();
    for ph in &mut s.phdrs {
        if ph.p_type != PT_GNU_STACK {
            ph.p_vaddr += 0x20000;
        }
    }
    s.entry += 0x20000;
    let p = ok(&s);
    assert_eq!(p.pages[0].start, PIE_BASE);
    assert_eq!(p.load_bias, PIE_BASE - 0x20000);
    assert_eq!(p.entry, PIE_BASE + 0x100);
}

#[test]
fn pie_base_checks() {
    let file = Spec::pie().bytes();
    let e = plan(&file, PIE_BASE + 1).unwrap_err();
    assert_eq!(e, LoadError::BadPieBase { base: PIE_BASE + 1 });
    assert_eq!(e.errno(), Errno::EINVAL);
    assert!(matches!(
        plan(&file, 0),
        Err(LoadError::SegmentBelowMinAddr { .. })
    ));
    assert!(matches!(
        plan(&file, USER_SPACE_END - 0x1000),
        Err(LoadError::SegmentOutsideUserSpace { .. })
    ));
    assert!(matches!(
        plan(&file, 0xffff_ffff_ffff_f000),
        Err(LoadError::AddressOverflow { .. })
    ));
    // The highest base that fits: the image is 3 pages.
    let p = plan(&file, USER_SPACE_END - 0x3000).unwrap();
    assert_eq!(p.brk_start, USER_SPACE_END);
    // ET_EXEC ignores pie_base entirely.
    assert!(plan(&Spec::exec().bytes(), 12345).is_ok());
}

#[test]
fn not_elf() {
    for f in [
        &b""[..],
        b"\x7fEL",
        b"\x7fELG",
        b"MZ\x90\x00 not elf at all........",
    ] {
        assert_eq!(plan(f, PIE_BASE), Err(LoadError::NotElf));
    }
}

#[test]
fn truncated_elf_header() {
    let f = Spec::exec().bytes();
    for len in [4, 16, 40, 63] {
        assert!(matches!(
            plan(&f[..len], PIE_BASE),
            Err(LoadError::Truncated { needed: 64, .. })
        ));
    }
}

#[test]
fn wrong_class_endianness_type_machine() {
    let mut s = Spec::exec();
    s.class = 1;
    assert_eq!(err(&s), LoadError::NotElf64 { class: 1 });
    let mut s = Spec::exec();
    s.data = 2;
    assert_eq!(err(&s), LoadError::NotLittleEndian { data: 2 });
    for t in [0u16, 1, 4, 0xfe00, 0xffff] {
        let mut s = Spec::exec();
        s.e_type = t;
        assert_eq!(err(&s), LoadError::WrongType { e_type: t });
    }
    for m in [3u16, 40, 183, 0] {
        let mut s = Spec::exec();
        s.machine = m;
        assert_eq!(err(&s), LoadError::WrongMachine { machine: m });
    }
}

#[test]
fn phentsize_and_phnum() {
    for sz in [0u16, 32, 55, 57, 64] {
        let mut s = Spec::exec();
        s.phentsize = sz;
        assert_eq!(err(&s), LoadError::BadPhentsize { phentsize: sz });
    }
    let mut s = Spec::exec();
    s.phnum = Some(0);
    assert_eq!(err(&s), LoadError::BadPhnum { phnum: 0 });

    // Linux's limit: at most ELF_MIN_ALIGN bytes of program headers (73 entries).
    let max = (MAX_PHDR_TABLE / 56) as u16;
    assert_eq!(max, 73);
    // A file with a two-page text segment, so that 73 headers are loaded.
    let big = || {
        let mut s = Spec::exec();
        s.len = 0x2010;
        s.phdrs[0].p_filesz = 0x2000;
        s.phdrs[0].p_memsz = 0x2000;
        for ph in &mut s.phdrs[1..3] {
            ph.p_offset += 0x1000;
            ph.p_vaddr += 0x1000;
        }
        s
    };
    let mut s = big();
    s.phdrs.resize(max as usize, Phdr::default()); // PT_NULL padding
    let p = ok(&s);
    assert_eq!(p.phnum, 73);
    let mut s = big();
    s.phdrs.resize(max as usize + 1, Phdr::default());
    assert_eq!(err(&s), LoadError::BadPhnum { phnum: 74 });
    let mut s = Spec::exec();
    s.phnum = Some(u16::MAX);
    assert_eq!(err(&s), LoadError::BadPhnum { phnum: u16::MAX });
}

#[test]
fn program_headers_outside_file() {
    for phoff in [0x1000u64, 0x1010 - 4 * 56 + 1, u64::MAX - 100, u64::MAX] {
        let mut s = Spec::exec();
        s.phoff = phoff;
        assert!(
            matches!(err(&s), LoadError::Truncated { what, .. } if what.contains("program headers")),
            "phoff {phoff:#x}"
        );
    }
    // A table ending exactly at the end of the file is read; this one straddles the text
    // and data segments' file bytes, so it is not loaded as one piece.
    let mut s = Spec::exec();
    s.phoff = 0x1010 - 4 * 56;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
}

#[test]
fn dynamically_linked() {
    for mut s in [Spec::exec(), Spec::pie()] {
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        s.phdrs.insert(
            0,
            Phdr {
                p_type: PT_INTERP,
                p_flags: PF_R,
                p_offset: 0x800,
                p_vaddr: 0x800,
                p_filesz: interp.len() as u64,
                p_memsz: interp.len() as u64,
                p_align: 1,
            },
        );
        s.patches.push((0x800, interp.to_vec()));
        let e = err(&s);
        assert_eq!(
            e,
            LoadError::DynamicallyLinked {
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into())
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("dynamically linked"), "{msg}");
        assert!(msg.contains("/lib64/ld-linux-x86-64.so.2"), "{msg}");
        assert!(msg.contains("ktls runs static executables only"), "{msg}");
        // A PT_INTERP pointing outside the file still gives the dynamic message.
        s.phdrs[0].p_offset = u64::MAX - 4;
        assert_eq!(err(&s), LoadError::DynamicallyLinked { interpreter: None });
    }
}

#[test]
fn no_load_segment() {
    let mut s = Spec::exec();
    s.phdrs.retain(|p| p.p_type != PT_LOAD);
    assert_eq!(err(&s), LoadError::NoLoadSegment);
    // Empty PT_LOADs map nothing.
    let mut s = Spec::exec();
    s.phdrs.retain(|p| p.p_type == PT_LOAD);
    for ph in &mut s.phdrs {
        ph.p_filesz = 0;
        ph.p_memsz = 0;
    }
    assert_eq!(err(&s), LoadError::NoLoadSegment);
}

#[test]
fn segment_outside_file() {
    let mut s = Spec::exec();
    s.phdrs[1].p_filesz = 0x11;
    assert_eq!(
        err(&s),
        LoadError::SegmentOutsideFile {
            index: 1,
            offset: 0x1000,
            filesz: 0x11,
            file_len: 0x1010
        }
    );
    let mut s = Spec::exec();
    s.phdrs[1].p_offset = 0xffff_ffff_ffff_f000;
    s.phdrs[1].p_filesz = 0x2000;
    assert!(matches!(
        err(&s),
        LoadError::SegmentOutsideFile { index: 1, .. }
    ));
    // An empty file part may sit at the very end of the file.
    let mut s = Spec::exec();
    s.phdrs[1].p_offset = 0x1010;
    s.phdrs[1].p_vaddr = 0x401010;
    s.phdrs[1].p_filesz = 0;
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    let p = ok(&s);
    assert_eq!(p.copies.len(), 1);
}

#[test]
fn filesz_exceeds_memsz() {
    let mut s = Spec::exec();
    s.phdrs[1].p_memsz = 0xf;
    assert_eq!(
        err(&s),
        LoadError::FileszExceedsMemsz {
            index: 1,
            filesz: 0x10,
            memsz: 0xf
        }
    );
}

#[test]
fn misaligned_segment() {
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = 0x401008;
    assert_eq!(
        err(&s),
        LoadError::MisalignedSegment {
            index: 1,
            vaddr: 0x401008,
            offset: 0x1000
        }
    );
    // Same offset within the page is fine even if not at a page start.
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = 0x402000;
    s.phdrs[2].p_vaddr = 0x402000;
    ok(&s);
}

#[test]
fn address_ranges() {
    // Wraps around.
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = 0xffff_ffff_ffff_f000;
    assert_eq!(err(&s), LoadError::AddressOverflow { index: 1 });
    // Page-rounding the end wraps.
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = 0xffff_ffff_ffff_f000;
    s.phdrs[1].p_memsz = 0xfff;
    assert_eq!(err(&s), LoadError::AddressOverflow { index: 1 });
    // Kernel half / past user space.
    for vaddr in [
        0xffff_8000_0000_0000u64,
        USER_SPACE_END,
        USER_SPACE_END - 0x1000,
    ] {
        let mut s = Spec::exec();
        s.phdrs[1].p_vaddr = vaddr;
        s.phdrs.retain(|p| p.p_type != PT_TLS);
        assert!(
            matches!(err(&s), LoadError::SegmentOutsideUserSpace { index: 1, .. }),
            "{vaddr:#x}"
        );
    }
    // Ending exactly at USER_SPACE_END is fine.
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = USER_SPACE_END - 0x2000;
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    assert_eq!(ok(&s).brk_start, USER_SPACE_END);
    // A bss end that is not page aligned is rounded up, and that must still fit.
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = USER_SPACE_END - 0x2000;
    s.phdrs[1].p_memsz = 0x2001;
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    assert!(matches!(err(&s), LoadError::SegmentOutsideUserSpace { .. }));
}

#[test]
fn below_mmap_min_addr() {
    for vaddr in [0u64, 0x1000, MMAP_MIN_ADDR - 0x1000] {
        let mut s = Spec::exec();
        s.phdrs[0].p_vaddr = vaddr;
        s.entry = vaddr + 0x100;
        assert_eq!(
            err(&s),
            LoadError::SegmentBelowMinAddr { index: 0, vaddr },
            "{vaddr:#x}"
        );
    }
    let mut s = Spec::exec();
    s.phdrs[0].p_vaddr = MMAP_MIN_ADDR;
    s.entry = MMAP_MIN_ADDR + 0x100;
    assert_eq!(ok(&s).pages[0].start, MMAP_MIN_ADDR);
}

#[test]
fn overlapping_segments() {
    let mut s = Spec::exec();
    s.phdrs[1].p_vaddr = 0x400000; // on top of the text
    s.phdrs[2].p_vaddr = 0x400000;
    assert_eq!(
        err(&s),
        LoadError::OverlappingSegments {
            first: 0,
            second: 1
        }
    );
    // Listed in descending order: still detected, still reported in file order.
    let mut s = Spec::exec();
    s.phdrs.swap(0, 1);
    s.phdrs[0].p_vaddr = 0x400000 - 0x1000; // data 0x3ff000..0x401000 overlaps text
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    assert_eq!(
        err(&s),
        LoadError::OverlappingSegments {
            first: 0,
            second: 1
        }
    );
}

#[test]
fn shared_page_gets_union_of_protections() {
    // Text 0x400000..0x400800 (R X), data from 0x400800 (RW) in the same page: the page is
    // RWX, the data's other pages RW. Copies must not overlap.
    let mut s = Spec::exec();
    s.phdrs[0].p_filesz = 0x800;
    s.phdrs[0].p_memsz = 0x800;
    s.phdrs[1].p_offset = 0x800;
    s.phdrs[1].p_vaddr = 0x400800;
    s.phdrs[1].p_filesz = 0x810;
    s.phdrs[1].p_memsz = 0x2000;
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    let p = ok(&s);
    assert_eq!(
        p.pages,
        [
            PageRange {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::READ | Prot::WRITE | Prot::EXEC
            },
            PageRange {
                start: 0x401000,
                end: 0x403000,
                prot: Prot::READ | Prot::WRITE
            },
        ]
    );
    assert_eq!(p.brk_start, 0x403000);
    // Three segments sharing one page, and equal protections merging.
    let mut s = Spec::exec();
    s.phdrs.retain(|p| p.p_type == PT_LOAD);
    s.phdrs[0].p_filesz = 0x180; // the program headers end at 64 + 4 * 56 = 0x120
    s.phdrs[0].p_memsz = 0x180;
    s.phdrs[0].p_flags = PF_R;
    s.phdrs[1] = Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | PF_X,
        p_offset: 0x200,
        p_vaddr: 0x400200,
        p_filesz: 0x100,
        p_memsz: 0x100,
        p_align: 0x1000,
    };
    s.phdrs.push(Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | PF_W,
        p_offset: 0x400,
        p_vaddr: 0x400400,
        p_filesz: 0x100,
        p_memsz: 0x1000,
        p_align: 0x1000,
    });
    s.phdrs.push(Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | PF_W,
        p_offset: 0x1000,
        p_vaddr: 0x402000,
        p_filesz: 0x10,
        p_memsz: 0x10,
        p_align: 0x1000,
    });
    s.entry = 0x400200;
    let p = ok(&s);
    assert_eq!(
        p.pages,
        [
            PageRange {
                start: 0x400000,
                end: 0x401000,
                prot: Prot::all()
            },
            PageRange {
                start: 0x401000,
                end: 0x403000,
                prot: Prot::READ | Prot::WRITE
            },
        ]
    );
    assert_eq!(p.copies.len(), 4);
}

#[test]
fn entry_point() {
    for entry in [0x3fffffu64, 0x403000, 0x404000, 0, u64::MAX] {
        let mut s = Spec::exec();
        s.entry = entry;
        assert_eq!(err(&s), LoadError::EntryNotLoaded { entry });
    }
    // Inside the data segment's bss is "inside a PT_LOAD".
    let mut s = Spec::exec();
    s.entry = 0x402fff;
    ok(&s);
    let mut s = Spec::pie();
    s.entry = 0x3000;
    assert_eq!(err(&s), LoadError::EntryNotLoaded { entry: 0x3000 });
}

#[test]
fn program_header_address() {
    // Headers not in any segment's file bytes.
    let mut s = Spec::exec();
    s.phdrs[0].p_offset = 0x1000;
    s.phdrs[0].p_filesz = 0x10;
    s.phdrs[0].p_memsz = 0x1000;
    s.phdrs[1].p_vaddr = 0x402000;
    s.phdrs[2].p_vaddr = 0x402000;
    s.entry = 0x400001;
    s.phdrs[0].p_vaddr = 0x400000;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
    // In memory but only as bss (file part too short): not mapped either.
    let mut s = Spec::exec();
    s.phdrs[0].p_filesz = 0x50;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
    // A correct PT_PHDR is used.
    let mut s = Spec::exec();
    let n = s.phdrs.len() as u64 + 1;
    s.phdrs.insert(
        0,
        Phdr {
            p_type: PT_PHDR,
            p_flags: PF_R,
            p_offset: 64,
            p_vaddr: 0x400040,
            p_filesz: n * 56,
            p_memsz: n * 56,
            p_align: 8,
        },
    );
    assert_eq!(ok(&s).phdr_addr, 0x400040);
    // A PT_PHDR that does not point at the loaded table is refused.
    s.phdrs[0].p_vaddr = 0x400080;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
    s.phdrs[0].p_vaddr = 0x401000;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
    s.phdrs[0].p_vaddr = u64::MAX - 8;
    assert_eq!(err(&s), LoadError::PhdrsNotMapped);
}

#[test]
fn tls_checks() {
    let tls = |s: &Spec| *s.phdrs.iter().find(|p| p.p_type == PT_TLS).unwrap();
    let set = |s: &mut Spec, f: &dyn Fn(&mut Phdr)| {
        f(s.phdrs.iter_mut().find(|p| p.p_type == PT_TLS).unwrap())
    };
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_filesz = 0x21);
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_align = 24);
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    // Initialization image past the data segment's file bytes (0x401000..0x401010).
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_vaddr = 0x40100c);
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_vaddr = 0x500000);
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_vaddr = u64::MAX - 2);
    assert!(matches!(err(&s), LoadError::AddressOverflow { .. }));
    let mut s = Spec::exec();
    set(&mut s, &|p| p.p_memsz = u64::MAX);
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    // Two PT_TLS.
    let mut s = Spec::exec();
    s.phdrs.push(tls(&s));
    assert!(matches!(err(&s), LoadError::BadTls { .. }));
    // Accepted: tbss only (filesz 0) at the end of the file part; align 0 means 1.
    let mut s = Spec::exec();
    set(&mut s, &|p| {
        p.p_vaddr = 0x401010;
        p.p_filesz = 0;
        p.p_align = 0;
    });
    let t = ok(&s).tls.unwrap();
    assert_eq!((t.vaddr, t.filesz, t.align), (0x401010, 0, 1));
    // No PT_TLS: none.
    let mut s = Spec::exec();
    s.phdrs.retain(|p| p.p_type != PT_TLS);
    assert_eq!(ok(&s).tls, None);
}

#[test]
fn gnu_stack() {
    let mut s = Spec::exec();
    s.phdrs.retain(|p| p.p_type != PT_GNU_STACK);
    assert!(!ok(&s).stack_executable, "absent: not executable on x86_64");
    let mut s = Spec::exec();
    s.phdrs[3].p_flags = PF_R | PF_W | PF_X;
    assert!(ok(&s).stack_executable);
}

#[test]
fn error_messages_are_distinct_lines() {
    let errors = [
        LoadError::NotElf,
        LoadError::NoLoadSegment,
        LoadError::PhdrsNotMapped,
        LoadError::EntryNotLoaded { entry: 1 },
        LoadError::DynamicallyLinked { interpreter: None },
        LoadError::BadTls { reason: "x" },
    ];
    let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    for m in &msgs {
        assert!(!m.is_empty() && !m.contains('\n'), "{m:?}");
    }
    let mut dedup = msgs.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), msgs.len());
}

// ---------------------------------------------------------------------------------------------
// Fuzz-style regression net.

/// A small real executable if a compiler is around, else the hand-made one.
/// Built once per test process: the tests run in parallel, and two compilers writing the same
/// output path while another test reads it gave a torn file.
fn sample() -> Vec<u8> {
    static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    SAMPLE
        .get_or_init(|| {
            let src = "__thread int t = 1; int d = 2; char b[5000];\n\
                       int main(void) { return t + d + b[4000]; }\n";
            compile("musl-gcc", &["-static", "-Os"], src, "fuzz-musl")
                .or_else(|| compile("gcc", &["-static", "-Os"], src, "fuzz-gcc"))
                .map(|p| read(&p))
                .unwrap_or_else(|| Spec::exec().bytes())
        })
        .clone()
}

fn try_plan(file: &[u8], pie_base: u64) {
    if let Ok(p) = plan(file, pie_base) {
        check_plan(file, &p, pie_base);
    }
}

#[test]
fn truncation_never_panics() {
    let file = sample();
    let full = plan(&file, PIE_BASE).expect("sample loads");
    check_plan(&file, &full, PIE_BASE);
    // The file is loadable exactly when it still holds the headers and every segment's bytes
    // (section headers and symbols after them do not matter).
    let (ehdr, phdrs) = read_headers(&file).unwrap();
    let needed = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.p_offset + p.p_filesz)
        .chain([ehdr.e_phoff + u64::from(ehdr.e_phnum) * 56])
        .max()
        .unwrap() as usize;
    assert!(needed > 4096 && needed <= file.len());
    let lengths = (0..4096)
        .chain((4096..file.len()).step_by(61))
        .chain(needed - 2..=needed + 1);
    for len in lengths.filter(|&l| l <= file.len()) {
        let truncated = &file[..len];
        match plan(truncated, PIE_BASE) {
            Ok(p) => {
                assert!(len >= needed, "accepted at {len} < {needed}");
                check_plan(truncated, &p, PIE_BASE);
                assert_eq!(p, full);
            }
            Err(e) => assert!(len < needed, "refused at {len} >= {needed}: {e}"),
        }
    }
}

#[test]
fn header_corruption_never_panics() {
    let mut file = sample();
    let (ehdr, _) = read_headers(&file).unwrap();
    let header_end = (ehdr.e_phoff as usize + ehdr.e_phnum as usize * 56).min(file.len());
    let mut rng = Rng(0x6b74_6c73_6c6f_6164);
    let mut accepted = 0;
    let interesting = [
        0u64,
        1,
        0xfff,
        0x1000,
        0x10000,
        u64::MAX,
        u64::MAX - 0xfff,
        1 << 47,
        (1 << 47) - 0x1000,
        0x7fff_ffff_ffff_ffff,
    ];
    for i in 0..20_000 {
        let original = file.clone();
        let edits = 1 + rng.below(4);
        for _ in 0..edits {
            let pos = rng.below(header_end as u64) as usize;
            match rng.below(4) {
                0 => file[pos] ^= 1 << rng.below(8),
                1 => file[pos] = rng.next() as u8,
                // Overwrite an aligned 8-byte field with a boundary value.
                _ => {
                    let at = (pos & !7).min(header_end - 8);
                    let v = interesting[rng.below(interesting.len() as u64) as usize];
                    let v = if rng.below(2) == 0 {
                        v
                    } else {
                        v.wrapping_add(rng.below(0x3000))
                    };
                    file[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        let base = if i % 7 == 0 {
            rng.next() & !0xfff
        } else {
            PIE_BASE
        };
        if plan(&file, base).is_ok() {
            accepted += 1;
        }
        try_plan(&file, base);
        file.copy_from_slice(&original);
    }
    // Some corruptions (unused fields) leave the file loadable: the loop exercised both paths.
    assert!(accepted > 100, "only {accepted} accepted");
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let len = rng.below(600) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly with a plausible ident and phentsize, so parsing gets past the first checks.
        if len >= 64 && rng.below(4) != 0 {
            f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
            f[16] = 2 + rng.below(2) as u8;
            f[17] = 0;
            f[18..20].copy_from_slice(&62u16.to_le_bytes());
            f[32..40].copy_from_slice(&64u64.to_le_bytes());
            f[54..56].copy_from_slice(&56u16.to_le_bytes());
            f[56..58].copy_from_slice(&(rng.below(9) as u16).to_le_bytes());
        }
        try_plan(&f, PIE_BASE);
    }
}
