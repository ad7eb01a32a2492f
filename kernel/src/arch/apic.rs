//! Local APIC (xAPIC, through the direct map), the I/O APIC route for the console's IRQ, and
//! the legacy PIT used once at boot to calibrate the TSC and the APIC timer.

use super::cpu;
use super::port::{inb, outb};
use super::smp::MAX_CPUS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

const LAPIC_PHYS: u64 = 0xfee0_0000;
const IOAPIC_PHYS: u64 = 0xfec0_0000;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT1: u64 = 0x360;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CUR: u64 = 0x390;
const REG_TIMER_DIV: u64 = 0x3e0;

pub const TIMER_VECTOR: u8 = 0x20;
pub const CONSOLE_VECTOR: u8 = 0x24;
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// IPI that makes a CPU look at its run queue (and at pending signals of its thread).
pub const RESCHED_VECTOR: u8 = 0xf0;
const REG_ID: u64 = 0x20;
const REG_ICR_LOW: u64 = 0x300;
const REG_ICR_HIGH: u64 = 0x310;
/// Timer interrupts per second.
pub const HZ: u64 = 100;

const PIT_HZ: u64 = 1_193_182;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static APIC_TICKS_PER_PERIOD: AtomicU32 = AtomicU32::new(0);

fn mmio(phys: u64, reg: u64) -> *mut u32 {
    (crate::mm::phys_to_virt(phys) + reg) as *mut u32
}

fn lapic_write(reg: u64, v: u32) {
    // SAFETY: the local APIC's registers sit in the direct map (physical 0..4 GiB) and
    // writing them only programs this CPU's interrupt controller.
    unsafe { mmio(LAPIC_PHYS, reg).write_volatile(v) }
}

fn lapic_read(reg: u64) -> u32 {
    // SAFETY: as for lapic_write.
    unsafe { mmio(LAPIC_PHYS, reg).read_volatile() }
}

/// This CPU's local APIC ID.
pub fn id() -> u32 {
    lapic_read(REG_ID) >> 24
}

