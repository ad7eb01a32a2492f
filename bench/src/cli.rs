//! The `ktls-bench` command: build, run everything, report.

use crate::kvm::{self, HostClock, KvmRuns, TscRate};
use crate::parse::{Counter, GuestRun, NativeRun};
use crate::report::{self, Meta, Results};
use crate::{linux, programs};
use ktls_runner::{Accel, AccelChoice, HostFacts, Input, RunConfig};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const HELP: &str = "\
ktls-bench: instructions per operation on ktls and Linux (QEMU TCG -icount), ns under KVM,
ring-3 ns on the host

USAGE:
    cargo run -p ktls-bench --release -- [OPTIONS]
    cargo run --release -- bench [OPTIONS]

Runs the guest program (bench/c/guest.c) on ktls as booted, on ktls with `nofsgsbase`, and as
/init on Linux, all in QEMU with -icount shift=0,sleep=off; where KVM really works (/dev/kvm
usable and not kvm-pvm, as for `ktls run --accel auto`), runs the same three again under
-accel kvm -cpu host and reports them in ns (TSC cycles / the TSC rate), else says why not;
runs the native harness (bench/c/native.c) on the host; prints the table and the targets, and
writes target/bench/latest.{txt,json,svg} and target/bench/<commit>.json.

OPTIONS:
    --linux-kernel FILE   the Linux bzImage to compare with (default: $KTLS_BENCH_LINUX, else the
                          newest /boot/vmlinuz-*-cloud-amd64; apt-get install linux-image-cloud-amd64)
    --vdso FILE           the ktls vDSO image for the native half (default: $KTLS_BENCH_VDSO,
                          else the one ktls-vdso-image builds, which the kernel embeds)
    --no-linux            skip the Linux runs (their columns say n/a)
    --no-kvm              skip the KVM runs (the report says so)
    --no-native           skip the host measurements
    --timeout SECS        limit for each QEMU run (default 3600; Linux under TCG boots in ~3 s on
                          an idle machine, the whole Linux run takes a minute or more)
    --out DIR             where the results go (default target/bench)
    -h, --help            this help
";

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub linux_kernel: Option<PathBuf>,
    pub vdso: Option<PathBuf>,
    pub linux: bool,
    pub native: bool,
    pub kvm: bool,
    pub timeout: Duration,
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            linux_kernel: None,
            vdso: None,
            linux: true,
            native: true,
            kvm: true,
            timeout: Duration::from_secs(3600),
            out: None,
        }
    }
}

/// Parses the arguments; `Ok(None)` means `--help`.
pub fn parse(args: &[OsString]) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i]
            .to_str()
            .ok_or_else(|| format!("bad argument {:?}", args[i]))?;
        i += 1;
        let mut value = |name: &str| -> Result<OsString, String> {
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?;
            i += 1;
            Ok(v)
        };
        match a {
            "-h" | "--help" => return Ok(None),
            "--linux-kernel" => o.linux_kernel = Some(value(a)?.into()),
            "--vdso" => o.vdso = Some(value(a)?.into()),
            "--no-linux" => o.linux = false,
            "--no-native" => o.native = false,
            "--no-kvm" => o.kvm = false,
            "--out" => o.out = Some(value(a)?.into()),
            "--timeout" => {
                let v = value(a)?;
                let secs: f64 = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--timeout {v:?}: expected seconds"))?;
                o.timeout = Duration::from_secs_f64(secs);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(Some(o))
}

/// The extra QEMU arguments of every instruction-count run.
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn host_cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, {n} CPUs")
}

fn meta(linux_kernel: &str, vdso: &str) -> Meta {
    let root = ktls_runner::workspace_root();
    let root = root.to_string_lossy();
    let qemu = ktls_runner::qemu::qemu_binary();
    let qemu_version = Command::new(&qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split("version ").nth(1))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "?".into());
    Meta {
        commit: command_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into()),
        date: command_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
        host_cpu: host_cpu(),
        host_kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        host_load: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        qemu: qemu_version,
        icount: ICOUNT.join(" "),
        linux_kernel: linux_kernel.into(),
        vdso_image: vdso.into(),
    }
}

