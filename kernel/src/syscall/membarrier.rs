//! membarrier(2): a memory barrier on every CPU running a thread of this process (the
//! private commands) or on every CPU (GLOBAL), delivered by an acknowledged IPI; the rseq
//! command also makes those threads abort their critical sections.

use super::SysResult;
use crate::process::current;
use crate::sched;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::rseq::*;
use ktls_abi::Errno;

const SUPPORTED: u32 = MEMBARRIER_CMD_GLOBAL
    | MEMBARRIER_CMD_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
    | MEMBARRIER_CMD_GET_REGISTRATIONS;

pub fn membarrier(cmd: u64, flags: u64, cpu_id: u64) -> SysResult {
    let cmd = u32::try_from(cmd).map_err(|_| Errno::EINVAL)?;
    let flags = flags as u32;
    let cpu_flag = cmd == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ && flags == MEMBARRIER_CMD_FLAG_CPU;
    if flags != 0 && !cpu_flag {
        return Err(Errno::EINVAL);
    }
    let p = current().process.clone();
    let registered = &p.membarrier;
    match cmd {
        MEMBARRIER_CMD_QUERY => Ok(SUPPORTED as u64),
        MEMBARRIER_CMD_GET_REGISTRATIONS => Ok(registered.load(Relaxed) as u64),
        MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
        | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
        | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ => {
            registered.fetch_or(cmd, Relaxed);
            Ok(0)
        }
        MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED => {
            sched::barrier_on_cpus(u64::MAX);
            Ok(0)
        }
        MEMBARRIER_CMD_PRIVATE_EXPEDITED => {
            if registered.load(Relaxed) & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED == 0 {
                return Err(Errno::EPERM);
            }
            sched::barrier_on_cpus(sched::cpus_running_process(&p));
            Ok(0)
        }
        MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ => {
            if registered.load(Relaxed) & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ == 0 {
                return Err(Errno::EPERM);
            }
            let mut mask = sched::cpus_running_process(&p);
            if cpu_flag {
                let cpu = cpu_id as i32;
                if cpu < 0 || cpu as usize >= sched::online_cpus() {
                    return Err(Errno::EINVAL);
                }
                mask &= 1 << cpu;
            }
            // Every thread of ours on a targeted CPU restarts its critical section at its
            // return to user space, which the IPI forces.
            for t in p.threads.lock().iter() {
                if mask & (1 << t.cpu.load(Relaxed)) != 0 {
                    crate::rseq::on_switch_out(t);
                }
            }
            sched::barrier_on_cpus(mask);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
