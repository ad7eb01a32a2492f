//! The KTLS getters (symbol version `KTLS_1`) and `getcpu`, in assembly.
//!
//! `__vdso_X()` reads the field of the calling thread's KTLS area, `__vdso_ktls_X(area)` that
//! of the area the caller names; both make the system call when the field is not there to read
//! (spec/ktls.md, section 10). The ids are u32 in the area and `pid_t`/`uid_t`/`gid_t` in C.
//!
//! Why assembly: the fast path is the point of KTLS, and its budget is 12 instructions with the
//! caller's `call` (issue 6). Written out, a getter is 7: compare the filled size in the vvar
//! page, branch, the offset from the vvar page, `ktls_live` and the field loaded relative
//! to FS (`mov %fs:(offset + 64)`: no thread-pointer read, no address checks), `ret`. Rust
//! cannot express "this load may fault, then continue there" (asm goto with outputs is not
//! stable), and the compiler would add a frame.
//!
//! The loads through FS (or through the area a caller names) can fault: FS base 0, a thread
//! without TLS, an area pointer into the kernel half or nowhere. Each such load has an entry in
//! the vDSO's exception table (section `.ktls_extable`: pairs of 32-bit offsets, each relative
//! to its own field, of the load and of the code to resume at), and the kernel resumes a
//! faulting load at its fixup, the system call, without a signal (kernel/src/vdso.rs; Linux
//! does the same for its vDSO's SGX entry). So the getters never fault, whatever FS holds.

use core::mem::offset_of;
use ktls_abi::ktls::{KtlsArea, KTLS_BASE};
use ktls_abi::rseq::RSEQ_CPU_ID_UNINITIALIZED;
use ktls_abi::syscall::*;
use ktls_abi::vvar::{Vvar, VVAR_OFFSET_FROM_VDSO};

/// The vvar fields the getters read, as offsets from `__ehdr_start` (the vvar page is right
/// below the image).
const VV_FILLED: i64 = VVAR_OFFSET_FROM_VDSO + offset_of!(Vvar, ktls_feature_size) as i64;
const VV_OFFSET: i64 = VVAR_OFFSET_FROM_VDSO + offset_of!(Vvar, ktls_offset) as i64;

/// Emits one exception-table entry: the instruction at local label `$load` resumes at `$fixup`.
macro_rules! extable_entry {
    ($load:literal, $fixup:literal) => {
        concat!(
            ".pushsection .ktls_extable, \"a\"\n",
            ".balign 4\n",
            ".long ",
            $load,
            " - .\n",
            ".long ",
            $fixup,
            " - .\n",
            ".popsection\n"
        )
    };
}

/// Starts and ends a global function `$name` in its own text section, with unwind info.
macro_rules! function {
    ($name:literal, $($body:expr),* $(,)?) => {
        concat!(
            ".pushsection .text.", $name, ", \"ax\", @progbits\n",
            ".globl ", $name, "\n",
            ".type ", $name, ", @function\n",
            ".balign 16\n",
            $name, ":\n",
            ".cfi_startproc\n",
            $($body, "\n",)*
            ".cfi_endproc\n",
            ".size ", $name, ", . - ", $name, "\n",
            ".popsection\n"
        )
    };
}

macro_rules! getters {
    ($($own:literal, $explicit:literal, $field:ident, $nr:expr;)*) => {$(
        core::arch::global_asm!(
            // The calling thread's area, at %fs:offset.
            function!(
                $own,
                "cmp dword ptr [rip + __ehdr_start + {filled}], {end}",
                "jb 9f",
                "mov rax, qword ptr [rip + __ehdr_start + {offset}]",
                "1: cmp dword ptr fs:[rax + {live}], 0",
                "je 9f",
                "2: mov eax, dword ptr fs:[rax + {field}]",
                "ret",
                "9: mov eax, {nr}",
                "syscall",
                "ret",
            ),
            extable_entry!("1b", "9b"),
            extable_entry!("2b", "9b"),
            // The area the caller names (rdi).
            function!(
                $explicit,
                "cmp dword ptr [rip + __ehdr_start + {filled}], {end}",
                "jb 9f",
                "1: cmp dword ptr [rdi + {live}], 0",
                "je 9f",
                "2: mov eax, dword ptr [rdi + {field}]",
                "ret",
                "9: mov eax, {nr}",
                "syscall",
                "ret",
            ),
            extable_entry!("1b", "9b"),
            extable_entry!("2b", "9b"),
            filled = const VV_FILLED,
            offset = const VV_OFFSET,
            live = const KTLS_BASE,
            field = const offset_of!(KtlsArea, $field),
            end = const offset_of!(KtlsArea, $field) + 4,
            nr = const $nr,
        );
    )*};
}

getters! {
    "__vdso_gettid", "__vdso_ktls_gettid", tid, SYS_GETTID;
    "__vdso_getpid", "__vdso_ktls_getpid", pid, SYS_GETPID;
    "__vdso_getuid", "__vdso_ktls_getuid", uid, SYS_GETUID;
    "__vdso_geteuid", "__vdso_ktls_geteuid", euid, SYS_GETEUID;
    "__vdso_getgid", "__vdso_ktls_getgid", gid, SYS_GETGID;
    "__vdso_getegid", "__vdso_ktls_getegid", egid, SYS_GETEGID;
}

// getcpu(unsigned *cpu, unsigned *node, void *tcache): the CPU and NUMA node from the calling
// thread's live KTLS area (its rseq `cpu_id` and `node_id`, current whenever the thread runs
// in user space), else the system call. RDPID/RDTSCP are not used: they need the kernel to
// program TSC_AUX. The stores through `cpu` and `node` are the caller's (a bad pointer faults
// as it would in Linux's vDSO): they are not in the exception table.
core::arch::global_asm!(
    function!(
        "__vdso_getcpu",
        "cmp dword ptr [rip + __ehdr_start + {filled}], {node_end}",
        "jb 9f",
        "mov rax, qword ptr [rip + __ehdr_start + {offset}]",
        "1: cmp dword ptr fs:[rax + {live}], 0",
        "je 9f",
        "2: mov ecx, dword ptr fs:[rax + {cpu_id}]",
        "3: mov eax, dword ptr fs:[rax + {node_id}]",
        "cmp ecx, {uninit}",
        "je 9f",
        "test rdi, rdi",
        "jz 4f",
        "mov dword ptr [rdi], ecx",
        "4: test rsi, rsi",
        "jz 5f",
        "mov dword ptr [rsi], eax",
        "5: xor eax, eax",
        "ret",
        "9: mov eax, {nr}",
        "syscall",
        "ret",
    ),
    extable_entry!("1b", "9b"),
    extable_entry!("2b", "9b"),
    extable_entry!("3b", "9b"),
    filled = const VV_FILLED,
    offset = const VV_OFFSET,
    live = const KTLS_BASE,
    cpu_id = const offset_of!(KtlsArea, rseq.cpu_id),
    node_id = const offset_of!(KtlsArea, rseq.node_id),
    node_end = const offset_of!(KtlsArea, rseq.node_id) + 4,
    uninit = const RSEQ_CPU_ID_UNINITIALIZED as i32,
    nr = const SYS_GETCPU,
);
