//! `ktls-bench`: see `ktls-bench --help` and the crate documentation.

fn main() {
    let status = ktls_bench::cli::main(std::env::args_os().skip(1).collect());
    std::process::exit(status);
}
