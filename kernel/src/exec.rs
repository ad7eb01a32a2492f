//! Loading a static ELF executable into a fresh address space and building its stack.

use crate::arch::cpu;
use crate::mm::addrspace::{AddressSpace, VmaKind, PIE_BASE, STACK_SIZE, STACK_TOP};
use crate::process::Creds;
use ktls_abi::auxv::{CLKTCK, HWCAP2_FSGSBASE, MINSIGSTKSZ, PLATFORM};
use ktls_abi::mm::{PROT_EXEC, PROT_READ, PROT_WRITE};
use ktls_abi::{Errno, PAGE_SIZE};
use ktls_loader::{AuxvParams, StackArgs};

/// A loaded program, ready to enter.
pub struct Image {
    pub mm: AddressSpace,
    pub entry: u64,
    pub sp: u64,
}

/// Loads `file` (the executable's bytes) with its arguments. Errors are ENOEXEC for a file
/// that is not a static x86_64 ELF (with the reason logged), E2BIG for oversized arguments,
/// ENOMEM when memory runs out.
pub fn load(
    file: &[u8],
    path: &[u8],
    argv: &[&[u8]],
    envp: &[&[u8]],
    creds: &Creds,
) -> Result<Image, Errno> {
    let plan = ktls_loader::plan(file, PIE_BASE).map_err(|e| {
        // Debug formatting escapes newlines: a path must not forge log lines.
        info!(
            "exec {:?}: {}",
            alloc::string::String::from_utf8_lossy(path),
            e
        );
        e.errno()
    })?;
    let mut mm = AddressSpace::new()?;
    for p in &plan.pages {
        mm.add_vma(p.start, p.end, p.prot.bits(), VmaKind::Program);
    }
    for c in &plan.copies {
        let src = file
            .get(c.file_offset..c.file_offset + c.len)
            .ok_or(Errno::ENOEXEC)?;
        mm.write_bytes(c.dest, src)?;
    }
    mm.set_brk_start(plan.brk_start);
    let stack_prot = PROT_READ | PROT_WRITE | if plan.stack_executable { PROT_EXEC } else { 0 };
    mm.add_vma(
        STACK_TOP - STACK_SIZE,
        STACK_TOP,
        stack_prot,
        VmaKind::Stack,
    );

    let hwcap2 = if cpu::fsgsbase_enabled() {
        HWCAP2_FSGSBASE
    } else {
        0
    };
    let vdso = crate::vdso::map(&mut mm, hwcap2)?;

    let f = cpu::features();
    let auxv = ktls_loader::auxv_entries(&AuxvParams {
        sysinfo_ehdr: Some(vdso),
        minsigstksz: MINSIGSTKSZ,
        hwcap: f.hwcap as u64,
        pagesz: PAGE_SIZE as u64,
        clktck: CLKTCK,
        phdr: plan.phdr_addr,
        phent: plan.phent,
        phnum: plan.phnum,
        base: 0,
        flags: 0,
        entry: plan.entry,
        uid: creds.uid as u64,
        euid: creds.euid as u64,
        gid: creds.gid as u64,
        egid: creds.egid as u64,
        secure: false,
        hwcap2,
        extra: crate::rseq::auxv(),
    });
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let img = ktls_loader::build_stack(
        STACK_TOP,
        &StackArgs {
            argv,
            envp,
            execfn: path,
            platform: PLATFORM.as_bytes(),
            random,
            auxv: &auxv,
        },
    )
    .map_err(|e| e.errno())?;
    mm.write_bytes(img.sp, &img.bytes)?;
    Ok(Image {
        mm,
        entry: plan.entry,
        sp: img.sp,
    })
}
