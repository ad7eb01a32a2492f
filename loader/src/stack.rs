//! The initial user stack: x86_64 psABI figure 3.9, laid out as Linux's create_elf_tables.
//!
//! From `top` downwards (higher addresses first):
//!
//! ```text
//! top - 8        8-byte NULL end marker
//!                execfn string (AT_EXECFN points here)
//! env_start..    environment strings, envp[0] lowest
//! arg_start..    argument strings, argv[0] lowest
//!                (round down to 16)
//!                platform string (AT_PLATFORM), if any
//!                16 random bytes (AT_RANDOM)
//!                (padding, so that sp ends up 16-byte aligned)
//!                auxv pairs, AT_NULL last
//!                NULL, envp pointers
//!                NULL, argv pointers
//! sp ->          argc
//! ```
//!
//! Linux additionally moves the string block's bottom down by a random amount below 8 KiB
//! (arch_align_stack); this builder does not randomize, the caller may lower `top` instead.

use alloc::vec::Vec;

use ktls_abi::auxv::{
    AT_BASE, AT_CLKTCK, AT_EGID, AT_ENTRY, AT_EUID, AT_EXECFN, AT_FLAGS, AT_GID, AT_HWCAP,
    AT_HWCAP2, AT_MINSIGSTKSZ, AT_NULL, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM,
    AT_RANDOM, AT_SECURE, AT_SYSINFO_EHDR, AT_UID,
};
use ktls_abi::mm::{MAX_ARG_STRINGS, MAX_ARG_STRLEN, MMAP_MIN_ADDR, STK_LIM};
use ktls_abi::USER_SPACE_END;

use crate::LoadError;

/// The limit on argument + environment size that Linux derives from the default 8 MiB
/// RLIMIT_STACK: a quarter of it, 2 MiB (bprm_stack_limits).
pub const DEFAULT_ARG_LIMIT: u64 = STK_LIM / 4;

const WORD: u64 = 8;

/// What goes on a new program's stack.
#[derive(Debug, Clone, Copy)]
pub struct StackArgs<'a> {
    /// The argument strings, without their terminating NULs (which the builder adds).
    pub argv: &'a [&'a [u8]],
    /// The environment strings (`KEY=value`), without terminating NULs.
    pub envp: &'a [&'a [u8]],
    /// The path execve was called with (AT_EXECFN).
    pub execfn: &'a [u8],
    /// The platform string (AT_PLATFORM, `"x86_64"`); empty means none: then neither the
    /// string nor AT_PLATFORM is placed.
    pub platform: &'a [u8],
    /// The 16 bytes AT_RANDOM points at.
    pub random: [u8; 16],
    /// The auxiliary vector without AT_RANDOM, AT_EXECFN, AT_PLATFORM and AT_NULL, normally
    /// from [`auxv_entries`]. See [`build_stack`] for where the builder inserts its entries.
    pub auxv: &'a [(u64, u64)],
}

/// A built stack: `bytes` go to user memory `[sp, sp + bytes.len())`, which ends at `top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImage {
    /// The initial RSP: points at argc, 16-byte aligned.
    pub sp: u64,
    pub bytes: Vec<u8>,
    /// Where the argument strings start (Linux's mm->arg_start, for /proc/PID/cmdline).
    pub arg_start: u64,
    /// One past the last argument string's NUL (mm->arg_end); also env_start.
    pub arg_end: u64,
    /// Where the environment strings start (mm->env_start).
    pub env_start: u64,
    /// One past the last environment string's NUL (mm->env_end).
    pub env_end: u64,
}

/// The values of the auxiliary vector that the kernel decides (see [`auxv_entries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuxvParams {
    /// The vDSO's ELF header address, if a vDSO is mapped.
    pub sysinfo_ehdr: Option<u64>,
    pub minsigstksz: u64,
    pub hwcap: u64,
    pub pagesz: u64,
    pub clktck: u64,
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// The interpreter's load address: 0 for the static programs ktls runs.
    pub base: u64,
    pub flags: u64,
    pub entry: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub secure: bool,
    pub hwcap2: u64,
    /// Entries that follow everything else, in order (AT_RSEQ_FEATURE_SIZE, AT_RSEQ_ALIGN,
    /// ktls keys). Must not contain AT_NULL, AT_RANDOM, AT_EXECFN or AT_PLATFORM.
    pub extra: Vec<(u64, u64)>,
}

