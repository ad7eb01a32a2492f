//! The conformance harness: builds the programs in `tests/programs/` (each C file with each
//! available toolchain) and the Rust program in `tests/rust-hello/`, runs every case natively on
//! this Linux host and on ktls (through [`ktls_runner`]), and checks both runs.
//!
//! The rule: every program passes natively first. A case states the exit status it expects and
//! how to judge its stdout; the native run must meet the expectations (otherwise the program or
//! the case is wrong), then the ktls run must meet them too and, unless a case says otherwise,
//! print exactly what the native run printed.
//!
//! Environment variables:
//!
//! * `KTLS_TESTS_NATIVE_ONLY=1`: run and check only the native half of every case (the programs
//!   themselves), skipping QEMU.
//! * `KTLS_TESTS_STRACE=1`: run the ktls half with `strace` and show the records on failure.
//! * `KTLS_KERNEL=/path`: boot this kernel instead of building `kernel/` (see the runner).

use ktls_runner::{run_captured, run_host, Add, HostOutcome, Input, Outcome, RunConfig};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// How long a ktls run may take before it counts as hung.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a native run may take.
pub const NATIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
}

/// `tests/programs/`: the C sources and their shared header.
pub fn programs_dir() -> PathBuf {
    workspace_root().join("tests").join("programs")
}

/// Where built programs and fixtures go: `<workspace>/target/guest/tests/`.
pub fn out_dir() -> PathBuf {
    workspace_root().join("target").join("guest").join("tests")
}

/// True when `KTLS_TESTS_NATIVE_ONLY` is set to something other than `0` or empty.
pub fn native_only() -> bool {
    std::env::var_os("KTLS_TESTS_NATIVE_ONLY").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Prints a note that shows even though libtest captures the test's output (it captures only
/// `print!`-style macros, not direct writes to the stderr handle).
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "note: {msg}");
}

// ---------------------------------------------------------------------------------------------
// Toolchains and builds

/// One way of building a C program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toolchain {
    /// `musl-gcc -static`: ET_EXEC.
    MuslStatic,
    /// `musl-gcc -static-pie`, linked by hand with musl's `rcrt1.o`: ET_DYN without PT_INTERP.
    MuslStaticPie,
    /// `gcc -static` (glibc): ET_EXEC.
    GlibcStatic,
    /// `gcc -static-pie` (glibc): ET_DYN without PT_INTERP.
    GlibcStaticPie,
}

impl Toolchain {
    pub const ALL: [Toolchain; 4] = [
        Toolchain::MuslStatic,
        Toolchain::MuslStaticPie,
        Toolchain::GlibcStatic,
        Toolchain::GlibcStaticPie,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Toolchain::MuslStatic => "musl-static",
            Toolchain::MuslStaticPie => "musl-static-pie",
            Toolchain::GlibcStatic => "glibc-static",
            Toolchain::GlibcStaticPie => "glibc-static-pie",
        }
    }

    pub fn is_pie(self) -> bool {
        matches!(self, Toolchain::MuslStaticPie | Toolchain::GlibcStaticPie)
    }

    fn compiler(self) -> &'static str {
        match self {
            Toolchain::MuslStatic | Toolchain::MuslStaticPie => "musl-gcc",
            Toolchain::GlibcStatic | Toolchain::GlibcStaticPie => "gcc",
        }
    }

    /// The compiler command for `sources` -> `out`.
    fn command(self, sources: &[PathBuf], out: &Path) -> Result<Command, String> {
        let mut cmd = Command::new(self.compiler());
        cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-std=gnu11"])
            .arg("-I")
            .arg(programs_dir());
        match self {
            Toolchain::MuslStatic | Toolchain::GlibcStatic => {
                cmd.arg("-static").args(sources);
            }
            Toolchain::GlibcStaticPie => {
                cmd.arg("-static-pie").args(sources);
            }
            Toolchain::MuslStaticPie => {
                // musl-gcc's specs file always links Scrt1.o with a dynamic linker, so spell out
                // what gcc's -static-pie would do: musl's self-relocating rcrt1.o, the crt
                // objects around the program, and a static PIE link without PT_INTERP.
                let crt = musl_static_pie_crt()?;
                cmd.arg("-static-pie")
                    .arg("-nostartfiles")
                    .arg(&crt.rcrt1)
                    .arg(&crt.crti)
                    .arg(&crt.crtbegin)
                    .args(sources)
                    .arg(&crt.crtend)
                    .arg(&crt.crtn)
                    .arg("-Wl,-static,-pie,--no-dynamic-linker,-z,text");
            }
        }
        cmd.arg("-o").arg(out);
        Ok(cmd)
    }

    /// Whether this toolchain works here, checked once per process by building a trivial
    /// program: `Unavailable` if the compiler or its static libraries are missing (the caller
    /// skips), `Failed` if it builds something that is not a working static executable of the
    /// right kind (a harness bug: the caller fails).
    pub fn available(self) -> Result<(), BuildError> {
        static PROBES: OnceLock<Mutex<HashMap<Toolchain, Result<(), BuildError>>>> =
            OnceLock::new();
        let probes = PROBES.get_or_init(Default::default);
        if let Some(r) = probes.lock().unwrap().get(&self) {
            return r.clone();
        }
        let r = self.probe();
        probes.lock().unwrap().insert(self, r.clone());
        r
    }

    fn probe(self) -> Result<(), BuildError> {
        let dir = out_dir().join("probe");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::Failed(e.to_string()))?;
        let src = dir.join("probe.c");
        write_if_changed(&src, PROBE_SOURCE).map_err(BuildError::Failed)?;
        let out = dir.join(format!("probe-{}", self.name()));
        compile(self, &[src], &out).map_err(BuildError::Unavailable)?;
        check_elf_kind(&out, self.is_pie()).map_err(BuildError::Failed)?;
        let st = Command::new(&out)
            .status()
            .map_err(|e| BuildError::Failed(format!("running {}: {e}", out.display())))?;
        if !st.success() {
            return Err(BuildError::Failed(format!(
                "{} ran natively with {st}",
                out.display()
            )));
        }
        Ok(())
    }
}

