//! `CustomerDataMapper`: platform customer ↔ 1C counterparty, driven by the mapping file.
//!
//! Export ([`CustomerDataMapper::map_platform_to_1c`]) validates everything 1C would reject and
//! reports every problem at once; import ([`CustomerDataMapper::map_1c_to_platform`]) gives the
//! platform-side view of a counterparty, leaving conflict resolution to the import.
//!
//! Decisions:
//! - a non-blank `company_name` makes a legal entity, otherwise an individual;
//! - all strings are trimmed; blank means absent; control characters are rejected; XML or JSON
//!   special characters are kept as they are (escaping is the transports' job);
//! - a missing role or status is exported according to the table's `missing` policy (default
//!   file: `retail`, `active`); an unknown one according to `unknown` (default: reject);
//! - on import a blank 1C role/status means "1C says nothing" (`None`); an unknown one is an
//!   error, never a guess;
//! - `first_name`/`last_name` are set on the counterparty for legal entities too (as the contact
//!   person's parts), so an import gives them back.

pub mod config;
pub mod dates;
mod validation;

pub use config::{
    fields, Direction, ExtraField, FieldOwner, FieldOwnership, MappingConfig, MappingConfigError,
    ValuePolicy, ValueTable, ValueTableError, DEFAULT_MAPPING_TOML, MAPPED_FIELDS,
};
pub use dates::{
    format_onec_datetime, is_empty_ref, parse_onec_datetime, parse_onec_ref, OneCValueError,
};
pub use validation::{FieldProblem, ValidationErrors};

use crate::domain::{Customer, Email, Inn, Kpp, Phone, SyncStatus};
use crate::onec::{Counterparty, CounterpartyKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use validation::Problems;

/// 1C `Description` (Наименование) length.
pub const NAME_MAX: usize = 100;
/// 1C `НаименованиеПолное` length.
pub const FULL_NAME_MAX: usize = 250;
/// First or last name; 1C keeps ФИО parts in strings of this order.
pub const NAME_PART_MAX: usize = 50;
/// Contact person ("Имя Фамилия"): two name parts and a space fit.
pub const CONTACT_PERSON_MAX: usize = 2 * NAME_PART_MAX + 1;
/// 1C `КонтактнаяИнформация.АдресЭП` length.
pub const EMAIL_ONEC_MAX: usize = 100;
/// CommerceML `Ид` (`ИдентификаторГлобальныйТип`) length; the platform id becomes `Ид`.
pub const PLATFORM_ID_MAX: usize = 40;

/// Platform attributes that are not mapped fields, by attribute name → value as a string (from
/// the raw DynamoDB item). The mapper reads only the extra fields the mapping file names.
pub type ExtraAttributes = BTreeMap<String, String>;

/// The platform-side view of a 1C counterparty, for the import.
///
/// Field values are validated and normalised like an export's (E.164 phone, checked INN/KPP,
/// roles and statuses translated back through the tables). `None` means 1C holds no value.
/// The import decides which of them to write, using the mapping file's ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformCustomerUpdate {
    /// The platform user id 1C stores; `None` for a counterparty created in 1C.
    pub platform_id: Option<String>,
    /// 1C's reference, lowercase GUID.
    pub onec_id: String,
    /// 1C's `DataVersion` as read.
    pub onec_version: Option<String>,
    pub kind: CounterpartyKind,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub tax_id: Option<String>,
    pub kpp: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub deletion_mark: bool,
    /// Import/both extra fields: platform attribute name → value.
    pub extra: BTreeMap<String, String>,
    /// For a user the import creates: it came from 1C and is never exported back.
    pub created_in_1c: bool,
    pub sync_status: SyncStatus,
}

impl PlatformCustomerUpdate {
    /// The value of a mapped field or import extra by platform attribute name.
    pub fn value_of(&self, field: &str) -> Option<&str> {
        let v = match field {
            fields::EMAIL => &self.email,
            fields::PHONE => &self.phone,
            fields::FIRST_NAME => &self.first_name,
            fields::LAST_NAME => &self.last_name,
            fields::COMPANY_NAME => &self.company_name,
            fields::TAX_ID => &self.tax_id,
            fields::KPP => &self.kpp,
            fields::ROLE => &self.role,
            fields::STATUS => &self.status,
            other => return self.extra.get(other).map(String::as_str),
        };
        v.as_deref()
    }
}

