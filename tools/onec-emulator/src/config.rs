use crate::faults::FaultPlan;
use std::net::{Ipv4Addr, SocketAddr};

/// How the emulated infobase is published and what its catalogue looks like.
///
/// Attribute names are plain strings with the defaults of `shared::onec::OneCSchema`; the
/// emulator deliberately does not depend on `shared`, so a client bug cannot hide behind a
/// shared type.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Infobase user; Cyrillic by default because 1C logins often are.
    pub username: String,
    pub password: String,
    /// Root URL of the HTTP services (`/hs/<hs_root>/…`).
    pub hs_root: String,
    /// Publication path of the infobase (`http://host<base_path>/…`).
    pub base_path: String,
    pub catalog: String,
    pub platform_id_attribute: String,
    pub role_attribute: String,
    pub status_attribute: String,
    pub contact_person_attribute: String,
    pub modified_at_attribute: String,
    /// Offset of the emulated server's wall clock: 1C dates carry no zone.
    pub utc_offset_hours: i32,
    /// Where to listen; only loopback addresses are accepted.
    pub bind: SocketAddr,
    /// Request bodies above this many bytes are answered `413`.
    pub body_limit_bytes: usize,
    pub faults: FaultPlan,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            username: "Обмен".into(),
            password: "пароль-1С".into(),
            hs_root: "site".into(),
            base_path: "/base".into(),
            catalog: "Контрагенты".into(),
            platform_id_attribute: "ИдентификаторНаСайте".into(),
            role_attribute: "РольНаСайте".into(),
            status_attribute: "СтатусКлиента".into(),
            contact_person_attribute: "КонтактноеЛицо".into(),
            modified_at_attribute: "ДатаИзменения".into(),
            utc_offset_hours: 3,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            body_limit_bytes: 1024 * 1024,
            faults: FaultPlan::default(),
        }
    }
}

impl EmulatorConfig {
    /// `base_path` with one leading slash and no trailing one (`""` for the root).
    pub(crate) fn normalized_base_path(&self) -> String {
        let trimmed = self.base_path.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        }
    }
}