/// The crt objects for a musl static PIE.
#[derive(Clone)]
struct MuslCrt {
    rcrt1: PathBuf,
    crti: PathBuf,
    crtn: PathBuf,
    crtbegin: PathBuf,
    crtend: PathBuf,
}

/// Finds the crt objects musl-gcc links (from its `-###` dry run, so they are the ones its specs
/// file names) and musl's rcrt1.o: next to musl's crti.o (Debian's musl-dev ships one there,
/// matching its libc.a), else the one Rust's x86_64-unknown-linux-musl target ships.
fn musl_static_pie_crt() -> Result<MuslCrt, String> {
    static CRT: OnceLock<Result<MuslCrt, String>> = OnceLock::new();
    CRT.get_or_init(|| {
        let dir = out_dir().join("probe");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let src = dir.join("probe.c");
        write_if_changed(&src, PROBE_SOURCE)?;
        let out = Command::new("musl-gcc")
            .args(["-###", "-static"])
            .arg(&src)
            .arg("-o")
            .arg(dir.join("unused"))
            .output()
            .map_err(|e| format!("musl-gcc -###: {e}"))?;
        let text = String::from_utf8_lossy(&out.stderr);
        let find = |suffix: &str| {
            text.split_whitespace()
                .map(|t| t.trim_matches('"'))
                .find(|t| t.ends_with(suffix) && Path::new(t).is_file())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    format!("musl-gcc -### -static names no existing *{suffix}:\n{text}")
                })
        };
        let crti = find("/crti.o")?;
        let libdir = crti.parent().unwrap().to_path_buf();
        let mut rcrt1 = libdir.join("rcrt1.o");
        if !rcrt1.is_file() {
            let sysroot = Command::new("rustc")
                .args(["--print", "sysroot"])
                .output()
                .map_err(|e| format!("rustc --print sysroot: {e}"))?;
            rcrt1 = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
                .join("lib/rustlib/x86_64-unknown-linux-musl/lib/self-contained/rcrt1.o");
            if !rcrt1.is_file() {
                return Err(format!(
                    "no rcrt1.o in {} nor in Rust's musl target",
                    libdir.display()
                ));
            }
        }
        Ok(MuslCrt {
            rcrt1,
            crti,
            crtn: find("/crtn.o")?,
            crtbegin: find("/crtbeginS.o")?,
            crtend: find("/crtendS.o")?,
        })
    })
    .clone()
}

const PROBE_SOURCE: &[u8] = b"int main(void) { return 0; }\n";

fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), String> {
    if std::fs::read(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    let tmp = unique_tmp(path);
    std::fs::write(&tmp, content).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A temporary name next to `path`, unique to this process and call.
fn unique_tmp(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Compiles into a temporary file and renames it into place, so a concurrent reader never
/// sees half a binary.
fn compile(tc: Toolchain, sources: &[PathBuf], out: &Path) -> Result<(), String> {
    let tmp = unique_tmp(out);
    let mut cmd = tc.command(sources, &tmp)?;
    let res = cmd
        .output()
        .map_err(|e| format!("could not run {}: {e}", tc.compiler()))?;
    if !res.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{:?} failed ({}):\n{}{}",
            cmd,
            res.status,
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        ));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Checks that `path` is a static x86_64 executable of the wanted kind: ET_EXEC, or ET_DYN with
/// PT_DYNAMIC (a static PIE); never with PT_INTERP.
pub fn check_elf_kind(path: &Path, want_pie: bool) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |why: &str| Err(format!("{}: {why}", path.display()));
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return bad("not a 64-bit little-endian ELF file");
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let (e_type, machine) = (u16_at(16), u16_at(18));
    if machine != 62 {
        return bad("not x86_64");
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56));
    let mut interp = false;
    let mut dynamic = false;
    for i in 0..phnum as usize {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            return bad("truncated program headers");
        }
        match u32_at(o) {
            2 => dynamic = true,
            3 => interp = true,
            _ => {}
        }
    }
    if interp {
        return bad("has PT_INTERP (dynamically linked)");
    }
    match (want_pie, e_type) {
        (false, 2) => Ok(()),
        (true, 3) if dynamic => Ok(()),
        (true, 3) => bad("ET_DYN without PT_DYNAMIC: not a static PIE"),
        _ => bad(&format!(
            "e_type {e_type}, want {}",
            if want_pie {
                "ET_DYN (static PIE)"
            } else {
                "ET_EXEC"
            }
        )),
    }
}

/// Builds `tests/programs/<name>.c` with `tc` into `target/guest/tests/<name>-<toolchain>`,
/// unless the binary is newer than the source, the shared headers and this harness. `Err` if
/// the toolchain is missing (the caller skips) or the build fails (the caller fails).
pub fn build_c(name: &str, tc: Toolchain) -> Result<PathBuf, BuildError> {
    tc.available()?;
    let src = programs_dir().join(format!("{name}.c"));
    let out = out_dir().join(format!("{name}-{}", tc.name()));
    let inputs = [
        src.clone(),
        programs_dir().join("ktls_test.h"),
        programs_dir().join("raw_syscall.h"),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join("lib.rs"),
    ];
    let newest = inputs.iter().filter_map(|p| mtime(p)).max();
    let fresh = matches!((mtime(&out), newest), (Some(o), Some(n)) if o >= n);
    if !fresh {
        std::fs::create_dir_all(out_dir()).map_err(|e| BuildError::Failed(e.to_string()))?;
        compile(tc, &[src], &out).map_err(BuildError::Failed)?;
    }
    check_elf_kind(&out, tc.is_pie()).map_err(BuildError::Failed)?;
    // Canonical, so argv[0] (the path as given) is what /proc/self/exe reports.
    out.canonicalize()
        .map_err(|e| BuildError::Failed(format!("{}: {e}", out.display())))
}

#[derive(Clone, Debug)]
pub enum BuildError {
    /// The toolchain is not installed or cannot make this kind of binary: skip, with a note.
    Unavailable(String),
    /// The build itself failed: a test failure.
    Failed(String),
}

