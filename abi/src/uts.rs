//! struct new_utsname (uapi/linux/utsname.h).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const UTS_FIELD_LEN: usize = 65;

#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Utsname {
    pub sysname: [u8; UTS_FIELD_LEN],
    pub nodename: [u8; UTS_FIELD_LEN],
    pub release: [u8; UTS_FIELD_LEN],
    pub version: [u8; UTS_FIELD_LEN],
    pub machine: [u8; UTS_FIELD_LEN],
    pub domainname: [u8; UTS_FIELD_LEN],
}
crate::assert_layout!(Utsname, size = 390, nodename = 65, machine = 260);

/// Copies `s` into a NUL-padded utsname field (truncating to 64 bytes).
pub fn uts_field(s: &str) -> [u8; UTS_FIELD_LEN] {
    let mut f = [0u8; UTS_FIELD_LEN];
    let n = s.len().min(UTS_FIELD_LEN - 1);
    f[..n].copy_from_slice(&s.as_bytes()[..n]);
    f
}
