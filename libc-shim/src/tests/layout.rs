//! The area plan for each kind of kernel, and the TLS block layout.

use ktls_abi::ktls;

use crate::layout::*;

fn ktls_kernel(level: u32) -> KernelInfo {
    KernelInfo {
        ktls_feature_size: ktls::feature_size(level),
        ktls_align: ktls::KTLS_ALIGN,
        rseq_feature_size: ktls_abi::rseq::RSEQ_FEATURE_SIZE,
        rseq_align: ktls_abi::rseq::RSEQ_ALLOC_ALIGN,
    }
}

#[test]
fn plan_on_ktls_levels() {
    // Level 2 kernel: reserve alloc_size(100, built, 64) = 128, the kernel fills 100.
    let p = plan(&ktls_kernel(2));
    assert_eq!(
        p.ktls,
        Some(KtlsPlan {
            len: 128,
            filled: 100
        })
    );
    assert_eq!((p.area_offset, p.area_align, p.reserve), (128, 64, 128));
    // ktls_level=1: the same reservation, 76 filled.
    let p = plan(&ktls_kernel(1));
    assert_eq!(
        p.ktls,
        Some(KtlsPlan {
            len: 128,
            filled: 76
        })
    );
    assert_eq!(p.area_offset, 128);
    // A future level 3 kernel advertising 140 bytes: reserve them all (rounded to 192), so
    // the vDSO and newer programs can use fields this shim does not know.
    let k = KernelInfo {
        ktls_feature_size: 140,
        ..ktls_kernel(2)
    };
    let p = plan(&k);
    assert_eq!(
        p.ktls,
        Some(KtlsPlan {
            len: 192,
            filled: 140
        })
    );
    assert_eq!((p.area_offset, p.reserve), (128, 192));
    // A kernel asking for a larger alignment moves the area past the TCB to it.
    let k = KernelInfo {
        ktls_align: 256,
        ..ktls_kernel(2)
    };
    let p = plan(&k);
    assert_eq!((p.area_offset, p.area_align, p.reserve), (256, 256, 256));
    assert_eq!(
        p.ktls,
        Some(KtlsPlan {
            len: 256,
            filled: 100
        })
    );
    // The rseq fallback of a KTLS kernel: Linux 7.0's rules (33 bytes -> 64, 64-aligned).
    assert_eq!(plan(&ktls_kernel(2)).rseq_len, 64);
}

#[test]
fn plan_on_linux() {
    // Linux 6.3 to 6.19: feature size 28, AT_RSEQ_ALIGN 32: a 32-byte registration.
    let linux_6 = KernelInfo {
        rseq_feature_size: 28,
        rseq_align: 32,
        ..KernelInfo::default()
    };
    let p = plan(&linux_6);
    assert_eq!(p.ktls, None);
    assert_eq!((p.rseq_len, p.area_offset, p.area_align), (32, 128, 64));
    // The same reservation as on ktls, so the layout does not depend on the kernel.
    assert_eq!(p.reserve, 128);
    // Linux 7.0: feature size 33, alignment 64: register 64 bytes.
    let linux_7 = KernelInfo {
        rseq_feature_size: 33,
        rseq_align: 64,
        ..KernelInfo::default()
    };
    assert_eq!(plan(&linux_7).rseq_len, 64);
    // Before 6.3 (no AT_RSEQ_* keys): 32 bytes.
    assert_eq!(plan(&KernelInfo::default()).rseq_len, 32);
    // Half the KTLS keys, or a bogus alignment, is no KTLS.
    for k in [
        KernelInfo {
            ktls_feature_size: 100,
            ..linux_6
        },
        KernelInfo {
            ktls_align: 64,
            ..linux_6
        },
        KernelInfo {
            ktls_feature_size: 100,
            ktls_align: 48,
            ..linux_6
        },
    ] {
        assert_eq!(plan(&k).ktls, None, "{k:?}");
    }
}

#[test]
fn level_built_with() {
    assert_eq!(
        LEVEL_BUILT_WITH,
        if cfg!(feature = "level1") {
            1
        } else {
            ktls::MAX_LEVEL
        }
    );
}

#[test]
fn tls_block() {
    let p = plan(&ktls_kernel(2));
    // No PT_TLS: just the TCB and the area.
    let b = block(None, &p);
    assert_eq!(
        b,
        Block {
            tp_align: 64,
            tls_offset: 0,
            below: 0,
            size: 256
        }
    );
    // 100 bytes aligned 8: the image ends exactly at tp (offset 104 = 100 rounded to 8).
    let img = TlsImage {
        addr: 0x40_1000,
        filesz: 4,
        memsz: 100,
        align: 8,
    };
    let b = block(Some(&img), &p);
    assert_eq!(b.tls_offset, 104);
    assert_eq!(b.below, 128);
    assert_eq!(b.size, 128 + 128 + 128);
    // An image whose address is not aligned keeps tp - offset congruent to it.
    let img = TlsImage {
        addr: 0x40_1004,
        filesz: 0,
        memsz: 100,
        align: 16,
    };
    let b = block(Some(&img), &p);
    assert_eq!((b.tls_offset as isize).wrapping_neg() as usize % 16, 4);
    assert!(b.tls_offset >= 100 && b.tls_offset < 116);
    // Over-aligned TLS raises the thread pointer's alignment.
    let img = TlsImage {
        addr: 0x40_1000,
        filesz: 0,
        memsz: 8,
        align: 4096,
    };
    let b = block(Some(&img), &p);
    assert_eq!((b.tp_align, b.tls_offset, b.below), (4096, 4096, 4096));
    // p_align 0 means 1.
    let img = TlsImage {
        addr: 0x40_1003,
        filesz: 0,
        memsz: 5,
        align: 0,
    };
    assert_eq!(block(Some(&img), &p).tls_offset, 5);
}

#[test]
fn thread_mapping() {
    let p = plan(&ktls_kernel(2));
    let img = TlsImage {
        addr: 0x40_1000,
        filesz: 0,
        memsz: 8,
        align: 4096,
    };
    let b = block(Some(&img), &p);
    let m = thread_map(&b, 100_000, 4096, 56);
    assert_eq!(m.guard, 4096);
    assert_eq!(m.stack_top, 4096 + 102_400);
    assert_eq!(m.len % 4096, 0);
    // Room for the block at its alignment after the stack, and the control block after it.
    let block_at = align_up(m.stack_top, b.tp_align);
    assert!(align_up(block_at + b.size, 64) + 56 <= m.len);
}

#[test]
fn registration_values_match_the_header() {
    assert_eq!(Registration::None as u32, 0);
    assert_eq!(Registration::Rseq as u32, 1);
    assert_eq!(Registration::KtlsRseq as u32, 2);
    assert_eq!(Registration::KtlsClone3 as u32, 3);
    for r in 0..5 {
        assert_eq!(Registration::from_u32(r) as u32, if r < 4 { r } else { 0 });
    }
}
