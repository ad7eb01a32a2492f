//! clone/clone3 flags and `struct clone_args` (include/uapi/linux/sched.h), clone3's argument
//! checks (kernel/fork.c: copy_clone_args_from_user, clone3_args_valid), and ktls's own clone3
//! flag [`CloneFlags::RSEQ_KTLS`].

use bitflags::bitflags;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::errno::Errno;

/// The low byte of clone(2)'s flags: the signal sent to the parent when the child exits. clone3
/// takes it in `exit_signal` instead and rejects these bits in `flags` (except CLONE_NEWTIME).
pub const CSIGNAL: u64 = 0xff;

/// Every flag clone(2) can express: it passes only the low 32 bits.
pub const CLONE_LEGACY_FLAGS: u64 = 0xffff_ffff;

bitflags! {
    /// clone/clone3/unshare flags. Bits 32 and up exist only in clone3.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CloneFlags: u64 {
        /// New time namespace. Shares a bit with CSIGNAL, so clone3 and unshare only.
        const NEWTIME = 0x0000_0080;
        const VM = 0x0000_0100;
        const FS = 0x0000_0200;
        const FILES = 0x0000_0400;
        const SIGHAND = 0x0000_0800;
        const PIDFD = 0x0000_1000;
        const PTRACE = 0x0000_2000;
        const VFORK = 0x0000_4000;
        const PARENT = 0x0000_8000;
        const THREAD = 0x0001_0000;
        const NEWNS = 0x0002_0000;
        const SYSVSEM = 0x0004_0000;
        const SETTLS = 0x0008_0000;
        const PARENT_SETTID = 0x0010_0000;
        const CHILD_CLEARTID = 0x0020_0000;
        /// Ignored by clone(2), rejected by clone3.
        const DETACHED = 0x0040_0000;
        const UNTRACED = 0x0080_0000;
        const CHILD_SETTID = 0x0100_0000;
        const NEWCGROUP = 0x0200_0000;
        const NEWUTS = 0x0400_0000;
        const NEWIPC = 0x0800_0000;
        const NEWUSER = 0x1000_0000;
        const NEWPID = 0x2000_0000;
        const NEWNET = 0x4000_0000;
        const IO = 0x8000_0000;
        /// clone3 (5.5): reset every signal handler of the child to SIG_DFL.
        const CLEAR_SIGHAND = 1 << 32;
        /// clone3 (5.7): start the child in the cgroup `clone_args.cgroup` names.
        const INTO_CGROUP = 1 << 33;
        /// clone3 (2026, after 7.0): reap the child automatically when it exits.
        const AUTOREAP = 1 << 34;
        /// clone3 (2026, after 7.0): set no_new_privs in the child.
        const NNP = 1 << 35;
        /// clone3 (2026, after 7.0): kill the child when the pidfd clone3 returned is closed.
        const PIDFD_AUTOKILL = 1 << 36;
        /// ktls, clone3 only: the child is a thread whose KTLS area (`tls` + the process-wide
        /// KTLS offset) the kernel registers and fills before the child's first instruction.
        /// See [`check_rseq_ktls`] and spec/ktls.md.
        ///
        /// Bit 40 because Linux hands out clone3 bits upward from 32 and had reached 36 (2026);
        /// bits 37-39 stay free for Linux's next flags. Linux rejects unknown clone3 bits with
        /// EINVAL (clone3_args_valid), so a program that passes this flag to Linux gets a clean
        /// error, never a thread without an area. clone(2) truncates flags to 32 bits, so the
        /// flag cannot be passed there.
        const RSEQ_KTLS = 1 << 40;
    }
}

/// [`CloneFlags::RSEQ_KTLS`] as a number, for C headers and the spec.
pub const CLONE_RSEQ_KTLS: u64 = CloneFlags::RSEQ_KTLS.bits();

/// The clone3 flags current Linux accepts (the legacy 32 bits and bits 32 to 36).
pub const CLONE3_LINUX_FLAGS: u64 = CLONE_LEGACY_FLAGS
    | CloneFlags::CLEAR_SIGHAND.bits()
    | CloneFlags::INTO_CGROUP.bits()
    | CloneFlags::AUTOREAP.bits()
    | CloneFlags::NNP.bits()
    | CloneFlags::PIDFD_AUTOKILL.bits();

