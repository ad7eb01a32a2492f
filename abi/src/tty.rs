//! Terminal ioctls and the kernel's struct termios (asm-generic/termbits.h, ioctls.h).
//!
//! Note: this is the kernel's `struct termios` (NCCS = 19, 36 bytes), which TCGETS writes;
//! glibc's user-space `struct termios` is larger (NCCS = 32, with speed fields) and glibc
//! converts. Writing glibc's layout would overrun a 36-byte buffer.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const TCGETS: u64 = 0x5401;
pub const TCSETS: u64 = 0x5402;
pub const TCSETSW: u64 = 0x5403;
pub const TCSETSF: u64 = 0x5404;
pub const TIOCGPGRP: u64 = 0x540f;
pub const TIOCSPGRP: u64 = 0x5410;
pub const TIOCGWINSZ: u64 = 0x5413;
pub const TIOCSWINSZ: u64 = 0x5414;
pub const FIONREAD: u64 = 0x541b;
pub const FIONBIO: u64 = 0x5421;

pub const NCCS: usize = 19;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Termios {
    pub c_iflag: u32,
    pub c_oflag: u32,
    pub c_cflag: u32,
    pub c_lflag: u32,
    pub c_line: u8,
    pub c_cc: [u8; NCCS],
}
crate::assert_layout!(Termios, size = 36, c_lflag = 12, c_line = 16, c_cc = 17);

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Winsize {
    pub ws_row: u16,
    pub ws_col: u16,
    pub ws_xpixel: u16,
    pub ws_ypixel: u16,
}
crate::assert_layout!(Winsize, size = 8);

// Flag values used for the console's default termios (what Linux's n_tty starts with).
pub const ICRNL: u32 = 0o000400;
pub const IXON: u32 = 0o002000;
pub const OPOST: u32 = 0o000001;
pub const ONLCR: u32 = 0o000004;
pub const B38400: u32 = 0o000017;
pub const CS8: u32 = 0o000060;
pub const CREAD: u32 = 0o000200;
pub const HUPCL: u32 = 0o002000;
pub const ISIG: u32 = 0o000001;
pub const ICANON: u32 = 0o000002;
pub const ECHO: u32 = 0o000010;
pub const ECHOE: u32 = 0o000020;
pub const ECHOK: u32 = 0o000040;
pub const ECHOCTL: u32 = 0o001000;
pub const ECHOKE: u32 = 0o004000;
pub const IEXTEN: u32 = 0o100000;

impl Termios {
    /// The settings a freshly opened Linux tty reports (tty_std_termios).
    pub fn linux_default() -> Self {
        // INIT_C_CC: ^C ^\ DEL ^U ^D 0 1 0 ^Q ^S ^Z ^R ^O ^W ^V 0
        let cc = [
            3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0,
        ];
        Termios {
            c_iflag: ICRNL | IXON,
            c_oflag: OPOST | ONLCR,
            c_cflag: B38400 | CS8 | CREAD | HUPCL,
            c_lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
            c_line: 0,
            c_cc: cc,
        }
    }
}
