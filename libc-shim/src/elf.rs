//! A bounds-checked reader of the parts of a loaded ELF image the shim needs: program headers
//! (PT_TLS of the program, PT_LOAD/PT_DYNAMIC of the vDSO) and dynamic symbol lookup by name
//! and version through DT_GNU_HASH or DT_HASH, the way Linux's `tools/testing/selftests/vDSO/
//! parse_vdso.c` does. Works on byte slices only; every out-of-range read is `None`.

pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_PHDR: u32 = 6;
pub const PT_TLS: u32 = 7;

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;

const STT_FUNC: u8 = 2;
const STT_NOTYPE: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_UNDEF: u16 = 0;
const VER_FLG_BASE: u16 = 1;
const SYM_SIZE: usize = 24;
const PHDR_SIZE: usize = 56;
const EHDR_SIZE: usize = 64;

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(d: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// One program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// The `i`th program header in a table of `entsize`-byte entries.
pub fn phdr(table: &[u8], entsize: usize, i: usize) -> Option<Phdr> {
    if entsize < PHDR_SIZE {
        return None;
    }
    let o = i.checked_mul(entsize)?;
    Some(Phdr {
        p_type: u32_at(table, o)?,
        offset: u64_at(table, o + 8)?,
        vaddr: u64_at(table, o + 16)?,
        filesz: u64_at(table, o + 32)?,
        memsz: u64_at(table, o + 40)?,
        align: u64_at(table, o + 48)?,
    })
}

/// The program headers of the ELF image whose header starts `head`.
fn phdrs(head: &[u8]) -> Option<impl Iterator<Item = Phdr> + '_> {
    if head.get(..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let phoff = usize::try_from(u64_at(head, 32)?).ok()?;
    let entsize = u16_at(head, 54)? as usize;
    let num = u16_at(head, 56)? as usize;
    let table = head.get(phoff..phoff.checked_add(entsize.checked_mul(num)?)?)?;
    if entsize < PHDR_SIZE {
        return None;
    }
    Some((0..num).filter_map(move |i| phdr(table, entsize, i)))
}

/// How many bytes of a loaded image are mapped, from the start of its ELF header: the end of
/// its last PT_LOAD in file-offset terms. `head` needs the ELF header and the program headers
/// (for the vDSO, its first page).
pub fn mapped_len(head: &[u8]) -> Option<usize> {
    if head.len() < EHDR_SIZE {
        return None;
    }
    let end = phdrs(head)?
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.offset.saturating_add(p.memsz.min(p.filesz)))
        .max()?;
    usize::try_from(end).ok()
}

/// Which hash table a lookup walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Gnu,
    Sysv,
}

/// A loaded shared object (the vDSO) mapped as one contiguous image starting at its ELF
/// header, with its dynamic tables located.
#[derive(Clone, Copy, Debug)]
pub struct Dso<'a> {
    data: &'a [u8],
    /// PT_LOAD segments: (vaddr, offset, filesz), up to four.
    loads: [(u64, u64, u64); 4],
    nloads: usize,
    symtab: usize,
    strtab: usize,
    strsz: usize,
    gnu_hash: Option<usize>,
    hash: Option<usize>,
    versym: Option<usize>,
    verdef: Option<usize>,
}

/// The classic SysV ELF hash (DT_HASH, and `vd_hash` of version definitions).
pub fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash (DT_GNU_HASH): djb2.
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

impl<'a> Dso<'a> {
    /// Locates the dynamic tables of the image `data` (mapped from its ELF header on).
    pub fn parse(data: &'a [u8]) -> Option<Dso<'a>> {
        let mut d = Dso {
            data,
            loads: [(0, 0, 0); 4],
            nloads: 0,
            symtab: 0,
            strtab: 0,
            strsz: 0,
            gnu_hash: None,
            hash: None,
            versym: None,
            verdef: None,
        };
        let mut dynamic = None;
        for p in phdrs(data)? {
            match p.p_type {
                PT_LOAD if d.nloads < d.loads.len() => {
                    d.loads[d.nloads] = (p.vaddr, p.offset, p.filesz);
                    d.nloads += 1;
                }
                PT_DYNAMIC => dynamic = Some(p),
                _ => {}
            }
        }
        let dynamic = dynamic?;
        let dyn_off = usize::try_from(dynamic.offset).ok()?;
        let (mut symtab, mut strtab) = (None, None);
        for i in 0..(dynamic.filesz / 16) as usize {
            let o = dyn_off.checked_add(i * 16)?;
            let tag = u64_at(data, o)?;
            let val = u64_at(data, o + 8)?;
            match tag {
                DT_NULL => break,
                DT_SYMTAB => symtab = Some(d.offset_of(val)?),
                DT_STRTAB => strtab = Some(d.offset_of(val)?),
                DT_STRSZ => d.strsz = usize::try_from(val).ok()?,
                DT_HASH => d.hash = d.offset_of(val),
                DT_GNU_HASH => d.gnu_hash = d.offset_of(val),
                DT_VERSYM => d.versym = d.offset_of(val),
                DT_VERDEF => d.verdef = d.offset_of(val),
                _ => {}
            }
        }
        d.symtab = symtab?;
        d.strtab = strtab?;
        if d.hash.is_none() && d.gnu_hash.is_none() {
            return None;
        }
        Some(d)
    }

    /// The image offset of virtual address `vaddr` (as linked), if a PT_LOAD maps it.
    pub fn offset_of(&self, vaddr: u64) -> Option<usize> {
        self.loads[..self.nloads]
            .iter()
            .find(|(v, _, sz)| vaddr >= *v && vaddr - *v < *sz)
            .and_then(|(v, o, _)| usize::try_from(vaddr - v + o).ok())
    }

    pub fn has(&self, kind: HashKind) -> bool {
        match kind {
            HashKind::Gnu => self.gnu_hash.is_some(),
            HashKind::Sysv => self.hash.is_some(),
        }
    }

    /// The NUL-terminated string at `off` in the string table.
    fn str_at(&self, off: u32) -> Option<&'a [u8]> {
        let off = off as usize;
        if off >= self.strsz {
            return None;
        }
        let s = self.data.get(self.strtab + off..self.strtab + self.strsz)?;
        let len = s.iter().position(|&c| c == 0)?;
        Some(&s[..len])
    }