/// The ktls vDSO image for the native half: `--vdso`, `$KTLS_BENCH_VDSO`, else the one
/// `ktls-vdso-image` builds (the kernel embeds the same image).
fn find_vdso(opts: &Options) -> Result<PathBuf, String> {
    if let Some(p) = &opts.vdso {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("KTLS_BENCH_VDSO") {
        return Ok(PathBuf::from(p));
    }
    ktls_vdso_image::image()
}

/// The QEMU arguments and the reading of the TSC for a run under `accel`: `-icount` and
/// instructions under TCG, TSC cycles under KVM.
fn accel_setup(accel: Accel) -> (Vec<String>, Counter) {
    match accel {
        Accel::Tcg => (
            ICOUNT.iter().map(|s| s.to_string()).collect(),
            Counter::Instructions,
        ),
        Accel::Kvm => (Vec::new(), Counter::TscCycles),
    }
}

fn run_ktls(
    guest: &Path,
    kernel_args: &[&str],
    timeout: Duration,
    accel: Accel,
) -> Result<GuestRun, String> {
    let (extra_qemu_args, counter) = accel_setup(accel);
    let cfg = RunConfig {
        accel: match accel {
            Accel::Tcg => AccelChoice::Tcg,
            Accel::Kvm => AccelChoice::Kvm,
        },
        extra_qemu_args,
        kernel_args: kernel_args.iter().map(|s| s.to_string()).collect(),
        stdin: Input::Null,
        timeout: Some(timeout),
        cwd: Some(PathBuf::from("/")),
        ..RunConfig::default()
    };
    let out = ktls_runner::run_captured(&cfg, guest, &["ktls".into()])
        .map_err(|e| format!("ktls run failed: {e}"))?;
    if out.accel != accel {
        return Err(format!(
            "the runner used {} instead of {}",
            out.accel.name(),
            accel.name()
        ));
    }
    let mut run = GuestRun::parse_as(&String::from_utf8_lossy(&out.stdout), counter);
    if let Some(mhz) = kvm::kernel_tsc_mhz(&out.kernel_log) {
        run.info.insert("kernel_tsc_mhz".into(), mhz.to_string());
    }
    if out.status != 0 || !run.done {
        let mut why = format!("exit status {}", out.status);
        if let Some(m) = &out.message {
            why.push_str(&format!(": {m}"));
        }
        if let Some(p) = &out.panic_report {
            why.push_str(&format!("\nkernel panic:\n{p}"));
        }
        if let Some(h) = &out.hang_report {
            why.push_str(&format!("\nkernel hang report:\n{h}"));
        }
        eprintln!(
            "ktls-bench: the ktls run {kernel_args:?} ({}) did not finish cleanly: {why}",
            accel.name()
        );
        run.notes.push(why);
    }
    Ok(run)
}

fn run_linux(
    kernel: Option<&Path>,
    wanted: bool,
    guest: &Path,
    timeout: Duration,
    accel: Accel,
) -> Result<GuestRun, String> {
    let Some(kernel) = kernel else {
        return Err(if wanted {
            "no Linux kernel (apt-get install linux-image-cloud-amd64, or --linux-kernel)".into()
        } else {
            "skipped (--no-linux)".into()
        });
    };
    let (extra_qemu_args, counter) = accel_setup(accel);
    let out = linux::run(
        kernel,
        guest,
        RunConfig::default().mem_mib,
        accel,
        &extra_qemu_args,
        timeout,
    )?;
    let mut run = GuestRun::parse_as(&out.console, counter);
    if out.timed_out {
        eprintln!(
            "ktls-bench: the Linux run ({}) timed out after {} s",
            accel.name(),
            timeout.as_secs()
        );
        run.notes.push("timed out".into());
    }
    Ok(run)
}

/// The KVM runs, one after the other (so that they do not compete for the CPUs), with the
/// host's TSC rate measured around them (see [`TscRate`]).
fn run_kvm(guest: &Path, linux_kernel: Option<&Path>, opts: &Options) -> KvmRuns {
    let start = HostClock::now();
    let ktls = run_ktls(guest, &[], opts.timeout, Accel::Kvm);
    let ktls_nofsgsbase = run_ktls(guest, &["nofsgsbase"], opts.timeout, Accel::Kvm);
    let linux = run_linux(linux_kernel, opts.linux, guest, opts.timeout, Accel::Kvm);
    let host_ghz = HostClock::now().ghz_since(&start);
    let ktls_mhz = [&ktls, &ktls_nofsgsbase].iter().find_map(|r| {
        r.as_ref()
            .ok()
            .and_then(|g| g.info.get("kernel_tsc_mhz"))
            .and_then(|m| m.parse().ok())
    });
    let tsc = TscRate::choose(host_ghz, ktls_mhz);
    eprintln!("ktls-bench: KVM TSC rate: {}", tsc.source);
    KvmRuns {
        ktls,
        ktls_nofsgsbase,
        linux,
        tsc,
    }
}

fn run_native(native: &Path, vdso: Option<&Path>) -> Result<NativeRun, String> {
    let mut cmd = Command::new(native);
    if let Some(v) = vdso {
        cmd.arg(v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", native.display()))?;
    let run = NativeRun::parse(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!(
            "the native harness failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(run)
}

/// Runs everything and writes the report; returns the exit status (0 unless a build or a
/// write failed: missed targets are results, not errors).
pub fn main(args: Vec<OsString>) -> i32 {
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return 0;
        }
        Err(e) => {
            eprintln!("ktls-bench: {e}");
            return 2;
        }
    };
    match execute(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ktls-bench: error: {e}");
            1
        }
    }
}

fn execute(opts: &Options) -> Result<(), String> {
    eprintln!("ktls-bench: building the guest program, the native harness and the kernel");
    let guest = programs::build_guest()?;
    let native = programs::build_native()?;
    ktls_runner::kernel_path().map_err(|e| e.to_string())?;
    let vdso = find_vdso(opts)
        .map_err(|e| eprintln!("ktls-bench: no vDSO image for the native half: {e}"))
        .ok();
    let linux_kernel = if opts.linux {
        opts.linux_kernel.clone().or_else(linux::find_kernel)
    } else {
        None
    };
    let meta = meta(
        &linux_kernel
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        &vdso
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );

    // The host measurements first, while our own QEMUs do not compete for the CPUs.
    let native_run = if opts.native {
        eprintln!(
            "ktls-bench: host measurements (load average {})",
            meta.host_load
        );
        run_native(&native, vdso.as_deref())
    } else {
        Err("skipped (--no-native)".into())
    };

    eprintln!("ktls-bench: QEMU runs (ktls, ktls nofsgsbase, Linux) under TCG -icount");
    let timeout = opts.timeout;
    let (ktls, ktls_nofsgsbase, linux) = std::thread::scope(|s| {
        let a = s.spawn(|| run_ktls(&guest, &[], timeout, Accel::Tcg));
        let b = s.spawn(|| run_ktls(&guest, &["nofsgsbase"], timeout, Accel::Tcg));
        let c = s.spawn(|| {
            run_linux(
                linux_kernel.as_deref(),
                opts.linux,
                &guest,
                timeout,
                Accel::Tcg,
            )
        });
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<GuestRun, String>>| {
            h.join()
                .unwrap_or_else(|_| Err("the run's thread panicked".into()))
        };
        (join(a), join(b), join(c))
    });
    for (name, run) in [
        ("ktls", &ktls),
        ("ktls nofsgsbase", &ktls_nofsgsbase),
        ("Linux", &linux),
    ] {
        if let Err(e) = run {
            eprintln!("ktls-bench: {name}: {e}");
        }
    }

    // KVM last, alone: its figures are real time, which other QEMUs would disturb.
    let kvm = if !opts.kvm {
        Err("skipped (--no-kvm)".to_string())
    } else {
        match kvm::usable(&HostFacts::probe()) {
            Err(why) => {
                eprintln!("ktls-bench: KVM: not measured ({why})");
                Err(why)
            }
            Ok(()) => {
                eprintln!("ktls-bench: QEMU runs (ktls, ktls nofsgsbase, Linux) under KVM");
                let k = run_kvm(&guest, linux_kernel.as_deref(), opts);
                for (name, run) in [
                    ("ktls", &k.ktls),
                    ("ktls nofsgsbase", &k.ktls_nofsgsbase),
                    ("Linux", &k.linux),
                ] {
                    if let Err(e) = run {
                        eprintln!("ktls-bench: {name} (KVM): {e}");
                    }
                }
                Ok(k)
            }
        }
    };
    let results = Results {
        meta,
        ktls,
        ktls_nofsgsbase,
        linux,
        native: native_run,
        kvm,
    };
    let text = report::text(&results);
    print!("{text}");
    let out = opts.out.clone().unwrap_or_else(programs::out_dir);
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let json = report::json(&results).pretty();
    let write = |name: &str, data: &str| -> Result<PathBuf, String> {
        let p = out.join(name);
        std::fs::write(&p, data).map_err(|e| format!("writing {}: {e}", p.display()))?;
        Ok(p)
    };
    write("latest.txt", &text)?;
    let j = write("latest.json", &json)?;
    write(&format!("{}.json", results.meta.commit), &json)?;
    let s = write("latest.svg", &report::svg(&results))?;
    eprintln!("ktls-bench: wrote {} and {}", j.display(), s.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<Options>, String> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        assert_eq!(p(&[]).unwrap().unwrap(), Options::default());
        assert_eq!(p(&["--help"]).unwrap(), None);
        let o = p(&[
            "--no-linux",
            "--no-native",
            "--no-kvm",
            "--timeout",
            "30",
            "--vdso",
            "/v",
            "--linux-kernel",
            "/k",
            "--out",
            "/o",
        ])
        .unwrap()
        .unwrap();
        assert!(!o.linux && !o.native && !o.kvm);
        assert!(p(&[]).unwrap().unwrap().kvm);
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.vdso, Some(PathBuf::from("/v")));
        assert_eq!(o.linux_kernel, Some(PathBuf::from("/k")));
        assert_eq!(o.out, Some(PathBuf::from("/o")));
        assert_eq!(
            accel_setup(Accel::Tcg),
            (
                vec!["-icount".to_string(), "shift=0,sleep=off".to_string()],
                Counter::Instructions
            )
        );
        assert_eq!(accel_setup(Accel::Kvm), (Vec::new(), Counter::TscCycles));
        for bad in [&["--timeout"][..], &["--timeout", "0"], &["--frob"]] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        for o in [
            "--linux-kernel",
            "--vdso",
            "--no-linux",
            "--no-native",
            "--no-kvm",
            "--timeout",
            "--out",
        ] {
            assert!(HELP.contains(o), "{o}");
        }
    }
}
