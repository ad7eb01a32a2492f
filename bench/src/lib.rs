//! ktls benchmarks (`cargo run -p ktls-bench --release`, or `cargo run --release -- bench`).
//!
//! One invocation measures up to four things and prints them side by side:
//!
//! 1. **Instructions per operation** on ktls and on a real Linux kernel, both in QEMU TCG with
//!    `-icount shift=0,sleep=off`, where the guest TSC advances by one per instruction executed.
//!    One static program without libc (`c/guest.c`) runs on ktls (twice: as booted, and with the
//!    `nofsgsbase` boot option) and as `/init` of a one-file initramfs on Linux (Debian's
//!    `linux-image-cloud-amd64`, found in `/boot`), and reports rdtsc deltas.
//! 2. **Nanoseconds** for ring-3 code on the host (`c/native.c`): a `__thread` load, KTLS and
//!    rseq loads, ktls's vDSO loaded into an ordinary process below a fake vvar page, the host's
//!    vDSO and system calls.
//! 3. **Nanoseconds per operation under KVM** (`-accel kvm -cpu host`), on ktls and on Linux,
//!    with the same guest program, where the host's KVM really works (not kvm-pvm; see
//!    [`kvm`]); elsewhere the report says why there are none.
//! 4. The issue's **targets**, read from those figures (met or missed; never asserted).
//!
//! The results go to stdout and to `target/bench/latest.{txt,json,svg}` (plus
//! `target/bench/<commit>.json`), so runs can be compared across commits.

pub mod cli;
pub mod json;
pub mod kvm;
pub mod linux;
pub mod parse;
pub mod programs;
pub mod report;
pub mod stats;
