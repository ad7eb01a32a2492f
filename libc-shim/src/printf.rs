//! `ktls_printf` and its siblings for C: `va_list` reading and the variadic entry points.
//!
//! Stable Rust cannot define a C-variadic function, so `ktls_printf`, `ktls_dprintf` and
//! `ktls_snprintf` are small assembly trampolines that build a System V `va_list` exactly as a
//! C compiler's `va_start` would (the six integer argument registers saved in a register save
//! area, `gp_offset` past the named arguments, the stack arguments as the overflow area; no
//! vector registers, since the shim prints no floating point) and call the `v` variant, which
//! is an ordinary C function taking a `va_list` and therefore also accepts C's own.

use core::arch::global_asm;

use crate::fmt::{self, Args, BufSink, Sink};
use crate::sys;

/// x86_64 System V `__va_list_tag` (`va_list` is an array of one of these).
#[repr(C)]
pub struct VaListTag {
    gp_offset: u32,
    fp_offset: u32,
    overflow_arg_area: *const u64,
    reg_save_area: *const u8,
}

/// Reads integer arguments from a C `va_list`.
pub struct VaArgs<'v> {
    va: &'v mut VaListTag,
}

impl<'v> VaArgs<'v> {
    /// # Safety
    /// `va` is a live `va_list` whose remaining arguments are what the format asks for.
    pub unsafe fn new(va: *mut VaListTag) -> Self {
        // SAFETY: per the caller.
        VaArgs {
            va: unsafe { &mut *va },
        }
    }
}

impl<'a> Args<'a> for VaArgs<'_> {
    fn next(&mut self) -> u64 {
        let va = &mut *self.va;
        // SAFETY: va_arg(ap, long)'s algorithm: below 48, gp_offset indexes the saved integer
        // registers; after that the arguments are consecutive 8-byte stack slots. The format
        // matches the call's arguments (the caller of VaArgs::new vouched for that).
        unsafe {
            if va.gp_offset < 48 {
                let v = (va.reg_save_area.add(va.gp_offset as usize) as *const u64).read();
                va.gp_offset += 8;
                v
            } else {
                let v = va.overflow_arg_area.read();
                va.overflow_arg_area = va.overflow_arg_area.add(1);
                v
            }
        }
    }

    fn next_str(&mut self, max: usize) -> Option<&'a [u8]> {
        let p = self.next() as *const u8;
        if p.is_null() {
            return None;
        }
        // SAFETY: a %s argument is a C string, readable up to its terminator or, with a
        // precision, up to `max` bytes (C's rule); it outlives the printf call.
        unsafe {
            let n = crate::mem::strnlen(p, max);
            Some(core::slice::from_raw_parts(p, n))
        }
    }
}

/// A C string's bytes without the terminator.
///
/// # Safety
/// `s` is a NUL-terminated string that outlives `'a`.
pub unsafe fn cstr<'a>(s: *const u8) -> &'a [u8] {
    // SAFETY: per the caller.
    unsafe { core::slice::from_raw_parts(s, crate::mem::strlen(s)) }
}

/// Collects output and writes it to a file descriptor in chunks of up to 1 KiB (a whole
/// printf line in one write(2), so lines of concurrent threads do not interleave).
pub struct FdSink {
    fd: i32,
    buf: [u8; 1024],
    len: usize,
    pub failed: bool,
}

impl FdSink {
    pub fn new(fd: i32) -> Self {
        FdSink {
            fd,
            buf: [0; 1024],
            len: 0,
            failed: false,
        }
    }
    pub fn flush(&mut self) {
        if self.len > 0 && sys::write_all(self.fd, &self.buf[..self.len]).is_err() {
            self.failed = true;
        }
        self.len = 0;
    }
}

