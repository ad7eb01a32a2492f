//! CPU features, control registers, MSRs and the FS/GS base registers.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count, _rdtsc};
use core::sync::atomic::{AtomicBool, Ordering};

pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_FMASK: u32 = 0xc000_0084;
pub const MSR_FS_BASE: u32 = 0xc000_0100;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// What this CPU can do, read once at boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub fsgsbase: bool,
    pub smep: bool,
    pub smap: bool,
    pub rdrand: bool,
    pub rdseed: bool,
    pub xsave: bool,
    /// CPUID.1:EDX, reported to user space as AT_HWCAP (as Linux does on x86).
    pub hwcap: u32,
}

static FSGSBASE_ON: AtomicBool = AtomicBool::new(false);
/// Whether the kernel itself switches FS/GS bases with WRFSBASE/WRGSBASE (false with the
/// `fsgs_switch=wrmsr` option, to compare against the MSR path on the same CPU).
static SWITCH_WITH_INSNS: AtomicBool = AtomicBool::new(true);

pub fn set_switch_with_msrs() {
    SWITCH_WITH_INSNS.store(false, Ordering::Relaxed);
}

fn kernel_uses_fsgsbase() -> bool {
    fsgsbase_enabled() && SWITCH_WITH_INSNS.load(Ordering::Relaxed)
}
static SMAP_ON: AtomicBool = AtomicBool::new(false);

pub fn features() -> Features {
    let (l1, l7) = (__cpuid(1), __cpuid_count(7, 0));
    Features {
        fsgsbase: l7.ebx & 1 != 0,
        smep: l7.ebx & (1 << 7) != 0,
        smap: l7.ebx & (1 << 20) != 0,
        rdseed: l7.ebx & (1 << 18) != 0,
        rdrand: l1.ecx & (1 << 30) != 0,
        xsave: l1.ecx & (1 << 26) != 0,
        hwcap: l1.edx,
    }
}

/// Turns on what the kernel uses: SSE/XSAVE for user space, SMEP, SMAP and FSGSBASE when
/// present (FSGSBASE unless `use_fsgsbase` is false, the `nofsgsbase` boot option).
pub fn enable_features(f: &Features, use_fsgsbase: bool) {
    let mut cr0: u64;
    let mut cr4: u64;
    // SAFETY: reading control registers has no side effects.
    unsafe {
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
        asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
    }
    cr0 &= !(1 << 2); // EM off: the FPU exists
    cr0 |= 1 << 1; // MP
    cr4 |= (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT: user SSE
    if f.xsave {
        cr4 |= 1 << 18;
    }
    if f.smep {
        cr4 |= 1 << 20;
    }
    if f.smap {
        cr4 |= 1 << 21;
    }
    if f.fsgsbase && use_fsgsbase {
        cr4 |= 1 << 16;
    }
    // SAFETY: the bits set only enable features CPUID reports; the kernel never touches user
    // pages outside the copy layer (SMAP/SMEP) and is built without SSE.
    unsafe {
        asm!("mov cr0, {}", in(reg) cr0, options(nostack));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack));
    }
    if f.xsave {
        // Enable every user state component among x87, SSE and AVX that the CPU supports.
        // SAFETY: CPUID leaf 0xD exists when XSAVE does; XCR0 takes only supported bits.
        unsafe {
            let supported = __cpuid_count(0xd, 0).eax as u64;
            let xcr0 = supported & 0x7;
            asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nostack));
        }
    }
    FSGSBASE_ON.store(f.fsgsbase && use_fsgsbase, Ordering::Relaxed);
    SMAP_ON.store(f.smap, Ordering::Relaxed);
}

pub fn fsgsbase_enabled() -> bool {
    FSGSBASE_ON.load(Ordering::Relaxed)
}

pub fn smap_enabled() -> bool {
    SMAP_ON.load(Ordering::Relaxed)
}

pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only architectural MSRs named above are read.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

/// # Safety
/// Writing an MSR can change how the CPU runs the kernel; the caller must know the value is
/// right for `msr`.
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32, options(nostack))
    };
}

