//! Linux's x86_64 signal frame: building it on the user stack to run a handler, and
//! rt_sigreturn reading it back.
//!
//! Layout (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h), from the frame's start:
//! `pretcode` (the sa_restorer the handler returns to), the kernel's `struct ucontext`
//! (flags, link, stack_t, sigcontext, sigmask), `struct siginfo` (128 bytes); the FPU state
//! (XSAVE or FXSAVE image, 64-byte aligned) sits above the frame and sigcontext.fpstate points
//! at it. The handler starts with RDI = signal, RSI = &info, RDX = &uc, RSP = the frame (so
//! RSP + 8 is 16-byte aligned, as after a call).

use crate::arch::entry::{TrapFrame, USER_CS, USER_SS};
use crate::arch::switch;
use crate::mm::uaccess::{copy_from_user, copy_to_user};
use crate::process::Thread;
use crate::signal::SigInfo;
use core::sync::atomic::Ordering::Relaxed;
use ktls_abi::signal::*;
use ktls_abi::Errno;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// struct sigcontext (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct SigContext {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    cs: u16,
    gs: u16,
    fs: u16,
    ss: u16,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved: [u64; 8],
}
ktls_abi::assert_layout!(
    SigContext,
    size = 256,
    rip = 128,
    cs = 144,
    err = 152,
    fpstate = 184
);

/// The kernel's struct ucontext (not glibc's larger ucontext_t).
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct UContext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: SigContext,
    sigmask: u64,
}
ktls_abi::assert_layout!(
    UContext,
    size = 304,
    stack = 16,
    mcontext = 40,
    sigmask = 296
);

/// siginfo_t: 128 bytes; the fields used by the signals we send.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct RawSigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    pad0: i32,
    /// The union: si_pid/si_uid/si_status/si_addr... by signal.
    fields: [u64; 14],
}
ktls_abi::assert_layout!(RawSigInfo, size = 128, fields = 16);

#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
struct RtSigFrame {
    pretcode: u64,
    uc: UContext,
    info: RawSigInfo,
}
ktls_abi::assert_layout!(RtSigFrame, size = 440, uc = 8, info = 312);

const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// RFLAGS bits user space may change through sigreturn (Linux's FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x0004_0dd5; // AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF
const TF: u64 = 1 << 8;
const DF: u64 = 1 << 10;
const REDZONE: u64 = 128;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

fn encode_info(info: &SigInfo) -> RawSigInfo {
    let mut r = RawSigInfo {
        signo: info.signo as i32,
        errno: info.errno,
        code: info.code,
        pad0: 0,
        fields: [0; 14],
    };
    match info.signo {
        SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP if info.code > 0 => r.fields[0] = info.addr,
        SIGCHLD => {
            r.fields[0] = info.pid as u64 | ((info.uid as u64) << 32);
            r.fields[1] = info.status as u32 as u64;
        }
        _ => r.fields[0] = info.pid as u64 | ((info.uid as u64) << 32),
    }
    r
}

fn on_altstack(alt: &StackT, sp: u64) -> bool {
    alt.ss_flags & SS_DISABLE == 0 && sp > alt.ss_sp && sp - alt.ss_sp <= alt.ss_size
}

