//! The catalogue `Справочник.Контрагенты`: one record type behind all three transports.

use base64::Engine as _;
use chrono::{FixedOffset, NaiveDateTime, Offset as _, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Individual (ФизическоеЛицо) or legal entity (ЮридическоеЛицо).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyKind {
    Individual,
    LegalEntity,
}

impl CounterpartyKind {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "individual" => Some(Self::Individual),
            "legal_entity" => Some(Self::LegalEntity),
            _ => None,
        }
    }
}

/// What a writer can set on a counterparty (the contract's JSON customer object without the
/// fields 1C assigns itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyFields {
    /// `None` for counterparties entered in 1C by hand.
    #[serde(default)]
    pub platform_id: Option<String>,
    pub kind: CounterpartyKind,
    pub name: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub contact_person: Option<String>,
    #[serde(default)]
    pub inn: Option<String>,
    #[serde(default)]
    pub kpp: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub deletion_mark: bool,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

impl CounterpartyFields {
    /// A minimal counterparty, as an operator would enter it in 1C.
    pub fn new(kind: CounterpartyKind, name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            platform_id: None,
            kind,
            full_name: name.clone(),
            name,
            first_name: None,
            last_name: None,
            contact_person: None,
            inn: None,
            kpp: None,
            email: None,
            phone: None,
            role: None,
            status: None,
            deletion_mark: false,
            extra: BTreeMap::new(),
        }
    }
}

/// A stored counterparty; serialises as the contract's JSON customer object plus `change_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyRecord {
    /// `Ref_Key`: a lowercase UUID v4.
    pub onec_id: String,
    /// Opaque, new on every write.
    pub data_version: String,
    /// Auto-numbered `00-000001`, `00-000002`, …
    pub code: String,
    #[serde(flatten)]
    pub fields: CounterpartyFields,
    /// Wall-clock time of the last write in the emulated server's zone, whole seconds.
    #[serde(with = "onec_date")]
    pub modified_at: NaiveDateTime,
    /// Position of the last write in the global change sequence.
    pub change_seq: u64,
}

/// A partial edit "in 1C": absent fields stay, `null` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterpartyPatch {
    #[serde(default, deserialize_with = "present")]
    pub platform_id: Option<Option<String>>,
    pub kind: Option<CounterpartyKind>,
    pub name: Option<String>,
    pub full_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub contact_person: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub inn: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub kpp: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub role: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub status: Option<Option<String>>,
    pub deletion_mark: Option<bool>,
    /// Replaces the extra attributes whole.
    pub extra: Option<BTreeMap<String, String>>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl CounterpartyPatch {
    pub(crate) fn apply(self, fields: &mut CounterpartyFields) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *slot = value;
            }
        }
        set(&mut fields.platform_id, self.platform_id);
        set(&mut fields.kind, self.kind);
        set(&mut fields.name, self.name);
        set(&mut fields.full_name, self.full_name);
        set(&mut fields.first_name, self.first_name);
        set(&mut fields.last_name, self.last_name);
        set(&mut fields.contact_person, self.contact_person);
        set(&mut fields.inn, self.inn);
        set(&mut fields.kpp, self.kpp);
        set(&mut fields.email, self.email);
        set(&mut fields.phone, self.phone);
        set(&mut fields.role, self.role);
        set(&mut fields.status, self.status);
        set(&mut fields.deletion_mark, self.deletion_mark);
        set(&mut fields.extra, self.extra);
    }
}

/// Why the catalogue refused a write or a lookup; each transport renders it in its own shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("counterparty {0} not found")]
    NotFound(String),
    /// Another counterparty already holds this platform id (or several do).
    #[error("platform id conflict: {0}")]
    Conflict(String),
    /// The equivalent of a refusal in the object module's `ПередЗаписью`.
    #[error("{0}")]
    Business(String),
}

/// 1C's date representation: ISO 8601 without offset, whole seconds.
pub(crate) mod onec_date {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

    pub fn format(value: &NaiveDateTime) -> String {
        value.format(FORMAT).to_string()
    }

    pub fn parse(value: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(value, FORMAT).ok()
    }

    pub fn serialize<S: Serializer>(value: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let raw = String::deserialize(d)?;
        parse(&raw).ok_or_else(|| serde::de::Error::custom("expected YYYY-MM-DDThh:mm:ss"))
    }
}

/// Counters the admin stats report besides per-request outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WriteCounters {
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
}

#[derive(Debug)]
pub(crate) struct Store {
    records: HashMap<String, CounterpartyRecord>,
    /// Platform id → references, oldest first. Not unique: a plain OData POST, like real 1C,
    /// does not dedupe.
    by_platform_id: HashMap<String, Vec<String>>,
    last_seq: u64,
    last_code: u64,
    utc_offset: FixedOffset,
    pub counters: WriteCounters,
}

