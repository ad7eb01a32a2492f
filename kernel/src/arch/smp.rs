//! Bringing up the other CPUs (application processors, APs).
//!
//! `init` (boot CPU, early) reads the CPU list from the ACPI MADT and numbers the CPUs: the
//! boot CPU is 0, the others follow in MADT order; that index is what getcpu reports, what
//! the scheduler uses, and what `apic::send_ipi` translates back to an APIC ID.
//!
//! `start_aps` (boot CPU, once it is the idle thread and before the first process starts)
//! copies the real-mode trampoline below to a free page under 1 MiB, sends every AP
//! INIT, waits 10 ms, then two STARTUP IPIs 200 µs apart (Intel's sequence, all APs at
//! once), and waits until each AP reports online. Each AP goes from real mode to protected
//! mode to long mode on the kernel's master page table, takes a ticket that picks its
//! stack, and calls `ap_main`, which sets up the CPU like the boot CPU and makes it idle.
//!
//! The master table has no identity map after `mm::init`, but an AP turns paging on while
//! running at the trampoline's physical address, so the low identity map is put back for
//! the duration (no user address space exists yet; user tables never copy the lower half
//! of the master table) and removed once every AP runs on its own address space.

use super::boot::{HvmMemmapEntry, HvmStartInfo, E820_RAM};
use super::{acpi, apic, cpu, gdt};
use crate::mm;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed, Ordering::SeqCst};

pub const MAX_CPUS: usize = crate::sched::MAX_CPUS;
/// Each AP's boot stack, which stays its idle thread's stack (as the boot CPU's does).
const AP_STACK_SIZE: usize = 64 * 1024;
/// How long the boot CPU waits for the APs before going on without the missing ones.
const START_TIMEOUT_MS: u64 = 5000;
const PAGE: u64 = 4096;

global_asm!(
    r#"
    .pushsection .text.ap_trampoline, "ax"
    .balign 16
    .global ktls_ap_trampoline
ktls_ap_trampoline:
    .set TB, {base}
    .set OFF, ktls_ap_trampoline
    .code16
    // Real mode at TB (CS = TB >> 4, IP = 0). CR0 is loaded whole to clear CD/NW, which
    // INIT leaves set (caches off).
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_gdtr - OFF
    mov $0x11, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(TB + ap_protected - OFF)

    // Flat 32-bit protected mode: PAE, the master PML4, EFER.LME|NXE, then paging (with
    // WP) turns on long mode; this page is identity-mapped for that moment.
    .code32
ap_protected:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov (TB + ap_cr3 - OFF), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov $0x80010011, %eax
    mov %eax, %cr0
    ljmp $0x18, $(TB + ap_long - OFF)

    // Long mode, still at the low address: take a ticket (atomically, the APs run this
    // at the same time), switch to that ticket's stack and jump to the kernel proper.
    .code64
ap_long:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $1, %eax
    lock xadd %eax, (TB + ap_ticket - OFF)
    cmp (TB + ap_count - OFF), %eax
    jae 2f
    mov (TB + ap_stacks - OFF), %rdx
    mov (%rdx,%rax,8), %rsp
    xor %ebp, %ebp
    movabs ${entry}, %rax
    call *%rax
2:  cli
    hlt
    jmp 2b

    // Null, 32-bit code (0x08), data (0x10), 64-bit code (0x18); ap_main loads the real
    // per-CPU GDT.
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_gdtr:
    .word ap_gdtr - ap_gdt - 1
    .long TB + ap_gdt - OFF
    // ApParams, filled in by install_trampoline.
    .balign 8
    .global ktls_ap_params
ktls_ap_params:
ap_stacks:
    .quad 0
ap_cr3:
    .long 0
ap_ticket:
    .long 0
ap_count:
    .long 0
    .long 0
    .global ktls_ap_trampoline_end
ktls_ap_trampoline_end:
    .popsection
    "#,
    base = const TRAMPOLINE_BASE,
    entry = sym ap_main,
    options(att_syntax)
);

/// Where the trampoline runs. A STARTUP IPI names a 4 KiB page below 1 MiB; this one is
/// checked at boot against what the boot loader placed in low memory (`init`).
const TRAMPOLINE_BASE: u64 = 0x8000;

/// The parameter block at the end of the trampoline (layout as in the asm above).
#[repr(C)]
struct ApParams {
    /// Kernel-virtual address of an array of stack tops, indexed by ticket.
    stacks: u64,
    /// The master PML4 (below 4 GiB: it is in the kernel image).
    cr3: u32,
    /// Next ticket; each AP takes one.
    ticket: u32,
    /// Number of stacks; an AP with a ticket beyond them halts.
    count: u32,
    _pad: u32,
}