/// The kernel-decided auxiliary vector entries in Linux 6.x's order:
///
/// AT_SYSINFO_EHDR (if any), AT_MINSIGSTKSZ, AT_HWCAP, AT_PAGESZ, AT_CLKTCK, AT_PHDR,
/// AT_PHENT, AT_PHNUM, AT_BASE, AT_FLAGS, AT_ENTRY, AT_UID, AT_EUID, AT_GID, AT_EGID,
/// AT_SECURE, AT_HWCAP2, then `extra`.
///
/// [`build_stack`] completes it to create_elf_tables' order by inserting AT_RANDOM between
/// AT_SECURE and AT_HWCAP2, and AT_EXECFN and AT_PLATFORM right after AT_HWCAP2 (so before
/// `extra`), then AT_NULL at the end.
pub fn auxv_entries(p: &AuxvParams) -> Vec<(u64, u64)> {
    let mut v = Vec::with_capacity(17 + p.extra.len());
    if let Some(ehdr) = p.sysinfo_ehdr {
        v.push((AT_SYSINFO_EHDR, ehdr));
    }
    v.extend_from_slice(&[
        (AT_MINSIGSTKSZ, p.minsigstksz),
        (AT_HWCAP, p.hwcap),
        (AT_PAGESZ, p.pagesz),
        (AT_CLKTCK, p.clktck),
        (AT_PHDR, p.phdr),
        (AT_PHENT, p.phent),
        (AT_PHNUM, p.phnum),
        (AT_BASE, p.base),
        (AT_FLAGS, p.flags),
        (AT_ENTRY, p.entry),
        (AT_UID, p.uid),
        (AT_EUID, p.euid),
        (AT_GID, p.gid),
        (AT_EGID, p.egid),
        (AT_SECURE, u64::from(p.secure)),
        (AT_HWCAP2, p.hwcap2),
    ]);
    v.extend_from_slice(&p.extra);
    v
}

/// [`build_stack_with_limit`] with Linux's default limit, [`DEFAULT_ARG_LIMIT`].
pub fn build_stack(top: u64, args: &StackArgs) -> Result<StackImage, LoadError> {
    build_stack_with_limit(top, args, DEFAULT_ARG_LIMIT)
}

/// Builds the initial stack of a program whose stack ends at `top`.
///
/// `top` must be 16-byte aligned and at most USER_SPACE_END. The auxiliary vector is
/// `args.auxv` with the builder's entries inserted: AT_RANDOM right after AT_SECURE (at the
/// end if there is no AT_SECURE), then AT_EXECFN and AT_PLATFORM (if `platform` is not empty)
/// right after the AT_HWCAP2 that follows it, if any; then AT_NULL. With the output of
/// [`auxv_entries`] that is exactly Linux's order.
///
/// Limits, as Linux's execve: every argument, environment string and the execfn is at most
/// MAX_ARG_STRLEN bytes with its NUL; all of them together, plus 8 bytes per argv/envp
/// pointer (counting at least one argument), must not exceed `limit`. Both give E2BIG errors.
pub fn build_stack_with_limit(
    top: u64,
    args: &StackArgs,
    limit: u64,
) -> Result<StackImage, LoadError> {
    let bad_top = |reason| LoadError::BadStackTop { top, reason };
    if top % 16 != 0 || top > USER_SPACE_END {
        return Err(bad_top("not 16-byte aligned or above user space"));
    }
    check_sizes(args, limit)?;
    for &(key, _) in args.auxv {
        if matches!(key, AT_NULL | AT_RANDOM | AT_EXECFN | AT_PLATFORM) {
            return Err(LoadError::BadAuxv { key });
        }
    }

    // The sizes are bounded by `limit` or by the caller's memory, so the sums below fit in
    // u64; subtracting them from `top` is what may fail.
    let nul_len = |s: &[u8]| s.len() as u64 + 1;
    let fits = |v: Option<u64>| {
        v.filter(|&a| a >= MMAP_MIN_ADDR)
            .ok_or(bad_top("the stack image does not fit below it"))
    };
    let execfn_addr = fits(top.checked_sub(WORD + nul_len(args.execfn)))?;
    let env_end = execfn_addr;
    let env_start = fits(env_end.checked_sub(args.envp.iter().map(|s| nul_len(s)).sum()))?;
    let arg_end = env_start;
    let arg_start = fits(arg_end.checked_sub(args.argv.iter().map(|s| nul_len(s)).sum()))?;
    let mut p = arg_start & !15;
    let platform_addr = if args.platform.is_empty() {
        None
    } else {
        p = fits(p.checked_sub(nul_len(args.platform)))?;
        Some(p)
    };
    let random_addr = fits(p.checked_sub(16))?;
    let auxv = full_auxv(args.auxv, random_addr, execfn_addr, platform_addr);
    let aux_words = (auxv.len() as u64 + 1) * 2; // + AT_NULL
    let items = (args.argv.len() as u64 + 1) + (args.envp.len() as u64 + 1) + 1;
    let sp = fits(
        random_addr
            .checked_sub((aux_words + items) * WORD)
            .map(|a| a & !15),
    )?;

    let len = usize::try_from(top - sp).map_err(|_| bad_top("the stack image is too large"))?;
    let mut img = Writer {
        base: sp,
        bytes: alloc::vec![0; len],
    };
    // Strings.
    img.put(execfn_addr, args.execfn);
    let mut string_addrs = Vec::with_capacity(args.argv.len() + args.envp.len());
    let mut at = arg_start;
    for s in args.argv.iter().chain(args.envp.iter()) {
        string_addrs.push(at);
        img.put(at, s);
        at += nul_len(s);
    }
    if let Some(a) = platform_addr {
        img.put(a, args.platform);
    }
    img.put(random_addr, &args.random);
    // Vectors.
    let mut at = sp;
    let mut word = |img: &mut Writer, v: u64| {
        img.put(at, &v.to_le_bytes());
        at += WORD;
    };
    word(&mut img, args.argv.len() as u64);
    let (arg_ptrs, env_ptrs) = string_addrs.split_at(args.argv.len());
    for &a in arg_ptrs {
        word(&mut img, a);
    }
    word(&mut img, 0);
    for &a in env_ptrs {
        word(&mut img, a);
    }
    word(&mut img, 0);
    for &(k, v) in auxv.iter().chain([(AT_NULL, 0)].iter()) {
        word(&mut img, k);
        word(&mut img, v);
    }

    Ok(StackImage {
        sp,
        bytes: img.bytes,
        arg_start,
        arg_end,
        env_start,
        env_end,
    })
}

