//! The 1C side: the client port the pipeline uses and its three transports.
//!
//! - [`OneCClient`] is the only thing the exporter and the import see;
//! - transports: HTTP service JSON, 1C standard OData, CommerceML 2.10 XML;
//! - [`OneCError`] classifies every outcome as transient or permanent.

mod batch;
mod batch_items;
mod commerceml;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod json;
mod odata;
mod schema;
mod xml;

pub use commerceml::{exchange_message as commerceml_exchange_message, CommerceMlClient};
pub use config::{
    Credentials, OneCConfig, OneCConfigError, Secret, Transport, UnknownTransport,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HS_ROOT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_TIMEOUT,
};
pub use error::OneCError;
pub use json::HttpServiceJsonClient;
pub use odata::ODataClient;
pub use schema::OneCSchema;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The most customers one batch request carries; longer lists are split into several requests.
pub const MAX_BATCH_ITEMS: usize = 500;

/// The client for the configured transport (`ONEC_TRANSPORT`), behind the port.
pub fn build_client(config: OneCConfig) -> Result<Arc<dyn OneCClient>, OneCError> {
    Ok(match config.transport {
        Transport::Json => Arc::new(HttpServiceJsonClient::new(&config)?),
        Transport::OData => Arc::new(ODataClient::new(&config)?),
        Transport::CommerceMl => Arc::new(CommerceMlClient::new(&config)?),
    })
}

/// Individual (ФизическоеЛицо) or legal entity (ЮридическоеЛицо).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyKind {
    Individual,
    LegalEntity,
}

/// A counterparty (Контрагент) as 1C holds it, independent of the transport.
///
/// Produced by `CustomerDataMapper::map_platform_to_1c` for export and by the transports when
/// reading from 1C; values are already validated and normalised (E.164 phone, checked INN/KPP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    /// The platform user id, stored in 1C in the attribute the mapping file names. Empty when
    /// read from 1C for a counterparty created there (it has no platform id yet).
    pub platform_id: String,
    /// 1C's reference (`Ref_Key`); `None` before the first export.
    pub onec_id: Option<String>,
    /// 1C's `DataVersion` (or the transport's equivalent), set when read from 1C.
    pub data_version: Option<String>,
    pub kind: CounterpartyKind,
    /// Наименование / `Description`.
    pub name: String,
    /// НаименованиеПолное (legal entity) or full personal name (individual).
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Contact person of a legal entity.
    pub contact_person: Option<String>,
    pub inn: Option<String>,
    pub kpp: Option<String>,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// The role as 1C names it (after the mapping file's role table).
    pub role: Option<String>,
    /// The client status as 1C names it (after the mapping file's status table).
    pub status: Option<String>,
    /// 1C's deletion mark: a removed platform user is marked, never physically deleted.
    pub deletion_mark: bool,
    /// Extra attributes from the mapping file: 1C attribute name → value.
    pub extra: BTreeMap<String, String>,
}

/// What a create-or-update returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertOutcome {
    pub onec_id: String,
    pub data_version: String,
    /// `true` when 1C created a new counterparty, `false` when it updated an existing one.
    pub created: bool,
}

/// One page of counterparties changed in 1C, for the import.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangePage {
    pub items: Vec<Counterparty>,
    /// Opaque; pass it back to get the next page. `None` when this was the last page.
    pub next_cursor: Option<String>,
    /// Store this after the whole page is applied; the next import starts from it.
    pub watermark: Option<String>,
}

/// One request per customer, each after the one before: whoever calls a batch method holds a
/// single 1C session for it (`shared::export::OneCSessions`), so a transport without a batch
/// interface must not open more connections to 1C than that one.
pub async fn upsert_one_by_one<'a, C: OneCClient + ?Sized>(
    client: &C,
    items: impl IntoIterator<Item = &'a Counterparty> + Send,
) -> Vec<Result<UpsertOutcome, OneCError>> {
    let mut results = Vec::new();
    for cp in items {
        results.push(client.upsert_customer(cp).await);
    }
    results
}

/// The operations the pipeline needs from 1C.
///
/// Every implementation is idempotent by platform id: calling `upsert_customer` twice for one
/// platform id (a retry after a lost response, a redelivered message) yields one counterparty.
#[async_trait]
pub trait OneCClient: Send + Sync {
    /// Create or update the counterparty whose platform id is `cp.platform_id`.
    async fn upsert_customer(&self, cp: &Counterparty) -> Result<UpsertOutcome, OneCError>;

    /// Create or update several counterparties; one result per item, in input order.
    ///
    /// A failure of the whole exchange (timeout, 503…) is every item's result; a customer 1C
    /// refuses fails alone. This default sends one request per customer
    /// ([`upsert_one_by_one`]); transports with a batch interface override it
    /// (`docs/onec-contract.md`, "Batches").
    async fn upsert_customers(
        &self,
        items: &[Counterparty],
    ) -> Vec<Result<UpsertOutcome, OneCError>> {
        upsert_one_by_one(self, items).await
    }

    /// Fetch one counterparty by 1C reference; `Ok(None)` when 1C has none.
    async fn fetch_customer(&self, onec_id: &str) -> Result<Option<Counterparty>, OneCError>;

    /// Find the counterparty that stores this platform id; `Ok(None)` when 1C has none.
    async fn find_by_platform_id(
        &self,
        platform_id: &str,
    ) -> Result<Option<Counterparty>, OneCError>;

    /// Counterparties changed after `watermark`, one page at a time (`cursor` from the previous
    /// page, `None` for the first).
    async fn list_changed(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ChangePage, OneCError>;
}
