//! The KVM half: the same guest program on ktls and Linux under `-accel kvm -cpu host` (no
//! `-icount`), where rdtsc deltas are TSC cycles of real time, converted to nanoseconds.
//!
//! KVM is used only where the runner's `--accel auto` would use it ([`ktls_runner::accel`]):
//! `/dev/kvm` usable and not kvm-pvm. Anywhere else the report says why it has no KVM figures;
//! nothing is ever estimated in their place.

use crate::parse::GuestRun;
use ktls_runner::accel::HostFacts;
use std::time::Instant;

/// QEMU's accelerator arguments for the KVM runs (the same as the runner's).
pub const KVM_ARGS: [&str; 4] = ["-accel", "kvm", "-cpu", "host"];

/// Whether KVM really works on a host with these facts; `Err` says why not, in words (e.g.
/// `kvm-pvm detected: it cannot run ring-0 guests correctly`). The runner's `auto` choice
/// decides by the same `HostFacts::kvm_problem`, so the benchmarks and `ktls run` agree.
pub fn usable(facts: &HostFacts) -> Result<(), String> {
    match facts.kvm_problem() {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

/// The KVM runs and how their TSC cycles become nanoseconds.
#[derive(Clone, Debug)]
pub struct KvmRuns {
    pub ktls: Result<GuestRun, String>,
    pub ktls_nofsgsbase: Result<GuestRun, String>,
    pub linux: Result<GuestRun, String>,
    pub tsc: TscRate,
}

/// The TSC frequency the KVM figures are converted with.
///
/// Under KVM without TSC scaling (QEMU scales only when asked with `-cpu ...,tsc-frequency=`,
/// which the runs do not do) the guest reads the host's TSC plus an offset: the guest's cycles
/// are the host's. So the rate is measured on the host, around the KVM runs: host rdtsc
/// against `CLOCK_MONOTONIC` (`Instant`) over all of them, several seconds, where reading the
/// two clocks costs well under a microsecond: the error is below 1 ppm plus NTP's slew of the
/// clock (at most 500 ppm, normally a few). The alternatives are coarser: ktls calibrates its
/// TSC against the PIT over 10 ms and logs whole MHz (`tsc NNNN MHz`, ~0.1%), and the native
/// harness's TSC ticks per ns come from short repetitions. ktls's figure is the cross-check: if
/// it differs from the host's by more than [`SCALED`], the guest's TSC does not run at the
/// host's rate after all, and ktls's own calibration is used instead (and the report says so).
#[derive(Clone, Debug, PartialEq)]
pub struct TscRate {
    /// Cycles per nanosecond used for the conversion.
    pub ghz: f64,
    /// The host's TSC rate measured around the runs.
    pub host_ghz: f64,
    /// ktls's calibration under KVM, from its log.
    pub ktls_mhz: Option<u64>,
    /// Where `ghz` comes from, in words.
    pub source: String,
}

/// The relative difference between the host's rate and ktls's calibration beyond which the
/// guest's TSC is taken to be scaled (PIT calibration over 10 ms in whole MHz is within ~0.2%).
pub const SCALED: f64 = 0.02;

impl TscRate {
    /// Chooses the rate from the host's measurement and ktls's calibration.
    pub fn choose(host_ghz: f64, ktls_mhz: Option<u64>) -> TscRate {
        let host = "the host's TSC against CLOCK_MONOTONIC over the KVM runs";
        let (ghz, source) = match ktls_mhz {
            Some(m) if m > 0 && ((m as f64 / 1000.0) / host_ghz - 1.0).abs() > SCALED => (
                m as f64 / 1000.0,
                format!(
                    "ktls's calibration against the PIT: {host} gave {host_ghz:.4} GHz, more \
                     than {}% off, so the guest's TSC is scaled",
                    SCALED * 100.0
                ),
            ),
            Some(m) => (host_ghz, format!("{host}; ktls calibrates {m} MHz")),
            None => (host_ghz, host.to_string()),
        };
        TscRate {
            ghz,
            host_ghz,
            ktls_mhz,
            source,
        }
    }
}

/// ktls's TSC calibration from its boot line `... tsc NNNN MHz; ...`.
pub fn kernel_tsc_mhz(kernel_log: &str) -> Option<u64> {
    kernel_log.lines().find_map(|l| {
        let at = l.find("tsc ")?;
        let rest = l[at + 4..].strip_suffix('\r').unwrap_or(&l[at + 4..]);
        let (n, unit) = rest.split_once(' ')?;
        unit.starts_with("MHz").then(|| n.parse().ok()).flatten()
    })
}

/// A reading of the host's TSC and `CLOCK_MONOTONIC` at (nearly) the same moment.
#[derive(Clone, Copy, Debug)]
pub struct HostClock {
    at: Instant,
    tsc: u64,
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86_64 (ktls and its benchmarks are x86_64 only).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

impl HostClock {
    pub fn now() -> HostClock {
        // The TSC halfway through reading the clock.
        let a = rdtsc();
        let at = Instant::now();
        let b = rdtsc();
        HostClock {
            at,
            tsc: a + (b.wrapping_sub(a)) / 2,
        }
    }

    /// TSC cycles per nanosecond between `earlier` and this reading.
    pub fn ghz_since(&self, earlier: &HostClock) -> f64 {
        let ns = self.at.duration_since(earlier.at).as_nanos() as f64;
        self.tsc.wrapping_sub(earlier.tsc) as f64 / ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> HostFacts {
        HostFacts {
            kvm_device: true,
            kvm_open: Ok(()),
            kvm_pvm: false,
        }
    }

    #[test]
    fn kvm_only_where_the_runner_would_use_it() {
        assert_eq!(usable(&good()), Ok(()));
        let pvm = HostFacts {
            kvm_pvm: true,
            ..good()
        };
        assert_eq!(
            usable(&pvm),
            Err("kvm-pvm detected: it cannot run ring-0 guests correctly".to_string())
        );
        let missing = HostFacts {
            kvm_device: false,
            kvm_open: Err("missing".into()),
            kvm_pvm: false,
        };
        assert_eq!(usable(&missing), Err("/dev/kvm does not exist".to_string()));
        let denied = HostFacts {
            kvm_open: Err("Permission denied (os error 13)".into()),
            ..good()
        };
        assert!(usable(&denied).unwrap_err().contains("Permission denied"));
    }

    #[test]
    fn tsc_rate() {
        let r = TscRate::choose(2.9952, Some(2994));
        assert_eq!(r.ghz, 2.9952);
        assert_eq!(
            r.source,
            "the host's TSC against CLOCK_MONOTONIC over the KVM runs; ktls calibrates 2994 MHz"
        );
        let r = TscRate::choose(2.9952, None);
        assert_eq!(r.ghz, 2.9952);
        // A guest TSC scaled to 2 GHz: ktls's own calibration wins, and the source says why.
        let r = TscRate::choose(2.9952, Some(2000));
        assert_eq!(r.ghz, 2.0);
        assert!(
            r.source.contains("2.9952 GHz, more than 2% off"),
            "{}",
            r.source
        );
        assert_eq!(r.host_ghz, 2.9952);
    }

    #[test]
    fn kernel_log_tsc() {
        let log = "ktls: boot\r\nktls: 256 MiB RAM, 60000 free frames, heap 16 MiB; tsc 2994 MHz; \
                   smep true smap true fsgsbase true\r\n";
        assert_eq!(kernel_tsc_mhz(log), Some(2994));
        assert_eq!(kernel_tsc_mhz("ktls: no such line\n"), None);
    }

    #[test]
    fn host_clock() {
        let a = HostClock::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ghz = HostClock::now().ghz_since(&a);
        // Any x86_64 TSC of this century: between 0.5 and 10 GHz.
        assert!(ghz > 0.5 && ghz < 10.0, "{ghz}");
    }
}
