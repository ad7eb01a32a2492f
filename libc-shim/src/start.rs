//! Process startup: `_start` (crt/crt0.S) calls [`__ktls_start`] with the initial stack
//! pointer; it reads argc, argv, envp and the auxiliary vector, parses the vDSO, builds the
//! main thread's block (TLS image, TCB with the stack guard from AT_RANDOM, KTLS area), points
//! FS at it, registers the area (KTLS, else plain rseq), runs the constructors, then `main`,
//! and exits with its status.

use core::ffi::c_char;
use core::sync::atomic::{AtomicBool, Ordering};

use ktls_abi::auxv::*;
use ktls_abi::Errno;

use crate::elf::{self, PT_PHDR, PT_TLS};
use crate::layout::{tcb, KernelInfo, Registration, TlsImage};
use crate::{auxv, rt, sys, tls, tp, vdso};

#[cfg(feature = "start")]
core::arch::global_asm!(include_str!("../crt/crt0.S"), options(att_syntax));

extern "C" {
    fn main(argc: i32, argv: *mut *mut c_char, envp: *mut *mut c_char) -> i32;
    // Provided by the linker's default script for every executable.
    static __preinit_array_start: [InitFn; 0];
    static __preinit_array_end: [InitFn; 0];
    static __init_array_start: [InitFn; 0];
    static __init_array_end: [InitFn; 0];
    static __fini_array_start: [FiniFn; 0];
    static __fini_array_end: [FiniFn; 0];
}

type InitFn = extern "C" fn(i32, *mut *mut c_char, *mut *mut c_char);
type FiniFn = extern "C" fn();

/// The program's PT_TLS segment, from the program headers the kernel points at.
fn tls_image(phdr: u64, phnum: u64, phent: u64) -> Option<TlsImage> {
    if phdr == 0 || phent == 0 {
        return None;
    }
    // SAFETY: AT_PHDR/AT_PHNUM/AT_PHENT describe the program's loaded program header table.
    let table = unsafe { core::slice::from_raw_parts(phdr as *const u8, (phnum * phent) as usize) };
    let all = (0..phnum as usize).filter_map(|i| elf::phdr(table, phent as usize, i));
    // The load bias: 0 for ET_EXEC; AT_PHDR minus PT_PHDR's address for a PIE.
    let bias = all
        .clone()
        .find(|p| p.p_type == PT_PHDR)
        .map_or(0, |p| phdr.wrapping_sub(p.vaddr));
    let t = all.into_iter().find(|p| p.p_type == PT_TLS)?;
    Some(TlsImage {
        addr: t.vaddr.wrapping_add(bias) as usize,
        filesz: t.filesz as usize,
        memsz: t.memsz as usize,
        align: t.align as usize,
    })
}

fn fatal(what: &[u8], e: Errno) -> ! {
    let _ = sys::write_all(2, b"ktls-shim: startup failed: ");
    let _ = sys::write_all(2, what);
    let _ = sys::write_all(2, b": ");
    let _ = sys::write_all(2, e.name().unwrap_or("?").as_bytes());
    let _ = sys::write_all(2, b"\n");
    sys::exit_group(127)
}

