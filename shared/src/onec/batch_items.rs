//! Per-customer bookkeeping of a batch upsert, shared by the transports that batch (JSON
//! HTTP service, OData `$batch`): one bad customer fails alone, the rest go out in batches.

use super::{Counterparty, OneCError, UpsertOutcome};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) type ItemResult = Result<UpsertOutcome, OneCError>;

/// One result slot per customer, and the indexes of the customers to send. A customer without
/// a platform id fails here: 1C could never match it again, so sending it would duplicate.
pub(crate) fn triage(items: &[Counterparty]) -> (Vec<Option<ItemResult>>, Vec<usize>) {
    let mut results: Vec<Option<ItemResult>> = items.iter().map(|_| None).collect();
    let mut sendable = Vec::new();
    for (i, cp) in items.iter().enumerate() {
        if cp.platform_id.trim().is_empty() {
            results[i] = Some(Err(OneCError::InvalidRequest(
                "platform id is empty".into(),
            )));
        } else {
            sendable.push(i);
        }
    }
    (results, sendable)
}

/// Every customer's result; a slot nobody filled fails its customer instead of panicking.
pub(crate) fn collect(results: Vec<Option<ItemResult>>) -> Vec<ItemResult> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(OneCError::InvalidRequest("customer not sent".into()))))
        .collect()
}

/// Remembers that this 1C has no batch resource (one customer per request from now on), and
/// says so once per client.
pub(crate) fn note_no_batch(no_batch: &AtomicBool, what: &str) {
    if !no_batch.swap(true, Ordering::Relaxed) {
        tracing::warn!("{what}; one customer per request from now on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(platform_id: &str) -> Counterparty {
        crate::testing::individual_counterparty(platform_id, "Петров", "Иван")
    }

    #[test]
    fn a_customer_without_a_platform_id_fails_alone_and_the_others_are_sent() {
        // Given three customers, the middle one without a platform id
        let items = [customer("a"), customer("  "), customer("c")];
        // When they are triaged and nothing else is filled in
        let (results, sendable) = triage(&items);
        let results = collect(results);
        // Then only the first and last are sent, and every customer has a result
        assert_eq!(sendable, vec![0, 2]);
        assert_eq!(results.len(), 3);
        assert!(
            matches!(&results[1], Err(OneCError::InvalidRequest(m)) if m.contains("platform id"))
        );
        assert!(matches!(&results[0], Err(OneCError::InvalidRequest(m)) if m.contains("not sent")));
    }

    #[test]
    fn the_missing_batch_resource_is_remembered() {
        let flag = AtomicBool::new(false);
        note_no_batch(&flag, "no batch");
        note_no_batch(&flag, "no batch");
        assert!(flag.load(Ordering::Relaxed));
    }
}
