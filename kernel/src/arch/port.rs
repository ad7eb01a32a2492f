//! x86 port I/O. Ports are only used by the drivers in `arch` (UARTs, PIT, CMOS, debug exit),
//! none of which can break memory safety, so these are safe wrappers.

use core::arch::asm;

pub fn outb(port: u16, val: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust; the ports written are the
    // legacy devices this kernel owns.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for outb.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

pub fn outl(port: u16, val: u32) {
    // SAFETY: as for outb.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags))
    }
}