/// The C runtime's entry, called by `_start` with the kernel's initial stack pointer.
///
/// # Safety
/// `sp` is the initial stack pointer of a new process (argc, argv, NULL, envp, NULL, auxv),
/// and this runs once, before anything else of the program.
#[no_mangle]
pub unsafe extern "C" fn __ktls_start(sp: *const usize) -> ! {
    // SAFETY: the System V initial stack layout, per the caller.
    let (argc, argv, envp, av) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *mut *mut c_char;
        let envp = argv.add(argc + 1);
        let mut p = envp;
        while !(*p).is_null() {
            p = p.add(1);
        }
        (argc as i32, argv, envp, p.add(1) as *const [u64; 2])
    };
    // SAFETY: the kernel's auxiliary vector stays above the stack for the process's life.
    unsafe { auxv::set(av) };
    let page = match auxv::get(AT_PAGESZ) {
        Some(p) if (p as usize).is_power_of_two() => p as usize,
        _ => ktls_abi::PAGE_SIZE,
    };
    // SAFETY: AT_SYSINFO_EHDR is the kernel's vDSO (or absent: 0).
    unsafe { vdso::init(auxv::get(AT_SYSINFO_EHDR).unwrap_or(0) as usize, page) };
    let kernel = KernelInfo {
        ktls_feature_size: auxv::get_u32(AT_KTLS_FEATURE_SIZE),
        ktls_align: auxv::get_u32(AT_KTLS_ALIGN),
        rseq_feature_size: auxv::get_u32(AT_RSEQ_FEATURE_SIZE),
        rseq_align: auxv::get_u32(AT_RSEQ_ALIGN),
    };
    let image = tls_image(
        auxv::get(AT_PHDR).unwrap_or(0),
        auxv::get(AT_PHNUM).unwrap_or(0),
        auxv::get(AT_PHENT).unwrap_or(0),
    );
    let random = match auxv::get(AT_RANDOM) {
        // SAFETY: AT_RANDOM points at 16 random bytes the kernel put on the stack.
        Some(p) if p != 0 => unsafe { (p as *const [u8; 16]).read_unaligned() },
        _ => [0x5a; 16],
    };
    let mut runtime = rt::runtime(kernel, image, page, random);
    // SAFETY: envp is the NULL-terminated array of C strings above argv.
    if unsafe { env_is(envp, b"KTLS_SHIM_NO_CLONE_RSEQ_KTLS=1") } {
        crate::thread::disable_clone_rseq_ktls();
    }

    // The main thread's block, in a mapping of its own (aligned within it).
    let len = runtime.block.size + runtime.block.tp_align;
    let map = sys::mmap_anon(len).unwrap_or_else(|e| fatal(b"mmap of the TLS block", e));
    let block = crate::layout::align_up(map as usize, runtime.block.tp_align);
    // SAFETY: a fresh zeroed mapping with room for the aligned block; the image is the
    // program's PT_TLS; the block is never unmapped, so FS stays valid.
    unsafe {
        let tp = tls::init_block(&runtime, block, 0);
        sys::set_fs_base(tp).unwrap_or_else(|e| fatal(b"arch_prctl(ARCH_SET_FS)", e));
    }
    let want = if runtime.plan.ktls.is_some() {
        Registration::KtlsRseq
    } else {
        Registration::Rseq
    };
    // SAFETY: FS points at the block built from `runtime`; its zeroed area lives forever.
    let got = unsafe { rt::register_self(&runtime, want) };
    // SAFETY: the TCB slot is the main thread's own.
    unsafe { tp::store_u32(tcb::REGISTRATION as isize, got as u32) };
    runtime.mode = got;
    rt::publish(&runtime, got);
    rt::set(runtime);

    // SAFETY: the linker's array bounds; each entry is a constructor of the program.
    unsafe {
        run_init(
            core::ptr::addr_of!(__preinit_array_start).cast(),
            core::ptr::addr_of!(__preinit_array_end).cast(),
            argc,
            argv,
            envp,
        );
        run_init(
            core::ptr::addr_of!(__init_array_start).cast(),
            core::ptr::addr_of!(__init_array_end).cast(),
            argc,
            argv,
            envp,
        );
    }
    // SAFETY: the program's main, with the process's arguments.
    let status = unsafe { main(argc, argv, envp) };
    exit(status)
}

/// Whether the environment has exactly the entry `entry` (`NAME=value`).
///
/// # Safety
/// `envp` is a NULL-terminated array of C strings.
unsafe fn env_is(envp: *mut *mut c_char, entry: &[u8]) -> bool {
    let mut p = envp;
    // SAFETY: per the caller.
    unsafe {
        while !(*p).is_null() {
            if crate::printf::cstr((*p).cast()) == entry {
                return true;
            }
            p = p.add(1);
        }
    }
    false
}

/// # Safety
/// `[start, end)` is an array of constructors.
unsafe fn run_init(
    start: *const InitFn,
    end: *const InitFn,
    argc: i32,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) {
    let mut p = start;
    while p < end {
        // SAFETY: per the caller.
        unsafe {
            (*p)(argc, argv, envp);
            p = p.add(1);
        }
    }
}

/// Runs the destructors (`.fini_array`, last first) once, then ends the process (a destructor
/// that calls exit ends it there).
pub fn exit(status: i32) -> ! {
    static EXITING: AtomicBool = AtomicBool::new(false);
    if EXITING.swap(true, Ordering::Relaxed) {
        sys::exit_group(status);
    }
    // SAFETY: the linker's array bounds; each entry is a destructor of the program.
    unsafe {
        let start: *const FiniFn = core::ptr::addr_of!(__fini_array_start).cast();
        let mut p: *const FiniFn = core::ptr::addr_of!(__fini_array_end).cast();
        while p > start {
            p = p.sub(1);
            (*p)();
        }
    }
    sys::exit_group(status)
}
