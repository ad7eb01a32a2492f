//! cpio "newc" archives (magic `070701`; the `070702` "crc" variant is read too).
//!
//! * [`Reader`] (always available, `no_std`, zero-copy): iterates over the entries of an
//!   in-memory archive, such as the initramfs the kernel finds in memory at boot. Every entry
//!   borrows its name and data from the archive. Malformed input yields an [`Error`] (after which
//!   the iterator ends), never a panic or an out-of-bounds slice.
//! * [`Writer`] (feature `std`): writes an archive to any [`std::io::Write`]; the runner uses it to
//!   pack the guest's root tree.
//!
//! # The format
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hexadecimal fields:
//! ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
//! namesize, check), then the name with its terminating NUL (`namesize` bytes), padded with
//! zeros so that header + name is a multiple of 4 bytes, then `filesize` bytes of data, padded
//! to a multiple of 4 bytes. The archive ends with an entry named `TRAILER!!!`. A symbolic
//! link's data is its target. In `070702` archives, `check` is the 32-bit sum of the data bytes.
//!
//! Hard links: an archive may store several names with the same `ino` and the data on the last
//! one only. This reader does not join them; each name is an entry of its own with the data
//! (possibly empty) stored with it.
#![cfg_attr(not(any(feature = "std", test)), no_std)]

#[cfg(feature = "std")]
mod writer;
#[cfg(feature = "std")]
pub use writer::Writer;

use core::fmt;

/// Magic of the "newc" format.
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// Magic of the "crc" variant of newc (same layout, `check` is the sum of the data bytes).
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Size of an entry header.
pub const HEADER_LEN: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// File-type bits of `mode` (same values as `S_IFMT` and friends in Linux).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// A header field, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Ino,
    Mode,
    Uid,
    Gid,
    Nlink,
    Mtime,
    FileSize,
    DevMajor,
    DevMinor,
    RdevMajor,
    RdevMinor,
    NameSize,
    Check,
}

const FIELDS: [Field; 13] = [
    Field::Ino,
    Field::Mode,
    Field::Uid,
    Field::Gid,
    Field::Nlink,
    Field::Mtime,
    Field::FileSize,
    Field::DevMajor,
    Field::DevMinor,
    Field::RdevMajor,
    Field::RdevMinor,
    Field::NameSize,
    Field::Check,
];

impl Field {
    /// The field's name as in the cpio documentation (`c_namesize`...).
    pub fn name(self) -> &'static str {
        match self {
            Field::Ino => "c_ino",
            Field::Mode => "c_mode",
            Field::Uid => "c_uid",
            Field::Gid => "c_gid",
            Field::Nlink => "c_nlink",
            Field::Mtime => "c_mtime",
            Field::FileSize => "c_filesize",
            Field::DevMajor => "c_devmajor",
            Field::DevMinor => "c_devminor",
            Field::RdevMajor => "c_rdevmajor",
            Field::RdevMinor => "c_rdevminor",
            Field::NameSize => "c_namesize",
            Field::Check => "c_check",
        }
    }
}

