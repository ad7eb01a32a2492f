//! Files: open flags, *at() flags, fcntl, struct stat, struct statx, dirents, iovec.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const O_ACCMODE: u64 = 0o3;
pub const O_RDONLY: u64 = 0o0;
pub const O_WRONLY: u64 = 0o1;
pub const O_RDWR: u64 = 0o2;
pub const O_CREAT: u64 = 0o100;
pub const O_EXCL: u64 = 0o200;
pub const O_NOCTTY: u64 = 0o400;
pub const O_TRUNC: u64 = 0o1000;
pub const O_APPEND: u64 = 0o2000;
pub const O_NONBLOCK: u64 = 0o4000;
pub const O_DSYNC: u64 = 0o10000;
pub const O_DIRECT: u64 = 0o40000;
pub const O_LARGEFILE: u64 = 0o100000;
pub const O_DIRECTORY: u64 = 0o200000;
pub const O_NOFOLLOW: u64 = 0o400000;
pub const O_NOATIME: u64 = 0o1000000;
pub const O_CLOEXEC: u64 = 0o2000000;
pub const O_SYNC: u64 = 0o4010000;
pub const O_PATH: u64 = 0o10000000;
pub const O_TMPFILE: u64 = 0o20200000;

pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
pub const AT_EACCESS: u64 = 0x200;
pub const AT_REMOVEDIR: u64 = 0x200;
pub const AT_SYMLINK_FOLLOW: u64 = 0x400;
pub const AT_NO_AUTOMOUNT: u64 = 0x800;
pub const AT_EMPTY_PATH: u64 = 0x1000;
pub const AT_STATX_SYNC_TYPE: u64 = 0x6000;

pub const F_OK: u64 = 0;
pub const X_OK: u64 = 1;
pub const W_OK: u64 = 2;
pub const R_OK: u64 = 4;

pub const SEEK_SET: u64 = 0;
pub const SEEK_CUR: u64 = 1;
pub const SEEK_END: u64 = 2;
pub const SEEK_DATA: u64 = 3;
pub const SEEK_HOLE: u64 = 4;

pub const F_DUPFD: u64 = 0;
pub const F_GETFD: u64 = 1;
pub const F_SETFD: u64 = 2;
pub const F_GETFL: u64 = 3;
pub const F_SETFL: u64 = 4;
pub const F_GETLK: u64 = 5;
pub const F_SETLK: u64 = 6;
pub const F_SETLKW: u64 = 7;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const FD_CLOEXEC: u64 = 1;

/// close_range(2) flags (uapi/linux/close_range.h).
pub const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
pub const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;

/// renameat2(2) flags (uapi/linux/fs.h).
pub const RENAME_NOREPLACE: u64 = 1 << 0;
pub const RENAME_EXCHANGE: u64 = 1 << 1;
pub const RENAME_WHITEOUT: u64 = 1 << 2;

/// Special tv_nsec values for utimensat(2).
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// Writes of at most this many bytes to a pipe are atomic (PIPE_BUF).
pub const PIPE_BUF: usize = 4096;
/// The hard ceiling for RLIMIT_NOFILE (Linux's default fs.nr_open sysctl).
pub const NR_OPEN: usize = 1024 * 1024;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;
/// The permission bits plus set-id and sticky bits (S_IALLUGO).
pub const S_IALLUGO: u32 = 0o7777;

pub const DT_UNKNOWN: u8 = 0;
pub const DT_FIFO: u8 = 1;
pub const DT_CHR: u8 = 2;
pub const DT_DIR: u8 = 4;
pub const DT_BLK: u8 = 6;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;
pub const DT_SOCK: u8 = 12;

/// The d_type for a mode's file type.
pub const fn dtype_of(mode: u32) -> u8 {
    ((mode & S_IFMT) >> 12) as u8
}

/// Longest path the kernel accepts, terminating NUL included (PATH_MAX).
pub const PATH_MAX: usize = 4096;
/// Longest single path component (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Most iovecs one readv/writev takes (UIO_MAXIOV).
pub const IOV_MAX: usize = 1024;

/// x86_64 `struct stat` as the kernel writes it (arch/x86/include/uapi/asm/stat.h).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_nlink: u64,
    pub st_mode: u32,
    pub st_uid: u32,
    pub st_gid: u32,
    pub __pad0: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
    pub __unused: [i64; 3],
}
crate::assert_layout!(
    Stat,
    size = 144,
    st_mode = 24,
    st_rdev = 40,
    st_size = 48,
    st_blocks = 64,
    st_mtime = 88
);

