//! The per-deployment mapping file: where things live in 1C, the role and status tables, extra
//! attributes, and which side owns which field.
//!
//! The built-in default is `docs/mapping.example.toml`, embedded at compile time, so the file
//! deployments copy and the default the code runs with cannot drift apart. (Including a file from
//! outside the crate directory would break `cargo package`; this crate is `publish = false`.)

use crate::domain::BOOKKEEPING_ATTRIBUTES;
use crate::error::{Classify, ErrorClass};
use crate::onec::OneCSchema;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in mapping file (see the module docs).
pub const DEFAULT_MAPPING_TOML: &str = include_str!("../../../docs/mapping.example.toml");

/// Platform attribute names of the fields the mapper exports and imports.
pub mod fields {
    pub const EMAIL: &str = "email";
    pub const PHONE: &str = "phone";
    pub const FIRST_NAME: &str = "first_name";
    pub const LAST_NAME: &str = "last_name";
    pub const COMPANY_NAME: &str = "company_name";
    pub const TAX_ID: &str = "tax_id";
    pub const KPP: &str = "kpp";
    pub const ROLE: &str = "role";
    pub const STATUS: &str = "status";
}

/// Every platform field the mapper carries to 1C and back (extras come on top).
pub const MAPPED_FIELDS: &[&str] = &[
    fields::EMAIL,
    fields::PHONE,
    fields::FIRST_NAME,
    fields::LAST_NAME,
    fields::COMPANY_NAME,
    fields::TAX_ID,
    fields::KPP,
    fields::ROLE,
    fields::STATUS,
];

/// Platform attributes an extra field may not claim: the record's own fields and onec-sync's
/// bookkeeping (see [`BOOKKEEPING_ATTRIBUTES`]).
const RESERVED_PLATFORM_ATTRIBUTES: &[&str] = &["id", "created_in_1c", "version", "updated_at"];

/// 1C attributes the transports always write themselves; an extra field may not claim them.
const RESERVED_ONEC_ATTRIBUTES: &[&str] = &[
    "Ref_Key",
    "DataVersion",
    "DeletionMark",
    "Predefined",
    "PredefinedDataName",
    "Code",
    "Description",
    "Parent_Key",
    "IsFolder",
    "НаименованиеПолное",
    "ЮридическоеФизическоеЛицо",
    "ИНН",
    "КПП",
    "КонтактнаяИнформация",
];

/// Why a mapping file could not be used. Always permanent: the deployment must fix the file.
#[derive(Debug, thiserror::Error)]
pub enum MappingConfigError {
    #[error("cannot read mapping file {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a wrong type, a missing section or an unknown key (the source says which).
    #[error("mapping file{} does not match the mapping schema", path_suffix(.path))]
    Parse {
        path: Option<PathBuf>,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Well-formed but inconsistent; every problem found is listed.
    #[error("mapping file{} is invalid: {}", path_suffix(.path), .problems.join("; "))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<String>,
    },
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl MappingConfigError {
    /// The individual problems of an [`MappingConfigError::Invalid`] file (empty otherwise).
    pub fn problems(&self) -> &[String] {
        match self {
            MappingConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

impl Classify for MappingConfigError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// What to do with a value the table does not know, or with no value at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuePolicy {
    /// Refuse to export the customer (the export reports a permanent error).
    Reject,
    /// Export as if the platform value were this one (a key of the table).
    Default(String),
}

impl ValuePolicy {
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "reject" => Ok(ValuePolicy::Reject),
            other => match other.strip_prefix("default:") {
                Some(v) if !v.trim().is_empty() => Ok(ValuePolicy::Default(v.trim().to_owned())),
                _ => Err(format!(
                    "`{other}` is not a value policy (\"reject\" or \"default:<platform value>\")"
                )),
            },
        }
    }
}

impl fmt::Display for ValuePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValuePolicy::Reject => f.write_str("reject"),
            ValuePolicy::Default(v) => write!(f, "default:{v}"),
        }
    }
}