const _: () = assert!(CLONE3_LINUX_FLAGS & CLONE_RSEQ_KTLS == 0);

/// `sizeof` the first published `struct clone_args` (up to `tls`, Linux 5.3).
pub const CLONE_ARGS_SIZE_VER0: usize = 64;
/// ... with `set_tid` and `set_tid_size` (5.5).
pub const CLONE_ARGS_SIZE_VER1: usize = 80;
/// ... with `cgroup` (5.7): the current size.
pub const CLONE_ARGS_SIZE_VER2: usize = 88;

/// Most nested pid namespaces, i.e. the most entries `set_tid` may have (MAX_PID_NS_LEVEL).
pub const MAX_PID_NS_LEVEL: u64 = 32;

/// `struct clone_args`, the argument of clone3. Versioned by size: see [`read_clone_args`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CloneArgs {
    pub flags: u64,
    /// CLONE_PIDFD: where to store the pidfd (an `int *`).
    pub pidfd: u64,
    /// CLONE_CHILD_SETTID / CLONE_CHILD_CLEARTID: the child's tid word.
    pub child_tid: u64,
    /// CLONE_PARENT_SETTID: where the parent gets the child's tid.
    pub parent_tid: u64,
    /// Signal to the parent when the child exits (0 for none).
    pub exit_signal: u64,
    /// Lowest address of the child's stack (0: the parent's stack pointer).
    pub stack: u64,
    pub stack_size: u64,
    /// CLONE_SETTLS: the child's FS base on x86_64.
    pub tls: u64,
    /// VER1: an array of `set_tid_size` pid_t, one per pid namespace level.
    pub set_tid: u64,
    pub set_tid_size: u64,
    /// VER2: a cgroup2 directory fd for CLONE_INTO_CGROUP.
    pub cgroup: u64,
}
crate::assert_layout!(
    CloneArgs,
    size = CLONE_ARGS_SIZE_VER2,
    pidfd = 8,
    child_tid = 16,
    parent_tid = 24,
    exit_signal = 32,
    stack = 40,
    stack_size = 48,
    tls = 56,
    set_tid = CLONE_ARGS_SIZE_VER0,
    set_tid_size = 72,
    cgroup = CLONE_ARGS_SIZE_VER1,
);

/// Reads a `struct clone_args` of `bytes.len()` bytes (clone3's `size` argument) the way
/// Linux's copy_clone_args_from_user and copy_struct_from_user do:
///
/// * more than a page -> E2BIG (checked first);
/// * less than [`CLONE_ARGS_SIZE_VER0`] -> EINVAL;
/// * bytes beyond `size_of::<CloneArgs>()` must all be zero, else E2BIG (a newer struct whose
///   new fields are unused is accepted);
/// * a shorter known version is zero-extended.
///
/// The kernel copies `size` bytes from user memory first (a fault there is EFAULT).
pub fn read_clone_args(bytes: &[u8]) -> Result<CloneArgs, Errno> {
    if bytes.len() > crate::PAGE_SIZE {
        return Err(Errno::E2BIG);
    }
    if bytes.len() < CLONE_ARGS_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    let known = core::mem::size_of::<CloneArgs>();
    let (head, tail) = bytes.split_at(bytes.len().min(known));
    if tail.iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let mut args = CloneArgs::new_zeroed();
    args.as_mut_bytes()[..head.len()].copy_from_slice(head);
    Ok(args)
}

