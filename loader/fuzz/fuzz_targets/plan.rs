//! `plan` on arbitrary bytes: never panics, and an accepted plan keeps its promises (the
//! full invariant check, against an independent ELF reader, is `check_plan` in
//! loader/tests/common; this target checks what needs no second reader).
#![no_main]

use ktls_abi::mm::MMAP_MIN_ADDR;
use ktls_abi::USER_SPACE_END;
use ktls_loader::{plan, LoadError};
use libfuzzer_sys::fuzz_target;

const PIE_BASE: u64 = 0x5555_5555_4000;
const PAGE: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let p = match plan(data, PIE_BASE) {
        Ok(p) => p,
        Err(e) => {
            // One line (the kernel logs it on the log port, where a line may be a control
            // line); the interpreter path case is loader/tests/fuzz_plan.rs's regression test.
            let msg = e.to_string();
            assert!(
                !msg.is_empty()
                    && (!msg.contains('\n') || matches!(e, LoadError::DynamicallyLinked { .. })),
                "{msg:?}"
            );
            return;
        }
    };
    assert!(!p.pages.is_empty());
    for r in &p.pages {
        assert!(
            r.start < r.end && r.start % PAGE == 0 && r.end % PAGE == 0,
            "{r:?}"
        );
        assert!(r.start >= MMAP_MIN_ADDR && r.end <= USER_SPACE_END, "{r:?}");
    }
    for w in p.pages.windows(2) {
        assert!(w[0].end <= w[1].start, "{w:?}");
    }
    let covered = |a: u64, b: u64| {
        let mut at = a;
        for r in &p.pages {
            if r.start <= at && at < r.end {
                at = r.end;
            }
            if at >= b {
                return true;
            }
        }
        a == b
    };
    for c in &p.copies {
        assert!(
            c.file_offset
                .checked_add(c.len)
                .is_some_and(|e| e <= data.len()),
            "{c:?}"
        );
        assert!(covered(c.dest, c.dest + c.len as u64), "{c:?}");
    }
    for w in p.copies.windows(2) {
        assert!(w[0].dest + w[0].len as u64 <= w[1].dest, "{w:?}");
    }
    assert!(covered(p.entry, p.entry + 1));
    assert!(covered(p.phdr_addr, p.phdr_addr + p.phnum * p.phent));
    if let Some(t) = p.tls {
        assert!(t.align.is_power_of_two() && t.filesz <= t.memsz);
        assert!(covered(t.vaddr, t.vaddr + t.filesz));
    }
    assert_eq!(p.brk_start, p.pages.last().unwrap().end);
    assert_eq!(plan(data, PIE_BASE).as_ref(), Ok(&p));
});
