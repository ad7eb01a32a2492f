//! `ktls_snprintf` (the assembly trampoline, the va_list reader and the engine) against
//! glibc's `snprintf`, called with the same C varargs.

use core::ffi::{c_char, c_int};

use crate::fmt::{format, BufSink, SliceArgs};

extern "C" {
    fn ktls_snprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ...) -> c_int;
}

/// Formats with both and compares the text and the return value.
macro_rules! same {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        let fmt = concat!($fmt, "\0").as_ptr() as *const c_char;
        let mut ours = [0x55u8; 256];
        let mut theirs = [0x55u8; 256];
        // SAFETY: 256-byte buffers; the arguments are what each format asks for.
        let (a, b) = unsafe {
            (
                ktls_snprintf(ours.as_mut_ptr().cast(), ours.len(), fmt $(, $arg)*),
                libc::snprintf(theirs.as_mut_ptr().cast(), theirs.len(), fmt $(, $arg)*),
            )
        };
        let text = |buf: &[u8]| {
            String::from_utf8_lossy(&buf[..buf.iter().position(|&c| c == 0).unwrap()])
                .into_owned()
        };
        assert_eq!((text(&ours), a), (text(&theirs), b), "format {:?}", $fmt);
    }};
}

const S: *const c_char = c"hello".as_ptr();
const NULL: *const c_char = core::ptr::null();

#[test]
fn integers() {
    same!("%d %d %d %d", 0i32, 1i32, -1i32, i32::MIN);
    same!("%i|%u|%u", i32::MAX, 0u32, u32::MAX);
    same!("%ld %ld %lu %lu", i64::MIN, i64::MAX, 0u64, u64::MAX);
    same!(
        "%lld %llu %zu %zd %jd %td",
        -5i64,
        5u64,
        123usize,
        -7isize,
        -8i64,
        9isize
    );
    same!("%hd %hu %hhd %hhu", 70000i32, 70000u32, 300i32, 300u32);
    same!(
        "%x %X %lx %#x %#X %#lx",
        0xdeadu32,
        0xbeefu32,
        u64::MAX,
        255u32,
        255u32,
        0u64
    );
    same!("%o %#o %#o %#.0o %.0o", 8u32, 8u32, 0u32, 0u32, 0u32);
    same!(
        "[%5d][%-5d][%05d][%+d][% d][%+5d][%-+5d]",
        42,
        42,
        42,
        42,
        42,
        42,
        42
    );
    same!("[%5d][%-5d][%05d][%+d][% d]", -42, -42, -42, -42, -42);
    same!(
        "[%.3d][%.0d][%.0d][%5.3d][%-5.3d][%05.3d]",
        7,
        0,
        1,
        -7,
        7,
        7
    );
    same!(
        "[%*d][%-*d][%*d][%.*d][%.*d]",
        6,
        1,
        6,
        2,
        -6,
        3,
        4,
        5,
        -1,
        6
    );
    same!(
        "[%#8x][%#08x][%-#8x][%08X]",
        0x1fu32,
        0x1fu32,
        0x1fu32,
        0xabcu32
    );
}

#[test]
fn strings_chars_pointers() {
    same!("%s|%.2s|%.0s|%8s|%-8s|%8.3s", S, S, S, S, S, S);
    same!("%s|%.6s|%.5s|%10s|%-10s|", NULL, NULL, NULL, NULL, NULL);
    same!(
        "%c%c%c|%3c|%-3c|",
        b'a' as c_int,
        b'b' as c_int,
        0x263 as c_int,
        b'x' as c_int,
        b'y' as c_int
    );
    same!("%p|%p|%20p|%-20p|", NULL, S, S, S);
    same!("%p|%10p|%-10p|", 0x1000usize, NULL, NULL);
    same!("100%% %%d %s", S);
    same!("");
    same!("no conversions at all");
}

#[test]
fn many_arguments_use_the_stack() {
    // More than five variadic integers: the rest are on the stack (overflow_arg_area).
    same!(
        "%d %d %d %d %d %d %d %d %d %d %s %ld %c",
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        S,
        -11i64,
        b'z' as c_int,
    );
    same!(
        "%lu %s %p %x %hhd %s %d %d %s",
        u64::MAX,
        S,
        S,
        0xffu32,
        -1i32,
        NULL,
        7,
        8,
        S,
    );
}

#[test]
fn truncation_and_return_value() {
    let mut small = [0x55u8; 5];
    // SAFETY: a 5-byte buffer.
    let n = unsafe {
        ktls_snprintf(
            small.as_mut_ptr().cast(),
            small.len(),
            c"%s-%d".as_ptr(),
            S,
            1234,
        )
    };
    assert_eq!(n, 10);
    assert_eq!(&small, b"hell\0");
    // n == 0: nothing written, the length returned.
    let mut untouched = [0x55u8; 4];
    // SAFETY: n is 0, so the buffer is not written.
    let n = unsafe { ktls_snprintf(untouched.as_mut_ptr().cast(), 0, c"%d".as_ptr(), 123456) };
    assert_eq!((n, untouched), (6, [0x55; 4]));
    // SAFETY: a NULL buffer with n == 0 is allowed.
    let n = unsafe { ktls_snprintf(core::ptr::null_mut(), 0, c"%s".as_ptr(), S) };
    assert_eq!(n, 5);
}

#[test]
fn engine_with_rust_arguments() {
    let mut buf = [0u8; 64];
    let strs: [Option<&[u8]>; 2] = [Some(b"ktls"), None];
    let mut args = SliceArgs::new(&[(-3i64) as u64, 255, 0], &strs);
    let mut sink = BufSink {
        buf: &mut buf,
        len: 0,
    };
    let n = format(&mut sink, b"%s %ld %#x %s %p", &mut args);
    assert_eq!(&buf[..n], b"ktls -3 0xff (null) (nil)");
    // Formats that end early or use unknown conversions come out as written.
    let mut buf = [0u8; 64];
    let mut sink = BufSink {
        buf: &mut buf,
        len: 0,
    };
    let n = format(&mut sink, b"%f %y 50%", &mut SliceArgs::new(&[], &[]));
    assert_eq!(&buf[..n], b"%f %y 50%");
}