impl Store {
    pub fn new(utc_offset_hours: i32) -> Self {
        let utc_offset = offset(utc_offset_hours);
        Self {
            records: HashMap::new(),
            by_platform_id: HashMap::new(),
            last_seq: 0,
            last_code: 0,
            utc_offset,
            counters: WriteCounters::default(),
        }
    }

    pub fn clear(&mut self) {
        *self = Self::new(self.utc_offset.local_minus_utc() / 3600);
    }

    pub fn get(&self, onec_id: &str) -> Option<&CounterpartyRecord> {
        self.records.get(&onec_id.to_ascii_lowercase())
    }

    /// Every counterparty storing this platform id, oldest first.
    pub fn find_by_platform_id(&self, platform_id: &str) -> Vec<&CounterpartyRecord> {
        self.by_platform_id
            .get(platform_id)
            .map(|ids| ids.iter().filter_map(|id| self.records.get(id)).collect())
            .unwrap_or_default()
    }

    /// All counterparties in creation (`Code`) order.
    pub fn all(&self) -> Vec<&CounterpartyRecord> {
        let mut all: Vec<_> = self.records.values().collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }

    /// Records written after `since` (exclusive), oldest first, at most `limit`; and whether
    /// more remain.
    pub fn changes_since(&self, since: u64, limit: usize) -> (Vec<&CounterpartyRecord>, bool) {
        let mut changed: Vec<_> = self
            .records
            .values()
            .filter(|r| r.change_seq > since)
            .collect();
        changed.sort_by_key(|r| r.change_seq);
        let has_more = changed.len() > limit;
        changed.truncate(limit);
        (changed, has_more)
    }

    /// Errors when another record than `except` holds `platform_id`.
    pub fn ensure_platform_id_free(
        &self,
        platform_id: &str,
        except: Option<&str>,
    ) -> Result<(), StoreError> {
        let taken = self
            .by_platform_id
            .get(platform_id)
            .is_some_and(|ids| ids.iter().any(|id| Some(id.as_str()) != except));
        if taken {
            Err(StoreError::Conflict(format!(
                "another counterparty already stores platform id {platform_id}"
            )))
        } else {
            Ok(())
        }
    }

    pub fn create(&mut self, fields: CounterpartyFields) -> Result<CounterpartyRecord, StoreError> {
        check_before_write(&fields)?;
        let onec_id = uuid::Uuid::new_v4().to_string();
        self.last_code += 1;
        let code = format!("00-{:06}", self.last_code);
        let (seq, data_version, modified_at) = self.next_version();
        if let Some(pid) = &fields.platform_id {
            self.by_platform_id
                .entry(pid.clone())
                .or_default()
                .push(onec_id.clone());
        }
        let record = CounterpartyRecord {
            onec_id: onec_id.clone(),
            data_version,
            code,
            fields,
            modified_at,
            change_seq: seq,
        };
        self.records.insert(onec_id, record.clone());
        self.counters.creates += 1;
        Ok(record)
    }