/// Builds `tests/rust-hello` for x86_64-unknown-linux-musl (once per process; cargo itself
/// decides whether anything changed).
pub fn build_rust_hello() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let target_dir = root.join("target").join("guest");
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.current_dir(root)
                .args([
                    "build",
                    "--release",
                    "--target",
                    "x86_64-unknown-linux-musl",
                ])
                .arg("--manifest-path")
                .arg(root.join("tests/rust-hello/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir);
            // Variables an outer `cargo test` sets that would change the inner build.
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy();
                let leaks = [
                    "CARGO_TARGET_",
                    "CARGO_BUILD_",
                    "CARGO_ENCODED_",
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_CRATE_NAME",
                    "CARGO_MAKEFLAGS",
                    "RUSTFLAGS",
                    "RUSTC_WORKSPACE_WRAPPER",
                    "__CARGO",
                ]
                .iter()
                .any(|p| k.starts_with(p));
                if leaks && k != "CARGO_BUILD_JOBS" {
                    cmd.env_remove(&*k);
                }
            }
            let out = cmd.output().map_err(|e| format!("running cargo: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{cmd:?} failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let exe = target_dir.join("x86_64-unknown-linux-musl/release/ktls-rust-hello");
            // Rust's musl target links static PIEs.
            check_elf_kind(&exe, true)?;
            Ok(exe)
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The first line of `files/data.txt` (files.c checks it).
pub const DATA_FIRST_LINE: &str = "ktls test data\n";

/// `target/guest/tests/fixtures/files`: `data.txt` (more than a page) and `dir/` holding
/// `alpha`, `beta`, `gamma.txt` and `sub/inner`, all with fixed contents. Written once per
/// process (and only rewritten when the contents differ). Returns the canonical path.
pub fn files_fixture() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir().join("fixtures").join("files");
        std::fs::create_dir_all(dir.join("dir/sub")).expect("create the fixture directories");
        let mut data = String::from(DATA_FIRST_LINE);
        for i in 1..=150 {
            writeln!(
                data,
                "line {i:03}: the quick brown fox jumps over the lazy dog"
            )
            .unwrap();
        }
        let files: [(&str, &[u8]); 5] = [
            ("data.txt", data.as_bytes()),
            ("dir/alpha", b"alpha\n"),
            ("dir/beta", b"beta beta\n"),
            ("dir/gamma.txt", b"gamma gamma gamma\n"),
            ("dir/sub/inner", b"inner\n"),
        ];
        for (rel, content) in files {
            write_if_changed(&dir.join(rel), content).expect("write a fixture file");
        }
        // Nothing else may be in dir/: files.c lists it.
        for e in std::fs::read_dir(dir.join("dir")).unwrap() {
            let name = e.unwrap().file_name();
            assert!(
                ["alpha", "beta", "gamma.txt", "sub"].contains(&name.to_str().unwrap_or("")),
                "stray fixture entry {name:?}"
            );
        }
        dir.canonicalize().expect("canonicalize the fixture")
    })
    .clone()
}

/// Writes `target/guest/tests/fixtures/<rel>` with `content` (only if it differs) and returns
/// its canonical path.
pub fn fixture_file(rel: &str, content: &[u8]) -> PathBuf {
    let path = out_dir().join("fixtures").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).expect("create a fixture directory");
    write_if_changed(&path, content).expect("write a fixture file");
    path.canonicalize().expect("canonicalize a fixture")
}

/// The `Add` that puts a host directory at the same absolute path in the guest.
pub fn add_same_path(host: &Path) -> Add {
    let canonical = host.canonicalize().expect("canonicalize an add");
    Add {
        host: canonical.clone(),
        guest: canonical,
    }
}

// ---------------------------------------------------------------------------------------------
// Cases

/// Checks one run's stdout; `Err` says what is wrong.
pub type StdoutCheck = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;
/// Compares the ktls stdout with the native stdout; `Err` says how they differ.
pub type StdoutCompare = fn(native: &[u8], guest: &[u8]) -> Result<(), String>;

/// One program run, natively and on ktls, with its expectations.
#[derive(Clone)]
pub struct Case {
    /// For reports: `files [glibc-static-pie]`.
    pub name: String,
    /// Absolute path; also `argv[0]`.
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Variables on top of the runner's default environment, in both runs.
    pub env: Vec<(String, String)>,
    /// Extra files for the guest tree (natively they are simply there).
    pub adds: Vec<Add>,
    /// Extra kernel command-line words for the ktls run.
    pub kernel_args: Vec<String>,
    /// The exit status both runs must have (128+N for death by signal N).
    pub status: i32,
    /// Expectations on the stdout of both runs.
    pub checks: Vec<StdoutCheck>,
    /// How the ktls stdout must relate to the native one (default: identical).
    pub compare: StdoutCompare,
}