/// MAX_ARG_STRLEN, NULs and the total limit (Linux's bprm_stack_limits and copy_strings).
fn check_sizes(args: &StackArgs, limit: u64) -> Result<(), LoadError> {
    let lists: [(&'static str, &[&[u8]]); 4] = [
        ("argument", args.argv),
        ("environment string", args.envp),
        ("execfn", core::slice::from_ref(&args.execfn)),
        ("platform string", core::slice::from_ref(&args.platform)),
    ];
    let mut strings: u64 = 0;
    for (what, list) in lists {
        for (index, s) in list.iter().enumerate() {
            if s.contains(&0) {
                return Err(LoadError::NulInString { what, index });
            }
            if s.len() >= MAX_ARG_STRLEN {
                return Err(LoadError::ArgTooLong { what, len: s.len() });
            }
            if what != "platform string" {
                strings = strings.saturating_add(s.len() as u64 + 1);
            }
        }
    }
    let (argc, envc) = (args.argv.len(), args.envp.len());
    let ptrs = (argc.max(1) as u64)
        .saturating_add(envc as u64)
        .saturating_mul(WORD);
    let size = strings.saturating_add(ptrs);
    if argc > MAX_ARG_STRINGS || envc > MAX_ARG_STRINGS || size > limit {
        return Err(LoadError::ArgsTooLarge { size, limit });
    }
    Ok(())
}

/// `given` with AT_RANDOM, AT_EXECFN and AT_PLATFORM inserted (see [`build_stack`]).
fn full_auxv(
    given: &[(u64, u64)],
    random: u64,
    execfn: u64,
    platform: Option<u64>,
) -> Vec<(u64, u64)> {
    let after_secure = given
        .iter()
        .position(|e| e.0 == AT_SECURE)
        .map_or(given.len(), |i| i + 1);
    let after_hwcap2 = match given.get(after_secure) {
        Some(e) if e.0 == AT_HWCAP2 => after_secure + 1,
        _ => after_secure,
    };
    let mut v = Vec::with_capacity(given.len() + 3);
    v.extend_from_slice(&given[..after_secure]);
    v.push((AT_RANDOM, random));
    v.extend_from_slice(&given[after_secure..after_hwcap2]);
    v.push((AT_EXECFN, execfn));
    if let Some(p) = platform {
        v.push((AT_PLATFORM, p));
    }
    v.extend_from_slice(&given[after_hwcap2..]);
    v
}

/// The image under construction. Every address written is inside it by construction of the
/// layout above.
struct Writer {
    base: u64,
    bytes: Vec<u8>,
}

impl Writer {
    fn put(&mut self, addr: u64, data: &[u8]) {
        let off = (addr - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }
}

/// An initial stack decoded by [`parse_stack`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedStack {
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// Where each argv string starts.
    pub argv_addrs: Vec<u64>,
    /// Where each envp string starts.
    pub envp_addrs: Vec<u64>,
    /// The auxiliary vector in order, without the final AT_NULL.
    pub auxv: Vec<(u64, u64)>,
    /// The 16 bytes at AT_RANDOM, if present.
    pub random: Option<[u8; 16]>,
    /// The string at AT_EXECFN, if present.
    pub execfn: Option<Vec<u8>>,
    /// The string at AT_PLATFORM, if present.
    pub platform: Option<Vec<u8>>,
}

impl ParsedStack {
    /// The value of the first auxv entry with `key`.
    pub fn aux(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|e| e.0 == key).map(|e| e.1)
    }
}

