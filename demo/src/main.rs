//! The runner's built-in demo (`cargo run --release`): a static Rust program (std on musl) that
//! prints what the kernel gave it: its ids, argv, auxiliary vector, FS base, clocks, uname and
//! the privilege level it runs at. It runs unchanged on Linux, which makes it a handy
//! `--compare-host` subject too. Nothing here is specific to ktls; every value is asked for.

use ktls_abi::auxv::*;
use std::ffi::CStr;

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn main() {
    println!("ktls demo: a static Rust program (std on musl) reporting what its kernel gave it");

    // SAFETY: these calls take no arguments and cannot fail.
    let (pid, ppid, uid, euid, gid, egid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    println!("pid {pid}, tid {tid}, ppid {ppid}");
    println!("uid {uid}, euid {euid}, gid {gid}, egid {egid}");

    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    println!("argc {}, argv {:?}", args.len(), args);
    let env_names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    println!("environment: {} variables {:?}", env_names.len(), env_names);
    match std::env::current_dir() {
        Ok(d) => println!("cwd {}", d.display()),
        Err(e) => println!("cwd unavailable: {e}"),
    }

    print_auxv();
    print_fs_base();
    print_clocks();
    let kernel = print_uname();

    let cpl = current_privilege_level();
    println!("ran in ring {cpl} on {kernel}");
}

fn print_auxv() {
    println!("auxiliary vector (getauxval):");
    let keys: &[(u64, &str)] = &[
        (AT_SYSINFO_EHDR, "AT_SYSINFO_EHDR"),
        (AT_MINSIGSTKSZ, "AT_MINSIGSTKSZ"),
        (AT_HWCAP, "AT_HWCAP"),
        (AT_PAGESZ, "AT_PAGESZ"),
        (AT_CLKTCK, "AT_CLKTCK"),
        (AT_PHDR, "AT_PHDR"),
        (AT_PHENT, "AT_PHENT"),
        (AT_PHNUM, "AT_PHNUM"),
        (AT_BASE, "AT_BASE"),
        (AT_FLAGS, "AT_FLAGS"),
        (AT_ENTRY, "AT_ENTRY"),
        (AT_UID, "AT_UID"),
        (AT_EUID, "AT_EUID"),
        (AT_GID, "AT_GID"),
        (AT_EGID, "AT_EGID"),
        (AT_SECURE, "AT_SECURE"),
        (AT_RANDOM, "AT_RANDOM"),
        (AT_HWCAP2, "AT_HWCAP2"),
        (AT_EXECFN, "AT_EXECFN"),
        (AT_PLATFORM, "AT_PLATFORM"),
        (AT_RSEQ_FEATURE_SIZE, "AT_RSEQ_FEATURE_SIZE"),
        (AT_RSEQ_ALIGN, "AT_RSEQ_ALIGN"),
    ];
    for &(key, name) in keys {
        // musl's getauxval returns 0 and sets ENOENT for a missing key.
        // SAFETY: errno is thread-local and always valid to write; getauxval has no preconditions.
        let value = unsafe {
            *libc::__errno_location() = 0;
            libc::getauxval(key as libc::c_ulong)
        };
        // SAFETY: as above.
        let missing = value == 0 && unsafe { *libc::__errno_location() } == libc::ENOENT;
        if missing {
            println!("  {name:<21} (absent)");
            continue;
        }
        let shown = match key {
            AT_PLATFORM | AT_EXECFN if value != 0 => {
                // SAFETY: the kernel put a NUL-terminated string at this address on our stack.
                let s = unsafe { CStr::from_ptr(value as *const libc::c_char) };
                format!("{value:#x} {:?}", s.to_string_lossy())
            }
            AT_RANDOM if value != 0 => {
                // SAFETY: AT_RANDOM points at 16 random bytes on our stack.
                let bytes = unsafe { std::slice::from_raw_parts(value as *const u8, 16) };
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("{value:#x} [{hex}]")
            }
            AT_HWCAP2 => format!(
                "{value:#x} (FSGSBASE {})",
                if value & HWCAP2_FSGSBASE != 0 {
                    "yes"
                } else {
                    "no"
                }
            ),
            AT_PHDR | AT_BASE | AT_ENTRY | AT_SYSINFO_EHDR | AT_HWCAP => format!("{value:#x}"),
            _ => format!("{value}"),
        };
        println!("  {name:<21} {shown}");
    }
}

thread_local! {
    static MARKER: u8 = const { 0 };
}

fn print_fs_base() {
    let mut base: u64 = 0;
    // SAFETY: ARCH_GET_FS stores the FS base into the u64 we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ktls_abi::prctl::ARCH_GET_FS,
            &mut base as *mut u64,
        )
    };
    if r != 0 {
        println!("FS base: arch_prctl(ARCH_GET_FS) failed: {}", errno());
        return;
    }
    let tls_var = MARKER.with(|m| m as *const u8 as u64);
    println!("FS base {base:#x} (arch_prctl ARCH_GET_FS); a thread_local lives at {tls_var:#x}");
}

fn print_clocks() {
    for (id, name) in [
        (libc::CLOCK_REALTIME, "CLOCK_REALTIME"),
        (libc::CLOCK_MONOTONIC, "CLOCK_MONOTONIC"),
    ] {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec to write.
        if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
            println!("clock_gettime({name}) failed: {}", errno());
            continue;
        }
        let extra = if id == libc::CLOCK_REALTIME {
            format!(" ({})", utc_date(ts.tv_sec))
        } else {
            String::new()
        };
        println!(
            "clock_gettime({name}) = {}.{:09}{extra}",
            ts.tv_sec, ts.tv_nsec
        );
    }
}

/// `YYYY-MM-DD hh:mm:ss UTC` for seconds since the epoch (Howard Hinnant's civil_from_days).
fn utc_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Prints uname and returns "sysname release".
fn print_uname() -> String {
    // SAFETY: utsname is plain old data; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname to write.
    if unsafe { libc::uname(&mut u) } != 0 {
        println!("uname failed: {}", errno());
        return "an unknown kernel (uname failed)".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (sysname, release) = (field(&u.sysname), field(&u.release));
    println!(
        "uname: sysname {:?}, nodename {:?}, release {:?}, version {:?}, machine {:?}",
        sysname,
        field(&u.nodename),
        release,
        field(&u.version),
        field(&u.machine)
    );
    format!("{sysname} {release}")
}

/// The current privilege level: the low two bits of CS.
fn current_privilege_level() -> u16 {
    let cs: u16;
    // SAFETY: reading CS has no side effects.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    cs & 3
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(super::utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}
