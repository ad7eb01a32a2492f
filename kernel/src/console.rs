//! The console: the program's terminal, carried over serial ports (spec/boot-protocol.md).
//!
//! Output goes to COM1, or to COM2 for the stderr flavour of the device, so the runner can
//! hand the two streams to its own stdout and stderr. Input arrives on COM1, escaped by the
//! runner (0xff 0x00 = 0xff, 0xff 0x01 = end of file), and is buffered by the interrupt
//! handler. The runner's host terminal does line editing and echo, so the console passes
//! bytes through untouched while still answering terminal ioctls like a Linux tty.

use crate::arch::serial::{Uart, CONSOLE, STDERR};
use alloc::collections::VecDeque;
use ktls_abi::Errno;
use spin::Mutex;

struct Input {
    bytes: VecDeque<u8>,
    /// End-of-file markers not yet consumed (each makes one read return 0).
    eofs: usize,
    /// The previous byte was the 0xff escape.
    escape: bool,
}

static INPUT: Mutex<Input> = Mutex::new(Input {
    bytes: VecDeque::new(),
    eofs: 0,
    escape: false,
});

const INPUT_LIMIT: usize = 64 * 1024;

/// Drains the UART into the input buffer (from the console interrupt, and before reads).
pub fn on_interrupt() {
    crate::arch::cpu::without_interrupts(|| {
        let mut input = INPUT.lock();
        while let Some(b) = CONSOLE.try_read() {
            if input.escape {
                input.escape = false;
                match b {
                    0x00 => push(&mut input, 0xff),
                    0x01 => input.eofs += 1,
                    _ => {} // unknown escape: dropped, as the protocol reserves it
                }
            } else if b == 0xff {
                input.escape = true;
            } else {
                push(&mut input, b);
            }
        }
    });
}

fn push(input: &mut Input, b: u8) {
    if input.bytes.len() < INPUT_LIMIT {
        input.bytes.push_back(b);
    }
}

/// Reads what is buffered: Ok(0) at an end-of-file marker, EAGAIN when nothing is there yet.
pub fn read(buf: &mut [u8]) -> Result<usize, Errno> {
    on_interrupt();
    crate::arch::cpu::without_interrupts(|| {
        let mut input = INPUT.lock();
        if input.bytes.is_empty() {
            if input.eofs > 0 {
                input.eofs -= 1;
                return Ok(0);
            }
            return Err(Errno::EAGAIN);
        }
        let n = buf.len().min(input.bytes.len());
        for (dst, src) in buf.iter_mut().zip(input.bytes.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    })
}

/// Bytes (or an end of file) waiting to be read.
pub fn readable() -> bool {
    on_interrupt();
    let input = INPUT.lock();
    !input.bytes.is_empty() || input.eofs > 0
}

pub fn write(bytes: &[u8], stderr: bool) {
    let port: Uart = if stderr { STDERR } else { CONSOLE };
    port.write(bytes);
}
