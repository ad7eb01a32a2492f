//! Signals (asm-generic/signal.h, arch/x86/include/uapi/asm/signal.h).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGQUIT: u32 = 3;
pub const SIGILL: u32 = 4;
pub const SIGTRAP: u32 = 5;
pub const SIGABRT: u32 = 6;
pub const SIGBUS: u32 = 7;
pub const SIGFPE: u32 = 8;
pub const SIGKILL: u32 = 9;
pub const SIGUSR1: u32 = 10;
pub const SIGSEGV: u32 = 11;
pub const SIGUSR2: u32 = 12;
pub const SIGPIPE: u32 = 13;
pub const SIGALRM: u32 = 14;
pub const SIGTERM: u32 = 15;
pub const SIGSTKFLT: u32 = 16;
pub const SIGCHLD: u32 = 17;
pub const SIGCONT: u32 = 18;
pub const SIGSTOP: u32 = 19;
pub const SIGTSTP: u32 = 20;
pub const SIGTTIN: u32 = 21;
pub const SIGTTOU: u32 = 22;
pub const SIGURG: u32 = 23;
pub const SIGXCPU: u32 = 24;
pub const SIGXFSZ: u32 = 25;
pub const SIGVTALRM: u32 = 26;
pub const SIGPROF: u32 = 27;
pub const SIGWINCH: u32 = 28;
pub const SIGIO: u32 = 29;
pub const SIGPWR: u32 = 30;
pub const SIGSYS: u32 = 31;
pub const SIGRTMIN: u32 = 32;
/// Highest signal number (_NSIG); signals are 1..=64.
pub const NSIG: u32 = 64;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_NOCLDSTOP: u64 = 0x0000_0001;
pub const SA_NOCLDWAIT: u64 = 0x0000_0002;
pub const SA_SIGINFO: u64 = 0x0000_0004;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

pub const SIG_BLOCK: u64 = 0;
pub const SIG_UNBLOCK: u64 = 1;
pub const SIG_SETMASK: u64 = 2;

pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const SS_AUTODISARM: i32 = 1 << 31;
pub const MINSIGSTKSZ: u64 = 2048;

/// The kernel's signal set: one bit per signal, bit (n - 1) for signal n.
pub type SigSet = u64;
/// sizeof(sigset_t) the kernel insists on in rt_sig* calls.
pub const SIGSET_SIZE: usize = 8;

/// The bit of signal `sig` in a SigSet.
pub const fn sig_bit(sig: u32) -> SigSet {
    1 << (sig - 1)
}

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: SigSet = sig_bit(SIGKILL) | sig_bit(SIGSTOP);

/// `struct sigaction` as the x86_64 kernel takes it in rt_sigaction (kernel_sigaction).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: SigSet,
}
crate::assert_layout!(KSigaction, size = 32, flags = 8, restorer = 16, mask = 24);

/// `stack_t` for sigaltstack.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct StackT {
    pub ss_sp: u64,
    pub ss_flags: i32,
    pub __pad: u32,
    pub ss_size: u64,
}
crate::assert_layout!(StackT, size = 24, ss_flags = 8, ss_size = 16);

/// The wait status of a process that exited with `code` (as wait4 reports it).
pub const fn wstatus_exited(code: u8) -> u32 {
    (code as u32) << 8
}

/// The wait status of a process killed by signal `sig`.
pub const fn wstatus_signaled(sig: u32) -> u32 {
    sig & 0x7f
}

/// The shell-style status of a wait status: the exit code, or 128 + the signal.
pub const fn shell_status(wstatus: u32) -> u8 {
    if wstatus & 0x7f == 0 {
        ((wstatus >> 8) & 0xff) as u8
    } else {
        (128 + (wstatus & 0x7f)) as u8
    }
}

/// `si_code` values (asm-generic/siginfo.h): who sent a signal, or why the kernel did.
pub const SI_USER: i32 = 0;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRERR: i32 = 2;
/// SIGCHLD's `si_code`: what happened to the child.
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