/// The checks copy_clone_args_from_user makes after copying, in Linux's order; `size` is the
/// clone3 `size` argument:
///
/// * `set_tid_size` above [`MAX_PID_NS_LEVEL`] -> EINVAL;
/// * `set_tid` without `set_tid_size`, or the reverse -> EINVAL;
/// * `exit_signal` with bits outside [`CSIGNAL`], or above the highest signal -> EINVAL;
/// * CLONE_INTO_CGROUP with `cgroup` above INT_MAX or `size` below VER2 -> EINVAL.
pub fn check_clone_args(args: &CloneArgs, size: usize) -> Result<(), Errno> {
    if args.set_tid_size > MAX_PID_NS_LEVEL {
        return Err(Errno::EINVAL);
    }
    if (args.set_tid == 0) != (args.set_tid_size == 0) {
        return Err(Errno::EINVAL);
    }
    if args.exit_signal & !CSIGNAL != 0 || args.exit_signal > crate::signal::NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    if args.flags & CloneFlags::INTO_CGROUP.bits() != 0
        && (args.cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2)
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// clone3_args_valid, with the set of flags this kernel implements as `supported` (Linux:
/// [`CLONE3_LINUX_FLAGS`]; ktls adds [`CLONE_RSEQ_KTLS`]). Every failure is EINVAL:
///
/// * a flag outside `supported`;
/// * CLONE_DETACHED, or a CSIGNAL bit other than CLONE_NEWTIME, in `flags`;
/// * CLONE_SIGHAND together with CLONE_CLEAR_SIGHAND;
/// * an `exit_signal` with CLONE_THREAD or CLONE_PARENT;
/// * `stack` without `stack_size` or the reverse, or a stack outside user space.
pub fn clone3_args_valid(args: &CloneArgs, supported: u64) -> Result<(), Errno> {
    let flags = args.flags;
    if flags & !supported != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & (CloneFlags::DETACHED.bits() | (CSIGNAL & !CloneFlags::NEWTIME.bits())) != 0 {
        return Err(Errno::EINVAL);
    }
    let both = CloneFlags::SIGHAND.bits() | CloneFlags::CLEAR_SIGHAND.bits();
    if flags & both == both {
        return Err(Errno::EINVAL);
    }
    if flags & (CloneFlags::THREAD.bits() | CloneFlags::PARENT.bits()) != 0 && args.exit_signal != 0
    {
        return Err(Errno::EINVAL);
    }
    if (args.stack == 0) != (args.stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    if args.stack != 0 && !crate::rseq::access_ok(args.stack, args.stack_size) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// ktls's checks for [`CloneFlags::RSEQ_KTLS`], made after Linux's: the flag needs
/// CLONE_THREAD and CLONE_SETTLS, and the process must have fixed its KTLS offset (a
/// registration with RSEQ_FLAG_KTLS happened since the last execve); else EINVAL. The child's
/// area `tls + offset` must be aligned to the KTLS alignment (EINVAL); the kernel then writes it
/// (EFAULT, and no child, when it cannot). Without the flag there is nothing to check.
pub fn check_rseq_ktls(
    args: &CloneArgs,
    process: Option<&crate::ktls::ProcessKtls>,
) -> Result<u64, Errno> {
    let need = CloneFlags::THREAD.bits() | CloneFlags::SETTLS.bits();
    if args.flags & need != need {
        return Err(Errno::EINVAL);
    }
    let Some(p) = process else {
        return Err(Errno::EINVAL);
    };
    let area = args.tls.wrapping_add(p.offset as u64);
    if args.tls == 0 || !area.is_multiple_of(crate::ktls::KTLS_ALIGN as u64) {
        return Err(Errno::EINVAL);
    }
    Ok(area)
}

/// The whole of clone3's argument handling in Linux's order: [`read_clone_args`],
/// [`check_clone_args`], [`clone3_args_valid`], then ktls's [`check_rseq_ktls`] when the flag
/// is set. Returns the arguments and, with CLONE_RSEQ_KTLS, the child's area address.
pub fn parse_clone3(
    bytes: &[u8],
    supported: u64,
    process: Option<&crate::ktls::ProcessKtls>,
) -> Result<(CloneArgs, Option<u64>), Errno> {
    let args = read_clone_args(bytes)?;
    check_clone_args(&args, bytes.len())?;
    clone3_args_valid(&args, supported)?;
    let area = if args.flags & CLONE_RSEQ_KTLS != 0 {
        Some(check_rseq_ktls(&args, process)?)
    } else {
        None
    };
    Ok((args, area))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;
    use crate::ktls::ProcessKtls;

    const THREAD_FLAGS: u64 = CloneFlags::VM.bits()
        | CloneFlags::FS.bits()
        | CloneFlags::FILES.bits()
        | CloneFlags::SIGHAND.bits()
        | CloneFlags::THREAD.bits()
        | CloneFlags::SYSVSEM.bits()
        | CloneFlags::SETTLS.bits()
        | CloneFlags::PARENT_SETTID.bits()
        | CloneFlags::CHILD_CLEARTID.bits();

    fn bytes_of(args: &CloneArgs, size: usize) -> std::vec::Vec<u8> {
        let mut v = vec![0u8; size];
        let n = size.min(CLONE_ARGS_SIZE_VER2);
        v[..n].copy_from_slice(&args.as_bytes()[..n]);
        v
    }

    #[test]
    fn flag_values() {
        assert_eq!(CloneFlags::CLEAR_SIGHAND.bits(), 0x1_0000_0000);
        assert_eq!(CloneFlags::INTO_CGROUP.bits(), 0x2_0000_0000);
        assert_eq!(CLONE_RSEQ_KTLS, 0x100_0000_0000);
        assert_eq!(CloneFlags::SETTLS.bits(), 0x80000);
        assert_eq!(CloneFlags::THREAD.bits(), 0x10000);
    }

    #[test]
    fn sizes() {
        let args = CloneArgs {
            flags: 1,
            tls: 7,
            set_tid: 8,
            set_tid_size: 1,
            cgroup: 9,
            ..Default::default()
        };
        assert_eq!(read_clone_args(&[0; 63]), Err(Errno::EINVAL));
        assert_eq!(read_clone_args(&[]), Err(Errno::EINVAL));
        let v0 = read_clone_args(&bytes_of(&args, 64)).unwrap();
        assert_eq!((v0.flags, v0.tls, v0.set_tid, v0.cgroup), (1, 7, 0, 0));
        let v1 = read_clone_args(&bytes_of(&args, 80)).unwrap();
        assert_eq!((v1.set_tid, v1.set_tid_size, v1.cgroup), (8, 1, 0));
        assert_eq!(read_clone_args(&bytes_of(&args, 88)), Ok(args));
        // Odd sizes between versions are fine too: copy what is there.
        let v = read_clone_args(&bytes_of(&args, 72)).unwrap();
        assert_eq!((v.set_tid, v.set_tid_size), (8, 0));
        // Larger than known: the tail must be zero.
        assert_eq!(read_clone_args(&bytes_of(&args, 96)), Ok(args));
        assert_eq!(read_clone_args(&bytes_of(&args, 4096)), Ok(args));
        let mut big = bytes_of(&args, 96);
        big[95] = 1;
        assert_eq!(read_clone_args(&big), Err(Errno::E2BIG));
        big[95] = 0;
        big[88] = 1;
        assert_eq!(read_clone_args(&big), Err(Errno::E2BIG));
        // Beyond a page: E2BIG, even though the tail is zero.
        assert_eq!(read_clone_args(&vec![0; 4097]), Err(Errno::E2BIG));
    }

    #[test]
    fn post_copy_checks() {
        let ok = CloneArgs::default();
        assert_eq!(check_clone_args(&ok, 64), Ok(()));
        let t = |f: fn(&mut CloneArgs), size| {
            let mut a = CloneArgs::default();
            f(&mut a);
            check_clone_args(&a, size)
        };
        assert_eq!(t(|a| a.set_tid_size = 33, 80), Err(Errno::EINVAL));
        assert_eq!(t(|a| a.set_tid_size = 1, 80), Err(Errno::EINVAL));
        assert_eq!(t(|a| a.set_tid = 0x1000, 80), Err(Errno::EINVAL));
        assert_eq!(
            t(
                |a| {
                    a.set_tid = 0x1000;
                    a.set_tid_size = 32
                },
                80
            ),
            Ok(())
        );
        assert_eq!(t(|a| a.exit_signal = 17, 64), Ok(()));
        assert_eq!(t(|a| a.exit_signal = 64, 64), Ok(()));
        assert_eq!(t(|a| a.exit_signal = 65, 64), Err(Errno::EINVAL));
        assert_eq!(t(|a| a.exit_signal = 0x111, 64), Err(Errno::EINVAL));
        let cg = CloneFlags::INTO_CGROUP.bits();
        assert_eq!(
            t(
                |a| {
                    a.flags = CloneFlags::INTO_CGROUP.bits();
                    a.cgroup = 3
                },
                88
            ),
            Ok(())
        );
        let mut a = CloneArgs {
            flags: cg,
            cgroup: 3,
            ..Default::default()
        };
        assert_eq!(check_clone_args(&a, 80), Err(Errno::EINVAL));
        a.cgroup = 1 << 31;
        assert_eq!(check_clone_args(&a, 88), Err(Errno::EINVAL));
    }

    #[test]
    fn flag_validity() {
        let mut a = CloneArgs {
            flags: THREAD_FLAGS,
            tls: 0x10_0000,
            ..Default::default()
        };
        assert_eq!(clone3_args_valid(&a, CLONE3_LINUX_FLAGS), Ok(()));
        a.flags |= CLONE_RSEQ_KTLS;
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS | CLONE_RSEQ_KTLS),
            Ok(())
        );
        a.flags = THREAD_FLAGS | 17;
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        a.flags = CloneFlags::NEWTIME.bits();
        assert_eq!(clone3_args_valid(&a, CLONE3_LINUX_FLAGS), Ok(()));
        a.flags = CloneFlags::DETACHED.bits();
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        a.flags = CloneFlags::SIGHAND.bits() | CloneFlags::CLEAR_SIGHAND.bits();
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        a.flags = THREAD_FLAGS;
        a.exit_signal = 17;
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        a.exit_signal = 0;
        a.stack = 0x1000;
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
        a.stack_size = 0x1000;
        assert_eq!(clone3_args_valid(&a, CLONE3_LINUX_FLAGS), Ok(()));
        a.stack = crate::rseq::TASK_SIZE;
        assert_eq!(
            clone3_args_valid(&a, CLONE3_LINUX_FLAGS),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn rseq_ktls_flag() {
        let process = ProcessKtls {
            offset: -128,
            len: 128,
            sig: crate::rseq::RSEQ_SIG,
        };
        let mut a = CloneArgs {
            flags: THREAD_FLAGS | CLONE_RSEQ_KTLS,
            tls: 0x7000_0000_0000,
            ..Default::default()
        };
        assert_eq!(check_rseq_ktls(&a, Some(&process)), Ok(0x6fff_ffff_ff80));
        assert_eq!(check_rseq_ktls(&a, None), Err(Errno::EINVAL));
        a.tls += 32;
        assert_eq!(check_rseq_ktls(&a, Some(&process)), Err(Errno::EINVAL));
        a.tls = 0;
        assert_eq!(check_rseq_ktls(&a, Some(&process)), Err(Errno::EINVAL));
        a.tls = 0x7000_0000_0000;
        a.flags &= !CloneFlags::SETTLS.bits();
        assert_eq!(check_rseq_ktls(&a, Some(&process)), Err(Errno::EINVAL));
        a.flags = (THREAD_FLAGS | CLONE_RSEQ_KTLS) & !CloneFlags::THREAD.bits();
        assert_eq!(check_rseq_ktls(&a, Some(&process)), Err(Errno::EINVAL));

        let supported = CLONE3_LINUX_FLAGS | CLONE_RSEQ_KTLS;
        a.flags = THREAD_FLAGS | CLONE_RSEQ_KTLS;
        let (parsed, area) = parse_clone3(&bytes_of(&a, 88), supported, Some(&process)).unwrap();
        assert_eq!((parsed, area), (a, Some(0x6fff_ffff_ff80)));
        a.flags = THREAD_FLAGS;
        assert_eq!(
            parse_clone3(&bytes_of(&a, 64), supported, None),
            Ok((a, None))
        );
        // Linux's own checks come first.
        a.flags = THREAD_FLAGS | CLONE_RSEQ_KTLS;
        assert_eq!(
            parse_clone3(&bytes_of(&a, 64), CLONE3_LINUX_FLAGS, Some(&process)),
            Err(Errno::EINVAL)
        );
        assert_eq!(parse_clone3(&[0; 8], supported, None), Err(Errno::EINVAL));
    }
}
