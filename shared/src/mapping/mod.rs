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

fn is_blank(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.trim().is_empty())
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
                    // A blank name is no name; a present but invalid one has its own problem.
                    None if is_blank(customer.first_name.as_deref())
                        && is_blank(customer.last_name.as_deref()) =>
                    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass};

    const GUID: &str = "1fa1a135-d89b-11e6-8343-40167e2531c3";

    const WITH_EXTRAS: &str = r#"
[onec]
platform_id_attribute = "ИдСайта"
role_attribute = "ТипКлиента"

[roles]
unknown = "default:basic"
missing = "reject"
[roles.values]
basic = "Базовый"
gold = "Золотой"

[statuses]
unknown = "reject"
missing = "default:on"
[statuses.values]
on = "Вкл"
off = "Выкл"

[[extra_fields]]
platform = "city"
onec = "Город"
direction = "both"

[[extra_fields]]
platform = "manager_name"
onec = "Менеджер"
direction = "import"

[[extra_fields]]
platform = "utm_source"
onec = "Источник"
direction = "export"

[ownership]
onec = ["role", "status"]
platform = ["email", "phone", "first_name", "last_name", "company_name", "tax_id", "kpp"]
"#;

    fn individual() -> Customer {
        Customer {
            id: "7b0c1d2e-0000-4000-8000-000000000001".into(),
            email: Some("ivanov@example.ru".into()),
            phone: Some("8 (912) 345-67-89".into()),
            first_name: Some("Иван".into()),
            last_name: Some("Иванов".into()),
            tax_id: Some("500100732259".into()),
            role: Some("wholesale".into()),
            status: Some("active".into()),
            ..Customer::default()
        }
    }

    fn legal_entity() -> Customer {
        Customer {
            id: "7b0c1d2e-0000-4000-8000-000000000002".into(),
            email: Some("office@romashka.ru".into()),
            phone: Some("+7 (495) 123-45-67".into()),
            first_name: Some("Пётр".into()),
            last_name: Some("Петров".into()),
            company_name: Some("ООО \"Ромашка\"".into()),
            tax_id: Some("7707083893".into()),
            kpp: Some("770701001".into()),
            role: Some("partner".into()),
            status: Some("blocked".into()),
            ..Customer::default()
        }
    }

    fn export(customer: &Customer) -> Result<Counterparty, ValidationErrors> {
        CustomerDataMapper::default().map_platform_to_1c(customer, &ExtraAttributes::new())
    }

    fn problem_fields(customer: &Customer) -> Vec<String> {
        match export(customer) {
            Ok(cp) => panic!("expected validation errors, got {cp:?}"),
            Err(e) => e.fields().into_iter().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn an_individual_is_named_last_name_then_first_name_with_normalised_contacts() {
        // Given
        let customer = individual();
        // When
        let cp = export(&customer).unwrap();
        // Then
        assert_eq!(cp.kind, CounterpartyKind::Individual);
        assert_eq!(cp.platform_id, customer.id);
        assert_eq!(cp.name, "Иванов Иван");
        assert_eq!(cp.full_name, "Иванов Иван");
        assert_eq!(cp.first_name.as_deref(), Some("Иван"));
        assert_eq!(cp.last_name.as_deref(), Some("Иванов"));
        assert_eq!(cp.contact_person, None);
        assert_eq!(cp.inn.as_deref(), Some("500100732259"));
        assert_eq!(cp.kpp, None);
        assert_eq!(cp.email.as_deref(), Some("ivanov@example.ru"));
        assert_eq!(cp.phone.as_deref(), Some("+79123456789"));
        assert_eq!(cp.role.as_deref(), Some("Опт"));
        assert_eq!(cp.status.as_deref(), Some("Активен"));
        assert_eq!((cp.onec_id, cp.data_version), (None, None));
        assert!(!cp.deletion_mark);
        assert!(cp.extra.is_empty());
    }

    #[test]
    fn a_legal_entity_carries_its_company_name_contact_person_inn_and_kpp() {
        // When
        let cp = export(&legal_entity()).unwrap();
        // Then
        assert_eq!(cp.kind, CounterpartyKind::LegalEntity);
        assert_eq!(cp.name, "ООО \"Ромашка\"");
        assert_eq!(cp.full_name, "ООО \"Ромашка\"");
        assert_eq!(cp.contact_person.as_deref(), Some("Пётр Петров"));
        assert_eq!(cp.inn.as_deref(), Some("7707083893"));
        assert_eq!(cp.kpp.as_deref(), Some("770701001"));
        assert_eq!(cp.phone.as_deref(), Some("+74951234567"));
        assert_eq!(cp.role.as_deref(), Some("Партнёр"));
        assert_eq!(cp.status.as_deref(), Some("Заблокирован"));
    }

    #[test]
    fn xml_special_characters_and_surrounding_spaces_in_names_are_kept_but_trimmed() {
        // Given
        let mut customer = legal_entity();
        customer.company_name = Some("  ООО \"Рога & Копыта\" <тест>  ".into());
        customer.first_name = Some(" Ёжик ".into());
        customer.last_name = Some("О'Брайен-Щукин".into());
        // When
        let cp = export(&customer).unwrap();
        // Then
        assert_eq!(cp.name, "ООО \"Рога & Копыта\" <тест>");
        assert_eq!(cp.full_name, "ООО \"Рога & Копыта\" <тест>");
        assert_eq!(cp.contact_person.as_deref(), Some("Ёжик О'Брайен-Щукин"));
    }

    #[test]
    fn a_blank_company_name_makes_an_individual() {
        let mut customer = individual();
        customer.company_name = Some("   ".into());
        assert_eq!(
            export(&customer).unwrap().kind,
            CounterpartyKind::Individual
        );
    }

    #[test]
    fn every_phone_form_is_exported_in_e164_and_kazakhstan_stays_kazakhstan() {
        let cases = [
            ("8 (912) 345-67-89", "+79123456789"),
            ("+7 912 345 67 89", "+79123456789"),
            ("9123456789", "+79123456789"),
            ("8-912-345-67-89", "+79123456789"),
            ("+7 (912) 345-67-89", "+79123456789"),
            ("8.912.345.67.89\u{00A0}", "+79123456789"),
            ("+7 701 123 45 67", "+77011234567"),
        ];
        for (input, e164) in cases {
            // Given
            let mut customer = individual();
            customer.phone = Some(input.into());
            // When
            let cp = export(&customer).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            // Then
            assert_eq!(cp.phone.as_deref(), Some(e164), "input {input:?}");
        }
    }

    #[test]
    fn a_missing_or_blank_phone_is_fine_but_an_extension_is_not() {
        let mut customer = individual();
        customer.phone = None;
        assert_eq!(export(&customer).unwrap().phone, None);
        customer.phone = Some("  ".into());
        assert_eq!(export(&customer).unwrap().phone, None);
        customer.phone = Some("8-912-345-67-89 доб. 12".into());
        assert_eq!(problem_fields(&customer), ["phone"]);
    }

    #[test]
    fn tax_id_rules_depend_on_the_kind_of_counterparty() {
        let legal = |inn: Option<&str>, kpp: Option<&str>| Customer {
            tax_id: inn.map(Into::into),
            kpp: kpp.map(Into::into),
            ..legal_entity()
        };
        let person = |inn: Option<&str>, kpp: Option<&str>| Customer {
            tax_id: inn.map(Into::into),
            kpp: kpp.map(Into::into),
            ..individual()
        };
        let cases: Vec<(&str, Customer, Vec<&str>)> = vec![
            (
                "legal without INN",
                legal(None, Some("770701001")),
                vec!["tax_id"],
            ),
            (
                "legal with a person's INN",
                legal(Some("500100732259"), Some("770701001")),
                vec!["tax_id"],
            ),
            (
                "legal without KPP",
                legal(Some("7707083893"), None),
                vec!["kpp"],
            ),
            (
                "legal with a bad KPP",
                legal(Some("7707083893"), Some("77070100")),
                vec!["kpp"],
            ),
            (
                "legal with a bad INN checksum",
                legal(Some("1234567895"), Some("770701001")),
                vec!["tax_id"],
            ),
            (
                "legal without both",
                legal(None, None),
                vec!["tax_id", "kpp"],
            ),
            (
                "person with a company INN",
                person(Some("7707083893"), None),
                vec!["tax_id"],
            ),
            (
                "person with a KPP",
                person(Some("500100732259"), Some("770701001")),
                vec!["kpp"],
            ),
            (
                "person with a bad INN",
                person(Some("123456789037"), None),
                vec!["tax_id"],
            ),
        ];
        for (label, customer, expected) in cases {
            assert_eq!(problem_fields(&customer), expected, "{label}");
        }
        // A person without INN and KPP, and the reference vectors, are fine.
        for (c, inn) in [
            (person(None, None), None),
            (person(Some("123456789047"), None), Some("123456789047")),
            (
                legal(Some("5024089920"), Some("501701001")),
                Some("5024089920"),
            ),
        ] {
            assert_eq!(export(&c).unwrap().inn.as_deref(), inn);
        }
    }

    #[test]
    fn a_missing_role_and_status_take_the_tables_defaults_and_unknown_ones_are_rejected() {
        // Given
        let mut customer = individual();
        customer.role = None;
        customer.status = Some(" ".into());
        // When
        let cp = export(&customer).unwrap();
        // Then
        assert_eq!(cp.role.as_deref(), Some("Розница"));
        assert_eq!(cp.status.as_deref(), Some("Активен"));

        customer.role = Some("gold".into());
        customer.status = Some("deleted".into());
        let err = export(&customer).unwrap_err();
        assert_eq!(err.fields(), ["role", "status"]);
        assert!(err
            .to_string()
            .contains("`gold` is not in the mapping table"));
    }

    #[test]
    fn the_platform_id_must_be_a_printable_commerceml_id() {
        let cases = [
            ("", false),
            ("has space", false),
            (" padded", false),
            ("tab\tid", false),
            (&"x".repeat(41), false),
            (&"x".repeat(40), true),
            ("7b0c1d2e-0000-4000-8000-000000000001", true),
        ];
        for (id, ok) in cases {
            let customer = Customer {
                id: id.to_owned(),
                ..individual()
            };
            match export(&customer) {
                Ok(cp) => {
                    assert!(ok, "id {id:?} accepted");
                    assert_eq!(cp.platform_id, id);
                }
                Err(e) => assert!(!ok && e.fields() == ["platform_id"], "id {id:?}: {e}"),
            }
        }
    }

    #[test]
    fn one_c_length_limits_are_enforced() {
        let long = |n: usize| "Я".repeat(n);
        let cases = [
            (
                Customer {
                    company_name: Some(long(NAME_MAX + 1)),
                    ..legal_entity()
                },
                "company_name",
            ),
            (
                Customer {
                    first_name: Some(long(NAME_PART_MAX + 1)),
                    ..individual()
                },
                "first_name",
            ),
            (
                Customer {
                    first_name: Some(long(NAME_PART_MAX)),
                    last_name: Some(long(NAME_PART_MAX)),
                    ..individual()
                },
                "name",
            ),
            (
                Customer {
                    email: Some(format!("{}@{}.ru", "a".repeat(60), "b".repeat(40))),
                    ..individual()
                },
                "email",
            ),
        ];
        for (customer, field) in cases {
            assert_eq!(problem_fields(&customer), [field]);
        }
        let at_limit = Customer {
            company_name: Some(long(NAME_MAX)),
            ..legal_entity()
        };
        assert_eq!(export(&at_limit).unwrap().name.chars().count(), NAME_MAX);
    }

    #[test]
    fn an_individual_needs_some_name_a_blank_one_is_none_and_a_missing_email_is_reported() {
        let customer = Customer {
            first_name: None,
            last_name: None,
            email: None,
            ..individual()
        };
        assert_eq!(problem_fields(&customer), ["name", "email"]);
        let blank_names = Customer {
            first_name: Some("  ".into()),
            last_name: Some(String::new()),
            ..individual()
        };
        assert_eq!(problem_fields(&blank_names), ["name"]);
        let only_first = Customer {
            last_name: None,
            ..individual()
        };
        assert_eq!(export(&only_first).unwrap().name, "Иван");
    }

    #[test]
    fn the_stored_onec_id_is_passed_on_lowercased_and_a_malformed_one_is_reported() {
        let mut customer = individual();
        customer.onec_id = Some(GUID.to_uppercase());
        assert_eq!(export(&customer).unwrap().onec_id.as_deref(), Some(GUID));
        customer.onec_id = Some("00000000-0000-0000-0000-000000000000".into());
        assert_eq!(export(&customer).unwrap().onec_id, None);
        customer.onec_id = Some("not-a-guid".into());
        assert_eq!(problem_fields(&customer), ["onec_id"]);
    }

    fn everything_wrong() -> Customer {
        Customer {
            id: String::new(),
            email: Some("ivan.petrov.example.ru".into()),
            phone: Some("+7 912 345 67 89 доб. 55".into()),
            first_name: Some("Иван\u{0000}".into()),
            last_name: Some("Петров".into()),
            company_name: Some("ООО \"Секретная Фирма\"".into()),
            tax_id: Some("7707083894".into()),
            kpp: Some("7707-1001".into()),
            role: Some("gold".into()),
            status: Some("deleted".into()),
            ..Customer::default()
        }
    }

    #[test]
    fn validation_reports_every_problem_at_once_as_a_permanent_error() {
        // When
        let err = export(&everything_wrong()).unwrap_err();
        // Then
        assert_eq!(
            err.fields(),
            [
                "platform_id",
                "first_name",
                "email",
                "phone",
                "tax_id",
                "kpp",
                "role",
                "status"
            ]
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(!err.is_retryable());
        let text = err.to_string();
        for expected in [
            "email: missing '@'",
            "phone: has an extension",
            "tax_id: check digit mismatch",
            "first_name: contains control characters",
        ] {
            assert!(text.contains(expected), "{text:?} lacks {expected:?}");
        }
    }

    #[test]
    fn the_validation_message_contains_no_personal_data() {
        // Given
        let customer = everything_wrong();
        // When
        let text = export(&customer).unwrap_err().to_string();
        let debug = format!("{:?}", export(&customer).unwrap_err());
        // Then
        let personal = [
            "ivan.petrov",
            "example.ru",
            "912",
            "345 67 89",
            "7707083894",
            "7707-1001",
            "Иван",
            "Петров",
            "Секретная",
        ];
        for value in personal {
            assert!(!text.contains(value), "{text:?} leaks {value:?}");
            assert!(!debug.contains(value), "{debug:?} leaks {value:?}");
        }
    }

    #[test]
    fn export_extras_are_read_from_the_raw_item_and_others_are_ignored() {
        // Given
        let mapper = CustomerDataMapper::new(MappingConfig::from_toml_str(WITH_EXTRAS).unwrap());
        let customer = Customer {
            role: Some("gold".into()),
            status: None,
            ..individual()
        };
        let extra: ExtraAttributes = [
            ("city", " Казань "),
            ("utm_source", "yandex"),
            ("manager_name", "Сидоров"),
            ("shoe_size", "42"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // When
        let cp = mapper.map_platform_to_1c(&customer, &extra).unwrap();
        // Then
        let expected: BTreeMap<String, String> = [("Город", "Казань"), ("Источник", "yandex")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(cp.extra, expected);
        assert_eq!(cp.role.as_deref(), Some("Золотой"));
        assert_eq!(cp.status.as_deref(), Some("Вкл"));

        let unknown_role = Customer {
            role: Some("platinum".into()),
            ..customer.clone()
        };
        let cp = mapper
            .map_platform_to_1c(&unknown_role, &ExtraAttributes::new())
            .unwrap();
        assert_eq!(cp.role.as_deref(), Some("Базовый"));
        assert!(cp.extra.is_empty());

        let no_role = Customer {
            role: None,
            ..customer
        };
        let err = mapper
            .map_platform_to_1c(&no_role, &ExtraAttributes::new())
            .unwrap_err();
        assert_eq!(err.problems()[0].to_string(), "role: is missing");
    }

    #[test]
    fn an_extra_value_with_control_characters_is_a_problem_of_that_field() {
        let mapper = CustomerDataMapper::new(MappingConfig::from_toml_str(WITH_EXTRAS).unwrap());
        let customer = Customer {
            role: Some("gold".into()),
            status: None,
            ..individual()
        };
        let extra: ExtraAttributes = [("city".to_owned(), "Ка\u{0007}зань".to_owned())].into();
        let err = mapper.map_platform_to_1c(&customer, &extra).unwrap_err();
        assert_eq!(err.fields(), ["city"]);
    }

    fn as_read_from_1c(mut cp: Counterparty) -> Counterparty {
        cp.onec_id = Some(GUID.to_uppercase());
        cp.data_version = Some("AAAAAAAETag=".into());
        cp
    }

    #[test]
    fn platform_to_1c_to_platform_gives_back_the_same_fields() {
        let mapper = CustomerDataMapper::new(MappingConfig::from_toml_str(WITH_EXTRAS).unwrap());
        let default = CustomerDataMapper::default();
        let gold = |c: Customer| Customer {
            role: Some("gold".into()),
            status: Some("off".into()),
            ..c
        };
        let cases = [
            (&default, individual(), ExtraAttributes::new()),
            (&default, legal_entity(), ExtraAttributes::new()),
            (
                &mapper,
                gold(individual()),
                [("city".to_owned(), "Казань".to_owned())].into(),
            ),
            (
                &mapper,
                gold(legal_entity()),
                [("city".to_owned(), "Омск".to_owned())].into(),
            ),
        ];
        for (mapper, customer, extra) in cases {
            // Given
            let cp = as_read_from_1c(mapper.map_platform_to_1c(&customer, &extra).unwrap());
            // When
            let back = mapper.map_1c_to_platform(&cp).unwrap();
            // Then
            let normalised_phone = customer
                .phone
                .as_deref()
                .map(|p| Phone::parse(p).unwrap().to_string());
            assert_eq!(back.platform_id.as_deref(), Some(customer.id.as_str()));
            assert_eq!(back.onec_id, GUID);
            assert_eq!(back.onec_version.as_deref(), Some("AAAAAAAETag="));
            assert_eq!(back.email, customer.email);
            assert_eq!(back.phone, normalised_phone);
            assert_eq!(back.first_name, customer.first_name);
            assert_eq!(back.last_name, customer.last_name);
            assert_eq!(back.company_name, customer.company_name);
            assert_eq!(back.tax_id, customer.tax_id);
            assert_eq!(back.kpp, customer.kpp);
            assert_eq!(back.role, customer.role);
            assert_eq!(back.status, customer.status);
            assert_eq!(back.extra, extra);
            assert!(back.created_in_1c);
            assert_eq!(back.sync_status, SyncStatus::Synced);
            assert_eq!(back.value_of(fields::EMAIL), customer.email.as_deref());
            assert_eq!(back.value_of(fields::TAX_ID), customer.tax_id.as_deref());
            assert_eq!(back.value_of(fields::ROLE), customer.role.as_deref());
        }
    }

    fn onec_counterparty() -> Counterparty {
        Counterparty {
            platform_id: String::new(),
            onec_id: Some(GUID.into()),
            data_version: Some("AAAAAQAAAAA=".into()),
            kind: CounterpartyKind::Individual,
            name: "Сидоров Семён".into(),
            full_name: "Сидоров Семён".into(),
            first_name: None,
            last_name: None,
            contact_person: None,
            inn: None,
            kpp: None,
            email: Some("SEMEN@Example.RU".into()),
            phone: Some("8 912 000-00-00".into()),
            role: Some("VIP".into()),
            status: Some("Активен".into()),
            deletion_mark: false,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn a_counterparty_created_in_1c_maps_to_a_new_platform_customer() {
        // When
        let update = CustomerDataMapper::default()
            .map_1c_to_platform(&onec_counterparty())
            .unwrap();
        // Then
        assert_eq!(update.platform_id, None);
        assert_eq!(update.last_name.as_deref(), Some("Сидоров"));
        assert_eq!(update.first_name.as_deref(), Some("Семён"));
        assert_eq!(update.email.as_deref(), Some("SEMEN@example.ru"));
        assert_eq!(update.phone.as_deref(), Some("+79120000000"));
        assert_eq!(update.role.as_deref(), Some("vip"));
        assert_eq!(update.status.as_deref(), Some("active"));
        assert_eq!(update.onec_version.as_deref(), Some("AAAAAQAAAAA="));
        assert!(update.created_in_1c);
    }

    #[test]
    fn a_legal_entity_from_1c_prefers_the_full_name_and_splits_the_contact_person() {
        let cp = Counterparty {
            kind: CounterpartyKind::LegalEntity,
            name: "Ромашка ООО".into(),
            full_name: "ООО \"Ромашка\"".into(),
            contact_person: Some("Анна Мария Кузнецова".into()),
            inn: Some("7707083893".into()),
            kpp: Some("770701001".into()),
            ..onec_counterparty()
        };
        let update = CustomerDataMapper::default()
            .map_1c_to_platform(&cp)
            .unwrap();
        assert_eq!(update.company_name.as_deref(), Some("ООО \"Ромашка\""));
        assert_eq!(update.first_name.as_deref(), Some("Анна"));
        assert_eq!(update.last_name.as_deref(), Some("Мария Кузнецова"));
        assert_eq!(update.tax_id.as_deref(), Some("7707083893"));
    }

    #[test]
    fn a_blank_1c_role_or_status_means_no_value_but_an_unknown_one_is_an_import_error() {
        let blank = Counterparty {
            role: Some("  ".into()),
            status: None,
            ..onec_counterparty()
        };
        let update = CustomerDataMapper::default()
            .map_1c_to_platform(&blank)
            .unwrap();
        assert_eq!((update.role, update.status), (None, None));

        let unknown = Counterparty {
            role: Some("Золотой".into()),
            status: Some("Удалён".into()),
            ..onec_counterparty()
        };
        let err = CustomerDataMapper::default()
            .map_1c_to_platform(&unknown)
            .unwrap_err();
        assert_eq!(err.fields(), ["role", "status"]);
        assert!(err.to_string().contains("`Золотой`"));
    }

    #[test]
    fn unusable_1c_data_is_reported_field_by_field() {
        // Given
        let cp = Counterparty {
            onec_id: Some("00000000-0000-0000-0000-000000000000".into()),
            phone: Some("доб. 123".into()),
            email: Some("semen-at-example.ru".into()),
            inn: Some("7707083893".into()),
            kpp: Some("770701001".into()),
            ..onec_counterparty()
        };
        // When
        let err = CustomerDataMapper::default()
            .map_1c_to_platform(&cp)
            .unwrap_err();
        // Then
        assert_eq!(err.fields(), ["onec_id", "email", "phone", "tax_id", "kpp"]);
        assert!(!err.to_string().contains("semen"));
    }

    #[test]
    fn import_extras_are_read_from_1c_and_export_only_ones_are_not() {
        let mapper = CustomerDataMapper::new(MappingConfig::from_toml_str(WITH_EXTRAS).unwrap());
        let cp = Counterparty {
            role: Some("Золотой".into()),
            status: Some("Вкл".into()),
            extra: [
                ("Город", "Казань"),
                ("Менеджер", "Сидоров"),
                ("Источник", "x"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            ..onec_counterparty()
        };
        let update = mapper.map_1c_to_platform(&cp).unwrap();
        assert_eq!(update.value_of("city"), Some("Казань"));
        assert_eq!(update.value_of("manager_name"), Some("Сидоров"));
        assert_eq!(update.value_of("utm_source"), None);
        assert_eq!(update.role.as_deref(), Some("gold"));
    }
}