/// Maps customers both ways according to one [`MappingConfig`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CustomerDataMapper {
    config: Arc<MappingConfig>,
}

impl Default for CustomerDataMapper {
    /// With the built-in mapping file.
    fn default() -> Self {
        Self::new(MappingConfig::default())
    }
}

fn join_names(parts: [Option<&str>; 2]) -> Option<String> {
    let joined = parts.into_iter().flatten().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// "Первое Остальное" → ("Первое", "Остальное"); one word → (word, None).
fn split_once_ws(s: &str) -> (Option<String>, Option<String>) {
    let s = s.trim();
    if s.is_empty() {
        return (None, None);
    }
    match s.split_once(char::is_whitespace) {
        Some((a, b)) => (Some(a.to_owned()), Some(b.trim().to_owned())),
        None => (Some(s.to_owned()), None),
    }
}

impl CustomerDataMapper {
    pub fn new(config: MappingConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    pub fn with_shared(config: Arc<MappingConfig>) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    /// The counterparty 1C should hold for this customer, or every reason it cannot.
    ///
    /// `extra` holds the row's other attributes as strings; only the mapping file's export/both
    /// extra fields are read from it, and a missing or blank one is not sent.
    pub fn map_platform_to_1c(
        &self,
        customer: &Customer,
        extra: &ExtraAttributes,
    ) -> Result<Counterparty, ValidationErrors> {
        let mut p = Problems::default();

        let platform_id = check_platform_id(&mut p, &customer.id);
        let onec_id = match customer.onec_id.as_deref().map(parse_onec_ref) {
            None => None,
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                p.push("onec_id", e);
                None
            }
        };

        let first_name = p.text(
            fields::FIRST_NAME,
            customer.first_name.as_deref(),
            NAME_PART_MAX,
        );
        let last_name = p.text(
            fields::LAST_NAME,
            customer.last_name.as_deref(),
            NAME_PART_MAX,
        );
        let is_legal = customer
            .company_name
            .as_deref()
            .is_some_and(|c| !c.trim().is_empty());
        let kind = if is_legal {
            CounterpartyKind::LegalEntity
        } else {
            CounterpartyKind::Individual
        };

        let (name, contact_person) = match kind {
            CounterpartyKind::LegalEntity => {
                let company = p.text(
                    fields::COMPANY_NAME,
                    customer.company_name.as_deref(),
                    NAME_MAX.min(FULL_NAME_MAX),
                );
                let contact = join_names([first_name.as_deref(), last_name.as_deref()]);
                if contact
                    .as_ref()
                    .is_some_and(|c| c.chars().count() > CONTACT_PERSON_MAX)
                {
                    p.push(
                        "contact_person",
                        format_args!("is longer than {CONTACT_PERSON_MAX} characters"),
                    );
                }
                (company, contact)
            }
            CounterpartyKind::Individual => {
                let name = join_names([last_name.as_deref(), first_name.as_deref()]);
                match &name {
                    None if customer.first_name.is_none() && customer.last_name.is_none() => {
                        p.push("name", "an individual needs a first or last name")
                    }
                    Some(n) if n.chars().count() > NAME_MAX => p.push(
                        "name",
                        format_args!(
                            "last and first name together are longer than {NAME_MAX} characters"
                        ),
                    ),
                    _ => {}
                }
                (name, None)
            }
        };

        let email = match customer.email.as_deref().map(Email::parse) {
            None => {
                p.push(fields::EMAIL, "is missing");
                None
            }
            Some(Err(e)) => {
                p.push(fields::EMAIL, e);
                None
            }
            Some(Ok(e)) if e.as_str().chars().count() > EMAIL_ONEC_MAX => {
                p.push(
                    fields::EMAIL,
                    format_args!("is longer than {EMAIL_ONEC_MAX} characters"),
                );
                None
            }
            Some(Ok(e)) => Some(e),
        };
        let phone = parse_phone(&mut p, customer.phone.as_deref());
        let (inn, kpp) = check_tax_ids(
            &mut p,
            kind,
            customer.tax_id.as_deref(),
            customer.kpp.as_deref(),
            true,
        );

        let role = self
            .config
            .roles()
            .platform_to_onec(customer.role.as_deref())
            .map_err(|e| p.push(fields::ROLE, e))
            .ok();
        let status = self
            .config
            .statuses()
            .platform_to_onec(customer.status.as_deref())
            .map_err(|e| p.push(fields::STATUS, e))
            .ok();

        let mut extra_out = BTreeMap::new();
        for field in self.config.export_extras() {
            let value = p.text(
                &field.platform,
                extra.get(&field.platform).map(String::as_str),
                usize::MAX,
            );
            if let Some(value) = value {
                extra_out.insert(field.onec.clone(), value);
            }
        }

        let name = name.unwrap_or_default();
        p.finish(Counterparty {
            platform_id,
            onec_id,
            data_version: None,
            kind,
            full_name: name.clone(),
            name,
            first_name,
            last_name,
            contact_person,
            inn: inn.map(String::from),
            kpp: kpp.map(String::from),
            email: email.map(String::from),
            phone: phone.map(String::from),
            role: role.map(str::to_owned),
            status: status.map(str::to_owned),
            deletion_mark: false,
            extra: extra_out,
        })
    }

    /// The platform-side view of a counterparty read from 1C, or every reason it cannot be used.
    pub fn map_1c_to_platform(
        &self,
        cp: &Counterparty,
    ) -> Result<PlatformCustomerUpdate, ValidationErrors> {
        let mut p = Problems::default();

        let onec_id = match cp.onec_id.as_deref().map(parse_onec_ref) {
            Some(Ok(Some(id))) => id,
            Some(Err(e)) => {
                p.push("onec_id", e);
                String::new()
            }
            None | Some(Ok(None)) => {
                p.push("onec_id", "is missing");
                String::new()
            }
        };
        let platform_id = if cp.platform_id.trim().is_empty() {
            None
        } else {
            Some(check_platform_id(&mut p, &cp.platform_id))
        };

        let mut first_name = p.text(fields::FIRST_NAME, cp.first_name.as_deref(), usize::MAX);
        let mut last_name = p.text(fields::LAST_NAME, cp.last_name.as_deref(), usize::MAX);
        let company_name = match cp.kind {
            CounterpartyKind::LegalEntity => {
                // НаименованиеПолное is the official name; Description is a working name.
                let full = p.text(fields::COMPANY_NAME, Some(&cp.full_name), usize::MAX);
                let company =
                    full.or_else(|| p.text(fields::COMPANY_NAME, Some(&cp.name), usize::MAX));
                if company.is_none() {
                    p.push(fields::COMPANY_NAME, "a legal entity has no name in 1C");
                }
                if first_name.is_none() && last_name.is_none() {
                    let contact =
                        p.text("contact_person", cp.contact_person.as_deref(), usize::MAX);
                    (first_name, last_name) = split_once_ws(contact.as_deref().unwrap_or(""));
                }
                company
            }
            CounterpartyKind::Individual => {
                if first_name.is_none() && last_name.is_none() {
                    // 1C's own individuals often carry only "Фамилия Имя" in Description.
                    let name = p.text("name", Some(&cp.name), usize::MAX);
                    (last_name, first_name) = split_once_ws(name.as_deref().unwrap_or(""));
                }
                None
            }
        };

        let email = match cp.email.as_deref().filter(|e| !e.trim().is_empty()) {
            None => None,
            Some(e) => Email::parse(e)
                .map_err(|err| p.push(fields::EMAIL, err))
                .ok(),
        };
        let phone = parse_phone(&mut p, cp.phone.as_deref());
        let (inn, kpp) =
            check_tax_ids(&mut p, cp.kind, cp.inn.as_deref(), cp.kpp.as_deref(), false);

        let role = self.reverse(
            &mut p,
            fields::ROLE,
            self.config.roles(),
            cp.role.as_deref(),
        );
        let status = self.reverse(
            &mut p,
            fields::STATUS,
            self.config.statuses(),
            cp.status.as_deref(),
        );

        let mut extra = BTreeMap::new();
        for field in self.config.import_extras() {
            let value = p.text(
                &field.platform,
                cp.extra.get(&field.onec).map(String::as_str),
                usize::MAX,
            );
            if let Some(value) = value {
                extra.insert(field.platform.clone(), value);
            }
        }

        p.finish(PlatformCustomerUpdate {
            platform_id,
            onec_id,
            onec_version: cp.data_version.clone().filter(|v| !v.trim().is_empty()),
            kind: cp.kind,
            email: email.map(String::from),
            phone: phone.map(String::from),
            first_name,
            last_name,
            company_name,
            tax_id: inn.map(String::from),
            kpp: kpp.map(String::from),
            role,
            status,
            deletion_mark: cp.deletion_mark,
            extra,
            created_in_1c: true,
            sync_status: SyncStatus::Synced,
        })
    }

    fn reverse(
        &self,
        p: &mut Problems,
        field: &str,
        table: &ValueTable,
        onec: Option<&str>,
    ) -> Option<String> {
        let onec = onec.map(str::trim).filter(|v| !v.is_empty())?;
        match table.onec_to_platform(onec) {
            Some(v) => Some(v.to_owned()),
            None => {
                p.push(
                    field,
                    format_args!("1C value `{onec}` is not in the mapping table"),
                );
                None
            }
        }
    }
}

fn check_platform_id(p: &mut Problems, id: &str) -> String {
    if id.is_empty() {
        p.push("platform_id", "is missing");
    } else if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        // Not trimmed: the id is the idempotency key and must reach 1C exactly as stored.
        p.push("platform_id", "contains whitespace or control characters");
    } else if id.chars().count() > PLATFORM_ID_MAX {
        p.push(
            "platform_id",
            format_args!("is longer than {PLATFORM_ID_MAX} characters"),
        );
    }
    id.to_owned()
}

