//! `--strace`: one `@strace` line per syscall on the log port, with the syscall's name, its
//! arguments decoded by kind (strings read through the copy layer, flags by name) and its
//! result, in strace's style: `openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3`.

use super::SysResult;
use crate::mm::uaccess;
use alloc::string::String;
use core::fmt::Write;
use ktls_abi::syscall::*;

#[derive(Clone, Copy)]
enum Arg {
    Int,
    Hex,
    Fd,
    DirFd,
    Path,
    /// A buffer the call reads, with its length in argument N.
    InBuf(usize),
    OpenFlags,
    Prot,
    MapFlags,
    Signal,
}

use Arg::*;

fn kinds(nr: usize) -> &'static [Arg] {
    match nr {
        SYS_READ | SYS_GETDENTS64 => &[Fd, Hex, Int],
        SYS_WRITE => &[Fd, InBuf(2), Int],
        SYS_PREAD64 => &[Fd, Hex, Int, Int],
        SYS_PWRITE64 => &[Fd, InBuf(2), Int, Int],
        SYS_OPEN => &[Path, OpenFlags, Hex],
        SYS_OPENAT => &[DirFd, Path, OpenFlags, Hex],
        SYS_CLOSE | SYS_DUP | SYS_FCHDIR => &[Fd],
        SYS_STAT | SYS_LSTAT => &[Path, Hex],
        SYS_FSTAT => &[Fd, Hex],
        SYS_NEWFSTATAT => &[DirFd, Path, Hex, Hex],
        SYS_STATX => &[DirFd, Path, Hex, Hex, Hex],
        SYS_LSEEK => &[Fd, Int, Int],
        SYS_MMAP => &[Hex, Int, Prot, MapFlags, Fd, Hex],
        SYS_MPROTECT => &[Hex, Int, Prot],
        SYS_MUNMAP => &[Hex, Int],
        SYS_MREMAP => &[Hex, Int, Int, Hex, Hex],
        SYS_BRK | SYS_SET_TID_ADDRESS => &[Hex],
        SYS_IOCTL => &[Fd, Hex, Hex],
        SYS_READV | SYS_WRITEV => &[Fd, Hex, Int],
        SYS_ACCESS => &[Path, Int],
        SYS_FACCESSAT | SYS_FACCESSAT2 => &[DirFd, Path, Int, Hex],
        SYS_READLINK => &[Path, Hex, Int],
        SYS_READLINKAT => &[DirFd, Path, Hex, Int],
        SYS_CHDIR | SYS_RMDIR | SYS_UNLINK => &[Path],
        SYS_MKDIR => &[Path, Hex],
        SYS_MKDIRAT => &[DirFd, Path, Hex],
        SYS_UNLINKAT => &[DirFd, Path, Hex],
        SYS_RENAME | SYS_SYMLINK => &[Path, Path],
        SYS_RENAMEAT => &[DirFd, Path, DirFd, Path],
        SYS_DUP2 => &[Fd, Fd],
        SYS_DUP3 => &[Fd, Fd, Hex],
        SYS_FCNTL => &[Fd, Int, Hex],
        SYS_PIPE | SYS_UNAME | SYS_TIME => &[Hex],
        SYS_PIPE2 => &[Hex, OpenFlags],
        SYS_EXIT | SYS_EXIT_GROUP => &[Int],
        SYS_RT_SIGACTION => &[Signal, Hex, Hex, Int],
        SYS_RT_SIGPROCMASK => &[Int, Hex, Hex, Int],
        SYS_ARCH_PRCTL => &[Hex, Hex],
        SYS_CLOCK_GETTIME | SYS_CLOCK_GETRES => &[Int, Hex],
        SYS_CLOCK_NANOSLEEP => &[Int, Int, Hex, Hex],
        SYS_NANOSLEEP | SYS_GETTIMEOFDAY | SYS_SIGALTSTACK | SYS_SET_ROBUST_LIST => &[Hex, Hex],
        SYS_PRLIMIT64 => &[Int, Int, Hex, Hex],
        SYS_GETRLIMIT | SYS_SETRLIMIT => &[Int, Hex],
        SYS_GETRANDOM => &[Hex, Int, Hex],
        SYS_POLL => &[Hex, Int, Int],
        SYS_GETCWD => &[Hex, Int],
        SYS_MADVISE => &[Hex, Int, Int],
        SYS_SCHED_GETAFFINITY => &[Int, Int, Hex],
        _ => &[],
    }
}

fn flag_names(out: &mut String, v: u64, table: &[(u64, &str)], zero: &str) {
    if v == 0 {
        out.push_str(zero);
        return;
    }
    let mut rest = v;
    let mut first = true;
    for &(bit, name) in table {
        if bit != 0 && rest & bit == bit {
            if !first {
                out.push('|');
            }
            out.push_str(name);
            rest &= !bit;
            first = false;
        }
    }
    if rest != 0 {
        if !first {
            out.push('|');
        }
        let _ = write!(out, "{rest:#x}");
    }
}

