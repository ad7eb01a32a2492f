//! The ktls vDSO: a small prelinked shared object the kernel maps into every process (announced
//! in `AT_SYSINFO_EHDR`), with the process's vvar page right below it (spec/ktls.md, section
//! 10; layout `ktls_abi::vvar::Vvar`).
//!
//! It exports Linux's x86_64 vDSO functions (version `LINUX_2.6`: `clock_gettime`,
//! `gettimeofday`, `time`, `clock_getres`, `getcpu`, each also as `__vdso_*`), which glibc and
//! musl find and use by themselves, and the KTLS getters (version `KTLS_1`): `__vdso_gettid`,
//! `__vdso_getpid`, `__vdso_getuid`, `__vdso_geteuid`, `__vdso_getgid`, `__vdso_getegid`, which
//! find the calling thread's KTLS area from the thread pointer, and the same six as
//! `__vdso_ktls_*(const void *area)` for a caller that already knows its area (a libc passes
//! `tp + __ktls_offset` and saves the thread-pointer read).
//!
//! Every function gives the system call's result: when the vvar page or the KTLS area cannot
//! answer (no TSC clock, a clock the vDSO does not serve, a process without KTLS, a thread
//! without a live area, a field the kernel does not fill), it makes the system call itself.
//! When reading the area faults (FS base 0, an area nowhere), the kernel resumes the getter's
//! load at the system call: the image's exception table (section `.ktls_extable`, ktls.rs).
//!
//! How it is built (build.rs, vdso.lds, and the codegen flags in vdso/image/src/build.rs,
//! which builds it for the kernel and the tests): a `no_std` binary for `x86_64-unknown-none`,
//! position-independent, linked by rust-lld with `-shared` into one R+X PT_LOAD. There are no relocations and no writable data: the only address the code needs, the
//! vvar page, is a fixed distance from the image's own ELF header (`__ehdr_start`), which a
//! PC-relative `lea` reaches. So the kernel maps the file as it is, at any page-aligned
//! address, and never patches it.
#![no_std]
#![no_main]

mod clock;
mod ktls;
mod sys;
mod vvar;

/// The vDSO never panics: its code has no bounds checks, unwraps or arithmetic that can
/// overflow-panic in a release build, and the image checker rejects the relocations that
/// `core`'s panic machinery would bring. This handler only satisfies `no_std`.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: ud2 raises #UD (SIGILL), which ends the program; nothing else happens.
    unsafe { core::arch::asm!("ud2", options(noreturn, nomem, nostack)) }
}

// The ELF note Linux's vDSO carries: name "Linux", type 0, the kernel version as
// LINUX_VERSION_CODE. ktls reports release 6.12.0 in uname (kernel/src/syscall/process.rs), so
// the note says KERNEL_VERSION(6, 12, 0). Old glibc versions read it to decide whether to trust
// the vDSO.
core::arch::global_asm!(
    r#"
    .pushsection .note.Linux, "a", @note
    .balign 4
    .long 6         // namesz: "Linux\0"
    .long 4         // descsz
    .long 0         // type
    .asciz "Linux"
    .balign 4
    .long {version}
    .balign 4
    .popsection
    "#,
    version = const (6 << 16) | (12 << 8),
);
