//! Symbolized kernel backtraces: kernel addresses in a panic report (the faulting `rip`, the
//! `#N` frames of `backtrace:`) become `function+offset`, with the source line (and the
//! functions inlined there) from the kernel ELF's DWARF line tables when it has them.
//!
//! The report keeps its lines as the kernel wrote them; [`annotate`] only adds text: after the
//! address of a `#N` line, and on an indented line below any other line that holds kernel code
//! addresses. For example:
//!
//! ```text
//! kernel fault: page fault (vector 14) at rip 0xffffffff8012b04d, error code 0x2
//!     0xffffffff8012b04d = ktls_kernel::mm::thing+0x4d at kernel/src/mm/thing.rs:12:9
//! backtrace:
//!   #0 0xffffffff8012b04d ktls_kernel::mm::thing+0x4d at kernel/src/mm/thing.rs:12:9
//!   #1 0xffffffff8013c2a1 ktls_kernel::kmain+0x61
//!        ktls_kernel::mm::setup at kernel/src/mm/mod.rs:40:5 (inlined)
//!        ktls_kernel::kmain at kernel/src/main.rs:80:5
//! ```
//!
//! Frames `#1` and up are return addresses: they are looked up at the address minus one (the
//! call instruction), so that a call at the very end of a function (to a function that does not
//! return) is not attributed to the next function; the offset shown is the return address's.

use addr2line::gimli;
use goblin::elf::{section_header, sym, Elf};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

type Reader<'a> = gimli::EndianSlice<'a, gimli::LittleEndian>;

/// A code symbol of the ELF's symbol table.
#[derive(Clone, Copy, Debug)]
struct Sym<'a> {
    addr: u64,
    size: u64,
    name: &'a str,
}

/// One source frame at an address, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFrame {
    /// The function (demangled, without hash), if DWARF names it.
    pub function: Option<String>,
    /// `file:line:column` (the file relative to the workspace when it is inside it).
    pub location: Option<String>,
}

/// What an address is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// The symbol-table function containing the address (demangled, without hash).
    pub name: String,
    /// The address minus the symbol's start.
    pub offset: u64,
    /// From DWARF, innermost (inlined) function first; empty without debug information.
    pub frames: Vec<SourceFrame>,
}

impl Symbol {
    /// `name+0xoff`, then ` at file:line:col` when there is exactly one source frame, else one
    /// indented line per frame (`indent` before each).
    pub fn describe(&self, indent: &str) -> String {
        let mut s = format!("{}+{:#x}", self.name, self.offset);
        match self.frames.as_slice() {
            [] => {}
            [only] => {
                if let Some(l) = &only.location {
                    let _ = write!(s, " at {l}");
                }
            }
            many => {
                for (i, f) in many.iter().enumerate() {
                    let name = f.function.as_deref().unwrap_or("??");
                    let _ = write!(s, "\n{indent}{name}");
                    if let Some(l) = &f.location {
                        let _ = write!(s, " at {l}");
                    }
                    if i + 1 < many.len() {
                        s.push_str(" (inlined)");
                    }
                }
            }
        }
        s
    }
}

/// Looks up addresses in one kernel ELF (borrowed for `'a`).
pub struct Symbolizer<'a> {
    /// Sorted by address.
    symbols: Vec<Sym<'a>>,
    /// Executable, allocated sections: `[start, end)`.
    code: Vec<(u64, u64)>,
    dwarf: Option<addr2line::Context<Reader<'a>>>,
}

/// A demangled Rust name without its hash; other names as they are.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

/// A DWARF file name made short: relative to the workspace, to the Rust sources
/// (`library/core/...`) or to the cargo registry (`spin-0.9.9/src/...`) when inside them.
fn short_path(p: &str) -> String {
    let root = crate::build::workspace_root();
    if let Ok(rel) = Path::new(p).strip_prefix(root) {
        return rel.display().to_string();
    }
    if let Some(rest) = p.strip_prefix("/rustc/") {
        if let Some((_hash, tail)) = rest.split_once('/') {
            return tail.to_string();
        }
    }
    if let Some(i) = p.find("/registry/src/") {
        let tail = &p[i + "/registry/src/".len()..];
        if let Some((_index, tail)) = tail.split_once('/') {
            return tail.to_string();
        }
    }
    p.to_string()
}

