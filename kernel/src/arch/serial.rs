//! 16550 UARTs: COM1 console, COM2 program stderr, COM3 kernel log (spec/boot-protocol.md).

use super::port::{inb, outb};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Uart {
    base: u16,
}

pub const CONSOLE: Uart = Uart { base: 0x3f8 };
pub const STDERR: Uart = Uart { base: 0x2f8 };
pub const LOG: Uart = Uart { base: 0x3e8 };

const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;

impl Uart {
    /// 115200 8N1, FIFOs on; the receive interrupt is enabled on the console only.
    pub fn init(self) {
        outb(self.base + 1, 0x00); // no interrupts while programming
        outb(self.base + 3, 0x80); // DLAB
        outb(self.base, 0x01); // divisor 1 = 115200 baud
        outb(self.base + 1, 0x00);
        outb(self.base + 3, 0x03); // 8N1
        outb(self.base + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(self.base + 4, 0x0b); // DTR, RTS, OUT2 (IRQ line)
        if self == CONSOLE {
            outb(self.base + 1, 0x01); // data-ready interrupt
        }
    }

    pub fn write_byte(self, b: u8) {
        while inb(self.base + 5) & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
        outb(self.base, b);
    }

    pub fn write(self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    /// A received byte, if one is waiting.
    pub fn try_read(self) -> Option<u8> {
        (inb(self.base + 5) & LSR_DATA_READY != 0).then(|| inb(self.base))
    }
}
