//! How often each channel is polled, given the posting rates: the polls a second that keep both
//! the mean and the 95th percentile of the delivery lag low, within the budget.
//!
//! A channel polled every `I` seconds leaves its posts' lag spread evenly over [0, I]. The mean
//! lag is smallest when each channel's polls a second grow with the square root of its rate
//! (a Lagrange multiplier away), but that starves the many quiet channels, whose posts then
//! make the tail: with Zipf rates the √ rule's p95 was no better than polling every channel in
//! turn. The p95 is smallest when the busiest channels, those carrying 95% of the posts, are
//! all polled at least every `L` seconds (the rest at the sweep). So: every covered channel
//! gets at least `1/L`, the √ rule shares what is left, and `L` is chosen, among those the
//! budget can cover, to make the predicted mean plus p95 smallest.

/// The share of posts the tail is measured at.
const TAIL: f64 = 0.05;
/// Candidate `L`s, spread geometrically from the shortest interval to the sweep.
const STEPS: usize = 24;

/// Polls a second for channels posting `rates` (posts a second), each between `lo` and its
/// `hi`, summing to `budget` where the bounds allow.
pub(super) fn frequencies(rates: &[f64], hi: &[f64], lo: f64, budget: f64) -> Vec<f64> {
    let n = rates.len();
    if n == 0 {
        return Vec::new();
    }
    let total: f64 = rates.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| rates[*b].total_cmp(&rates[*a]));
    let roots: Vec<f64> = rates.iter().map(|r| r.max(0.0).sqrt()).collect();
    let shortest = hi.iter().copied().fold(0.0f64, f64::max).max(lo);
    let (l_min, l_max) = (1.0 / shortest, 1.0 / lo);
    let mut best: Option<(f64, Vec<f64>)> = None;
    for step in 0..=STEPS {
        let l = l_min * (l_max / l_min).powf(step as f64 / STEPS as f64);
        // Cover the busiest channels until what is left late (polled once a sweep, a post
        // waits past L with odds 1 - L·lo) is within the tail.
        let late_if_left = (1.0 - l * lo).max(0.0);
        let mut floors = vec![lo; n];
        let mut left = rates.iter().sum::<f64>() / total * late_if_left;
        for &i in &order {
            if left <= TAIL {
                break;
            }
            floors[i] = (1.0 / l).clamp(lo, hi[i].max(lo));
            left -= rates[i] / total * late_if_left;
        }
        if floors.iter().sum::<f64>() > budget {
            continue;
        }
        let f = share(&roots, &floors, hi, budget);
        let score = mean_lag(rates, &f, total) + tail_lag(rates, &f, total);
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, f));
        }
    }
    match best {
        Some((_, f)) => f,
        // Not even the sweep fits the budget: the √ rule alone, at the bounds.
        None => share(&roots, &vec![lo; n], hi, budget),
    }
}

/// `max(c·w_i, floor_i)` within `hi_i`, with `c` set so the sum meets `budget` (bisected: the
/// sum grows with `c`).
fn share(w: &[f64], floors: &[f64], hi: &[f64], budget: f64) -> Vec<f64> {
    let at = |c: f64, i: usize| (c * w[i]).max(floors[i]).min(hi[i].max(floors[i]));
    let sum = |c: f64| (0..w.len()).map(|i| at(c, i)).sum::<f64>();
    let (mut a, mut b) = (0.0f64, 1.0f64);
    while sum(b) < budget && b < 1e12 {
        b *= 2.0;
    }
    for _ in 0..60 {
        let m = (a + b) / 2.0;
        if sum(m) < budget {
            a = m;
        } else {
            b = m;
        }
    }
    (0..w.len()).map(|i| at(a, i)).collect()
}

/// The mean lag the frequencies predict (half an interval, weighted by posts).
fn mean_lag(rates: &[f64], f: &[f64], total: f64) -> f64 {
    rates
        .iter()
        .zip(f)
        .map(|(r, f)| r / total / (2.0 * f.max(f64::MIN_POSITIVE)))
        .sum()
}

/// The lag [`TAIL`] of the posts wait longer than, as the frequencies predict.
fn tail_lag(rates: &[f64], f: &[f64], total: f64) -> f64 {
    let late = |x: f64| -> f64 {
        rates
            .iter()
            .zip(f)
            .map(|(r, f)| r / total * (1.0 - x * f).max(0.0))
            .sum()
    };
    let longest = f.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut a, mut b) = (0.0f64, 1.0 / longest.max(f64::MIN_POSITIVE));
    for _ in 0..50 {
        let m = (a + b) / 2.0;
        if late(m) > TAIL {
            a = m;
        } else {
            b = m;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipf(n: usize, s: f64) -> Vec<f64> {
        let h: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        (1..=n).map(|k| 5.0 * (k as f64).powf(-s) / h).collect()
    }

    #[test]
    fn the_budget_is_met_within_the_bounds() {
        let r = zipf(500, 1.0);
        let hi = vec![1.0 / 30.0; 500];
        let f = frequencies(&r, &hi, 1.0 / 900.0, 1.5);
        assert!((f.iter().sum::<f64>() - 1.5).abs() < 0.01);
        assert!(
            f.iter()
                .all(|x| *x >= 1.0 / 900.0 - 1e-9 && *x <= 1.0 / 30.0 + 1e-9)
        );
        assert!(
            f[0] >= f[499],
            "the busiest at least as often as the quietest"
        );
    }

    /// The √ rule alone left the tail no better than round-robin's (the quiet channels starved).
    #[test]
    fn the_tail_is_much_shorter_than_the_square_root_rules() {
        for s in [1.0, 1.5] {
            let r = zipf(500, s);
            let total: f64 = r.iter().sum();
            let hi = vec![1.0 / 30.0; 500];
            let f = frequencies(&r, &hi, 1.0 / 900.0, 1.5);
            let roots: Vec<f64> = r.iter().map(|x| x.sqrt()).collect();
            let sqrt = share(&roots, &[1.0 / 900.0; 500], &hi, 1.5);
            let (ours, theirs) = (tail_lag(&r, &f, total), tail_lag(&r, &sqrt, total));
            assert!(
                ours < 0.8 * theirs,
                "s = {s}: p95 {ours:.0} against {theirs:.0}"
            );
        }
    }
}
