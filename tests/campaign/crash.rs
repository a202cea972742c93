//! `crash`: rounds of SIGKILL at random moments, phase by phase. Each round: the work under
//! way, a kill at a moment drawn from the round's seed, the checks a crash must pass (the
//! archive sound: `tgparser check`), then a restart and the checks of a recovery (the exact
//! post set against the fake, no gap left, every alert delivered and none more often than it
//! was attempted, every file byte-exact, the session opens).

use std::time::Instant;

use super::{Tally, guarded};

pub use super::archive::{backfill, live, media, reindex};
pub use super::delivery::{alerts, login};

/// The phases, in the order the campaign runs them.
pub const PHASES: [&str; 6] = ["backfill", "live", "alerts", "media", "reindex", "login"];

/// Runs `rounds` rounds of `phase`.
pub async fn phase(phase: &str, rounds: usize, seed: u64) -> Tally {
    let t = Instant::now();
    let mut tally = Tally::new(phase);
    let setup = match phase {
        "backfill" => guarded(backfill(rounds, seed, &mut tally)).await,
        "live" => guarded(live(rounds, seed, &mut tally)).await,
        "alerts" => guarded(alerts(rounds, seed, &mut tally)).await,
        "media" => guarded(media(rounds, seed, &mut tally)).await,
        "reindex" => guarded(reindex(rounds, seed, &mut tally)).await,
        "login" => guarded(login(rounds, seed, &mut tally)).await,
        other => Err(format!("no phase {other}; the phases: {PHASES:?}")),
    };
    if let Err(why) = setup {
        // The phase itself (its set-up, or a round that left it unable to go on) failed.
        tally
            .failures
            .insert(0, (tally.rounds, format!("the phase stopped: {why}")));
    }
    tally.took = t.elapsed();
    tally
}
