//! Retry pacing: per-message exponential backoff for SQS visibility, and a per-invocation circuit
//! breaker that stops hammering a 1C that is clearly down.

use crate::ports::MAX_VISIBILITY;
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// Where jitter comes from; a trait so tests can pin it.
pub trait JitterSource {
    /// A duration in `[0, max]`.
    fn jitter(&mut self, max: Duration) -> Duration;
}

/// Uniform jitter from the thread-local RNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomJitter;

impl JitterSource for RandomJitter {
    fn jitter(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Always the same fraction of the allowed jitter (0.0 = none, 1.0 = the maximum).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl JitterSource for FixedJitter {
    fn jitter(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.0.clamp(0.0, 1.0))
    }
}

/// How long a message that failed on its `receive_count`-th delivery stays invisible:
/// `min(cap, base·2^(n-1))` plus up to `base/2` of jitter (so retries of a batch that failed
/// together spread out), or 1C's `Retry-After` when that is longer; never more than SQS allows,
/// rounded up to whole seconds because that is what SQS takes.
pub fn visibility_delay(
    receive_count: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
    jitter: &mut impl JitterSource,
) -> Duration {
    let exponent = receive_count.max(1) - 1;
    let exponential = 2u32
        .checked_pow(exponent)
        .and_then(|factor| base.checked_mul(factor))
        .unwrap_or(cap);
    let backoff = exponential.min(cap) + jitter.jitter(base / 2);
    let delay = match retry_after {
        Some(asked) if asked > backoff => asked,
        _ => backoff,
    };
    ceil_secs(delay.min(MAX_VISIBILITY))
}

fn ceil_secs(d: Duration) -> Duration {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(whole)
}

/// Default number of consecutive transient 1C failures that open the breaker
/// (`CIRCUIT_BREAKER_THRESHOLD`).
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 3;

/// Opens after `threshold` consecutive transient 1C failures and stays open for the rest of the
/// invocation: the remaining messages are backed off without calling 1C. A success in between
/// resets the count. Shared by the concurrently processed messages of one batch.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    consecutive_failures: AtomicU32,
    open: AtomicBool,
}

impl CircuitBreaker {
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            consecutive_failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::SeqCst);
    }

    /// Returns whether this failure opened the breaker.
    pub fn record_transient_failure(&self) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
        failures >= self.threshold && !self.open.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(30);
    const CAP: Duration = Duration::from_secs(900);

    #[test]
    fn the_delay_doubles_with_each_delivery_until_the_cap() {
        // Given no jitter
        let mut jitter = FixedJitter(0.0);

        // When the delay is computed for deliveries 1 to 8
        let delays: Vec<u64> = (1..=8)
            .map(|n| visibility_delay(n, BASE, CAP, None, &mut jitter).as_secs())
            .collect();

        // Then it doubles from the base and stops at the cap
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn the_delay_never_decreases_as_the_receive_count_grows() {
        let mut jitter = FixedJitter(0.5);
        let delays: Vec<Duration> = (0..=64)
            .map(|n| visibility_delay(n, BASE, CAP, None, &mut jitter))
            .collect();
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn a_huge_receive_count_is_capped_instead_of_overflowing() {
        let delay = visibility_delay(u32::MAX, BASE, CAP, None, &mut FixedJitter(0.0));
        assert_eq!(delay, CAP);
    }

    #[test]
    fn jitter_stays_within_half_the_base() {
        // Given random jitter
        let mut jitter = RandomJitter;

        // When many delays are computed for the second delivery
        let delays: Vec<Duration> = (0..500)
            .map(|_| visibility_delay(2, BASE, CAP, None, &mut jitter))
            .collect();

        // Then each lies between the bare backoff and the backoff plus base/2
        let bare = Duration::from_secs(60);
        assert!(delays.iter().all(|d| *d >= bare && *d <= bare + BASE / 2));
        // And they are not all the same
        assert!(delays.iter().any(|d| *d != delays[0]));
    }

    #[test]
    fn a_longer_retry_after_from_1c_wins() {
        let asked = Duration::from_secs(3600);
        let delay = visibility_delay(1, BASE, CAP, Some(asked), &mut FixedJitter(1.0));
        assert_eq!(delay, asked);
    }

    #[test]
    fn a_shorter_retry_after_does_not_shorten_the_backoff() {
        let delay = visibility_delay(
            3,
            BASE,
            CAP,
            Some(Duration::from_secs(1)),
            &mut FixedJitter(0.0),
        );
        assert_eq!(delay, Duration::from_secs(120));
    }

    #[test]
    fn no_delay_exceeds_the_sqs_maximum() {
        let delay = visibility_delay(
            1,
            BASE,
            CAP,
            Some(Duration::from_secs(100_000)),
            &mut FixedJitter(0.0),
        );
        assert_eq!(delay, MAX_VISIBILITY);
    }

    #[test]
    fn fractional_delays_round_up_to_whole_seconds() {
        let delay = visibility_delay(
            1,
            Duration::from_millis(1500),
            CAP,
            None,
            &mut FixedJitter(0.0),
        );
        assert_eq!(delay, Duration::from_secs(2));
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_of_consecutive_failures() {
        // Given a breaker with threshold 3
        let breaker = CircuitBreaker::new(3);

        // When two transient failures happen, it stays closed
        assert!(!breaker.record_transient_failure());
        assert!(!breaker.record_transient_failure());
        assert!(!breaker.is_open());

        // Then the third opens it, and only that one reports the opening
        assert!(breaker.record_transient_failure());
        assert!(breaker.is_open());
        assert!(!breaker.record_transient_failure());
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let breaker = CircuitBreaker::new(3);
        breaker.record_transient_failure();
        breaker.record_transient_failure();
        breaker.record_success();
        breaker.record_transient_failure();
        breaker.record_transient_failure();
        assert!(!breaker.is_open());
    }
}
