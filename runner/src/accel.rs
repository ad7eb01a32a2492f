//! Choosing between KVM and TCG.
//!
//! `--accel auto` uses KVM only where it really works: `/dev/kvm` must exist and open for
//! reading and writing, and the host's KVM must not be kvm-pvm (`/sys/module/kvm_pvm`), a
//! software hypervisor that cannot run ring-0 guests correctly (it breaks SYSCALL). Otherwise it
//! uses TCG. An explicit `--accel kvm` is obeyed even on such a host, with a warning.

use std::path::Path;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl AccelChoice {
    pub fn parse(s: &str) -> Option<AccelChoice> {
        match s {
            "auto" => Some(AccelChoice::Auto),
            "kvm" => Some(AccelChoice::Kvm),
            "tcg" => Some(AccelChoice::Tcg),
            _ => None,
        }
    }
}

/// The accelerator a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Accel {
    Kvm,
    #[default]
    Tcg,
}

impl Accel {
    /// QEMU's `-accel` and `-cpu` values.
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The facts about the host the decision depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `/dev/kvm` exists.
    pub kvm_device: bool,
    /// `/dev/kvm` opened for reading and writing; the error text if not.
    pub kvm_open: Result<(), String>,
    /// `/sys/module/kvm_pvm` exists.
    pub kvm_pvm: bool,
}

impl HostFacts {
    /// Looks at this host.
    pub fn probe() -> HostFacts {
        let dev = Path::new("/dev/kvm");
        let kvm_device = dev.exists();
        let kvm_open = if kvm_device {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dev)
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            Err("missing".into())
        };
        HostFacts {
            kvm_device,
            kvm_open,
            kvm_pvm: Path::new("/sys/module/kvm_pvm").exists(),
        }
    }

    /// Why KVM is not usable here, or `None` if it is: what `auto` decides by (and the
    /// benchmarks, so that they use KVM exactly where `ktls run` would).
    pub fn kvm_problem(&self) -> Option<String> {
        if !self.kvm_device {
            Some("/dev/kvm does not exist".into())
        } else if let Err(e) = &self.kvm_open {
            Some(format!("/dev/kvm cannot be opened: {e}"))
        } else if self.kvm_pvm {
            Some("kvm-pvm detected: it cannot run ring-0 guests correctly".into())
        } else {
            None
        }
    }
}

/// The decision and the line that explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelDecision {
    pub accel: Accel,
    /// One line for stderr, e.g. `ktls: accel tcg (kvm-pvm detected: ...)`.
    pub note: String,
    /// Set when an explicit `--accel kvm` is obeyed although KVM looks unusable.
    pub warning: Option<String>,
}

/// Decides which accelerator to use.
pub fn decide(choice: AccelChoice, facts: &HostFacts) -> AccelDecision {
    match choice {
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            note: "ktls: accel tcg (as requested)".into(),
            warning: None,
        },
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            note: "ktls: accel kvm (as requested)".into(),
            warning: facts.kvm_problem().map(|p| {
                format!("ktls: warning: --accel kvm although {p}; QEMU or the guest may fail")
            }),
        },
        AccelChoice::Auto => match facts.kvm_problem() {
            Some(p) => AccelDecision {
                accel: Accel::Tcg,
                note: format!("ktls: accel tcg ({p})"),
                warning: None,
            },
            None => AccelDecision {
                accel: Accel::Kvm,
                note: "ktls: accel kvm (/dev/kvm is usable)".into(),
                warning: None,
            },
        },
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
    fn auto_uses_kvm_only_when_it_works() {
        let d = decide(AccelChoice::Auto, &good());
        assert_eq!(d.accel, Accel::Kvm);
        assert_eq!(d.warning, None);

        let pvm = HostFacts {
            kvm_pvm: true,
            ..good()
        };
        let d = decide(AccelChoice::Auto, &pvm);
        assert_eq!(d.accel, Accel::Tcg);
        assert_eq!(
            d.note,
            "ktls: accel tcg (kvm-pvm detected: it cannot run ring-0 guests correctly)"
        );

        let missing = HostFacts {
            kvm_device: false,
            kvm_open: Err("missing".into()),
            kvm_pvm: false,
        };
        let d = decide(AccelChoice::Auto, &missing);
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.note.contains("does not exist"));

        let denied = HostFacts {
            kvm_open: Err("Permission denied (os error 13)".into()),
            ..good()
        };
        let d = decide(AccelChoice::Auto, &denied);
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.note.contains("Permission denied"));
    }

    #[test]
    fn explicit_choices_are_obeyed() {
        let pvm = HostFacts {
            kvm_pvm: true,
            ..good()
        };
        let d = decide(AccelChoice::Kvm, &pvm);
        assert_eq!(d.accel, Accel::Kvm);
        assert!(d.warning.unwrap().contains("kvm-pvm"));
        assert_eq!(decide(AccelChoice::Kvm, &good()).warning, None);
        let d = decide(AccelChoice::Tcg, &good());
        assert_eq!(d.accel, Accel::Tcg);
        assert_eq!(d.warning, None);
    }

    #[test]
    fn qemu_arguments() {
        assert_eq!(Accel::Tcg.qemu_args(), ["-accel", "tcg", "-cpu", "max"]);
        assert_eq!(Accel::Kvm.qemu_args(), ["-accel", "kvm", "-cpu", "host"]);
    }
}
