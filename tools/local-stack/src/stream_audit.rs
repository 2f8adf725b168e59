//! Reading the users table's stream back after a run: which attributes a record changed, whether
//! onec-sync alone could have made it, and which records only moto produces. One copy of these
//! rules for the chaos run and the pipeline tests, which both bound the stream by the
//! platform's writes.

use aws_lambda_events::event::dynamodb::EventRecord;
use shared::domain::{Customer, BOOKKEEPING_ATTRIBUTES};
use std::collections::{BTreeSet, HashMap};

/// The attributes whose values the record changed (present on one side only counts).
pub fn changed_attributes(record: &EventRecord) -> BTreeSet<&str> {
    let (old, new) = (&record.change.old_image, &record.change.new_image);
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .map(String::as_str)
        .collect()
}

/// `MODIFY(a,b)`: the event and the attributes whose values it changed.
pub fn describe(record: &EventRecord) -> String {
    match record.event_name.as_str() {
        "MODIFY" => format!(
            "MODIFY({})",
            changed_attributes(record)
                .into_iter()
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_owned(),
    }
}

/// moto writes a record for an update that changes nothing; DynamoDB writes none.
pub fn is_moto_noop(record: &EventRecord) -> bool {
    record.event_name == "MODIFY" && changed_attributes(record).is_empty()
}

/// A MODIFY only onec-sync could have made: bookkeeping attributes only, or a write that
/// brought the row in sync (the exporter's write-back, the 1C import).
pub fn is_own_write(record: &EventRecord) -> bool {
    if record.event_name != "MODIFY" {
        return false;
    }
    let bookkeeping_only = changed_attributes(record)
        .iter()
        .all(|k| BOOKKEEPING_ATTRIBUTES.contains(k));
    let in_sync = serde_dynamo::from_item::<_, Customer>(record.change.new_image.clone())
        .ok()
        .is_some_and(|c| c.is_in_sync());
    bookkeeping_only || in_sync
}

/// Each item's latest new image, to check that a record follows the one before it.
///
/// On DynamoDB an item's records form one chain: writes to an item are serialised, so each
/// MODIFY starts from the previous record's new image. moto checks a write's condition and
/// applies it without holding the item, so two concurrent conditional writers can both pass
/// (measured: 1 trial in 300 under CPU load); the loser's record starts from a state the item
/// had already left. Such a record cannot happen on AWS, and the stream bounds leave it out.
#[derive(Default)]
pub struct ItemImages(HashMap<String, serde_dynamo::Item>);

impl ItemImages {
    /// Whether `record` starts from the state the item's previous record left; remembers its
    /// new image either way, since the item now holds it.
    pub fn follows(&mut self, id: &str, record: &EventRecord) -> bool {
        let follows = record.event_name != "MODIFY"
            || self
                .0
                .get(id)
                .is_none_or(|previous| *previous == record.change.old_image);
        self.0
            .insert(id.to_owned(), record.change.new_image.clone());
        follows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::dynamodb::Event;
    use serde_dynamo::AttributeValue;

    fn record(event: &str, old: &[(&str, &str)], new: &[(&str, &str)]) -> EventRecord {
        let sample: Event =
            serde_json::from_str(include_str!("../../../events/dynamodb-insert.json"))
                .expect("the sample stream event");
        let mut record = sample.records[0].clone();
        let image = |attributes: &[(&str, &str)]| {
            serde_dynamo::Item::from(
                attributes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), AttributeValue::N((*v).to_owned())))
                    .collect::<HashMap<_, _>>(),
            )
        };
        record.event_name = event.to_owned();
        record.change.old_image = image(old);
        record.change.new_image = image(new);
        record
    }

    fn synced(event: &str, old: Option<u64>, new: u64) -> EventRecord {
        let (old, new) = (old.map(|v| v.to_string()), new.to_string());
        let old: Vec<(&str, &str)> = old.iter().map(|v| ("synced_version", v.as_str())).collect();
        record(event, &old, &[("synced_version", &new)])
    }

    #[test]
    fn records_that_chain_from_the_items_last_state_follow_and_a_raced_one_does_not() {
        let mut images = ItemImages::default();
        // Given an insert and an update that starts from it
        assert!(images.follows("u-1", &synced("INSERT", None, 0)));
        assert!(images.follows("u-1", &synced("MODIFY", Some(0), 1)));
        // When a second update also starts from the state before the first (a lost race)
        assert!(!images.follows("u-1", &synced("MODIFY", Some(0), 1)));
        // Then the next one, starting from what the item holds, follows again
        assert!(images.follows("u-1", &synced("MODIFY", Some(1), 2)));
    }

    #[test]
    fn a_record_is_described_by_the_attributes_it_changed_and_one_that_changed_none_is_motos() {
        let changed = record(
            "MODIFY",
            &[("a", "1"), ("b", "1")],
            &[("a", "2"), ("c", "1")],
        );
        assert_eq!(describe(&changed), "MODIFY(a,b,c)");
        assert!(!is_moto_noop(&changed));

        let unchanged = record("MODIFY", &[("a", "1")], &[("a", "1")]);
        assert_eq!(describe(&unchanged), "MODIFY()");
        assert!(is_moto_noop(&unchanged));
        assert_eq!(describe(&record("INSERT", &[], &[("a", "1")])), "INSERT");
    }

    #[test]
    fn a_write_of_bookkeeping_attributes_only_is_onec_syncs_own_and_an_insert_never_is() {
        let bookkeeping = record(
            "MODIFY",
            &[("synced_version", "1")],
            &[("synced_version", "2"), ("export_attempts", "0")],
        );
        assert!(is_own_write(&bookkeeping));
        // A platform field changed, and the new image is no readable customer in sync
        let platform = record("MODIFY", &[("version", "1")], &[("version", "2")]);
        assert!(!is_own_write(&platform));
        assert!(!is_own_write(&record(
            "INSERT",
            &[],
            &[("synced_version", "1")]
        )));
    }
}
