//! `ktls`: see `ktls --help` and the `ktls_runner` library.

fn main() {
    let status = ktls_runner::cli::main(std::env::args_os().skip(1).collect());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    std::process::exit(status);
}
