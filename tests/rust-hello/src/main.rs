//! Rust std on ktls: prints, uses a Vec, a HashMap and String formatting, reads an environment
//! variable and exits with the status given as its first argument (0 when absent).
//!
//! Everything it prints is deterministic so the harness can compare the output with a native
//! run; the HashMap is printed in sorted order.

use std::collections::HashMap;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from Rust std");
    println!("args: {:?}", &args[1..]);

    let squares: Vec<u64> = (1..=10).map(|n| n * n).collect();
    let sum: u64 = squares.iter().sum();
    println!("squares {squares:?} sum {sum}");

    let text = "the quick brown fox jumps over the lazy dog the end";
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w).or_default() += 1;
    }
    let mut sorted: Vec<_> = counts.into_iter().collect();
    sorted.sort();
    let shown: Vec<String> = sorted.iter().map(|(w, n)| format!("{w}={n}")).collect();
    println!("word counts: {}", shown.join(" "));

    println!(
        "formatting: [{:>8}] [{:<6}] [{:^7}] [{:08.3}] [{:#x}] [{:e}]",
        "right", "left", "mid", -12.34567, 48879, 1234.5
    );
    let big: String = std::iter::repeat_n("ab", 5000).collect();
    println!(
        "a 10000-byte String: len {} ends {:?}",
        big.len(),
        &big[big.len() - 4..]
    );

    match std::env::var("KTLS_GREETING") {
        Ok(v) => println!("KTLS_GREETING={v}"),
        Err(e) => println!("KTLS_GREETING unreadable: {e}"),
    }
    println!("HOME set: {}", std::env::var_os("HOME").is_some());

    let status: i32 = args.get(1).map_or(0, |s| s.parse().unwrap_or(100));
    eprintln!("rust-hello exiting with {status}");
    std::io::stdout().flush().expect("flush stdout");
    std::process::exit(status);
}
