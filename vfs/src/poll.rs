//! Readiness bits for poll/select/epoll.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use ktls_abi::poll::{
    POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP, POLLRDNORM, POLLWRNORM,
};

/// A set of poll(2) event bits, with Linux's values (`ktls_abi::poll`).
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PollEvents(pub u16);

impl PollEvents {
    pub const IN: Self = Self(POLLIN);
    pub const PRI: Self = Self(POLLPRI);
    pub const OUT: Self = Self(POLLOUT);
    pub const ERR: Self = Self(POLLERR);
    pub const HUP: Self = Self(POLLHUP);
    pub const NVAL: Self = Self(POLLNVAL);
    pub const RDNORM: Self = Self(POLLRDNORM);
    pub const WRNORM: Self = Self(POLLWRNORM);
    pub const RDHUP: Self = Self(POLLRDHUP);

    /// What an always-ready file reports (Linux's DEFAULT_POLLMASK).
    pub const DEFAULT: Self = Self(POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
    /// Readable: POLLIN | POLLRDNORM.
    pub const READABLE: Self = Self(POLLIN | POLLRDNORM);
    /// Writable: POLLOUT | POLLWRNORM.
    pub const WRITABLE: Self = Self(POLLOUT | POLLWRNORM);

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for PollEvents {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for PollEvents {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for PollEvents {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for PollEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, &str); 9] = [
            (POLLIN, "IN"),
            (POLLPRI, "PRI"),
            (POLLOUT, "OUT"),
            (POLLERR, "ERR"),
            (POLLHUP, "HUP"),
            (POLLNVAL, "NVAL"),
            (POLLRDNORM, "RDNORM"),
            (POLLWRNORM, "WRNORM"),
            (POLLRDHUP, "RDHUP"),
        ];
        let mut rest = self.0;
        f.write_str("PollEvents(")?;
        let mut first = true;
        for (bit, name) in NAMES {
            if rest & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}