/// What is wrong with an archive. `offset` is the byte offset in the archive of the header of
/// the entry where the problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The header does not start with `070701` (or `070702`).
    BadMagic { offset: usize },
    /// A header field is not 8 hexadecimal digits.
    BadHex { offset: usize, field: Field },
    /// The archive ends inside this entry's header, name or data.
    Truncated { offset: usize },
    /// `c_namesize` is 0: there is not even room for the terminating NUL.
    EmptyName { offset: usize },
    /// The name is not terminated by a NUL byte at `c_namesize - 1`, or contains a NUL before.
    NameNotTerminated { offset: usize },
    /// A `070702` entry whose data does not sum to its `c_check`.
    BadChecksum { offset: usize },
    /// The archive ends (cleanly, between entries) without a `TRAILER!!!` entry.
    MissingTrailer { offset: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadMagic { offset } => write!(
                f,
                "cpio: bad magic at offset {offset} (not a newc archive: expected \"070701\")"
            ),
            Error::BadHex { offset, field } => write!(
                f,
                "cpio: header at offset {offset}: {} is not 8 hexadecimal digits",
                field.name()
            ),
            Error::Truncated { offset } => {
                write!(f, "cpio: archive truncated in the entry at offset {offset}")
            }
            Error::EmptyName { offset } => {
                write!(f, "cpio: entry at offset {offset} has c_namesize 0")
            }
            Error::NameNotTerminated { offset } => write!(
                f,
                "cpio: the name of the entry at offset {offset} is not NUL-terminated"
            ),
            Error::BadChecksum { offset } => {
                write!(f, "cpio: checksum mismatch in the entry at offset {offset}")
            }
            Error::MissingTrailer { offset } => write!(
                f,
                "cpio: archive ends at offset {offset} without a TRAILER!!! entry"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// One archive entry; everything borrowed from the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The path, without its NUL, with leading `./` and `/` and trailing `/` removed; `.` for
    /// the root directory (stored as `.`, `./` or `/`).
    pub name: &'a [u8],
    /// The name exactly as stored (without the NUL).
    pub raw_name: &'a [u8],
    pub ino: u32,
    /// File type and permission bits, as `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// The file's contents (a symbolic link's target); a slice of the archive.
    pub data: &'a [u8],
    /// Offset in the archive of this entry's header.
    pub offset: usize,
}

impl<'a> Entry<'a> {
    /// The file-type bits of `mode` (`S_IFREG`, `S_IFDIR`...).
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    /// The permission bits of `mode` (including setuid, setgid and sticky).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == S_IFREG
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    /// True for the root directory entry (`.`).
    pub fn is_root(&self) -> bool {
        self.name == b"."
    }
}

/// Removes leading `./` and `/` and trailing `/`; the empty result and `.` become `.`.
pub fn normalize_name(raw: &[u8]) -> &[u8] {
    let mut n = raw;
    loop {
        if let Some(rest) = n.strip_prefix(b"./") {
            n = rest;
        } else if let Some(rest) = n.strip_prefix(b"/") {
            n = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = n.strip_suffix(b"/") {
        n = rest;
    }
    if n.is_empty() {
        b"."
    } else {
        n
    }
}

/// An iterator over the entries of an archive: yields `Ok(entry)` for each entry before
/// `TRAILER!!!`, then ends; on malformed input it yields one `Err` and then ends.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    archive: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(archive: &'a [u8]) -> Self {
        Reader {
            archive,
            pos: 0,
            done: false,
        }
    }

    /// Offset of the next header to be read (after the end: where the trailer's padding ends).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn parse_next(&mut self) -> Result<Option<Entry<'a>>, Error> {
        let a = self.archive;
        let offset = self.pos;
        if offset >= a.len() {
            return Err(Error::MissingTrailer { offset });
        }
        let header = a
            .get(
                offset
                    ..offset
                        .checked_add(HEADER_LEN)
                        .ok_or(Error::Truncated { offset })?,
            )
            .ok_or(Error::Truncated { offset })?;
        let magic = &header[..6];
        let crc = if magic == MAGIC_NEWC {
            false
        } else if magic == MAGIC_CRC {
            true
        } else {
            return Err(Error::BadMagic { offset });
        };
        let mut v = [0u32; 13];
        for (i, field) in FIELDS.iter().enumerate() {
            let start = 6 + 8 * i;
            v[i] = parse_hex(&header[start..start + 8]).ok_or(Error::BadHex {
                offset,
                field: *field,
            })?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, dev_major, dev_minor, rdev_major, rdev_minor, namesize, check] =
            v;
        if namesize == 0 {
            return Err(Error::EmptyName { offset });
        }
        let name_start = offset + HEADER_LEN;
        let name_end = name_start
            .checked_add(namesize as usize)
            .ok_or(Error::Truncated { offset })?;
        let name_with_nul = a
            .get(name_start..name_end)
            .ok_or(Error::Truncated { offset })?;
        let (raw_name, nul) = name_with_nul.split_at(name_with_nul.len() - 1);
        if nul != [0] || raw_name.contains(&0) {
            return Err(Error::NameNotTerminated { offset });
        }
        if raw_name == TRAILER {
            // Done; the trailer's data (normally none) and padding are skipped, and may even be
            // missing at the very end of the input.
            let end = align4(name_end)
                .and_then(|d| d.checked_add(filesize as usize))
                .and_then(align4)
                .unwrap_or(usize::MAX);
            self.pos = end.min(a.len());
            return Ok(None);
        }
        let data_start = align4(name_end).ok_or(Error::Truncated { offset })?;
        let data_end = data_start
            .checked_add(filesize as usize)
            .ok_or(Error::Truncated { offset })?;
        // The padding after the name must be there too, even for an empty file.
        let data = a
            .get(data_start..data_end)
            .ok_or(Error::Truncated { offset })?;
        // The padding after the data may be missing only at the very end of the input, which
        // the next call reports as a missing trailer.
        let next = align4(data_end).unwrap_or(usize::MAX).min(a.len());
        if crc {
            let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(b as u32));
            if sum != check {
                return Err(Error::BadChecksum { offset });
            }
        }
        self.pos = next;
        Ok(Some(Entry {
            name: normalize_name(raw_name),
            raw_name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            dev_major,
            dev_minor,
            rdev_major,
            rdev_minor,
            data,
            offset,
        }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.parse_next() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Reader<'_> {}

/// Iterates over the entries of `archive` (same as [`Reader::new`]).
pub fn entries(archive: &[u8]) -> Reader<'_> {
    Reader::new(archive)
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u32;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(parse_hex(b"0000001f"), Some(31));
        assert_eq!(parse_hex(b"FFFFFFFF"), Some(u32::MAX));
        assert_eq!(parse_hex(b"0000001g"), None);
        assert_eq!(parse_hex(b" 0000001"), None);
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name(b"."), b".");
        assert_eq!(normalize_name(b"./"), b".");
        assert_eq!(normalize_name(b"/"), b".");
        assert_eq!(normalize_name(b""), b".");
        assert_eq!(normalize_name(b"./a/b"), b"a/b");
        assert_eq!(normalize_name(b"/a/b/"), b"a/b");
        assert_eq!(normalize_name(b".//./a"), b"a");
        assert_eq!(normalize_name(b".hidden"), b".hidden");
        assert_eq!(normalize_name(b"..x"), b"..x");
    }

    fn header(fields: [u32; 13]) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..6].copy_from_slice(MAGIC_NEWC);
        for (i, f) in fields.iter().enumerate() {
            for j in 0..8 {
                let nib = (f >> (28 - 4 * j)) & 0xf;
                h[6 + 8 * i + j] = b"0123456789abcdef"[nib as usize];
            }
        }
        h
    }

    #[test]
    fn hand_made_archive() {
        // One file "./hi" with "abc", then the trailer; built without the writer.
        let mut a = [0u8; 512];
        let mut n = 0;
        let mut put = |bytes: &[u8], n: &mut usize| {
            a[*n..*n + bytes.len()].copy_from_slice(bytes);
            *n += bytes.len();
        };
        put(
            &header([7, S_IFREG | 0o644, 1, 2, 1, 99, 3, 0, 0, 4, 5, 5, 0]),
            &mut n,
        );
        put(b"./hi\0", &mut n); // 110 + 5 = 115 -> pad to 116
        n = 116;
        put(b"abc", &mut n);
        n = 120;
        put(&header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0]), &mut n);
        put(b"TRAILER!!!\0", &mut n);
        let archive = &a[..n];
        let v: Vec<_> = entries(archive).collect();
        assert_eq!(v.len(), 1);
        let e = v[0].unwrap();
        assert_eq!(e.name, b"hi");
        assert_eq!(e.raw_name, b"./hi");
        assert_eq!(e.data, b"abc");
        assert_eq!((e.ino, e.uid, e.gid, e.mtime), (7, 1, 2, 99));
        assert_eq!((e.rdev_major, e.rdev_minor), (4, 5));
        assert!(e.is_file() && !e.is_dir() && !e.is_symlink());
        assert_eq!(e.permissions(), 0o644);

        // Without the trailer: the entry, then an error.
        let v: Vec<_> = entries(&archive[..120]).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1], Err(Error::MissingTrailer { offset: 120 }));

        // Name without its NUL.
        let mut bad = archive.to_vec();
        bad[114] = b'x';
        assert_eq!(
            entries(&bad).next(),
            Some(Err(Error::NameNotTerminated { offset: 0 }))
        );

        // Bad hex in c_filesize.
        let mut bad = archive.to_vec();
        bad[6 + 8 * 6] = b'z';
        assert_eq!(
            entries(&bad).next(),
            Some(Err(Error::BadHex {
                offset: 0,
                field: Field::FileSize
            }))
        );

        // Bad magic.
        let mut bad = archive.to_vec();
        bad[5] = b'7';
        assert_eq!(
            entries(&bad).next(),
            Some(Err(Error::BadMagic { offset: 0 }))
        );
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let mut a = [0u8; 128];
        a[..HEADER_LEN].copy_from_slice(&header([
            1,
            S_IFREG,
            0,
            0,
            1,
            0,
            u32::MAX,
            0,
            0,
            0,
            0,
            2,
            0,
        ]));
        a[110] = b'a';
        assert_eq!(
            entries(&a).next(),
            Some(Err(Error::Truncated { offset: 0 }))
        );
        a[..HEADER_LEN].copy_from_slice(&header([
            1,
            S_IFREG,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            u32::MAX,
            0,
        ]));
        assert_eq!(
            entries(&a).next(),
            Some(Err(Error::Truncated { offset: 0 }))
        );
        a[..HEADER_LEN].copy_from_slice(&header([1, S_IFREG, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            entries(&a).next(),
            Some(Err(Error::EmptyName { offset: 0 }))
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(
            entries(&[]).collect::<Vec<_>>(),
            vec![Err(Error::MissingTrailer { offset: 0 })]
        );
    }
}