    /// Whether symbol `i` is a defined global or weak function called `name`, of version
    /// `version` (when the object has version information).
    fn matches(&self, i: usize, name: &[u8], version: &[u8]) -> Option<u64> {
        let o = self.symtab.checked_add(i.checked_mul(SYM_SIZE)?)?;
        let st_name = u32_at(self.data, o)?;
        let info = *self.data.get(o + 4)?;
        let shndx = u16_at(self.data, o + 6)?;
        let value = u64_at(self.data, o + 8)?;
        let (bind, ty) = (info >> 4, info & 0xf);
        if (ty != STT_FUNC && ty != STT_NOTYPE)
            || (bind != STB_GLOBAL && bind != STB_WEAK)
            || shndx == SHN_UNDEF
            || self.str_at(st_name)? != name
            || !self.version_matches(i, version)
        {
            return None;
        }
        Some(value)
    }

    /// parse_vdso.c's vdso_match_version: the symbol's version definition (by its versym
    /// index) must not be the base definition and must be named `version`. Without version
    /// tables every symbol matches.
    fn version_matches(&self, i: usize, version: &[u8]) -> bool {
        let (Some(versym), Some(verdef)) = (self.versym, self.verdef) else {
            return true;
        };
        let Some(ndx) = u16_at(self.data, versym + 2 * i) else {
            return false;
        };
        let ndx = ndx & 0x7fff;
        let mut o = verdef;
        for _ in 0..256 {
            let (Some(flags), Some(vndx), Some(hash), Some(aux), Some(next)) = (
                u16_at(self.data, o + 2),
                u16_at(self.data, o + 4),
                u32_at(self.data, o + 8),
                u32_at(self.data, o + 12),
                u32_at(self.data, o + 16),
            ) else {
                return false;
            };
            if flags & VER_FLG_BASE == 0 && vndx == ndx {
                let name = u32_at(self.data, o + aux as usize).and_then(|n| self.str_at(n));
                return hash == elf_hash(version) && name == Some(version);
            }
            if next == 0 {
                return false;
            }
            o += next as usize;
        }
        false
    }

    /// Looks `name` of `version` up through the preferred hash table (GNU if present); returns
    /// the symbol's offset in the image.
    pub fn lookup(&self, name: &[u8], version: &[u8]) -> Option<usize> {
        let kind = if self.gnu_hash.is_some() {
            HashKind::Gnu
        } else {
            HashKind::Sysv
        };
        self.lookup_with(kind, name, version)
    }

    /// Looks `name` of `version` up through one hash table.
    pub fn lookup_with(&self, kind: HashKind, name: &[u8], version: &[u8]) -> Option<usize> {
        let value = match kind {
            HashKind::Gnu => self.lookup_gnu(self.gnu_hash?, name, version),
            HashKind::Sysv => self.lookup_sysv(self.hash?, name, version),
        }?;
        self.offset_of(value)
    }

    fn lookup_sysv(&self, t: usize, name: &[u8], version: &[u8]) -> Option<u64> {
        let nbucket = u32_at(self.data, t)? as usize;
        let nchain = u32_at(self.data, t + 4)? as usize;
        if nbucket == 0 {
            return None;
        }
        let bucket = t + 8;
        let chain = bucket + 4 * nbucket;
        let mut i = u32_at(self.data, bucket + 4 * (elf_hash(name) as usize % nbucket))? as usize;
        let mut steps = 0;
        while i != 0 && i < nchain && steps <= nchain {
            if let Some(v) = self.matches(i, name, version) {
                return Some(v);
            }
            i = u32_at(self.data, chain + 4 * i)? as usize;
            steps += 1;
        }
        None
    }

    fn lookup_gnu(&self, t: usize, name: &[u8], version: &[u8]) -> Option<u64> {
        let nbuckets = u32_at(self.data, t)? as usize;
        let symoffset = u32_at(self.data, t + 4)? as usize;
        let bloom_size = u32_at(self.data, t + 8)? as usize;
        let bloom_shift = u32_at(self.data, t + 12)?;
        if nbuckets == 0 || bloom_size == 0 {
            return None;
        }
        let h = gnu_hash(name);
        let bloom = t + 16;
        let word = u64_at(self.data, bloom + 8 * ((h as usize / 64) % bloom_size))?;
        let mask = (1u64 << (h % 64)) | (1u64 << ((h >> bloom_shift) % 64));
        if word & mask != mask {
            return None;
        }
        let buckets = bloom + 8 * bloom_size;
        let chains = buckets + 4 * nbuckets;
        let mut i = u32_at(self.data, buckets + 4 * (h as usize % nbuckets))? as usize;
        if i < symoffset {
            return None;
        }
        loop {
            let h2 = u32_at(self.data, chains + 4 * (i - symoffset))?;
            if h | 1 == h2 | 1 {
                if let Some(v) = self.matches(i, name, version) {
                    return Some(v);
                }
            }
            if h2 & 1 != 0 {
                return None;
            }
            i += 1;
        }
    }
}