fn parse_phone(p: &mut Problems, phone: Option<&str>) -> Option<Phone> {
    let phone = phone.filter(|s| !s.trim().is_empty())?;
    Phone::parse(phone)
        .map_err(|e| p.push(fields::PHONE, e))
        .ok()
}

/// INN/KPP rules by kind. `required` is set on export: 1C needs a legal entity's INN and KPP;
/// on import their absence is 1C's business.
fn check_tax_ids(
    p: &mut Problems,
    kind: CounterpartyKind,
    inn: Option<&str>,
    kpp: Option<&str>,
    required: bool,
) -> (Option<Inn>, Option<Kpp>) {
    let inn = inn.filter(|s| !s.trim().is_empty());
    let kpp = kpp.filter(|s| !s.trim().is_empty());
    let inn = match inn.map(Inn::parse) {
        None => {
            if required && kind == CounterpartyKind::LegalEntity {
                p.push(fields::TAX_ID, "a legal entity needs an INN");
            }
            None
        }
        Some(Err(e)) => {
            p.push(fields::TAX_ID, e);
            None
        }
        Some(Ok(inn)) => match (kind, inn.is_legal_entity()) {
            (CounterpartyKind::LegalEntity, false) => {
                p.push(fields::TAX_ID, "a legal entity's INN must have 10 digits");
                None
            }
            (CounterpartyKind::Individual, true) => {
                p.push(fields::TAX_ID, "an individual's INN must have 12 digits");
                None
            }
            _ => Some(inn),
        },
    };
    let kpp = match (kind, kpp) {
        (CounterpartyKind::Individual, Some(_)) => {
            p.push(fields::KPP, "an individual has no KPP");
            None
        }
        (CounterpartyKind::Individual, None) => None,
        (CounterpartyKind::LegalEntity, None) => {
            if required {
                p.push(fields::KPP, "a legal entity needs a KPP");
            }
            None
        }
        (CounterpartyKind::LegalEntity, Some(k)) => {
            Kpp::parse(k).map_err(|e| p.push(fields::KPP, e)).ok()
        }
    };
    (inn, kpp)
}