pub const STATX_TYPE: u32 = 0x1;
pub const STATX_MODE: u32 = 0x2;
pub const STATX_NLINK: u32 = 0x4;
pub const STATX_UID: u32 = 0x8;
pub const STATX_GID: u32 = 0x10;
pub const STATX_ATIME: u32 = 0x20;
pub const STATX_MTIME: u32 = 0x40;
pub const STATX_CTIME: u32 = 0x80;
pub const STATX_INO: u32 = 0x100;
pub const STATX_SIZE: u32 = 0x200;
pub const STATX_BLOCKS: u32 = 0x400;
pub const STATX_BASIC_STATS: u32 = 0x7ff;
pub const STATX_BTIME: u32 = 0x800;
pub const STATX_MNT_ID: u32 = 0x1000;
/// Reserved for future struct statx expansion: a request with it set is EINVAL.
pub const STATX__RESERVED: u32 = 0x8000_0000;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct StatxTimestamp {
    pub tv_sec: i64,
    pub tv_nsec: u32,
    pub __reserved: i32,
}
crate::assert_layout!(StatxTimestamp, size = 16);

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Statx {
    pub stx_mask: u32,
    pub stx_blksize: u32,
    pub stx_attributes: u64,
    pub stx_nlink: u32,
    pub stx_uid: u32,
    pub stx_gid: u32,
    pub stx_mode: u16,
    pub __spare0: u16,
    pub stx_ino: u64,
    pub stx_size: u64,
    pub stx_blocks: u64,
    pub stx_attributes_mask: u64,
    pub stx_atime: StatxTimestamp,
    pub stx_btime: StatxTimestamp,
    pub stx_ctime: StatxTimestamp,
    pub stx_mtime: StatxTimestamp,
    pub stx_rdev_major: u32,
    pub stx_rdev_minor: u32,
    pub stx_dev_major: u32,
    pub stx_dev_minor: u32,
    pub stx_mnt_id: u64,
    pub stx_dio_mem_align: u32,
    pub stx_dio_offset_align: u32,
    pub __spare3: [u64; 12],
}
crate::assert_layout!(
    Statx,
    size = 256,
    stx_mode = 28,
    stx_ino = 32,
    stx_atime = 64,
    stx_mtime = 112,
    stx_rdev_major = 128,
    stx_mnt_id = 144
);

/// Offset of d_name in `struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }`.
pub const DIRENT64_NAME_OFFSET: usize = 19;

/// The record length of a linux_dirent64 with a name of `name_len` bytes (padded to 8).
pub const fn dirent64_reclen(name_len: usize) -> usize {
    (DIRENT64_NAME_OFFSET + name_len + 1 + 7) & !7
}

/// Writes one linux_dirent64 record at the start of `buf`; returns its length, or None if
/// it does not fit.
pub fn encode_dirent64(
    buf: &mut [u8],
    ino: u64,
    off: i64,
    d_type: u8,
    name: &[u8],
) -> Option<usize> {
    let reclen = dirent64_reclen(name.len());
    let rec = buf.get_mut(..reclen)?;
    rec.fill(0);
    rec[0..8].copy_from_slice(&ino.to_ne_bytes());
    rec[8..16].copy_from_slice(&off.to_ne_bytes());
    rec[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
    rec[18] = d_type;
    rec[DIRENT64_NAME_OFFSET..DIRENT64_NAME_OFFSET + name.len()].copy_from_slice(name);
    Some(reclen)
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Iovec {
    pub iov_base: u64,
    pub iov_len: u64,
}
crate::assert_layout!(Iovec, size = 16, iov_len = 8);

/// Device numbers the kernel gives its character devices (as Linux's, so `ls -l` looks familiar).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    // Linux's new_encode_dev for struct stat.
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u64
}

/// The major number of a device number made by [`makedev`] (Linux's new_decode_dev).
pub const fn major(dev: u64) -> u32 {
    ((dev & 0xfff00) >> 8) as u32
}

/// The minor number of a device number made by [`makedev`] (Linux's new_decode_dev).
pub const fn minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (maj, min) in [
            (1, 3),
            (5, 1),
            (0, 0),
            (4095, 255),
            (8, 256),
            (259, 0xfffff),
        ] {
            let dev = makedev(maj, min);
            assert_eq!((major(dev), minor(dev)), (maj, min));
        }
        // Linux's encoding of /dev/null and of a minor above 255.
        assert_eq!(makedev(1, 3), 0x103);
        assert_eq!(makedev(8, 256), 0x100800);
    }
}