/// Decodes an initial stack: `bytes` is user memory `[sp, top)`.
///
/// Checks that sp is 16-byte aligned, that argv, envp and auxv are terminated inside the
/// image, and that every string pointer (and AT_RANDOM, AT_EXECFN, AT_PLATFORM) points at a
/// NUL-terminated string inside it. Never panics.
pub fn parse_stack(bytes: &[u8], sp: u64, top: u64) -> Result<ParsedStack, LoadError> {
    let bad = |reason| LoadError::BadStack { reason };
    if top.checked_sub(sp) != Some(bytes.len() as u64) {
        return Err(bad("the image length is not top - sp"));
    }
    if sp % 16 != 0 {
        return Err(bad("sp is not 16-byte aligned"));
    }
    let view = View { bytes, base: sp };
    let mut out = ParsedStack::default();
    let argc = view.word(sp).ok_or(bad("no argc"))?;
    if argc > bytes.len() as u64 / WORD {
        return Err(bad("argc is larger than the image"));
    }
    let mut at = sp.saturating_add(WORD);
    for _ in 0..argc {
        let ptr = view.word(at).ok_or(bad("argv runs past the image"))?;
        let s = view
            .cstr(ptr)
            .ok_or(bad("an argv pointer is not a string"))?;
        out.argv_addrs.push(ptr);
        out.argv.push(s.to_vec());
        at = at.saturating_add(WORD);
    }
    if view.word(at) != Some(0) {
        return Err(bad("argv is not NULL-terminated"));
    }
    at = at.saturating_add(WORD);
    loop {
        let ptr = view.word(at).ok_or(bad("envp is not NULL-terminated"))?;
        at = at.saturating_add(WORD);
        if ptr == 0 {
            break;
        }
        let s = view
            .cstr(ptr)
            .ok_or(bad("an envp pointer is not a string"))?;
        out.envp_addrs.push(ptr);
        out.envp.push(s.to_vec());
    }
    loop {
        let key = view.word(at).ok_or(bad("auxv has no AT_NULL"))?;
        let val = view
            .word(at.saturating_add(WORD))
            .ok_or(bad("auxv has no AT_NULL"))?;
        at = at.saturating_add(2 * WORD);
        if key == AT_NULL {
            break;
        }
        out.auxv.push((key, val));
    }
    if let Some(a) = out.aux(AT_RANDOM) {
        let r = view
            .slice(a, 16)
            .ok_or(bad("AT_RANDOM points outside the image"))?;
        let mut random = [0; 16];
        random.copy_from_slice(r);
        out.random = Some(random);
    }
    if let Some(a) = out.aux(AT_EXECFN) {
        let s = view.cstr(a).ok_or(bad("AT_EXECFN is not a string"))?;
        out.execfn = Some(s.to_vec());
    }
    if let Some(a) = out.aux(AT_PLATFORM) {
        let s = view.cstr(a).ok_or(bad("AT_PLATFORM is not a string"))?;
        out.platform = Some(s.to_vec());
    }
    Ok(out)
}

/// Bounds-checked reads of user memory `[base, base + bytes.len())`.
struct View<'a> {
    bytes: &'a [u8],
    base: u64,
}

impl View<'_> {
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        self.bytes.get(off..off.checked_add(len)?)
    }

    fn word(&self, addr: u64) -> Option<u64> {
        let b = self.slice(addr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    fn cstr(&self, addr: u64) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let rest = self.bytes.get(off..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..n])
    }
}
