use serde::{Deserialize, Serialize};

/// Where things live in a given 1C deployment: the `[onec]` section of the mapping file.
///
/// Defaults describe a typical БП/УТ infobase with three attributes a 1C developer adds to
/// `Справочник.Контрагенты` for the site: the platform id, the site role and the client status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneCSchema {
    /// Catalogue name; OData resource `Catalog_<catalog>`.
    pub catalog: String,
    /// Attribute that stores the platform user id (the idempotency key of every upsert).
    pub platform_id_attribute: String,
    /// Attribute holding the site role (values from the mapping file's role table).
    pub role_attribute: String,
    /// Attribute holding the client status (values from the mapping file's status table).
    pub status_attribute: String,
    /// Attribute holding a legal entity's contact person.
    pub contact_person_attribute: String,
    /// Attribute 1C updates on every write (local time, no offset), used by the OData import to
    /// ask only for changed counterparties. `None`: the import pages through the whole catalogue
    /// and compares `DataVersion`.
    pub modified_at_attribute: Option<String>,
    /// IANA time zone of the 1C server; 1C dates carry no offset.
    pub time_zone: String,
}

impl Default for OneCSchema {
    fn default() -> Self {
        Self {
            catalog: "Контрагенты".into(),
            platform_id_attribute: "ИдентификаторНаСайте".into(),
            role_attribute: "РольНаСайте".into(),
            status_attribute: "СтатусКлиента".into(),
            contact_person_attribute: "КонтактноеЛицо".into(),
            modified_at_attribute: Some("ДатаИзменения".into()),
            time_zone: "Europe/Moscow".into(),
        }
    }
}