impl Case {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Case {
        Case {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: vec![("KTLS_GREETING".into(), "hello from the harness".into())],
            adds: Vec::new(),
            kernel_args: Vec::new(),
            status: 0,
            checks: Vec::new(),
            compare: identical,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Case {
        self.args.push(a.into());
        self
    }

    pub fn guest_add(mut self, a: Add) -> Case {
        self.adds.push(a);
        self
    }

    pub fn kernel_arg(mut self, w: &str) -> Case {
        self.kernel_args.push(w.into());
        self
    }

    pub fn status(mut self, s: i32) -> Case {
        self.status = s;
        self
    }

    pub fn check(
        mut self,
        c: impl Fn(&[u8]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Case {
        self.checks.push(Arc::new(c));
        self
    }

    /// Expects the stdout of both runs to be exactly `want`.
    pub fn stdout_is(self, want: impl Into<Vec<u8>>) -> Case {
        let want = want.into();
        self.check(move |got| identical(&want, got).map_err(|e| format!("unexpected stdout: {e}")))
    }

    /// Expects the stdout of both runs to contain `line` as a whole line.
    pub fn has_line(self, line: impl Into<String>) -> Case {
        let line = line.into();
        self.check(move |got| {
            if String::from_utf8_lossy(got).lines().any(|l| l == line) {
                Ok(())
            } else {
                Err(format!("no line {line:?} in stdout"))
            }
        })
    }

    pub fn compare(mut self, c: StdoutCompare) -> Case {
        self.compare = c;
        self
    }

    /// A self-checking program (see `ktls_test.h`): exits 0 and passes [`all_ok`].
    pub fn self_checking(self) -> Case {
        self.status(0).check(all_ok)
    }

    fn config(&self) -> RunConfig {
        let mut cfg = RunConfig::default();
        for (k, v) in &self.env {
            cfg.set_env(k, v);
        }
        cfg.adds = self.adds.clone();
        cfg.kernel_args = self.kernel_args.clone();
        cfg.stdin = Input::Null;
        // "/" exists on both sides, so both runs start in the same directory.
        cfg.cwd = Some(PathBuf::from("/"));
        cfg.strace = std::env::var_os("KTLS_TESTS_STRACE").is_some_and(|v| v != "0");
        cfg
    }

    /// Runs the case natively; panics with a report if the native run misses an expectation.
    pub fn run_native(&self) -> HostOutcome {
        let mut cfg = self.config();
        cfg.timeout = Some(NATIVE_TIMEOUT);
        let out = run_host(&cfg, &self.program, &self.args)
            .unwrap_or_else(|e| panic!("{}: cannot run natively: {e}", self.name));
        let problems = self.judge(out.status, &out.stdout);
        if !problems.is_empty() {
            panic!(
                "{}: the NATIVE run fails its expectations (a bug in the program or the case):\n\
                 {}\n--- native stdout ---\n{}--- native stderr ---\n{}",
                self.name,
                problems.join("\n"),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// Runs the case on ktls; `Err` holds a full report (differences, outputs, kernel log).
    pub fn run_guest(&self, native: &HostOutcome) -> Result<Outcome, String> {
        let mut cfg = self.config();
        cfg.timeout = Some(GUEST_TIMEOUT);
        let out = run_captured(&cfg, &self.program, &self.args)
            .map_err(|e| format!("{}: the runner failed: {e}", self.name))?;
        let mut problems = self.judge(out.status, &out.stdout);
        if let Err(e) = (self.compare)(&native.stdout, &out.stdout) {
            problems.push(format!("stdout differs from the native run: {e}"));
        }
        if problems.is_empty() {
            return Ok(out);
        }
        Err(self.report(&out, &problems, native))
    }

    /// The expectations every run must meet.
    fn judge(&self, status: i32, stdout: &[u8]) -> Vec<String> {
        let mut problems = Vec::new();
        if status != self.status {
            problems.push(format!("exit status {status}, expected {}", self.status));
        }
        for c in &self.checks {
            if let Err(e) = c.as_ref()(stdout) {
                problems.push(e);
            }
        }
        problems
    }

    fn report(&self, out: &Outcome, problems: &[String], native: &HostOutcome) -> String {
        let mut r = report_head(&format!("{} on ktls", self.name), out, problems);
        let _ = write!(
            r,
            "--- ktls stdout ---\n{}--- native stdout ---\n{}--- ktls stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&native.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log: Vec<&str> = out.kernel_log.lines().collect();
        let skip = log.len().saturating_sub(80);
        let mut log_section = format!(
            "--- kernel log ({} lines{}) ---\n",
            log.len(),
            if skip > 0 { ", last 80" } else { "" }
        );
        for l in &log[skip..] {
            let _ = writeln!(log_section, "{l}");
        }
        report_tail(&mut r, out, &log_section);
        r
    }

    /// The whole test: native run (must pass), then, unless native-only, the ktls run.
    pub fn run(&self) {
        run_all(std::slice::from_ref(self));
    }
}

/// Runs several cases (each native, then on ktls) and fails with every ktls report at the end,
/// so one failing case does not hide the others. A failing native run fails at once.
pub fn run_all(cases: &[Case]) {
    let mut reports = Vec::new();
    for case in cases {
        let native = case.run_native();
        if native_only() {
            continue;
        }
        if let Err(report) = case.run_guest(&native) {
            reports.push(report);
        }
    }
    if !reports.is_empty() {
        panic!(
            "{} of {} case(s) failed on ktls:\n\n{}",
            reports.len(),
            cases.len(),
            reports.join("\n")
        );
    }
}

/// Default comparison: byte-for-byte identical stdout.
pub fn identical(native: &[u8], guest: &[u8]) -> Result<(), String> {
    if native == guest {
        return Ok(());
    }
    let common = native.iter().zip(guest).take_while(|(a, b)| a == b).count();
    let line = native[..common].iter().filter(|&&b| b == b'\n').count() + 1;
    let line_at = |s: &[u8]| {
        let start = s[..common.min(s.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let rest = &s[start.min(s.len())..];
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    };
    Err(format!(
        "first difference at line {line}: native {:?}, ktls {:?} ({} vs {} bytes)",
        line_at(native),
        line_at(guest),
        native.len(),
        guest.len()
    ))
}

/// The verdict of a self-checking program: no `FAIL` line, at least one `ok` line, and the
/// final line `all checks passed`.
pub fn all_ok(stdout: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(stdout);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    if !fails.is_empty() {
        return Err(format!("failed checks:\n    {}", fails.join("\n    ")));
    }
    if !text.lines().any(|l| l.starts_with("ok ")) {
        return Err("no `ok` line".into());
    }
    if text.lines().last() != Some("all checks passed") {
        return Err("the output does not end with `all checks passed` (did it stop early?)".into());
    }
    Ok(())
}

/// The case for a C program built with one toolchain: `None` (after a note) if the toolchain
/// is missing here; panics if the build fails.
pub fn c_case(program: &str, tc: Toolchain) -> Option<Case> {
    match build_c(program, tc) {
        Ok(exe) => Some(Case::new(format!("{program} [{}]", tc.name()), exe)),
        Err(BuildError::Unavailable(why)) => {
            note(&format!(
                "skipping {program} [{}]: toolchain unavailable: {why}",
                tc.name()
            ));
            None
        }
        Err(BuildError::Failed(why)) => panic!("building {program} [{}]: {why}", tc.name()),
    }
}

/// `/bin/busybox`'s canonical path, or `None` (with a note) if it is missing.
pub fn busybox() -> Option<PathBuf> {
    match Path::new("/bin/busybox").canonicalize() {
        Ok(p) => Some(p),
        Err(e) => {
            note(&format!("skipping a busybox case: /bin/busybox: {e}"));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// For the rseq, KTLS, threads and signals programs (tests/tests/{rseq,ktls,threads}.rs)

/// [`c_case`] for a program that also includes `headers` (files in `tests/programs/` besides
/// `ktls_test.h`): a binary older than one of them is removed first, so that it is rebuilt.
pub fn c_case_including(program: &str, tc: Toolchain, headers: &[&str]) -> Option<Case> {
    let out = out_dir().join(format!("{program}-{}", tc.name()));
    if let Some(built) = mtime(&out) {
        let newer = |h: &&str| mtime(&programs_dir().join(h)).is_none_or(|m| m > built);
        if headers.iter().any(newer) {
            let _ = std::fs::remove_file(&out);
        }
    }
    c_case(program, tc)
}

/// [`run_all`] with the ktls half on each CPU count of `smps` (`--smp N`) in turn; the native
/// half runs once per case, on the host's CPUs. Fails at the end with every ktls report.
pub fn run_all_smp(cases: &[Case], smps: &[u32]) {
    let mut reports = Vec::new();
    let mut runs = 0;
    for case in cases {
        let native = case.run_native();
        if native_only() {
            continue;
        }
        for &smp in smps {
            runs += 1;
            let mut cfg = case.config();
            cfg.smp = smp;
            cfg.timeout = Some(GUEST_TIMEOUT);
            let report = match run_captured(&cfg, &case.program, &case.args) {
                Err(e) => Some(format!("{} --smp {smp}: the runner failed: {e}", case.name)),
                Ok(out) => {
                    let mut problems = case.judge(out.status, &out.stdout);
                    if let Err(e) = (case.compare)(&native.stdout, &out.stdout) {
                        problems.push(format!("stdout differs from the native run: {e}"));
                    }
                    (!problems.is_empty())
                        .then(|| format!("--smp {smp}: {}", case.report(&out, &problems, &native)))
                }
            };
            reports.extend(report);
        }
    }
    if !reports.is_empty() {
        panic!(
            "{} of {runs} ktls run(s) failed:\n\n{}",
            reports.len(),
            reports.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Many cases in one boot (opt-in)

/// [`run_all`], with the ktls halves batched: cases that agree on the environment and the
/// kernel arguments run one after another in a single boot (through
/// [`ktls_runner::run_script_commands`] and its small init), so a suite pays one boot per
/// batch instead of one per case. Each case still gets its own status, stdout (judged and
/// compared as in [`run_all`]) and stderr, and its own empty stdin; the guest tree holds the
/// `adds` of every case of the batch. What differs from one boot per case: the programs run as
/// children of the init (their parent pid is the init's), `/.ktls-script` is in the tree, and a
/// case that crashes the kernel ends its batch; the cases after it then run in a new batch. The
/// native halves run first, as in [`run_all`].
pub fn run_all_batched(cases: &[Case]) {
    use ktls_runner::{run_script_commands, ExitMode, ScriptCommand};
    let natives: Vec<HostOutcome> = cases.iter().map(Case::run_native).collect();
    if native_only() {
        return;
    }
    let mut reports = Vec::new();
    // Indices of the cases still to run on ktls, in order.
    let mut todo: Vec<usize> = (0..cases.len()).collect();
    while let Some(&first) = todo.first() {
        let same =
            |c: &Case| c.env == cases[first].env && c.kernel_args == cases[first].kernel_args;
        let batch: Vec<usize> = todo.iter().copied().filter(|&i| same(&cases[i])).collect();
        let mut cfg = cases[first].config();
        cfg.adds = Vec::new();
        for &i in &batch {
            for a in &cases[i].adds {
                if !cfg.adds.contains(a) {
                    cfg.adds.push(a.clone());
                }
            }
        }
        cfg.timeout = Some(GUEST_TIMEOUT + Duration::from_secs(10) * batch.len() as u32);
        let commands: Vec<ScriptCommand> = batch
            .iter()
            .map(|&i| ScriptCommand {
                program: cases[i].program.clone(),
                args: cases[i].args.clone(),
                stdin: Some(Vec::new()),
            })
            .collect();
        let out = match run_script_commands(&cfg, &commands, ExitMode::Zero) {
            Ok(o) => o,
            Err(e) => {
                let names: Vec<&str> = batch.iter().map(|&i| cases[i].name.as_str()).collect();
                reports.push(format!("{names:?}: the runner failed: {e}"));
                todo.retain(|i| !batch.contains(i));
                continue;
            }
        };
        let mut done = Vec::new();
        for (&i, c) in batch.iter().zip(&out.commands) {
            if !c.started {
                // The boot ended before this case: it goes into the next batch.
                continue;
            }
            done.push(i);
            let case = &cases[i];
            let mut guest = Outcome {
                status: c.status.unwrap_or(out.boot.status),
                stdout: c.stdout.clone(),
                stderr: c.stderr.clone(),
                ..out.boot.clone()
            };
            if c.status.is_some() {
                // The case ended: what happened to the boot later is not its story.
                guest.exited = true;
                guest.timed_out = false;
                guest.message = None;
                guest.panic_report = None;
                guest.hang_report = None;
            }
            let mut problems = match c.status {
                Some(_) => case.judge(guest.status, &guest.stdout),
                None => vec![format!(
                    "it had not ended when its batch's boot did (status {})",
                    out.boot.status
                )],
            };
            if let Err(e) = (case.compare)(&natives[i].stdout, &guest.stdout) {
                problems.push(format!("stdout differs from the native run: {e}"));
            }
            if !problems.is_empty() {
                reports.push(format!(
                    "(batched, {} case(s) in the boot) {}",
                    batch.len(),
                    case.report(&guest, &problems, &natives[i])
                ));
            }
        }
        if done.is_empty() {
            // Not even the first case started: report the batch instead of retrying forever.
            let names: Vec<&str> = batch.iter().map(|&i| cases[i].name.as_str()).collect();
            reports.push(format!(
                "{names:?}: the boot ended before the first case started (status {}, {}):\n{}{}",
                out.boot.status,
                out.boot.message.as_deref().unwrap_or("no message"),
                String::from_utf8_lossy(&out.stderr_outside),
                out.boot.kernel_log
            ));
            done = batch;
        }
        todo.retain(|i| !done.contains(i));
    }
    if !reports.is_empty() {
        panic!(
            "{} of {} case(s) failed on ktls:\n\n{}",
            reports.len(),
            cases.len(),
            reports.join("\n")
        );
    }
}

/// The start of a failed ktls run's report: `title`, the problems, the runner's message and
/// how the boot went.
pub fn report_head(title: &str, out: &Outcome, problems: &[String]) -> String {
    let mut r = format!("{title}:\n");
    for p in problems {
        let _ = writeln!(r, "  - {p}");
    }
    if let Some(m) = &out.message {
        let _ = writeln!(r, "runner: {m}");
    }
    let _ = writeln!(
        r,
        "booted: {}, exited: {}, timed out: {}, accel: {:?}",
        out.booted, out.exited, out.timed_out, out.accel
    );
    r
}

/// The end of that report: the panic report, the hang report (after a timeout), `kernel_log`
/// (the caller's excerpt of the kernel log, with its heading), the last strace records and
/// QEMU's own output.
pub fn report_tail(r: &mut String, out: &Outcome, kernel_log: &str) {
    if let Some(p) = &out.panic_report {
        let _ = write!(r, "--- kernel panic ---\n{p}\n");
    }
    if let Some(h) = &out.hang_report {
        let _ = write!(r, "--- kernel hang report ---\n{h}\n");
    }
    r.push_str(kernel_log);
    if !out.strace.is_empty() {
        let skip = out.strace.len().saturating_sub(80);
        let _ = writeln!(r, "--- strace (last {}) ---", out.strace.len() - skip);
        for l in &out.strace[skip..] {
            let _ = writeln!(r, "{l}");
        }
    }
    if !out.qemu_output.is_empty() {
        let _ = write!(r, "--- qemu ---\n{}", out.qemu_output);
    }
}

/// One `#[test]` per toolchain, each calling `$body(toolchain)`, in a module named after the
/// program (`files::glibc_static_pie`). After the name, `ignore = "reason"` marks a known
/// kernel gap: built, not run by default, run by `cargo test -- --ignored`.
#[macro_export]
macro_rules! per_toolchain {
    ($program:ident, ignore = $reason:literal, $body:expr) => {
        $crate::toolchain_tests!($program, [ignore = $reason], all, $body);
    };
    ($program:ident, $body:expr) => {
        $crate::toolchain_tests!($program, [], all, $body);
    };
}

/// As [`per_toolchain!`], for a static build (musl) and a static-PIE build (glibc) only: the
/// long programs, where the other two builds add time and little coverage.
#[macro_export]
macro_rules! two_toolchains {
    ($program:ident, ignore = $reason:literal, $body:expr) => {
        $crate::toolchain_tests!($program, [ignore = $reason], two, $body);
    };
    ($program:ident, $body:expr) => {
        $crate::toolchain_tests!($program, [], two, $body);
    };
}

/// The module of tests behind [`per_toolchain!`] and [`two_toolchains!`]: `$attrs` are the
/// extra attributes of every test, `all` or `two` the toolchains.
#[doc(hidden)]
#[macro_export]
macro_rules! toolchain_tests {
    ($program:ident, $attrs:tt, all, $body:expr) => {
        $crate::toolchain_tests!(@module $program, $attrs, [
            musl_static: MuslStatic,
            musl_static_pie: MuslStaticPie,
            glibc_static: GlibcStatic,
            glibc_static_pie: GlibcStaticPie
        ], $body);
    };
    ($program:ident, $attrs:tt, two, $body:expr) => {
        $crate::toolchain_tests!(@module $program, $attrs, [
            musl_static: MuslStatic,
            glibc_static_pie: GlibcStaticPie
        ], $body);
    };
    (@module $program:ident, $attrs:tt, [$($test:ident: $tc:ident),+], $body:expr) => {
        mod $program {
            #[allow(unused_imports)]
            use super::*;
            $($crate::toolchain_tests!(@one $attrs, $test, $tc, $body);)+
        }
    };
    (@one [$($attr:meta),*], $test:ident, $tc:ident, $body:expr) => {
        #[test]
        $(#[$attr])*
        fn $test() {
            $body($crate::Toolchain::$tc)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ok_judges() {
        assert!(all_ok(b"ok a\nok b\nall checks passed\n").is_ok());
        assert!(all_ok(b"ok a\nFAIL b: x\nFAILED 1 check(s)\n").is_err());
        assert!(all_ok(b"ok a\n").is_err());
        assert!(all_ok(b"all checks passed\n").is_err());
    }

    #[test]
    fn identical_reports_the_line() {
        assert!(identical(b"a\nb\n", b"a\nb\n").is_ok());
        let e = identical(b"a\nb\nc\n", b"a\nx\nc\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("\"b\"") && e.contains("\"x\""), "{e}");
        assert!(identical(b"a\n", b"a\nmore\n").is_err());
    }

    #[test]
    fn elf_kind_of_the_test_binary() {
        // The test binary itself is a dynamically linked host program: rejected either way.
        let me = std::env::current_exe().unwrap();
        assert!(check_elf_kind(&me, false).is_err());
        assert!(check_elf_kind(&me, true).is_err());
        assert!(check_elf_kind(Path::new("/nonexistent/x"), false).is_err());
    }
}
