//! A few rounds of the reliability campaign (`tests/campaign`, run in full by
//! `scripts/reliability`) in every CI: each crash phase killed at random moments and checked.
//! The seed is random and printed; `TGPARSER_CAMPAIGN_SEED` replays one, with
//! `TGPARSER_CAMPAIGN_PHASE` and `TGPARSER_CAMPAIGN_ROUNDS` to narrow it.

mod campaign;
mod common;

use campaign::crash;

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