extern "C" {
    static ktls_ap_trampoline: u8;
    static ktls_ap_params: u8;
    static ktls_ap_trampoline_end: u8;
}

/// What the APs need from the boot CPU.
struct Config {
    features: cpu::Features,
    fsgsbase: bool,
    /// CPUs to run: the boot CPU plus the APs (indices 0..ncpus).
    ncpus: usize,
}

static CONFIG: spin::Once<Config> = spin::Once::new();
/// APs that have finished their setup and joined the scheduler.
static ONLINE: AtomicU32 = AtomicU32::new(0);
/// Set when the boot CPU stopped waiting: a latecomer then halts instead of joining.
static GAVE_UP: AtomicBool = AtomicBool::new(false);
/// Whether the trampoline page was found free (`init`).
static TRAMPOLINE_OK: AtomicBool = AtomicBool::new(false);

/// Finds the CPUs and numbers them, and checks the trampoline page against what the boot
/// loader placed in low memory (boot CPU, after `apic::init`, while the start info is at
/// hand).
pub fn init(info: &HvmStartInfo, start_info_phys: u64, features: &cpu::Features, fsgsbase: bool) {
    let bsp = apic::id();
    let mut ids: Vec<u32> = alloc::vec![bsp];
    match acpi::cpus(info.rsdp_paddr) {
        Some(list) => {
            if !list.as_slice().contains(&bsp) {
                warn!("smp: the MADT does not list the boot CPU (APIC ID {bsp})");
            }
            ids.extend(list.as_slice().iter().filter(|&&id| id != bsp));
            ids.truncate(MAX_CPUS);
            if list.dropped > 0 {
                warn!(
                    "smp: {} CPUs beyond the first {MAX_CPUS} left off",
                    list.dropped
                );
            }
        }
        None => info!("smp: no valid ACPI MADT; running on the boot CPU only"),
    }
    for (i, &id) in ids.iter().enumerate() {
        apic::set_apic_id(i, id);
    }
    if ids.len() > 1 {
        debug!("smp: {} CPUs, APIC IDs {:?}", ids.len(), ids);
    }
    CONFIG.call_once(|| Config {
        features: *features,
        fsgsbase,
        ncpus: ids.len(),
    });
    if ids.len() > 1 {
        let ok = trampoline_page_free(info, start_info_phys);
        if !ok {
            warn!("smp: page {TRAMPOLINE_BASE:#x} is not free for the AP trampoline");
        }
        TRAMPOLINE_OK.store(ok, Relaxed);
    }
}

/// Number of CPUs found (online or not).
fn ncpus() -> usize {
    CONFIG.get().map_or(1, |c| c.ncpus)
}

/// Checks that the trampoline page is RAM and holds nothing the boot loader left there.
fn trampoline_page_free(info: &HvmStartInfo, start_info_phys: u64) -> bool {
    let page = (TRAMPOLINE_BASE, TRAMPOLINE_BASE + PAGE);
    let overlaps = |start: u64, len: u64| start < page.1 && start + len > page.0;
    let entry = core::mem::size_of::<HvmMemmapEntry>() as u64;
    let memmap = read_memmap(info);
    let in_ram = memmap
        .iter()
        .any(|e| e.kind == E820_RAM && e.addr <= page.0 && e.addr + e.size >= page.1);
    let busy = overlaps(start_info_phys, core::mem::size_of::<HvmStartInfo>() as u64)
        || overlaps(info.memmap_paddr, info.memmap_entries as u64 * entry)
        || overlaps(info.modlist_paddr, info.nr_modules as u64 * 32)
        || overlaps(info.cmdline_paddr, 4096)
        || overlaps(info.rsdp_paddr, 36);
    in_ram && !busy
}

fn read_memmap(info: &HvmStartInfo) -> Vec<HvmMemmapEntry> {
    let n = (info.memmap_entries as usize).min(128);
    let size = core::mem::size_of::<HvmMemmapEntry>();
    let bytes = if info.memmap_paddr == 0 {
        &[][..]
    } else {
        mm::phys_slice(info.memmap_paddr, n * size)
    };
    bytes
        .chunks_exact(size)
        .map(|c| {
            // SAFETY: `c` holds `size` bytes and HvmMemmapEntry is plain repr(C) data valid
            // for any bit pattern; read_unaligned has no alignment requirement.
            unsafe { (c.as_ptr() as *const HvmMemmapEntry).read_unaligned() }
        })
        .collect()
}