/// The user's FS base. The kernel never uses FS, so the live register is the user's value.
pub fn user_fs_base() -> u64 {
    if kernel_uses_fsgsbase() {
        let v: u64;
        // SAFETY: CR4.FSGSBASE is set.
        unsafe { asm!("rdfsbase {}", out(reg) v, options(nomem, nostack)) };
        v
    } else {
        rdmsr(MSR_FS_BASE)
    }
}

/// Sets the user's FS base. `base` must be canonical (callers check against user space).
pub fn set_user_fs_base(base: u64) {
    if kernel_uses_fsgsbase() {
        // SAFETY: CR4.FSGSBASE is set; the kernel never dereferences FS.
        unsafe { asm!("wrfsbase {}", in(reg) base, options(nostack)) };
    } else {
        // SAFETY: FS is the user's; a canonical value cannot fault.
        unsafe { wrmsr(MSR_FS_BASE, base) };
    }
}

/// The user's GS base while in the kernel: after swapgs it sits in KERNEL_GS_BASE.
/// With FSGSBASE: swapgs, read or write the now-active base, swapgs back, with interrupts
/// masked so nothing runs in between (an NMI copes: its entry never trusts GS).
pub fn user_gs_base() -> u64 {
    if kernel_uses_fsgsbase() {
        without_interrupts(|| {
            let v: u64;
            // SAFETY: CR4.FSGSBASE is set; between the two swapgs GS holds the user's base,
            // which this code does not dereference.
            unsafe { asm!("swapgs", "rdgsbase {}", "swapgs", out(reg) v, options(nomem, nostack)) };
            v
        })
    } else {
        rdmsr(MSR_KERNEL_GS_BASE)
    }
}

/// Sets the user's GS base (the inactive GS base while in the kernel).
pub fn set_user_gs_base(base: u64) {
    if kernel_uses_fsgsbase() {
        without_interrupts(|| {
            // SAFETY: as for user_gs_base; a canonical value cannot fault.
            unsafe { asm!("swapgs", "wrgsbase {}", "swapgs", in(reg) base, options(nostack)) };
        })
    } else {
        // SAFETY: KERNEL_GS_BASE only takes effect at the next swapgs (return to user); a
        // canonical value cannot fault.
        unsafe { wrmsr(MSR_KERNEL_GS_BASE, base) };
    }
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { _rdtsc() }
}

/// A 64-bit hardware random number (RDSEED, else RDRAND), if the CPU has either and it
/// delivers within a few tries.
pub fn hw_random(f: &Features) -> Option<u64> {
    for _ in 0..16 {
        let (v, ok): (u64, u8);
        if f.rdseed {
            // SAFETY: the CPU reports RDSEED.
            unsafe {
                asm!("rdseed {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
            };
        } else if f.rdrand {
            // SAFETY: the CPU reports RDRAND.
            unsafe {
                asm!("rdrand {}", "setc {}", out(reg) v, out(reg_byte) ok, options(nomem, nostack))
            };
        } else {
            return None;
        }
        if ok != 0 {
            return Some(v);
        }
    }
    None
}

pub fn halt() {
    // SAFETY: HLT only waits for the next interrupt.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// Enables interrupts and halts atomically (STI's one-instruction shadow covers HLT), so an
/// interrupt that arrives in between still wakes us.
pub fn enable_and_halt() {
    // SAFETY: as for halt; the kernel's interrupt handlers are installed before this is used.
    unsafe { asm!("sti; hlt", options(nomem, nostack)) };
}

pub fn enable_interrupts() {
    // SAFETY: interrupt handlers are installed at boot before anything calls this.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS has no side effects.
    unsafe { asm!("pushfq; pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Runs `f` with interrupts masked, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    disable_interrupts();
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// # Safety
/// `pml4_phys` must be a page table that maps the kernel exactly as the current one does.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack)) };
}

pub fn flush_tlb_page(addr: u64) {
    // SAFETY: INVLPG only drops a TLB entry.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack)) };
}

/// Ends the QEMU run through isa-debug-exit (port 0xf4); QEMU exits with (code << 1) | 1.
pub fn qemu_exit(code: u32) -> ! {
    super::port::outl(0xf4, code);
    // Not under QEMU with isa-debug-exit: stop here.
    loop {
        disable_interrupts();
        halt();
    }
}
