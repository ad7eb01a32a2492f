//! The printf engine: C format strings with the conversions `d i u x X o c s p %`, the flags
//! `- 0 + space #`, a width and a precision (numbers or `*`), and the length modifiers
//! `hh h l ll z j t` — glibc's output for all of them (including `(nil)` and `(null)`).
//! Floating-point conversions are not supported: they print the conversion as written.
//!
//! Safe code: the arguments come from an [`Args`] source (a C `va_list` in `printf.rs`, a
//! slice in the tests) and the output goes to a [`Sink`].

/// Where formatted bytes go.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Where the arguments come from, in order. Every integer and pointer argument of a variadic
/// call occupies one 64-bit slot on x86_64.
pub trait Args<'a> {
    /// The next integer or pointer argument, as its 64-bit slot.
    fn next(&mut self) -> u64;
    /// The next argument as a C string (`None` for a null pointer), at most `max` bytes of it
    /// (a precision may stop reading before the terminator).
    fn next_str(&mut self, max: usize) -> Option<&'a [u8]>;
}

/// A sink that counts and keeps up to `buf.len()` bytes (snprintf's).
pub struct BufSink<'b> {
    pub buf: &'b mut [u8],
    pub len: usize,
}

impl Sink for BufSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let start = self.len.min(self.buf.len());
        let n = bytes.len().min(self.buf.len() - start);
        self.buf[start..start + n].copy_from_slice(&bytes[..n]);
        self.len += bytes.len();
    }
}

/// Counts what passes through.
struct Counting<'s, S: Sink> {
    sink: &'s mut S,
    n: usize,
}

impl<S: Sink> Counting<'_, S> {
    fn put(&mut self, b: &[u8]) {
        self.n += b.len();
        self.sink.put(b);
    }
    fn pad(&mut self, c: u8, n: usize) {
        let chunk = [c; 32];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            self.put(&chunk[..k]);
            left -= k;
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    /// Integer size in bytes (1, 2, 4 or 8).
    size: u8,
}

/// Formats `fmt` (without its terminator) with `args` into `sink`; returns the number of
/// bytes produced (printf's return value).
pub fn format<'a, S: Sink, A: Args<'a>>(sink: &mut S, fmt: &[u8], args: &mut A) -> usize {
    let mut out = Counting { sink, n: 0 };
    let mut i = 0;
    while i < fmt.len() {
        // Copy the literal run up to the next '%'.
        let run = fmt[i..]
            .iter()
            .position(|&c| c == b'%')
            .unwrap_or(fmt.len() - i);
        if run > 0 {
            out.put(&fmt[i..i + run]);
            i += run;
            continue;
        }
        let start = i;
        i += 1;
        let mut s = Spec {
            size: 4,
            ..Spec::default()
        };
        while let Some(&c) = fmt.get(i) {
            match c {
                b'-' => s.left = true,
                b'0' => s.zero = true,
                b'+' => s.plus = true,
                b' ' => s.space = true,
                b'#' => s.alt = true,
                _ => break,
            }
            i += 1;
        }
        if fmt.get(i) == Some(&b'*') {
            let w = args.next() as i32;
            if w < 0 {
                s.left = true;
            }
            s.width = w.unsigned_abs() as usize;
            i += 1;
        } else {
            while let Some(d) = fmt.get(i).filter(|c| c.is_ascii_digit()) {
                s.width = s
                    .width
                    .saturating_mul(10)
                    .saturating_add((d - b'0') as usize);
                i += 1;
            }
        }
        if fmt.get(i) == Some(&b'.') {
            i += 1;
            if fmt.get(i) == Some(&b'*') {
                let p = args.next() as i32;
                s.precision = (p >= 0).then_some(p as usize);
                i += 1;
            } else {
                let mut p = 0usize;
                while let Some(d) = fmt.get(i).filter(|c| c.is_ascii_digit()) {
                    p = p.saturating_mul(10).saturating_add((d - b'0') as usize);
                    i += 1;
                }
                s.precision = Some(p);
            }
        }
        loop {
            match fmt.get(i) {
                Some(b'h') if fmt.get(i + 1) == Some(&b'h') => {
                    s.size = 1;
                    i += 2;
                }
                Some(b'h') => {
                    s.size = 2;
                    i += 1;
                }
                Some(b'l') | Some(b'z') | Some(b'j') | Some(b't') | Some(b'q') => {
                    s.size = 8;
                    i += 1;
                }
                _ => break,
            }
        }
        let Some(&conv) = fmt.get(i) else {
            // A lone '%' (or spec) at the end: print it as written.
            out.put(&fmt[start..]);
            break;
        };
        i += 1;
        match conv {
            b'd' | b'i' => {
                let v = sign_extend(args.next(), s.size);
                let sign: &[u8] = if v < 0 {
                    b"-"
                } else if s.plus {
                    b"+"
                } else if s.space {
                    b" "
                } else {
                    b""
                };
                integer(&mut out, &s, sign, v.unsigned_abs(), 10, false);
            }
            b'u' => integer(&mut out, &s, b"", truncate(args.next(), s.size), 10, false),
            b'x' | b'X' => {
                let v = truncate(args.next(), s.size);
                let prefix: &[u8] = match (s.alt && v != 0, conv) {
                    (true, b'x') => b"0x",
                    (true, _) => b"0X",
                    _ => b"",
                };
                integer(&mut out, &s, prefix, v, 16, conv == b'X');
            }
            b'o' => {
                let v = truncate(args.next(), s.size);
                // '#' makes the first digit a 0 (by raising the precision if needed).
                if s.alt {
                    let digits = count_digits(v, 8);
                    if s.precision.is_none_or(|p| p <= digits) && v != 0 {
                        s.precision = Some(digits + 1);
                    } else if v == 0 && s.precision == Some(0) {
                        s.precision = Some(1);
                    }
                }
                integer(&mut out, &s, b"", v, 8, false);
            }
            b'p' => {
                let v = args.next();
                if v == 0 {
                    let s = Spec {
                        precision: None,
                        ..s
                    };
                    text(&mut out, &s, b"(nil)");
                } else {
                    let sign: &[u8] = if s.plus {
                        b"+0x"
                    } else if s.space {
                        b" 0x"
                    } else {
                        b"0x"
                    };
                    integer(&mut out, &s, sign, v, 16, false);
                }
            }
            b'c' => {
                let c = [args.next() as u8];
                let s = Spec {
                    precision: None,
                    ..s
                };
                text(&mut out, &s, &c);
            }
            b's' => {
                let max = s.precision.unwrap_or(usize::MAX);
                match args.next_str(max) {
                    Some(str) => text(&mut out, &s, &str[..str.len().min(max)]),
                    // glibc prints "(null)" unless the precision is too small for it.
                    None if max >= 6 => text(&mut out, &s, b"(null)"),
                    None => text(&mut out, &s, b""),
                }
            }
            b'%' => out.put(b"%"),
            _ => out.put(&fmt[start..i]),
        }
    }
    out.n
}