fn push_string(out: &mut String, bytes: &[u8], truncated: bool) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if truncated {
        out.push_str("...");
    }
}

const SHOWN: usize = 32;

/// Formats `name(args...)`, reading strings before the call runs.
pub fn format_call(nr: usize, a: &[u64; 6]) -> String {
    use ktls_abi::fs::*;
    use ktls_abi::mm::*;
    let mut s = String::new();
    match name(nr) {
        Some(n) => s.push_str(n),
        None => {
            let _ = write!(s, "syscall_{nr}");
        }
    }
    s.push('(');
    let ks = kinds(nr);
    let shown: &[Arg] = if ks.is_empty() { &[Hex, Hex, Hex] } else { ks };
    for (i, k) in shown.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let v = a[i];
        match k {
            Int => {
                let _ = write!(s, "{}", v as i64);
            }
            Hex => {
                let _ = write!(s, "{v:#x}");
            }
            Fd => {
                let _ = write!(s, "{}", v as i32);
            }
            DirFd if v as i32 == AT_FDCWD => s.push_str("AT_FDCWD"),
            DirFd => {
                let _ = write!(s, "{}", v as i32);
            }
            Path => match uaccess::read_cstr(v, 256) {
                Ok(p) => push_string(&mut s, &p, false),
                Err(_) => {
                    let _ = write!(s, "{v:#x}");
                }
            },
            InBuf(len_arg) => {
                let len = (a[*len_arg] as usize).min(SHOWN);
                let mut buf = [0u8; SHOWN];
                match uaccess::copy_from_user(&mut buf[..len], v) {
                    Ok(()) => push_string(&mut s, &buf[..len], a[*len_arg] as usize > SHOWN),
                    Err(_) => {
                        let _ = write!(s, "{v:#x}");
                    }
                }
            }
            OpenFlags => {
                let acc = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][(v & O_ACCMODE) as usize];
                s.push_str(acc);
                let rest = v & !O_ACCMODE;
                if rest != 0 {
                    s.push('|');
                    flag_names(
                        &mut s,
                        rest,
                        &[
                            (O_CREAT, "O_CREAT"),
                            (O_EXCL, "O_EXCL"),
                            (O_NOCTTY, "O_NOCTTY"),
                            (O_TRUNC, "O_TRUNC"),
                            (O_APPEND, "O_APPEND"),
                            (O_NONBLOCK, "O_NONBLOCK"),
                            (O_DIRECTORY, "O_DIRECTORY"),
                            (O_NOFOLLOW, "O_NOFOLLOW"),
                            (O_CLOEXEC, "O_CLOEXEC"),
                            (O_PATH, "O_PATH"),
                            (O_LARGEFILE, "O_LARGEFILE"),
                        ],
                        "",
                    );
                }
            }
            Prot => flag_names(
                &mut s,
                v,
                &[
                    (PROT_READ, "PROT_READ"),
                    (PROT_WRITE, "PROT_WRITE"),
                    (PROT_EXEC, "PROT_EXEC"),
                ],
                "PROT_NONE",
            ),
            MapFlags => flag_names(
                &mut s,
                v,
                &[
                    (MAP_SHARED_VALIDATE, "MAP_SHARED_VALIDATE"),
                    (MAP_SHARED, "MAP_SHARED"),
                    (MAP_PRIVATE, "MAP_PRIVATE"),
                    (MAP_FIXED, "MAP_FIXED"),
                    (MAP_ANONYMOUS, "MAP_ANONYMOUS"),
                    (MAP_NORESERVE, "MAP_NORESERVE"),
                    (MAP_STACK, "MAP_STACK"),
                    (MAP_GROWSDOWN, "MAP_GROWSDOWN"),
                    (MAP_POPULATE, "MAP_POPULATE"),
                    (MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
                ],
                "0",
            ),
            Signal => {
                let _ = write!(s, "{v}");
            }
        }
    }
    s.push(')');
    s
}

/// Emits the `@strace` line for a finished call.
pub fn record(nr: usize, call: &str, a: &[u64; 6], result: SysResult) {
    let _ = a;
    match result {
        Ok(v) if matches!(nr, SYS_MMAP | SYS_BRK | SYS_MREMAP) => {
            crate::log::write_line(format_args!("@strace {call} = {v:#x}"))
        }
        Ok(v) => crate::log::write_line(format_args!("@strace {call} = {}", v as i64)),
        Err(e) => crate::log::write_line(format_args!(
            "@strace {call} = -1 {:?} ({})",
            e,
            e.description().unwrap_or("unknown error")
        )),
    }
}