    /// Rewrites one record through `edit`; every write gets a new version and change number,
    /// as `Записать()` in 1C does even when nothing changed.
    pub fn update(
        &mut self,
        onec_id: &str,
        edit: impl FnOnce(&mut CounterpartyFields),
    ) -> Result<CounterpartyRecord, StoreError> {
        let key = onec_id.to_ascii_lowercase();
        let current = self
            .records
            .get(&key)
            .ok_or_else(|| StoreError::NotFound(onec_id.to_string()))?;
        let mut fields = current.fields.clone();
        edit(&mut fields);
        check_before_write(&fields)?;
        let old_pid = current.fields.platform_id.clone();
        if old_pid != fields.platform_id {
            if let Some(old) = &old_pid {
                self.unindex(old, &key);
            }
            if let Some(new) = &fields.platform_id {
                self.by_platform_id
                    .entry(new.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
        let (seq, data_version, modified_at) = self.next_version();
        let record = self
            .records
            .get_mut(&key)
            .ok_or_else(|| StoreError::NotFound(onec_id.to_string()))?;
        record.fields = fields;
        record.data_version = data_version;
        record.modified_at = modified_at;
        record.change_seq = seq;
        self.counters.updates += 1;
        Ok(record.clone())
    }

    /// Create or update by platform id; `true` when created.
    pub fn upsert_by_platform_id(
        &mut self,
        fields: CounterpartyFields,
    ) -> Result<(CounterpartyRecord, bool), StoreError> {
        let Some(platform_id) = fields.platform_id.clone() else {
            return self.create(fields).map(|r| (r, true));
        };
        let holders: Vec<String> = self
            .find_by_platform_id(&platform_id)
            .iter()
            .map(|r| r.onec_id.clone())
            .collect();
        match holders.as_slice() {
            [] => self.create(fields).map(|r| (r, true)),
            [onec_id] => self.update(onec_id, |f| *f = fields).map(|r| (r, false)),
            _ => Err(StoreError::Conflict(format!(
                "{} counterparties store platform id {platform_id}",
                holders.len()
            ))),
        }
    }

    /// Physical deletion, as OData `DELETE` does.
    pub fn delete(&mut self, onec_id: &str) -> Result<(), StoreError> {
        let key = onec_id.to_ascii_lowercase();
        let removed = self
            .records
            .remove(&key)
            .ok_or_else(|| StoreError::NotFound(onec_id.to_string()))?;
        if let Some(pid) = &removed.fields.platform_id {
            self.unindex(pid, &key);
        }
        self.counters.deletes += 1;
        Ok(())
    }

    fn unindex(&mut self, platform_id: &str, onec_id: &str) {
        if let Some(ids) = self.by_platform_id.get_mut(platform_id) {
            ids.retain(|id| id != onec_id);
            if ids.is_empty() {
                self.by_platform_id.remove(platform_id);
            }
        }
    }

    pub fn backdate(
        &mut self,
        onec_id: &str,
        modified_at: NaiveDateTime,
    ) -> Result<(), StoreError> {
        let key = onec_id.to_ascii_lowercase();
        let record = self
            .records
            .get_mut(&key)
            .ok_or_else(|| StoreError::NotFound(onec_id.to_string()))?;
        record.modified_at = modified_at;
        Ok(())
    }

    fn next_version(&mut self) -> (u64, String, NaiveDateTime) {
        self.last_seq += 1;
        let data_version =
            base64::engine::general_purpose::STANDARD.encode(self.last_seq.to_be_bytes());
        (self.last_seq, data_version, local_now(self.utc_offset))
    }
}

pub(crate) fn offset(utc_offset_hours: i32) -> FixedOffset {
    FixedOffset::east_opt(utc_offset_hours.clamp(-23, 23) * 3600).unwrap_or(Utc.fix())
}

/// The emulated server's wall clock, whole seconds (1C dates have no fraction and no zone).
pub(crate) fn local_now(offset: FixedOffset) -> NaiveDateTime {
    let now = Utc::now().with_timezone(&offset).naive_local();
    now.with_nanosecond(0).unwrap_or(now)
}

/// The checks a typical `ПередЗаписью` makes; a refusal is a business error, never retryable.
pub(crate) fn check_before_write(fields: &CounterpartyFields) -> Result<(), StoreError> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(inn) = &fields.inn {
        if !(all_digits(inn) && (inn.len() == 10 || inn.len() == 12)) {
            return Err(StoreError::Business(
                "ИНН должен состоять из 10 или 12 цифр".into(),
            ));
        }
    }
    if let Some(kpp) = &fields.kpp {
        if !(kpp.len() == 9 && kpp.bytes().all(|b| b.is_ascii_alphanumeric())) {
            return Err(StoreError::Business(
                "КПП должен состоять из 9 символов".into(),
            ));
        }
    }
    if fields.name.trim().is_empty() {
        return Err(StoreError::Business("Не заполнено наименование".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(pid: &str) -> CounterpartyFields {
        CounterpartyFields {
            platform_id: Some(pid.into()),
            ..CounterpartyFields::new(CounterpartyKind::Individual, "Иванов Иван")
        }
    }

    #[test]
    fn every_write_gets_a_new_version_and_a_higher_change_number() {
        // Given a stored counterparty
        let mut store = Store::new(3);
        let created = store.create(person("p-1")).expect("create");
        // When it is written again without changes
        let updated = store.update(&created.onec_id, |_| {}).expect("update");
        // Then the version token and the change number both move on
        assert_ne!(created.data_version, updated.data_version);
        assert!(updated.change_seq > created.change_seq);
        assert_eq!(created.code, "00-000001");
    }

    #[test]
    fn an_upsert_with_a_known_platform_id_updates_instead_of_creating() {
        // Given a counterparty created by platform id
        let mut store = Store::new(3);
        let (first, created) = store.upsert_by_platform_id(person("p-1")).expect("first");
        // When the same platform id is upserted again
        let (second, created_again) = store.upsert_by_platform_id(person("p-1")).expect("second");
        // Then the same record was updated
        assert!(created && !created_again);
        assert_eq!(first.onec_id, second.onec_id);
        assert_eq!(store.all().len(), 1);
    }

    #[test]
    fn an_inn_of_the_wrong_length_is_a_business_refusal() {
        // Given a counterparty with an 11-digit INN
        let mut store = Store::new(3);
        let fields = CounterpartyFields {
            inn: Some("12345678901".into()),
            ..person("p-1")
        };
        // When it is written, then 1C's check refuses it
        assert!(matches!(store.create(fields), Err(StoreError::Business(_))));
    }
}