fn sign_extend(v: u64, size: u8) -> i64 {
    match size {
        1 => v as i8 as i64,
        2 => v as i16 as i64,
        4 => v as i32 as i64,
        _ => v as i64,
    }
}

fn truncate(v: u64, size: u8) -> u64 {
    match size {
        1 => v as u8 as u64,
        2 => v as u16 as u64,
        4 => v as u32 as u64,
        _ => v,
    }
}

fn count_digits(mut v: u64, base: u64) -> usize {
    let mut n = 1;
    while v >= base {
        v /= base;
        n += 1;
    }
    n
}

/// A string padded to the width.
fn text<S: Sink>(out: &mut Counting<'_, S>, s: &Spec, t: &[u8]) {
    let pad = s.width.saturating_sub(t.len());
    if !s.left {
        out.pad(b' ', pad);
    }
    out.put(t);
    if s.left {
        out.pad(b' ', pad);
    }
}

/// An integer: prefix (sign or 0x), zeros up to the precision, digits, padded to the width
/// with spaces (or zeros after the prefix with the '0' flag and no precision).
fn integer<S: Sink>(
    out: &mut Counting<'_, S>,
    s: &Spec,
    prefix: &[u8],
    v: u64,
    base: u64,
    upper: bool,
) {
    let digits_of = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf = [0u8; 24];
    let mut n = 0;
    // Precision 0 with value 0 prints no digits.
    if !(v == 0 && s.precision == Some(0)) {
        let mut x = v;
        loop {
            buf[buf.len() - 1 - n] = digits_of[(x % base) as usize];
            n += 1;
            x /= base;
            if x == 0 {
                break;
            }
        }
    }
    let digits = &buf[buf.len() - n..];
    let zeros = s.precision.map_or(0, |p| p.saturating_sub(n));
    let body = prefix.len() + zeros + n;
    let pad = s.width.saturating_sub(body);
    let zero_pad = s.zero && !s.left && s.precision.is_none();
    if !s.left && !zero_pad {
        out.pad(b' ', pad);
    }
    out.put(prefix);
    if zero_pad {
        out.pad(b'0', pad);
    }
    out.pad(b'0', zeros);
    out.put(digits);
    if s.left {
        out.pad(b' ', pad);
    }
}

/// Arguments from a slice of slots and strings, for Rust callers and the tests.
pub struct SliceArgs<'a> {
    pub slots: &'a [u64],
    pub strs: &'a [Option<&'a [u8]>],
    pub next_slot: usize,
    pub next_str: usize,
}

impl<'a> SliceArgs<'a> {
    pub fn new(slots: &'a [u64], strs: &'a [Option<&'a [u8]>]) -> Self {
        SliceArgs {
            slots,
            strs,
            next_slot: 0,
            next_str: 0,
        }
    }
}

impl<'a> Args<'a> for SliceArgs<'a> {
    fn next(&mut self) -> u64 {
        let v = self.slots.get(self.next_slot).copied().unwrap_or(0);
        self.next_slot += 1;
        v
    }
    fn next_str(&mut self, _max: usize) -> Option<&'a [u8]> {
        let v = self.strs.get(self.next_str).copied().flatten();
        self.next_str += 1;
        v
    }
}
