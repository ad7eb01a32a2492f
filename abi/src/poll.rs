//! poll(2)/select(2) readiness bits and struct pollfd (uapi/asm-generic/poll.h).
//!
//! epoll's EPOLLIN, EPOLLOUT, ... have the same values, widened to u32.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const POLLIN: u16 = 0x0001;
pub const POLLPRI: u16 = 0x0002;
pub const POLLOUT: u16 = 0x0004;
pub const POLLERR: u16 = 0x0008;
pub const POLLHUP: u16 = 0x0010;
pub const POLLNVAL: u16 = 0x0020;
pub const POLLRDNORM: u16 = 0x0040;
pub const POLLRDBAND: u16 = 0x0080;
pub const POLLWRNORM: u16 = 0x0100;
pub const POLLWRBAND: u16 = 0x0200;
pub const POLLMSG: u16 = 0x0400;
pub const POLLRDHUP: u16 = 0x2000;

/// `struct pollfd { int fd; short events; short revents; }` (the shorts as bit sets).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PollFd {
    pub fd: i32,
    pub events: u16,
    pub revents: u16,
}
crate::assert_layout!(PollFd, size = 8, events = 4, revents = 6);