impl Sink for FdSink {
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

/// `int ktls_vdprintf(int fd, const char *fmt, va_list ap)`.
///
/// # Safety
/// `fmt` is a C string and `ap` a `va_list` with the arguments it asks for.
#[no_mangle]
pub unsafe extern "C" fn ktls_vdprintf(fd: i32, fmt: *const u8, ap: *mut VaListTag) -> i32 {
    let mut sink = FdSink::new(fd);
    // SAFETY: per the caller.
    let n = unsafe { fmt::format(&mut sink, cstr(fmt), &mut VaArgs::new(ap)) };
    sink.flush();
    if sink.failed {
        -1
    } else {
        n as i32
    }
}

/// `int ktls_vprintf(const char *fmt, va_list ap)`: to standard output.
///
/// # Safety
/// As [`ktls_vdprintf`].
#[no_mangle]
pub unsafe extern "C" fn ktls_vprintf(fmt: *const u8, ap: *mut VaListTag) -> i32 {
    // SAFETY: per the caller.
    unsafe { ktls_vdprintf(1, fmt, ap) }
}

/// `int ktls_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)`: C's vsnprintf.
///
/// # Safety
/// `buf` is writable for `n` bytes (or `n` is 0), and as [`ktls_vdprintf`].
#[no_mangle]
pub unsafe extern "C" fn ktls_vsnprintf(
    buf: *mut u8,
    n: usize,
    fmt: *const u8,
    ap: *mut VaListTag,
) -> i32 {
    let out: &mut [u8] = if n == 0 || buf.is_null() {
        &mut []
    } else {
        // SAFETY: per the caller; the last byte is kept for the terminator.
        unsafe { core::slice::from_raw_parts_mut(buf, n - 1) }
    };
    let mut sink = BufSink { buf: out, len: 0 };
    // SAFETY: per the caller.
    let total = unsafe { fmt::format(&mut sink, cstr(fmt), &mut VaArgs::new(ap)) };
    if n > 0 && !buf.is_null() {
        // SAFETY: `n - 1` is within the buffer.
        unsafe { buf.add(total.min(n - 1)).write(0) };
    }
    total as i32
}

// The variadic entry points. Each saves the six argument registers at the bottom of an 80-byte
// frame (the register save area), builds the va_list above them (gp_offset = 8 per named
// argument, fp_offset = 176: no vector registers, overflow area = the caller's stack
// arguments at 16(%rbp)), and passes its address as the `v` function's last argument.
macro_rules! variadic {
    ($name:literal, $v:ident, $named:literal, $va_reg:literal) => {
        global_asm!(
            concat!(".globl ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            "push %rbp",
            "mov %rsp, %rbp",
            "sub $80, %rsp",
            "mov %rdi, 0(%rsp)",
            "mov %rsi, 8(%rsp)",
            "mov %rdx, 16(%rsp)",
            "mov %rcx, 24(%rsp)",
            "mov %r8, 32(%rsp)",
            "mov %r9, 40(%rsp)",
            concat!("movl $", $named, "*8, 48(%rsp)"),
            "movl $176, 52(%rsp)",
            "lea 16(%rbp), %rax",
            "mov %rax, 56(%rsp)",
            "mov %rsp, 64(%rsp)",
            concat!("lea 48(%rsp), ", $va_reg),
            "call {v}",
            "leave",
            "ret",
            concat!(".size ", $name, ", .-", $name),
            v = sym $v,
            options(att_syntax),
        );
    };
}

variadic!("ktls_printf", ktls_vprintf, 1, "%rsi");
variadic!("ktls_dprintf", ktls_vdprintf, 2, "%rdx");
variadic!("ktls_snprintf", ktls_vsnprintf, 3, "%rcx");

/// Formats Rust-side arguments (see [`fmt::SliceArgs`]) into `buf`; returns the full length.
pub fn format_into(buf: &mut [u8], fmt: &[u8], args: &mut fmt::SliceArgs<'_>) -> usize {
    let mut sink = BufSink { buf, len: 0 };
    fmt::format(&mut sink, fmt, args)
}
