//! sysinfo, getrusage, times and prctl.

use super::SysResult;
use crate::mm::uaccess::{self, read_cstr_truncated, UserPtr};
use crate::process::current;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::Errno;

/// struct sysinfo (x86_64), 112 bytes.
#[repr(C)]
#[derive(Clone, Copy, Default, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
struct Sysinfo {
    uptime: i64,
    loads: [u64; 3],
    totalram: u64,
    freeram: u64,
    sharedram: u64,
    bufferram: u64,
    totalswap: u64,
    freeswap: u64,
    procs: u16,
    pad: u16,
    pad2: u32,
    totalhigh: u64,
    freehigh: u64,
    mem_unit: u32,
    reserved: [u8; 4],
}
ktls_abi::assert_layout!(
    Sysinfo,
    size = 112,
    totalram = 32,
    procs = 80,
    mem_unit = 104
);

pub fn sysinfo(buf: u64) -> SysResult {
    let page = crate::mm::PAGE_SIZE as u64;
    let heap = crate::mm::heap::size() as u64;
    let info = Sysinfo {
        uptime: (crate::time::monotonic_ns() / 1_000_000_000) as i64,
        totalram: crate::mm::frame::total_count() as u64 * page + heap,
        freeram: crate::mm::frame::free_count() as u64 * page,
        procs: crate::process::all_processes().len().min(u16::MAX as usize) as u16,
        mem_unit: 1,
        ..Default::default()
    };
    UserPtr::<Sysinfo>::new(buf).write(&info)?;
    Ok(0)
}

const RUSAGE_SELF: i64 = 0;
const RUSAGE_CHILDREN: i64 = -1;
const RUSAGE_THREAD: i64 = 1;

/// getrusage: CPU time is accounted (all of it as user time: the kernel does not split user
/// and system time); the other fields are not kept and read 0.
pub fn getrusage(who: u64, buf: u64) -> SysResult {
    let t = current();
    let ns = match who as i64 {
        RUSAGE_SELF => t.process.cpu_time_ns(),
        RUSAGE_THREAD => t.cpu_time_ns(),
        RUSAGE_CHILDREN => t.process.children_cpu_ns.load(Relaxed),
        _ => return Err(Errno::EINVAL),
    };
    let mut raw = [0u8; 144];
    raw[0..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    raw[8..16].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
    uaccess::copy_to_user(buf, &raw)?;
    Ok(0)
}

/// times: clock ticks (USER_HZ = 100) of CPU time; returns ticks since boot.
pub fn times(buf: u64) -> SysResult {
    let t = current();
    let ticks = |ns: u64| ns / (1_000_000_000 / ktls_abi::auxv::CLKTCK);
    if buf != 0 {
        let v: [u64; 4] = [
            ticks(t.process.cpu_time_ns()),
            0,
            ticks(t.process.children_cpu_ns.load(Relaxed)),
            0,
        ];
        UserPtr::<[u64; 4]>::new(buf).write(&v)?;
    }
    Ok(ticks(crate::time::monotonic_ns()))
}

const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_GET_NO_NEW_PRIVS: u64 = 39;
const TASK_COMM_LEN: usize = 16;

pub fn prctl(option: u64, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> SysResult {
    let t = current();
    let p = &t.process;
    match option {
        PR_SET_NAME => {
            *t.comm.lock() = read_cstr_truncated(arg2, TASK_COMM_LEN)?;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut buf = [0u8; TASK_COMM_LEN];
            let name = t.comm.lock().clone();
            buf[..name.len()].copy_from_slice(&name);
            uaccess::copy_to_user(arg2, &buf)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if arg2 > ktls_abi::signal::NSIG as u64 {
                return Err(Errno::EINVAL);
            }
            // Sent to this process when its parent exits (process::exit_process).
            p.pdeathsig.store(arg2 as u32, Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => UserPtr::<i32>::new(arg2)
            .write(&(p.pdeathsig.load(Relaxed) as i32))
            .map(|_| 0),
        PR_GET_DUMPABLE => Ok(p.dumpable.load(Relaxed) as u64),
        PR_SET_DUMPABLE if arg2 <= 1 => {
            p.dumpable.store(arg2 as u32, Relaxed);
            Ok(0)
        }
        PR_SET_DUMPABLE => Err(Errno::EINVAL),
        PR_SET_NO_NEW_PRIVS if arg2 == 1 && arg3 == 0 && arg4 == 0 && arg5 == 0 => {
            p.no_new_privs.store(true, Relaxed);
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => Err(Errno::EINVAL),
        PR_GET_NO_NEW_PRIVS if arg2 == 0 && arg3 == 0 && arg4 == 0 && arg5 == 0 => {
            Ok(p.no_new_privs.load(Relaxed) as u64)
        }
        PR_GET_NO_NEW_PRIVS => Err(Errno::EINVAL),
        _ => super::unimplemented_op("prctl", option),
    }
}
