//! Progress of a run as the operator sees it: percentage, rate and ETA of the export scan.

use chrono::{DateTime, Utc};
use shared::sync_run::{RunPhase, RunStatus, SyncRun};
use std::time::Duration;

/// Derived figures of a run; `None` where there is not enough to say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Scanned rows against the table's approximate item count, 0–100.
    pub percent: Option<f64>,
    /// Rows scanned per second since the start (pauses included).
    pub rate_per_sec: Option<f64>,
    /// Time left at that rate.
    pub eta: Option<Duration>,
}

/// `total` is the users table's `ItemCount` (refreshed by DynamoDB about every six hours, so an
/// estimate; the percentage is capped below 100 until the scan is done).
pub fn progress(run: &SyncRun, total: Option<u64>, now: DateTime<Utc>) -> Progress {
    let scanned = run.counters.scanned as f64;
    let scan_done = run.phase == RunPhase::Done && run.status == RunStatus::Completed;
    let percent = if scan_done {
        Some(100.0)
    } else {
        total
            .filter(|t| *t > 0)
            .map(|t| (scanned / t as f64 * 100.0).min(99.9))
    };
    let end = if run.status.is_final() {
        run.finished_at.unwrap_or(run.updated_at)
    } else {
        now
    };
    let elapsed = (end - run.started_at).to_std().unwrap_or(Duration::ZERO);
    let rate_per_sec =
        (elapsed.as_secs_f64() > 0.0 && scanned > 0.0).then(|| scanned / elapsed.as_secs_f64());
    let eta = match (rate_per_sec, total) {
        (_, _) if scan_done || run.status.is_final() => None,
        (Some(rate), Some(total)) => {
            let left = (total as f64 - scanned).max(0.0);
            Some(Duration::from_secs_f64(left / rate))
        }
        _ => None,
    };
    Progress {
        percent,
        rate_per_sec,
        eta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::sync_run::SyncDirection;

    #[test]
    fn a_quarter_scanned_in_ten_seconds_leaves_thirty_seconds() {
        // Given a run that scanned 250 of about 1000 rows in 10 s
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let mut run = SyncRun::new("r", SyncDirection::Export, 100, 1, None, start);
        run.counters.scanned = 250;
        let now = start + chrono::Duration::seconds(10);
        // When its progress is computed
        let p = progress(&run, Some(1000), now);
        // Then it is 25 %, 25 rows/s and 30 s to go
        assert_eq!(p.percent, Some(25.0));
        assert_eq!(p.rate_per_sec, Some(25.0));
        assert_eq!(p.eta, Some(Duration::from_secs(30)));
    }

    #[test]
    fn an_unknown_total_gives_a_rate_but_no_percentage() {
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let mut run = SyncRun::new("r", SyncDirection::Export, 100, 1, None, start);
        run.counters.scanned = 10;
        let p = progress(&run, None, start + chrono::Duration::seconds(5));
        assert_eq!(p.percent, None);
        assert_eq!(p.rate_per_sec, Some(2.0));
        assert_eq!(p.eta, None);
    }
}