impl<'a> Symbolizer<'a> {
    /// Reads the symbol table (and the DWARF sections, if any) of the ELF image `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<Symbolizer<'a>, String> {
        let elf = Elf::parse(bytes).map_err(|e| format!("not an ELF file: {e}"))?;
        let mut code = Vec::new();
        let mut code_sections = Vec::new();
        for (i, sh) in elf.section_headers.iter().enumerate() {
            let flags = sh.sh_flags;
            if flags & u64::from(section_header::SHF_EXECINSTR) != 0
                && flags & u64::from(section_header::SHF_ALLOC) != 0
                && sh.sh_size > 0
            {
                code.push((sh.sh_addr, sh.sh_addr + sh.sh_size));
                code_sections.push(i);
            }
        }
        let mut symbols = Vec::new();
        for s in elf.syms.iter() {
            let kind = s.st_type();
            if kind != sym::STT_FUNC && kind != sym::STT_NOTYPE {
                continue;
            }
            if !code_sections.contains(&s.st_shndx) {
                continue;
            }
            let Some(name) = elf.strtab.get_at(s.st_name) else {
                continue;
            };
            // Assembler-local labels and mapping symbols say nothing.
            if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
                continue;
            }
            symbols.push(Sym {
                addr: s.st_value,
                size: s.st_size,
                name,
            });
        }
        // At equal addresses, sized symbols (functions) come last, so they win the lookup.
        symbols.sort_by_key(|s| (s.addr, s.size > 0));
        if symbols.is_empty() {
            return Err("the ELF file has no code symbols (was it stripped?)".into());
        }
        let dwarf = Self::load_dwarf(bytes, &elf);
        Ok(Symbolizer {
            symbols,
            code,
            dwarf,
        })
    }

    fn load_dwarf(bytes: &'a [u8], elf: &Elf) -> Option<addr2line::Context<Reader<'a>>> {
        let section = |name: &str| -> &'a [u8] {
            let found = elf.section_headers.iter().find(|sh| {
                elf.shdr_strtab.get_at(sh.sh_name) == Some(name)
                    && sh.sh_type != section_header::SHT_NOBITS
                    // Compressed sections would need a decompressor: do without them.
                    && sh.sh_flags & u64::from(section_header::SHF_COMPRESSED) == 0
            });
            found
                .and_then(|sh| {
                    let start = usize::try_from(sh.sh_offset).ok()?;
                    let end = start.checked_add(usize::try_from(sh.sh_size).ok()?)?;
                    bytes.get(start..end)
                })
                .unwrap_or(&[])
        };
        if section(".debug_info").is_empty() {
            return None;
        }
        let dwarf = gimli::Dwarf::load(|id: gimli::SectionId| -> Result<_, gimli::Error> {
            Ok(Reader::new(section(id.name()), gimli::LittleEndian))
        })
        .ok()?;
        addr2line::Context::from_dwarf(dwarf).ok()
    }

    /// Whether `addr` is inside the kernel's code.
    pub fn is_code(&self, addr: u64) -> bool {
        self.code.iter().any(|&(a, b)| (a..b).contains(&addr))
    }

    /// The address of the code symbol whose demangled name (without hash) or raw name is
    /// `name`, and its size.
    pub fn address_of(&self, name: &str) -> Option<(u64, u64)> {
        self.symbols
            .iter()
            .find(|s| s.name == name || demangle(s.name) == name)
            .map(|s| (s.addr, s.size))
    }

    /// The code symbol containing `addr`.
    fn containing(&self, addr: u64) -> Option<Sym<'a>> {
        if !self.is_code(addr) {
            return None;
        }
        let i = self.symbols.partition_point(|s| s.addr <= addr);
        let s = *self.symbols.get(i.checked_sub(1)?)?;
        // A sized symbol must cover the address; an unsized one (an assembly label) covers
        // everything up to the next symbol.
        (s.size == 0 || addr - s.addr < s.size).then_some(s)
    }

    /// What `addr` is: `probe` is the address to look up (the return address minus one for
    /// return addresses), `addr` the one the offset is counted from.
    fn lookup_with_probe(&self, addr: u64, probe: u64) -> Option<Symbol> {
        let s = self.containing(probe)?;
        Some(Symbol {
            name: demangle(s.name),
            offset: addr - s.addr,
            frames: self.source_frames(probe),
        })
    }

    /// What the code address `addr` is (an exact instruction address, such as a faulting rip).
    pub fn lookup(&self, addr: u64) -> Option<Symbol> {
        self.lookup_with_probe(addr, addr)
    }

    /// What the return address `addr` returns into (looked up at the call instruction).
    pub fn lookup_return(&self, addr: u64) -> Option<Symbol> {
        self.lookup_with_probe(addr, addr.checked_sub(1)?)
    }

    /// The DWARF frames at `probe`, innermost first.
    pub fn source_frames(&self, probe: u64) -> Vec<SourceFrame> {
        let Some(ctx) = &self.dwarf else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(mut frames) = ctx.find_frames(probe).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(f)) = frames.next() {
            let function = f.function.as_ref().and_then(|n| {
                n.raw_name()
                    .ok()
                    .map(|raw: Cow<str>| demangle(raw.as_ref()))
            });
            let location = f.location.as_ref().and_then(|l| {
                let file = short_path(l.file?);
                Some(match (l.line, l.column) {
                    (Some(line), Some(col)) if col > 0 => format!("{file}:{line}:{col}"),
                    (Some(line), _) => format!("{file}:{line}"),
                    (None, _) => file,
                })
            });
            out.push(SourceFrame { function, location });
            if out.len() > 64 {
                break;
            }
        }
        out
    }
}

