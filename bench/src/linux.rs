//! Running the guest program as `/init` on a real Linux kernel, in the same QEMU configuration
//! as ktls (microvm, one CPU, the same memory; TCG `-cpu max` with `-icount`, or KVM
//! `-cpu host`).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Linux kernel to compare with: `$KTLS_BENCH_LINUX`, else the newest
/// `/boot/vmlinuz-*-cloud-amd64` (Debian's `linux-image-cloud-amd64`; 6.12 preferred).
pub fn find_kernel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KTLS_BENCH_LINUX") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<(bool, String, PathBuf)> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name.strip_prefix("vmlinuz-")?.to_string();
            version
                .ends_with("-cloud-amd64")
                .then(|| (version.starts_with("6.12."), version, e.path()))
        })
        .collect();
    // 6.12 first, then the highest version (compared as numbers where they are numbers).
    found.sort_by_key(|(is_612, version, _)| (*is_612, version_key(version)));
    found.pop().map(|(_, _, p)| p)
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

/// What one Linux run gave.
pub struct LinuxOutput {
    /// Everything on the serial console (the program's output and the kernel's messages).
    pub console: String,
    pub timed_out: bool,
}

/// Boots `kernel` under `accel` (its `-accel` and `-cpu` are the runner's) with an initramfs
/// holding `program` as `/init` (started with argv `init linux`) and returns the console output.
pub fn run(
    kernel: &Path,
    program: &Path,
    mem_mib: u64,
    accel: ktls_runner::Accel,
    extra_qemu_args: &[String],
    timeout: Duration,
) -> Result<LinuxOutput, String> {
    let bytes =
        std::fs::read(program).map_err(|e| format!("reading {}: {e}", program.display()))?;
    let mut w = ktls_cpio::Writer::new(Vec::new());
    w.add_file("init", 0o755, &bytes)
        .map_err(|e| format!("packing the initramfs: {e}"))?;
    let archive = w
        .finish()
        .map_err(|e| format!("packing the initramfs: {e}"))?;
    let dir = crate::programs::out_dir().join("linux");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let initrd = dir.join(format!("initramfs-{}.cpio", std::process::id()));
    std::fs::write(&initrd, archive).map_err(|e| format!("writing {}: {e}", initrd.display()))?;

    let qemu = ktls_runner::qemu::qemu_binary();
    let mut cmd = Command::new(&qemu);
    cmd.args(qemu_args(kernel, &initrd, mem_mib, accel, extra_qemu_args))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.to_string_lossy()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    }
    let _ = std::fs::remove_file(&initrd);
    let console = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let qemu_err = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    if !console.contains("@kb") && !timed_out {
        return Err(format!(
            "Linux printed nothing of the benchmark; QEMU said:\n{}\nconsole:\n{}",
            qemu_err.trim_end(),
            console.trim_end()
        ));
    }
    Ok(LinuxOutput { console, timed_out })
}

/// QEMU's arguments for booting `kernel` with `initrd` under `accel`.
fn qemu_args(
    kernel: &Path,
    initrd: &Path,
    mem_mib: u64,
    accel: ktls_runner::Accel,
    extra_qemu_args: &[String],
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut add = |words: &[&str]| a.extend(words.iter().map(OsString::from));
    add(&["-M", ktls_runner::Machine::Microvm.qemu_arg()]);
    add(&accel.qemu_args());
    add(&["-m", &format!("{mem_mib}M"), "-smp", "1"]);
    add(&["-nodefaults", "-display", "none", "-no-reboot"]);
    add(&["-serial", "stdio"]);
    add(&["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    a.push("-kernel".into());
    a.push(kernel.into());
    a.push("-initrd".into());
    a.push(initrd.into());
    // `panic=-1 reboot=t`: should /init die, reboot at once by triple fault (microvm has no
    // keyboard controller to reset through), which -no-reboot turns into QEMU's exit.
    a.push("-append".into());
    a.push("console=ttyS0 quiet panic=-1 reboot=t -- linux".into());
    a.extend(extra_qemu_args.iter().map(OsString::from));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerators() {
        let args = |accel, extra: &[&str]| {
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            qemu_args(Path::new("/k"), Path::new("/i"), 256, accel, &extra)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let tcg = args(ktls_runner::Accel::Tcg, &["-icount", "shift=0,sleep=off"]);
        assert!(
            tcg.starts_with("-M microvm,rtc=on -accel tcg -cpu max -m 256M"),
            "{tcg}"
        );
        assert!(
            tcg.ends_with(" -- linux -icount shift=0,sleep=off"),
            "{tcg}"
        );
        let kvm = args(ktls_runner::Accel::Kvm, &[]);
        assert!(
            kvm.starts_with("-M microvm,rtc=on -accel kvm -cpu host -m 256M"),
            "{kvm}"
        );
        assert!(!kvm.contains("icount") && !kvm.contains("tcg"), "{kvm}");
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_key("6.12.117+deb12-cloud-amd64") > version_key("6.12.99+deb12-cloud"));
        assert!(version_key("6.12.9") < version_key("6.12.10"));
    }
}