/// APIC ID of each CPU index (the index getcpu reports and the scheduler uses). The boot CPU
/// is index 0; `smp` fills in the others from the MADT. Until then index = APIC ID.
static APIC_IDS: [AtomicU32; MAX_CPUS] = {
    let mut ids = [const { AtomicU32::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        ids[i] = AtomicU32::new(i as u32);
        i += 1;
    }
    ids
};

/// Records that CPU index `cpu` has APIC ID `apic_id`.
pub fn set_apic_id(cpu: usize, apic_id: u32) {
    APIC_IDS[cpu].store(apic_id, Relaxed);
}

pub fn apic_id_of(cpu_index: u32) -> u32 {
    APIC_IDS[cpu_index as usize % MAX_CPUS].load(Relaxed)
}

/// ICR delivery modes (bits 8..10).
const DELIVERY_FIXED: u32 = 0;
const DELIVERY_NMI: u32 = 4 << 8;

fn send_icr(apic_id: u32, low: u32) {
    cpu::without_interrupts(|| {
        lapic_write(REG_ICR_HIGH, apic_id << 24);
        lapic_write(REG_ICR_LOW, low);
        while lapic_read(REG_ICR_LOW) & (1 << 12) != 0 {
            core::hint::spin_loop();
        }
    });
}

/// Sends a fixed interrupt `vector` to the CPU with index `cpu_index`.
pub fn send_ipi(cpu_index: u32, vector: u8) {
    send_icr(apic_id_of(cpu_index), DELIVERY_FIXED | vector as u32);
}

/// Sends an NMI to the CPU with index `cpu_index` (taken even with interrupts masked).
pub fn send_nmi(cpu_index: u32) {
    send_icr(apic_id_of(cpu_index), DELIVERY_NMI);
}

/// ICR delivery modes for `send_startup_ipi`.
pub const ICR_INIT: u32 = 5;
pub const ICR_STARTUP: u32 = 6;

/// Sends INIT or STARTUP (`kind` = 5 or 6, with `vector` the start page) to `apic_id`.
pub fn send_startup_ipi(apic_id: u32, kind: u32, vector: u8) {
    send_icr(apic_id, (kind << 8) | (1 << 14) | vector as u32);
}

/// Resched IPIs each CPU has taken (acknowledgements for `sched::barrier_on_cpus`).
static IPIS_SEEN: [core::sync::atomic::AtomicU64; 64] =
    [const { core::sync::atomic::AtomicU64::new(0) }; 64];

pub fn ipi_received() {
    let c = crate::arch::percpu::get().cpu_id() as usize;
    if let Some(n) = IPIS_SEEN.get(c) {
        n.fetch_add(1, Relaxed);
    }
}

pub fn ipis_seen(cpu: usize) -> u64 {
    IPIS_SEEN.get(cpu).map_or(0, |n| n.load(Relaxed))
}

/// Makes the CPU with scheduler index `cpu_index` enter the kernel soon, e.g. to
/// notice a signal for the thread it runs. Nothing to do for this CPU.
pub fn kick_cpu(cpu_index: u32) {
    if cpu_index != crate::arch::percpu::get().cpu_id() {
        send_ipi(cpu_index, RESCHED_VECTOR);
    }
}

pub fn eoi() {
    lapic_write(REG_EOI, 0);
}

/// Reads PIT channel 0's counter (counting down at 1.193182 MHz).
fn pit_count() -> u16 {
    outb(0x43, 0x00);
    let lo = inb(0x40) as u16;
    let hi = inb(0x40) as u16;
    (hi << 8) | lo
}

/// Measures the TSC and the APIC timer against the PIT over `ms` milliseconds.
fn calibrate(ms: u64) -> (u64, u64) {
    outb(0x43, 0x34); // channel 0, lo/hi, mode 2, binary
    outb(0x40, 0);
    outb(0x40, 0); // reload 65536: ~55 ms per wrap
    lapic_write(REG_TIMER_DIV, 0xb); // divide by 1
    lapic_write(REG_LVT_TIMER, 1 << 16); // masked, one-shot
    lapic_write(REG_TIMER_INIT, u32::MAX);
    let target = PIT_HZ * ms / 1000;
    let mut prev = pit_count();
    let (tsc0, apic0) = (cpu::rdtsc(), lapic_read(REG_TIMER_CUR));
    let mut elapsed = 0u64;
    while elapsed < target {
        let now = pit_count();
        elapsed += prev.wrapping_sub(now) as u64;
        prev = now;
    }
    let (tsc1, apic1) = (cpu::rdtsc(), lapic_read(REG_TIMER_CUR));
    let scale = |d: u64| d * PIT_HZ / elapsed.max(1);
    (scale(tsc1 - tsc0), scale(apic0.wrapping_sub(apic1) as u64))
}

/// Masks the legacy PICs, enables the local APIC, calibrates, starts the periodic timer and
/// routes the console's IRQ 4 through the I/O APIC (boot CPU).
pub fn init() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    accept_external_nmi();
    let (tsc_hz, apic_hz) = calibrate(10);
    TSC_HZ.store(tsc_hz, Relaxed);
    let period = (apic_hz / HZ).clamp(1000, u32::MAX as u64) as u32;
    APIC_TICKS_PER_PERIOD.store(period, Relaxed);
    start_timer();
    route_ioapic(4, CONSOLE_VECTOR);
}

/// Enables this CPU's local APIC and its periodic timer with the boot CPU's calibration.
pub fn init_secondary() {
    lapic_write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    accept_external_nmi();
    start_timer();
}

/// Unmasks LINT1 as an NMI on this CPU (Linux does it on the boot CPU only): under TCG,
/// QEMU's `nmi` monitor command, which the runner sends on a timeout for the hang report,
/// raises LINT1 on every CPU and is dropped where LINT1 is masked.
fn accept_external_nmi() {
    lapic_write(REG_LVT_LINT1, DELIVERY_NMI);
}

fn start_timer() {
    lapic_write(REG_TIMER_DIV, 0xb);
    lapic_write(REG_LVT_TIMER, (1 << 17) | TIMER_VECTOR as u32); // periodic
    lapic_write(REG_TIMER_INIT, APIC_TICKS_PER_PERIOD.load(Relaxed));
}

fn route_ioapic(gsi: u32, vector: u8) {
    let sel = mmio(IOAPIC_PHYS, 0);
    let win = mmio(IOAPIC_PHYS, 0x10);
    // SAFETY: the I/O APIC's index/data registers are in the direct map; the redirection
    // entry sends an edge-triggered fixed interrupt to this (the boot) CPU.
    unsafe {
        sel.write_volatile(0x10 + 2 * gsi + 1);
        win.write_volatile(id() << 24);
        sel.write_volatile(0x10 + 2 * gsi);
        win.write_volatile(vector as u32);
    }
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Relaxed)
}

/// Busy-waits `us` microseconds on the TSC (calibrated in `init`).
pub fn delay_us(us: u64) {
    let end = cpu::rdtsc() + tsc_hz() * us / 1_000_000;
    while cpu::rdtsc() < end {
        core::hint::spin_loop();
    }
}
