//! Credentials: set*uid/set*gid with Linux's permission rules (CAP_SETUID/CAP_SETGID is
//! euid 0 here), get*res*, setfs*. Every change is pushed to the process's live KTLS areas.

use super::SysResult;
use crate::mm::uaccess::UserPtr;
use crate::process::{current, Creds};
use ktls_abi::Errno;

/// -1 as a uid/gid argument: "leave unchanged" (or invalid where a value is required).
const KEEP: u32 = u32::MAX;

fn arg(v: u64) -> u32 {
    v as u32
}

/// Applies `f` to the caller's credentials; on success the KTLS areas learn the new ids.
fn change(f: impl FnOnce(&mut Creds, bool) -> Result<(), Errno>) -> SysResult {
    let p = current().process.clone();
    {
        let mut c = p.creds.lock();
        let privileged = c.euid == 0;
        let mut new = *c;
        f(&mut new, privileged)?;
        *c = new;
    }
    crate::rseq::on_creds_changed(&p);
    Ok(0)
}

pub fn setuid(uid: u64) -> SysResult {
    let uid = arg(uid);
    if uid == KEEP {
        return Err(Errno::EINVAL);
    }
    change(|c, privileged| {
        if privileged {
            (c.uid, c.euid, c.suid, c.fsuid) = (uid, uid, uid, uid);
        } else if uid == c.uid || uid == c.suid {
            (c.euid, c.fsuid) = (uid, uid);
        } else {
            return Err(Errno::EPERM);
        }
        Ok(())
    })
}

pub fn setgid(gid: u64) -> SysResult {
    let gid = arg(gid);
    if gid == KEEP {
        return Err(Errno::EINVAL);
    }
    change(|c, privileged| {
        if privileged {
            (c.gid, c.egid, c.sgid, c.fsgid) = (gid, gid, gid, gid);
        } else if gid == c.gid || gid == c.sgid {
            (c.egid, c.fsgid) = (gid, gid);
        } else {
            return Err(Errno::EPERM);
        }
        Ok(())
    })
}

pub fn setreuid(ruid: u64, euid: u64) -> SysResult {
    let (r, e) = (arg(ruid), arg(euid));
    change(|c, privileged| {
        let old = *c;
        if !privileged {
            if r != KEEP && r != old.uid && r != old.euid {
                return Err(Errno::EPERM);
            }
            if e != KEEP && e != old.uid && e != old.euid && e != old.suid {
                return Err(Errno::EPERM);
            }
        }
        if r != KEEP {
            c.uid = r;
        }
        if e != KEEP {
            c.euid = e;
        }
        // Linux: the saved id follows the effective one when the real id is set or the
        // effective one changes to something other than the old real id.
        if r != KEEP || (e != KEEP && e != old.uid) {
            c.suid = c.euid;
        }
        c.fsuid = c.euid;
        Ok(())
    })
}

pub fn setregid(rgid: u64, egid: u64) -> SysResult {
    let (r, e) = (arg(rgid), arg(egid));
    change(|c, privileged| {
        let old = *c;
        if !privileged {
            if r != KEEP && r != old.gid && r != old.egid {
                return Err(Errno::EPERM);
            }
            if e != KEEP && e != old.gid && e != old.egid && e != old.sgid {
                return Err(Errno::EPERM);
            }
        }
        if r != KEEP {
            c.gid = r;
        }
        if e != KEEP {
            c.egid = e;
        }
        if r != KEEP || (e != KEEP && e != old.gid) {
            c.sgid = c.egid;
        }
        c.fsgid = c.egid;
        Ok(())
    })
}

pub fn setresuid(r: u64, e: u64, s: u64) -> SysResult {
    let (r, e, s) = (arg(r), arg(e), arg(s));
    change(|c, privileged| {
        let old = *c;
        let ok = |v: u32| v == KEEP || v == old.uid || v == old.euid || v == old.suid;
        if !privileged && (!ok(r) || !ok(e) || !ok(s)) {
            return Err(Errno::EPERM);
        }
        if r != KEEP {
            c.uid = r;
        }
        if e != KEEP {
            c.euid = e;
        }
        if s != KEEP {
            c.suid = s;
        }
        c.fsuid = c.euid;
        Ok(())
    })
}

pub fn setresgid(r: u64, e: u64, s: u64) -> SysResult {
    let (r, e, s) = (arg(r), arg(e), arg(s));
    change(|c, privileged| {
        let old = *c;
        let ok = |v: u32| v == KEEP || v == old.gid || v == old.egid || v == old.sgid;
        if !privileged && (!ok(r) || !ok(e) || !ok(s)) {
            return Err(Errno::EPERM);
        }
        if r != KEEP {
            c.gid = r;
        }
        if e != KEEP {
            c.egid = e;
        }
        if s != KEEP {
            c.sgid = s;
        }
        c.fsgid = c.egid;
        Ok(())
    })
}

fn put3(a: u64, b: u64, c: u64, v: (u32, u32, u32)) -> SysResult {
    UserPtr::<u32>::new(a).write(&v.0)?;
    UserPtr::<u32>::new(b).write(&v.1)?;
    UserPtr::<u32>::new(c).write(&v.2)?;
    Ok(0)
}

pub fn getresuid(r: u64, e: u64, s: u64) -> SysResult {
    let c = *current().process.creds.lock();
    put3(r, e, s, (c.uid, c.euid, c.suid))
}

pub fn getresgid(r: u64, e: u64, s: u64) -> SysResult {
    let c = *current().process.creds.lock();
    put3(r, e, s, (c.gid, c.egid, c.sgid))
}

/// setfsuid returns the old fsuid whether or not it changed it (Linux's odd contract).
pub fn setfsuid(uid: u64) -> SysResult {
    let uid = arg(uid);
    let p = current().process.clone();
    let mut c = p.creds.lock();
    let old = c.fsuid;
    if uid != KEEP && (c.euid == 0 || [c.uid, c.euid, c.suid, c.fsuid].contains(&uid)) {
        c.fsuid = uid;
    }
    Ok(old as u64)
}

pub fn setfsgid(gid: u64) -> SysResult {
    let gid = arg(gid);
    let p = current().process.clone();
    let mut c = p.creds.lock();
    let old = c.fsgid;
    if gid != KEEP && (c.euid == 0 || [c.gid, c.egid, c.sgid, c.fsgid].contains(&gid)) {
        c.fsgid = gid;
    }
    Ok(old as u64)
}

/// No supplementary groups are kept: getgroups reports none.
pub fn getgroups(size: u64, _list: u64) -> SysResult {
    if (size as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
