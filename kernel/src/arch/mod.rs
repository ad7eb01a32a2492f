//! Everything that touches the machine directly. `unsafe` lives here (and in `mm`'s direct
//! map and copy layer), each block with the reason it holds; the rest of the kernel is safe
//! Rust.

pub mod acpi;
pub mod apic;
pub mod backtrace;
pub mod boot;
pub mod cpu;
pub mod entry;
pub mod gdt;
pub mod percpu;
pub mod port;
pub mod rtc;
pub mod serial;
pub mod smp;
pub mod switch;
pub mod tlb;