/// The numbers written as `0x` + hex digits in `line`, with their byte ranges.
fn hex_numbers(line: &str) -> Vec<(usize, usize, u64)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary && b[i..].starts_with(b"0x") {
            let digits = b[i + 2..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            let end = i + 2 + digits;
            let ends_word = b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
            if (1..=16).contains(&digits) && ends_word {
                if let Ok(v) = u64::from_str_radix(&line[i + 2..end], 16) {
                    out.push((i, end, v));
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// A `#N 0x...` backtrace line: `(N, the address's end in the line, the address)`.
fn frame_line(line: &str) -> Option<(u32, usize, u64)> {
    let trimmed = line.trim_start();
    let lead = line.len() - trimmed.len();
    let rest = trimmed.strip_prefix('#')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let n: u32 = rest[..digits].parse().ok()?;
    let after = &rest[digits..];
    let addr_text = after.strip_prefix(' ')?;
    let (start, end, v) = *hex_numbers(addr_text).first()?;
    if start != 0 {
        return None;
    }
    Some((n, lead + 1 + digits + 1 + end, v))
}

/// The report with every kernel code address annotated (see the module documentation). Lines
/// without kernel code addresses stay as they are.
pub fn annotate(report: &str, sym: &Symbolizer) -> String {
    let mut out = String::new();
    for line in report.lines() {
        if let Some((n, end, addr)) = frame_line(line) {
            let found = if n == 0 {
                sym.lookup(addr)
            } else {
                sym.lookup_return(addr)
            };
            out.push_str(&line[..end]);
            if let Some(s) = found {
                out.push(' ');
                out.push_str(&s.describe("       "));
            }
            out.push_str(&line[end..]);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
        for (start, end, addr) in hex_numbers(line) {
            if let Some(s) = sym.lookup(addr) {
                let _ = writeln!(
                    out,
                    "    {} = {}",
                    &line[start..end],
                    s.describe("        ")
                );
            }
        }
    }
    if !report.ends_with('\n') {
        out.pop();
    }
    out
}

/// [`annotate`] with the kernel ELF at `kernel`.
pub fn symbolize_report(kernel: &Path, report: &str) -> Result<String, String> {
    let bytes = std::fs::read(kernel).map_err(|e| format!("{}: {e}", kernel.display()))?;
    let sym = Symbolizer::new(&bytes).map_err(|e| format!("{}: {e}", kernel.display()))?;
    Ok(annotate(report, &sym))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_lines() {
        assert_eq!(
            hex_numbers("at rip 0xffffffff8012b04d, error code 0x2"),
            [(7, 25, 0xffffffff8012b04d), (38, 41, 2)]
        );
        assert_eq!(hex_numbers("x0x12 0x 0xg 0x12345678901234567"), []);
        assert_eq!(hex_numbers("0x1"), [(0, 3, 1)]);
        assert_eq!(
            frame_line("  #12 0xffffffff80000001"),
            Some((12, 24, 0xffffffff80000001))
        );
        assert_eq!(frame_line("  #1 0x10 more"), Some((1, 9, 0x10)));
        assert_eq!(frame_line("  #x 0x10"), None);
        assert_eq!(frame_line("  # 0x10"), None);
        assert_eq!(frame_line("  #1 10"), None);
    }

    #[test]
    fn paths_are_shortened() {
        let root = crate::build::workspace_root();
        assert_eq!(
            short_path(&root.join("kernel/src/panic.rs").to_string_lossy()),
            "kernel/src/panic.rs"
        );
        assert_eq!(
            short_path("/rustc/0123abc/library/core/src/panicking.rs"),
            "library/core/src/panicking.rs"
        );
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/spin-0.9.9/src/mutex.rs"),
            "spin-0.9.9/src/mutex.rs"
        );
        assert_eq!(short_path("/elsewhere/x.rs"), "/elsewhere/x.rs");
    }

    #[test]
    fn demangling() {
        assert_eq!(
            demangle("_ZN4core9panicking5panic17h0123456789abcdefE"),
            "core::panicking::panic"
        );
        assert_eq!(
            demangle("_RNvNtCs1234_11ktls_kernel5panic12fault_report"),
            "ktls_kernel::panic::fault_report"
        );
        assert_eq!(demangle("syscall_entry"), "syscall_entry");
    }

    /// The kernel this test run boots (built once, or `$KTLS_KERNEL`).
    fn kernel_bytes() -> Vec<u8> {
        let k = crate::build::kernel_path().expect("building the kernel");
        std::fs::read(k).unwrap()
    }

    const FAULT_REPORT: &str = "ktls_kernel::panic::fault_report";

    #[test]
    fn kernel_symbols_round_trip() {
        let bytes = kernel_bytes();
        let sym = Symbolizer::new(&bytes).unwrap();
        let (addr, size) = sym
            .address_of(FAULT_REPORT)
            .expect("fault_report is a symbol");
        assert!(
            addr >= 0xffff_ffff_8000_0000 && size > 4,
            "{addr:#x} {size}"
        );
        assert!(sym.is_code(addr));
        let s = sym.lookup(addr).unwrap();
        assert_eq!((s.name.as_str(), s.offset), (FAULT_REPORT, 0));
        let s = sym.lookup(addr + size - 1).unwrap();
        assert_eq!((s.name.as_str(), s.offset), (FAULT_REPORT, size - 1));
        // A return address just past the function's end (after a call to a function that does
        // not return) still belongs to it.
        let s = sym.lookup_return(addr + size).unwrap();
        assert_eq!((s.name.as_str(), s.offset), (FAULT_REPORT, size));
        // Every symbol the table names is found at its own address (under its own name or an
        // alias at the same address).
        for s in sym.symbols.iter().filter(|s| s.size > 0) {
            let found = sym.lookup(s.addr).unwrap();
            assert_eq!(found.offset, 0, "{}", s.name);
        }
        // The release kernel has line tables: the function is in kernel/src/panic.rs.
        let frames = sym.source_frames(addr);
        let outer = frames.last().expect("DWARF frames for fault_report");
        assert_eq!(outer.function.as_deref(), Some(FAULT_REPORT));
        let loc = outer.location.as_deref().unwrap();
        assert!(loc.starts_with("kernel/src/panic.rs:"), "{loc}");
        // Data and addresses outside the kernel are not code.
        assert!(sym.lookup(0).is_none());
        assert!(sym.lookup(0xffff_ffff_8000_0000).is_none());
        assert!(sym.lookup(u64::MAX).is_none());
    }

    #[test]
    fn a_fake_report_is_annotated() {
        let bytes = kernel_bytes();
        let sym = Symbolizer::new(&bytes).unwrap();
        let (fault, _) = sym.address_of(FAULT_REPORT).unwrap();
        let (kmain, _) = sym.address_of("kmain").unwrap();
        let report = format!(
            "kernel fault: page fault (vector 14) at rip {:#018x}, error code 0x2\n\
             \x20 faulting address (cr2) 0x0000000000000000\n\
             backtrace:\n\
             \x20 #0 {:#018x}\n\
             \x20 #1 {:#018x}\n\
             \x20 #2 0x0000000000401000\n",
            fault + 3,
            fault + 3,
            kmain + 0x10
        );
        let out = annotate(&report, &sym);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], report.lines().next().unwrap());
        assert!(
            lines[1].starts_with(&format!("    {:#018x} = {FAULT_REPORT}+0x3", fault + 3)),
            "{out}"
        );
        assert_eq!(lines[2], "  faulting address (cr2) 0x0000000000000000");
        assert_eq!(lines[3], "backtrace:");
        assert!(
            lines[4].starts_with(&format!("  #0 {:#018x} {FAULT_REPORT}+0x3", fault + 3)),
            "{out}"
        );
        assert!(out.contains("kernel/src/panic.rs:"), "{out}");
        let l1 = lines.iter().find(|l| l.starts_with("  #1 ")).unwrap();
        assert!(
            l1.starts_with(&format!("  #1 {:#018x} kmain+0x10", kmain + 0x10)),
            "{out}"
        );
        assert_eq!(*lines.last().unwrap(), "  #2 0x0000000000401000");
        // Annotating only adds: the original lines are all there, in order.
        let mut it = lines.iter();
        for l in report.lines() {
            assert!(it.any(|o| o.starts_with(l)), "{l} lost in\n{out}");
        }
        assert!(out.ends_with('\n'));
    }
}