/// Why a platform value could not be translated for 1C.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueTableError {
    #[error("is missing")]
    Missing,
    /// Enumerated values are not personal data, so naming them helps the operator.
    #[error("`{0}` is not in the mapping table")]
    Unknown(String),
}

/// A one-to-one table platform value ↔ 1C value (roles, client statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueTable {
    to_onec: BTreeMap<String, String>,
    to_platform: BTreeMap<String, String>,
    unknown: ValuePolicy,
    missing: ValuePolicy,
}

impl ValueTable {
    /// The 1C value for a platform value, applying the `unknown` and `missing` policies.
    /// `None` or a blank value counts as missing.
    pub fn platform_to_onec(&self, platform: Option<&str>) -> Result<&str, ValueTableError> {
        let value = platform.map(str::trim).filter(|v| !v.is_empty());
        let key = match value {
            None => match &self.missing {
                ValuePolicy::Reject => return Err(ValueTableError::Missing),
                ValuePolicy::Default(d) => d.as_str(),
            },
            Some(v) if self.to_onec.contains_key(v) => v,
            Some(v) => match &self.unknown {
                ValuePolicy::Reject => return Err(ValueTableError::Unknown(v.to_owned())),
                ValuePolicy::Default(d) => d.as_str(),
            },
        };
        // Policies are checked against the table at load, so the lookup cannot miss.
        self.to_onec
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ValueTableError::Unknown(key.to_owned()))
    }

    /// The platform value for a 1C value. No policy applies: an unknown 1C value is an error
    /// for the import, which must not invent platform roles or statuses.
    pub fn onec_to_platform(&self, onec: &str) -> Option<&str> {
        self.to_platform.get(onec.trim()).map(String::as_str)
    }

    /// Platform value → 1C value.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.to_onec
    }

    pub fn unknown_policy(&self) -> &ValuePolicy {
        &self.unknown
    }

    pub fn missing_policy(&self) -> &ValuePolicy {
        &self.missing
    }
}

/// Which way an extra attribute travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Export,
    Import,
    Both,
}

impl Direction {
    pub fn exports(self) -> bool {
        matches!(self, Direction::Export | Direction::Both)
    }

    pub fn imports(self) -> bool {
        matches!(self, Direction::Import | Direction::Both)
    }
}

/// A platform attribute copied to or from a 1C attribute as a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraField {
    /// Attribute name on the platform's `users` row.
    pub platform: String,
    /// Attribute name in the 1C catalogue.
    pub onec: String,
    pub direction: Direction,
}

/// Which side's value wins when both changed a field (used by the 1C import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOwner {
    OneC,
    Platform,
}

/// Field ownership from the `[ownership]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOwnership {
    onec: BTreeSet<String>,
    platform: BTreeSet<String>,
}

impl FieldOwnership {
    /// Platform fields whose value 1C decides (by default role and status).
    pub fn onec_owned(&self) -> impl Iterator<Item = &str> {
        self.onec.iter().map(String::as_str)
    }