/// Builds the frame for `act`'s handler and points `frame` at it.
pub fn deliver(
    t: &Thread,
    frame: &mut TrapFrame,
    info: &SigInfo,
    act: &KSigaction,
) -> Result<(), Errno> {
    let sig = info.signo;
    let alt = *t.altstack.lock();
    let mut sp = frame.rsp;
    let on_alt = on_altstack(&alt, sp);
    if act.flags & SA_ONSTACK != 0 && alt.ss_flags & SS_DISABLE == 0 && !on_alt {
        sp = alt.ss_sp + alt.ss_size;
    } else {
        sp -= REDZONE;
    }
    // FPU state first (64-byte aligned), then the frame below it.
    let mut fpu = t.fpu.lock();
    let fpu = fpu.as_mut().ok_or(Errno::EFAULT)?;
    fpu.save();
    let xsave = switch::fpu_area_size() > 512;
    let fp_bytes = {
        let b = fpu.bytes_mut();
        if xsave {
            // fpx_sw_bytes in the legacy area's software-reserved tail, and the end magic, so
            // user space can tell an XSAVE image (as Linux writes them).
            let size = b.len() as u32;
            b[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
            b[468..472].copy_from_slice(&(size + 4).to_le_bytes());
            b[472..480].copy_from_slice(&7u64.to_le_bytes());
            b[480..484].copy_from_slice(&size.to_le_bytes());
        }
        b.to_vec()
    };
    let fp_len = fp_bytes.len() as u64 + if xsave { 4 } else { 0 };
    let fp_addr = (sp - fp_len) & !63;
    let frame_addr = ((fp_addr - core::mem::size_of::<RtSigFrame>() as u64) & !15) - 8;

    let mut uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    if xsave {
        uc_flags |= UC_FP_XSTATE;
    }
    let old_mask = crate::signal::take_restore_mask(t).unwrap_or_else(|| t.sigmask.load(Relaxed));
    let f = RtSigFrame {
        pretcode: act.restorer,
        uc: UContext {
            flags: uc_flags,
            link: 0,
            stack: StackT {
                ss_sp: alt.ss_sp,
                ss_flags: if alt.ss_flags & SS_DISABLE != 0 {
                    SS_DISABLE
                } else if on_alt {
                    SS_ONSTACK
                } else {
                    alt.ss_flags & SS_AUTODISARM
                },
                __pad: 0,
                ss_size: alt.ss_size,
            },
            mcontext: SigContext {
                r8: frame.r8,
                r9: frame.r9,
                r10: frame.r10,
                r11: frame.r11,
                r12: frame.r12,
                r13: frame.r13,
                r14: frame.r14,
                r15: frame.r15,
                rdi: frame.rdi,
                rsi: frame.rsi,
                rbp: frame.rbp,
                rbx: frame.rbx,
                rdx: frame.rdx,
                rax: frame.rax,
                rcx: frame.rcx,
                rsp: frame.rsp,
                rip: frame.rip,
                eflags: frame.rflags,
                cs: USER_CS as u16,
                gs: 0,
                fs: 0,
                ss: USER_SS as u16,
                err: if frame.vector < 32 {
                    frame.error_code
                } else {
                    0
                },
                trapno: if frame.vector < 32 { frame.vector } else { 0 },
                oldmask: old_mask,
                cr2: info.addr,
                fpstate: fp_addr,
                reserved: [0; 8],
            },
            sigmask: old_mask,
        },
        info: encode_info(info),
    };
    copy_to_user(fp_addr, &fp_bytes)?;
    if xsave {
        copy_to_user(
            fp_addr + fp_bytes.len() as u64,
            &FP_XSTATE_MAGIC2.to_le_bytes(),
        )?;
    }
    copy_to_user(frame_addr, f.as_bytes())?;

    // The handler runs with the action's mask (and the signal itself unless SA_NODEFER).
    let mut mask = t.sigmask.load(Relaxed) | act.mask;
    if act.flags & SA_NODEFER == 0 {
        mask |= sig_bit(sig);
    }
    t.sigmask.store(mask & !UNBLOCKABLE, Relaxed);
    if act.flags & SA_RESETHAND != 0 {
        t.process.sigactions().lock()[sig as usize - 1] = KSigaction::default();
    }
    if act.flags & SA_ONSTACK != 0 && alt.ss_flags & SS_AUTODISARM != 0 && !on_alt {
        *t.altstack.lock() = StackT {
            ss_flags: SS_DISABLE,
            ..Default::default()
        };
    }
    frame.rsp = frame_addr;
    frame.rip = act.handler;
    frame.rdi = sig as u64;
    frame.rsi = frame_addr + 312;
    frame.rdx = frame_addr + 8;
    frame.rax = 0;
    frame.rflags &= !(TF | DF);
    frame.cs = USER_CS;
    frame.ss = USER_SS;
    t.full_restore.store(true, Relaxed);
    Ok(())
}

/// rt_sigreturn: restores the context saved by `deliver` from the frame at RSP - 8.
pub fn sigreturn(t: &Thread, frame: &mut TrapFrame) -> Result<(), Errno> {
    let frame_addr = frame.rsp.wrapping_sub(8);
    let mut f = RtSigFrame::new_zeroed();
    copy_from_user(f.as_mut_bytes(), frame_addr)?;
    let m = &f.uc.mcontext;
    frame.r8 = m.r8;
    frame.r9 = m.r9;
    frame.r10 = m.r10;
    frame.r11 = m.r11;
    frame.r12 = m.r12;
    frame.r13 = m.r13;
    frame.r14 = m.r14;
    frame.r15 = m.r15;
    frame.rdi = m.rdi;
    frame.rsi = m.rsi;
    frame.rbp = m.rbp;
    frame.rbx = m.rbx;
    frame.rdx = m.rdx;
    frame.rax = m.rax;
    frame.rcx = m.rcx;
    frame.rsp = m.rsp;
    frame.rip = m.rip;
    frame.rflags = (frame.rflags & !FIX_EFLAGS) | (m.eflags & FIX_EFLAGS) | 0x202;
    frame.cs = USER_CS;
    frame.ss = USER_SS;
    t.sigmask.store(f.uc.sigmask & !UNBLOCKABLE, Relaxed);
    // uc_stack restores the alternate stack settings (restore_altstack), errors ignored.
    let st = f.uc.stack;
    if st.ss_flags & SS_ONSTACK == 0 {
        let mode = st.ss_flags & !SS_AUTODISARM;
        if mode == SS_DISABLE {
            *t.altstack.lock() = StackT {
                ss_flags: SS_DISABLE,
                ..Default::default()
            };
        } else if mode == 0 && st.ss_size >= MINSIGSTKSZ {
            *t.altstack.lock() = StackT {
                ss_flags: st.ss_flags & SS_AUTODISARM,
                ..st
            };
        }
    }
    if m.fpstate != 0 {
        restore_fpu(t, m.fpstate)?;
    }
    t.full_restore.store(true, Relaxed);
    t.note_return_work();
    Ok(())
}

/// Loads user-supplied FPU state, after checking what would make XRSTOR/FXRSTOR fault.
fn restore_fpu(t: &Thread, addr: u64) -> Result<(), Errno> {
    let mut guard = t.fpu.lock();
    let fpu = guard.as_mut().ok_or(Errno::EFAULT)?;
    let mut image = alloc::vec![0u8; fpu.bytes_mut().len()];
    copy_from_user(&mut image, addr)?;
    let mxcsr = u32::from_le_bytes(image[24..28].try_into().expect("4 bytes"));
    let mxcsr_mask = u32::from_le_bytes(image[28..32].try_into().expect("4 bytes"));
    let mask = if mxcsr_mask == 0 { 0xffbf } else { mxcsr_mask };
    if mxcsr & !mask != 0 {
        return Err(Errno::EFAULT);
    }
    if image.len() > 512 {
        // XSAVE header: xstate_bv must be a subset of what we enable, xcomp_bv 0 (standard
        // format), and the reserved header bytes zero.
        let bv = u64::from_le_bytes(image[512..520].try_into().expect("8 bytes"));
        if bv & !7 != 0 || image[520..576].iter().any(|&b| b != 0) {
            return Err(Errno::EFAULT);
        }
    }
    fpu.bytes_mut().copy_from_slice(&image);
    fpu.restore();
    Ok(())
}
