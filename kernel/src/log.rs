//! The kernel log: text lines on COM3, apart from program output (spec/boot-protocol.md).

use crate::arch::cpu;
use crate::arch::serial::LOG;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};
use spin::Mutex;

/// 0 errors, 1 info (default), 2 debug; set from `loglevel=N`.
pub static LEVEL: AtomicU8 = AtomicU8::new(1);

static LOCK: Mutex<()> = Mutex::new(());

struct LogPort;

impl Write for LogPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        LOG.write(s.as_bytes());
        Ok(())
    }
}

/// Writes one line (the arguments, then a newline) to the log port.
pub fn write_line(args: fmt::Arguments) {
    cpu::without_interrupts(|| {
        let _g = LOCK.lock();
        let _ = LogPort.write_fmt(args);
        LOG.write_byte(b'\n');
    });
}

/// Writes to the log port without taking the lock: only for the panic path, where the lock
/// may be held by the code that panicked.
pub fn write_unlocked(args: fmt::Arguments) {
    let _ = LogPort.write_fmt(args);
}

pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write_line(format_args!("error: {}", format_args!($($t)*))) };
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { if $crate::log::enabled(1) { $crate::log::write_line(format_args!($($t)*)) } };
}

#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { if $crate::log::enabled(2) { $crate::log::write_line(format_args!($($t)*)) } };
}

#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write_line(format_args!("warning: {}", format_args!($($t)*))) };
}

/// Logs a line the first time this call site runs, never again.
#[macro_export]
macro_rules! log_once {
    ($($t:tt)*) => {{
        static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        if !DONE.swap(true, core::sync::atomic::Ordering::Relaxed) {
            $crate::log::write_line(format_args!($($t)*));
        }
    }};
}