    /// Platform fields whose value the platform decides (by default contact and tax data).
    pub fn platform_owned(&self) -> impl Iterator<Item = &str> {
        self.platform.iter().map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValueTable {
    unknown: String,
    missing: String,
    values: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwnership {
    onec: Vec<String>,
    platform: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMappingConfig {
    #[serde(default)]
    onec: OneCSchema,
    roles: RawValueTable,
    statuses: RawValueTable,
    #[serde(default)]
    extra_fields: Vec<ExtraField>,
    ownership: RawOwnership,
}

/// The validated mapping file. Built only through [`MappingConfig::from_toml_str`],
/// [`MappingConfig::from_file`] or [`Default`], so every instance passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingConfig {
    onec: OneCSchema,
    time_zone: Tz,
    roles: ValueTable,
    statuses: ValueTable,
    extra_fields: Vec<ExtraField>,
    ownership: FieldOwnership,
}

impl Default for MappingConfig {
    /// The embedded `docs/mapping.example.toml`.
    fn default() -> Self {
        // The embedded file is a compile-time constant that a unit test loads; a failure here
        // is a build defect, not bad input.
        #[allow(clippy::expect_used)]
        Self::from_toml_str(DEFAULT_MAPPING_TOML).expect("built-in mapping file is valid")
    }
}

/// A 1C metadata name: letters (any script), digits and `_`, not starting with a digit.
fn is_onec_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// A DynamoDB attribute name we accept in the mapping file: printable, no spaces.
fn is_platform_attribute(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn build_table(name: &str, raw: RawValueTable, problems: &mut Vec<String>) -> ValueTable {
    let mut to_onec = BTreeMap::new();
    let mut to_platform: BTreeMap<String, String> = BTreeMap::new();
    if raw.values.is_empty() {
        problems.push(format!("{name}.values is empty"));
    }
    for (platform, onec) in raw.values {
        let (platform, onec) = (platform.trim().to_owned(), onec.trim().to_owned());
        if platform.is_empty() || onec.is_empty() {
            problems.push(format!("{name}.values has a blank key or value"));
            continue;
        }
        if onec.chars().any(char::is_control) {
            problems.push(format!("{name}.values.{platform} has control characters"));
            continue;
        }
        if let Some(other) = to_platform.get(&onec) {
            problems.push(format!(
                "{name}.values is not one-to-one: `{other}` and `{platform}` both map to `{onec}`"
            ));
            continue;
        }
        to_platform.insert(onec.clone(), platform.clone());
        to_onec.insert(platform, onec);
    }
    let mut policy = |key: &str, raw: &str| match ValuePolicy::parse(raw) {
        Ok(ValuePolicy::Default(d)) if !to_onec.contains_key(&d) => {
            problems.push(format!(
                "{name}.{key} = \"default:{d}\" names a value missing from {name}.values"
            ));
            ValuePolicy::Reject
        }
        Ok(p) => p,
        Err(e) => {
            problems.push(format!("{name}.{key}: {e}"));
            ValuePolicy::Reject
        }
    };
    let unknown = policy("unknown", &raw.unknown);
    let missing = policy("missing", &raw.missing);
    ValueTable {
        to_onec,
        to_platform,
        unknown,
        missing,
    }
}

fn check_schema(onec: &OneCSchema, problems: &mut Vec<String>) -> Tz {
    let named = [
        ("catalog", Some(&onec.catalog)),
        ("platform_id_attribute", Some(&onec.platform_id_attribute)),
        ("role_attribute", Some(&onec.role_attribute)),
        ("status_attribute", Some(&onec.status_attribute)),
        (
            "contact_person_attribute",
            Some(&onec.contact_person_attribute),
        ),
        ("modified_at_attribute", onec.modified_at_attribute.as_ref()),
    ];
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in named {
        let Some(value) = value else { continue };
        if !is_onec_identifier(value) {
            problems.push(format!("onec.{key} is not a 1C name"));
        }
        if key == "catalog" {
            continue;
        }
        if let Some(other) = seen.insert(value, key) {
            problems.push(format!(
                "onec.{key} and onec.{other} name the same attribute"
            ));
        }
        if RESERVED_ONEC_ATTRIBUTES.contains(&value.as_str()) {
            problems.push(format!("onec.{key} names a standard attribute"));
        }
    }
    onec.time_zone.parse::<Tz>().unwrap_or_else(|_| {
        problems.push("onec.time_zone is not an IANA time zone name".to_owned());
        Tz::UTC
    })
}

fn check_extras(extras: &[ExtraField], onec: &OneCSchema, problems: &mut Vec<String>) {
    let schema_attrs: Vec<&str> = [
        Some(onec.platform_id_attribute.as_str()),
        Some(onec.role_attribute.as_str()),
        Some(onec.status_attribute.as_str()),
        Some(onec.contact_person_attribute.as_str()),
        onec.modified_at_attribute.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut platform_seen = BTreeSet::new();
    let mut onec_seen = BTreeSet::new();
    for (i, extra) in extras.iter().enumerate() {
        let at = format!("extra_fields[{i}]");
        if !is_platform_attribute(&extra.platform) {
            problems.push(format!("{at}.platform is not an attribute name"));
        } else if MAPPED_FIELDS.contains(&extra.platform.as_str())
            || RESERVED_PLATFORM_ATTRIBUTES.contains(&extra.platform.as_str())
            || BOOKKEEPING_ATTRIBUTES.contains(&extra.platform.as_str())
        {
            problems.push(format!(
                "{at}.platform `{}` is a field the mapper or onec-sync already owns",
                extra.platform
            ));
        }
        if !is_onec_identifier(&extra.onec) {
            problems.push(format!("{at}.onec is not a 1C name"));
        } else if RESERVED_ONEC_ATTRIBUTES.contains(&extra.onec.as_str())
            || schema_attrs.contains(&extra.onec.as_str())
        {
            problems.push(format!(
                "{at}.onec `{}` is an attribute the transports already write",
                extra.onec
            ));
        }
        if !platform_seen.insert(extra.platform.as_str()) {
            problems.push(format!(
                "{at}.platform `{}` is mapped twice",
                extra.platform
            ));
        }
        if !onec_seen.insert(extra.onec.as_str()) {
            problems.push(format!("{at}.onec `{}` is mapped twice", extra.onec));
        }
    }
}

fn build_ownership(
    raw: RawOwnership,
    extras: &[ExtraField],
    problems: &mut Vec<String>,
) -> FieldOwnership {
    let known = |f: &str| MAPPED_FIELDS.contains(&f) || extras.iter().any(|e| e.platform == f);
    let mut collect = |side: &str, list: Vec<String>| {
        let mut set = BTreeSet::new();
        for field in list {
            if !known(&field) {
                problems.push(format!(
                    "ownership.{side} lists `{field}`, which is neither a mapped field nor an extra field"
                ));
            } else if !set.insert(field.clone()) {
                problems.push(format!("ownership.{side} lists `{field}` twice"));
            }
        }
        set
    };
    let onec = collect("onec", raw.onec);
    let platform = collect("platform", raw.platform);
    for field in onec.intersection(&platform) {
        problems.push(format!("ownership lists `{field}` for both sides"));
    }
    for field in MAPPED_FIELDS {
        if !onec.contains(*field) && !platform.contains(*field) {
            problems.push(format!("ownership does not say who owns `{field}`"));
        }
    }
    FieldOwnership { onec, platform }
}

impl MappingConfig {
    pub fn from_toml_str(toml_text: &str) -> Result<Self, MappingConfigError> {
        Self::parse(toml_text, None)
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, MappingConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MappingConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, Some(path))
    }

    fn parse(toml_text: &str, path: Option<&Path>) -> Result<Self, MappingConfigError> {
        let raw: RawMappingConfig =
            toml::from_str(toml_text).map_err(|source| MappingConfigError::Parse {
                path: path.map(Path::to_owned),
                source: Box::new(source),
            })?;
        let mut problems = Vec::new();
        let time_zone = check_schema(&raw.onec, &mut problems);
        let roles = build_table("roles", raw.roles, &mut problems);
        let statuses = build_table("statuses", raw.statuses, &mut problems);
        let extra_fields: Vec<ExtraField> = raw
            .extra_fields
            .into_iter()
            .map(|e| ExtraField {
                platform: e.platform.trim().to_owned(),
                onec: e.onec.trim().to_owned(),
                direction: e.direction,
            })
            .collect();
        check_extras(&extra_fields, &raw.onec, &mut problems);
        let ownership = build_ownership(raw.ownership, &extra_fields, &mut problems);
        if !problems.is_empty() {
            return Err(MappingConfigError::Invalid {
                path: path.map(Path::to_owned),
                problems,
            });
        }
        Ok(Self {
            onec: raw.onec,
            time_zone,
            roles,
            statuses,
            extra_fields,
            ownership,
        })
    }

    /// The `[onec]` section: where things live in this 1C deployment.
    pub fn onec(&self) -> &OneCSchema {
        &self.onec
    }

    /// `onec.time_zone`, parsed.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// Platform role → 1C role.
    pub fn roles(&self) -> &ValueTable {
        &self.roles
    }

    /// Platform status → 1C client status.
    pub fn statuses(&self) -> &ValueTable {
        &self.statuses
    }

    pub fn extra_fields(&self) -> &[ExtraField] {
        &self.extra_fields
    }

    pub fn ownership(&self) -> &FieldOwnership {
        &self.ownership
    }

    /// Who owns a platform field on import. An extra field not listed in `[ownership]` belongs
    /// to the side it comes from: import-only extras to 1C, the others to the platform.
    /// `None` for a field the mapping does not carry.
    pub fn owner_of(&self, field: &str) -> Option<FieldOwner> {
        if self.ownership.onec.contains(field) {
            return Some(FieldOwner::OneC);
        }
        if self.ownership.platform.contains(field) {
            return Some(FieldOwner::Platform);
        }
        let extra = self.extra_fields.iter().find(|e| e.platform == field)?;
        Some(match extra.direction {
            Direction::Import => FieldOwner::OneC,
            Direction::Export | Direction::Both => FieldOwner::Platform,
        })
    }

    /// The platform attributes whose change makes a customer worth exporting: every field the
    /// mapper sends to 1C, including export/both extras. The stream filter uses exactly this.
    pub fn significant_fields(&self) -> BTreeSet<&str> {
        MAPPED_FIELDS
            .iter()
            .copied()
            .chain(
                self.extra_fields
                    .iter()
                    .filter(|e| e.direction.exports())
                    .map(|e| e.platform.as_str()),
            )
            .collect()
    }

    /// Extra fields sent to 1C.
    pub fn export_extras(&self) -> impl Iterator<Item = &ExtraField> {
        self.extra_fields.iter().filter(|e| e.direction.exports())
    }

    /// Extra fields read from 1C.
    pub fn import_extras(&self) -> impl Iterator<Item = &ExtraField> {
        self.extra_fields.iter().filter(|e| e.direction.imports())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUSTOM: &str = r#"
[onec]
catalog = "Партнеры"
platform_id_attribute = "ИдСайта"
role_attribute = "ТипКлиента"
status_attribute = "Состояние"
contact_person_attribute = "Контакт"
time_zone = "Asia/Yekaterinburg"

[roles]
unknown = "default:basic"
missing = "reject"
[roles.values]
basic = "Базовый"
gold = "Золотой"

[statuses]
unknown = "reject"
missing = "reject"
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
onec = "ИсточникПривлечения"
direction = "export"

[ownership]
onec = ["role", "status", "phone"]
platform = ["email", "first_name", "last_name", "company_name", "tax_id", "kpp", "city"]
"#;

    fn invalid_problems(toml_text: &str) -> Vec<String> {
        match MappingConfig::from_toml_str(toml_text) {
            Err(MappingConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
    }

    #[test]
    fn the_built_in_mapping_file_loads_with_the_documented_defaults() {
        // When
        let config = MappingConfig::default();
        // Then
        assert_eq!(config.onec(), &OneCSchema::default());
        assert_eq!(config.time_zone(), chrono_tz::Europe::Moscow);
        assert_eq!(config.roles().platform_to_onec(Some("vip")), Ok("VIP"));
        assert_eq!(config.roles().platform_to_onec(None), Ok("Розница"));
        assert_eq!(config.statuses().platform_to_onec(None), Ok("Активен"));
        assert!(config.extra_fields().is_empty());
        assert_eq!(config.owner_of("role"), Some(FieldOwner::OneC));
        assert_eq!(config.owner_of("email"), Some(FieldOwner::Platform));
    }

    #[test]
    fn the_commented_extra_fields_example_in_the_docs_is_valid_when_uncommented() {
        // Given: the example blocks, with their leading "# " removed
        let uncommented: String = DEFAULT_MAPPING_TOML
            .lines()
            .map(|line| {
                let bare = line.strip_prefix("# ").unwrap_or(line);
                let is_example = bare == "[[extra_fields]]"
                    || ["platform = ", "onec = ", "direction = "]
                        .iter()
                        .any(|k| bare.starts_with(k));
                if is_example {
                    bare
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        // When
        let config = MappingConfig::from_toml_str(&uncommented).unwrap();
        // Then
        let extras: Vec<(&str, &str, Direction)> = config
            .extra_fields()
            .iter()
            .map(|e| (e.platform.as_str(), e.onec.as_str(), e.direction))
            .collect();
        assert_eq!(
            extras,
            [
                ("city", "Город", Direction::Both),
                ("manager_name", "ОсновнойМенеджер", Direction::Import),
            ]
        );
    }

    #[test]
    fn the_role_table_translates_both_ways_and_an_unknown_role_is_rejected() {
        // Given
        let roles = MappingConfig::default().roles().clone();
        let pairs = [
            ("retail", "Розница"),
            ("wholesale", "Опт"),
            ("vip", "VIP"),
            ("partner", "Партнёр"),
        ];
        for (platform, onec) in pairs {
            // When / Then
            assert_eq!(roles.platform_to_onec(Some(platform)), Ok(onec));
            assert_eq!(roles.onec_to_platform(onec), Some(platform));
        }
        assert_eq!(
            roles.platform_to_onec(Some("gold")),
            Err(ValueTableError::Unknown("gold".into()))
        );
        assert_eq!(roles.onec_to_platform("Золотой"), None);
        assert_eq!(roles.onec_to_platform("розница"), None);
    }

    #[test]
    fn a_custom_mapping_file_renames_attributes_and_adds_extra_fields_and_roles() {
        // When
        let config = MappingConfig::from_toml_str(CUSTOM).unwrap();
        // Then
        assert_eq!(config.onec().catalog, "Партнеры");
        assert_eq!(config.onec().platform_id_attribute, "ИдСайта");
        assert_eq!(
            config.onec().modified_at_attribute.as_deref(),
            Some("ДатаИзменения")
        );
        assert_eq!(config.time_zone(), chrono_tz::Asia::Yekaterinburg);
        assert_eq!(config.roles().platform_to_onec(Some("gold")), Ok("Золотой"));
        assert_eq!(config.roles().platform_to_onec(Some("vip")), Ok("Базовый"));
        assert_eq!(
            config.roles().platform_to_onec(None),
            Err(ValueTableError::Missing)
        );
        assert_eq!(config.statuses().onec_to_platform("Выкл"), Some("off"));
        assert_eq!(config.owner_of("phone"), Some(FieldOwner::OneC));
        assert_eq!(config.owner_of("city"), Some(FieldOwner::Platform));
        assert_eq!(config.owner_of("manager_name"), Some(FieldOwner::OneC));
        assert_eq!(config.owner_of("utm_source"), Some(FieldOwner::Platform));
        assert_eq!(config.owner_of("needs_1c_export"), None);
    }

    #[test]
    fn significant_fields_are_the_exported_fields_plus_export_and_both_extras() {
        // Given
        let default = MappingConfig::default();
        let custom = MappingConfig::from_toml_str(CUSTOM).unwrap();
        // When
        let default_fields = default.significant_fields();
        let custom_fields = custom.significant_fields();
        // Then
        let expected: BTreeSet<&str> = MAPPED_FIELDS.iter().copied().collect();
        assert_eq!(default_fields, expected);
        let mut expected_custom = expected.clone();
        expected_custom.extend(["city", "utm_source"]);
        assert_eq!(custom_fields, expected_custom);
        assert!(!custom_fields.contains("manager_name"));
        for bookkeeping in BOOKKEEPING_ATTRIBUTES {
            assert!(!custom_fields.contains(bookkeeping));
        }
    }

    #[test]
    fn an_unknown_key_is_a_parse_error_that_names_it() {
        // Given
        let text = DEFAULT_MAPPING_TOML.replace("[roles]", "[roles]\nfallback = \"x\"");
        // When
        let err = MappingConfig::from_toml_str(&text).unwrap_err();
        // Then
        let MappingConfigError::Parse { source, .. } = &err else {
            panic!("expected a parse error, got {err:?}");
        };
        assert!(source.to_string().contains("fallback"), "{source}");
        assert_eq!(err.class(), ErrorClass::Permanent);
    }

    #[test]
    fn an_unknown_key_in_the_onec_section_is_rejected_too() {
        let text = DEFAULT_MAPPING_TOML.replace("[onec]", "[onec]\ncatalogue = \"X\"");
        assert!(matches!(
            MappingConfig::from_toml_str(&text),
            Err(MappingConfigError::Parse { .. })
        ));
    }

    #[test]
    fn a_role_table_that_is_not_one_to_one_is_rejected() {
        // Given
        let text = DEFAULT_MAPPING_TOML.replace("vip = \"VIP\"", "vip = \"Опт\"");
        // When
        let problems = invalid_problems(&text);
        // Then
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("not one-to-one"), "{problems:?}");
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_once() {
        // Given
        let text = r#"
[onec]
time_zone = "Mars/Olympus"
role_attribute = "СтатусКлиента"

[roles]
unknown = "maybe"
missing = "default:nobody"
[roles.values]
retail = "Розница"

[statuses]
unknown = "reject"
missing = "reject"
[statuses.values]
active = "Активен"
blocked = "Активен"

[[extra_fields]]
platform = "email"
onec = "ИНН"
direction = "both"

[ownership]
onec = ["role", "status", "shoe_size"]
platform = ["email", "phone", "first_name", "last_name", "company_name", "tax_id", "role"]
"#;
        // When
        let problems = invalid_problems(text);
        // Then
        let expected_fragments = [
            "onec.time_zone",
            "onec.status_attribute and onec.role_attribute",
            "roles.unknown",
            "roles.missing",
            "statuses.values is not one-to-one",
            "extra_fields[0].platform",
            "extra_fields[0].onec",
            "shoe_size",
            "`role` for both sides",
            "who owns `kpp`",
        ];
        for fragment in expected_fragments {
            assert!(
                problems.iter().any(|p| p.contains(fragment)),
                "no problem mentions {fragment:?}: {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected_fragments.len(), "{problems:#?}");
    }

    #[test]
    fn a_missing_section_is_a_parse_error() {
        let text = "[onec]\ncatalog = \"Контрагенты\"\n";
        assert!(matches!(
            MappingConfig::from_toml_str(text),
            Err(MappingConfigError::Parse { .. })
        ));
    }

    #[test]
    fn loading_from_a_file_reads_it_and_names_it_in_errors() {
        // Given
        let dir = std::env::temp_dir().join(format!("mapping-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        let bad = dir.join("bad.toml");
        std::fs::write(&good, CUSTOM).unwrap();
        std::fs::write(&bad, "roles = 1").unwrap();
        // When
        let loaded = MappingConfig::from_file(&good);
        let broken = MappingConfig::from_file(&bad);
        let missing = MappingConfig::from_file(dir.join("absent.toml"));
        // Then
        assert_eq!(
            loaded.unwrap(),
            MappingConfig::from_toml_str(CUSTOM).unwrap()
        );
        assert!(broken.unwrap_err().to_string().contains("bad.toml"));
        assert!(matches!(missing, Err(MappingConfigError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
