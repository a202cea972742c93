//! The reliability campaign in full: the release daemon against the fake Telegram, killed at
//! random moments (`crash`: 200 rounds of each phase by default) and run through the fault
//! matrix (`faults`). Prints the tables, with the seed that replays them; exits 1 if any round
//! or row failed.
//!
//! Run: `scripts/reliability` (or `cargo bench --bench reliability -- crash [--rounds N]
//! [--phase P] [--seed S]`, `cargo bench --bench reliability -- faults [--row R] [--during SECS]`).

#[path = "../tests/campaign/mod.rs"]
mod campaign;
#[path = "../tests/common/mod.rs"]
mod common;

use campaign::crash;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args
        .iter()
        .find(|a| ["crash", "faults"].contains(&a.as_str()))
        .cloned()
        .unwrap_or_else(|| "crash".into());
    let rounds: usize = arg(&args, "--rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let phases: Vec<String> = match arg(&args, "--phase") {
        Some(p) => vec![p],
        None => crash::PHASES.iter().map(|p| p.to_string()).collect(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if mode == "faults" {
        let rows: Vec<String> = match arg(&args, "--row") {
            Some(r) => vec![r],
            None => campaign::faults::ROWS
                .iter()
                .map(|r| r.to_string())
                .collect(),
        };
        let during = std::time::Duration::from_secs(
            arg(&args, "--during")
                .and_then(|d| d.parse().ok())
                .unwrap_or(20),
        );
        let mut done = Vec::new();
        for r in &rows {
            let row = rt.block_on(campaign::faults::row(r, seed, during));
            println!(
                "{}",
                campaign::faults::table(seed, during, std::slice::from_ref(&row))
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            done.push(row);
        }
        println!("\n{}", campaign::faults::table(seed, during, &done));
        return if done.iter().all(|r| r.passed()) {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::from(1)
        };
    }
    println!("{mode}: {rounds} rounds of {phases:?}, seed {seed}");
    let mut tallies = Vec::new();
    for p in &phases {
        let t = rt.block_on(crash::phase(p, rounds, seed));
        println!(
            "{}: {} of {} rounds passed ({} killed mid-work) in {:.0} s",
            t.name,
            t.passed,
            t.rounds,
            t.mid_work,
            t.took.as_secs_f64()
        );
        tallies.push(t);
    }
    println!("\n{}", campaign::crash_table(seed, &tallies));
    let clean = tallies
        .iter()
        .all(|t| t.failures.is_empty() && t.passed == rounds);
    if clean {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