/// Copies the trampoline to its page and fills in its parameters.
fn install_trampoline(stacks: &[u64]) {
    let start = core::ptr::addr_of!(ktls_ap_trampoline) as usize;
    let params = core::ptr::addr_of!(ktls_ap_params) as usize;
    let end = core::ptr::addr_of!(ktls_ap_trampoline_end) as usize;
    assert!(end - start <= PAGE as usize && params + core::mem::size_of::<ApParams>() == end);
    let dst = mm::phys_to_virt(TRAMPOLINE_BASE) as *mut u8;
    let p = ApParams {
        stacks: stacks.as_ptr() as u64,
        cr3: super::boot::boot_pml4_phys() as u32,
        ticket: 0,
        count: stacks.len() as u32,
        _pad: 0,
    };
    // SAFETY: the trampoline page is reserved low memory that nothing else uses (checked in
    // `init`), mapped by the direct map; the source is the trampoline's bytes in
    // the kernel image, and the parameter block is its last `size_of::<ApParams>()` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, dst, end - start);
        (dst.add(params - start) as *mut ApParams).write_unaligned(p);
    }
}

/// Starts every AP and waits until they are all online (boot CPU, once it is idle).
pub fn start_aps() {
    let n = ncpus();
    if n <= 1 {
        return;
    }
    if !TRAMPOLINE_OK.load(Relaxed) {
        warn!("smp: no page for the AP trampoline; running on the boot CPU only");
        return;
    }
    let t0 = cpu::rdtsc();
    let stacks: Vec<u64> = (1..n).map(|_| alloc_stack()).collect();
    install_trampoline(&stacks);
    mm::addrspace::set_low_identity_map(true);
    let vector = (TRAMPOLINE_BASE >> 12) as u8;
    for c in 1..n {
        apic::send_startup_ipi(apic::apic_id_of(c as u32), apic::ICR_INIT, 0);
    }
    apic::delay_us(10_000);
    for _ in 0..2 {
        for c in 1..n {
            apic::send_startup_ipi(apic::apic_id_of(c as u32), apic::ICR_STARTUP, vector);
        }
        apic::delay_us(200);
    }
    let deadline = t0 + apic::tsc_hz() / 1000 * START_TIMEOUT_MS;
    while (ONLINE.load(SeqCst) as usize) < n - 1 && cpu::rdtsc() < deadline {
        core::hint::spin_loop();
    }
    GAVE_UP.store(true, SeqCst);
    let online = ONLINE.load(SeqCst) as usize + 1;
    if online == n {
        // Every AP runs on its idle thread's address space now, none on the master table.
        mm::addrspace::set_low_identity_map(false);
    } else {
        // A late AP may still be in the trampoline: leave it the identity map (no user
        // address space ever sees the master table's lower half).
        error!("smp: only {online} of {n} CPUs came online within {START_TIMEOUT_MS} ms");
    }
    // Keep the stacks: they are the APs' idle stacks from now on.
    core::mem::forget(stacks);
    let ms = (cpu::rdtsc() - t0) * 1000 / apic::tsc_hz().max(1);
    info!("smp: {online} CPUs online ({ms} ms)");
}

fn alloc_stack() -> u64 {
    let layout = core::alloc::Layout::from_size_align(AP_STACK_SIZE, 16).expect("stack layout");
    // SAFETY: the layout has a non-zero size; the stack is never freed (the AP uses it
    // forever).
    let p = unsafe { alloc::alloc::alloc(layout) };
    assert!(!p.is_null(), "out of memory for AP stacks");
    p as u64 + AP_STACK_SIZE as u64
}

/// First Rust code on an AP, on its own stack, with the master page table, interrupts off
/// and GS not yet set up.
extern "C" fn ap_main() -> ! {
    let apic_id = apic::id();
    let index = (1..ncpus()).find(|&i| apic::apic_id_of(i as u32) == apic_id);
    let Some(index) = index.filter(|_| !GAVE_UP.load(SeqCst)) else {
        halt_forever();
    };
    let config = CONFIG.get().expect("smp config");
    cpu::enable_features(&config.features, config.fsgsbase);
    gdt::init_cpu(index as u32);
    apic::init_secondary();
    crate::boot::become_idle();
    ONLINE.fetch_add(1, SeqCst);
    crate::sched::idle_loop()
}

fn halt_forever() -> ! {
    loop {
        cpu::disable_interrupts();
        cpu::halt();
    }
}
