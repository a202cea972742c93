//! A few rounds of the reliability campaign (`tests/campaign`, run in full by
//! `scripts/reliability`) in every CI: each crash phase killed at random moments and checked.
//! The seed is random and printed; `TGPARSER_CAMPAIGN_SEED` replays one, with
//! `TGPARSER_CAMPAIGN_PHASE` and `TGPARSER_CAMPAIGN_ROUNDS` to narrow it.

mod campaign;
mod common;

use campaign::crash;

/// How long each fault of the matrix lasts here: a blip (`scripts/reliability faults` holds
/// them 20 s, long enough for breakers to open).
const DURING: std::time::Duration = std::time::Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_at_random_moments_of_every_phase_lose_and_corrupt_nothing() {
    let seed: u64 = std::env::var("TGPARSER_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let rounds: usize = std::env::var("TGPARSER_CAMPAIGN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let only = std::env::var("TGPARSER_CAMPAIGN_PHASE").ok();
    let mut tallies = Vec::new();
    for p in crash::PHASES
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|o| o == *p))
    {
        tallies.push(crash::phase(p, rounds, seed).await);
    }
    let table = campaign::crash_table(seed, &tallies);
    println!("{table}");
    assert!(
        tallies
            .iter()
            .all(|t| t.failures.is_empty() && t.passed == rounds),
        "{table}"
    );
}

/// The fault matrix (`tests/campaign/faults.rs`): every fault survived, readiness says what is
/// wrong while it lasts and passes after, and no post or alert is lost or repeated.
/// `TGPARSER_FAULT_ROW` runs one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_the_matrix_is_survived_and_costs_no_post_and_no_alert() {
    let seed: u64 = std::env::var("TGPARSER_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let only = std::env::var("TGPARSER_FAULT_ROW").ok();
    let mut rows = Vec::new();
    for r in campaign::faults::ROWS
        .into_iter()
        .filter(|r| only.as_deref().is_none_or(|o| o == *r))
    {
        rows.push(campaign::faults::row(r, seed, DURING).await);
    }
    let table = campaign::faults::table(seed, DURING, &rows);
    println!("{table}");
    assert!(rows.iter().all(|r| r.passed()), "{table}");
}

/// The daemon's wall clock two hours ahead, then set right, while posts and alerts arrive.
/// Ahead, grammers corrected its time offset but kept its message ids growing from the refused
/// ones, so Telegram refused every request as "msg_id too high" forever (millions a minute);
/// set right, every alert retry scheduled meanwhile waited two hours (its time was written by
/// the clock ahead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_two_hours_ahead_then_set_right_loses_no_post_and_no_alert() {
    let row = campaign::faults::row("clock-jump", rand::random(), DURING).await;
    let table = campaign::faults::table(0, DURING, std::slice::from_ref(&row));
    println!("{table}");
    assert!(row.passed(), "{table}");
}
