//! The 1C emulator in-process on 127.0.0.1:0, and clients of each transport pointed at it.

use onec_emulator::{spawn, EmulatorConfig, EmulatorHandle, ScriptedAnswer};
use shared::onec::{
    build_client, Counterparty, CounterpartyKind, Credentials, OneCClient, OneCConfig, Transport,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// All three transports, for table-driven tests.
pub const TRANSPORTS: [Transport; 3] = [Transport::Json, Transport::OData, Transport::CommerceMl];

/// A running emulator; stopped when dropped (or explicitly with [`Emulator::stop`]).
pub struct Emulator {
    pub handle: EmulatorHandle,
}

impl Emulator {
    /// Starts an emulator with the default catalogue and credentials on a free loopback port.
    pub async fn start() -> Self {
        let handle = spawn(EmulatorConfig::default())
            .await
            .expect("the 1C emulator starts on 127.0.0.1:0");
        Self { handle }
    }

    /// A config for `transport` with the emulator's URL and credentials, insecure http allowed
    /// for loopback only.
    pub fn config(&self, transport: Transport) -> OneCConfig {
        let emulator = self.handle.config();
        let base_url = url_of(&self.handle.base_url());
        OneCConfig::new(
            base_url,
            transport,
            Credentials::new(emulator.username.clone(), emulator.password.clone()),
            true,
        )
        .expect("a loopback emulator URL is a valid 1C config")
    }

    pub fn client(&self, transport: Transport) -> Arc<dyn OneCClient> {
        self.client_with(transport, |_| {})
    }

    /// A client whose config `adjust` changed first (short timeouts, wrong password, …).
    pub fn client_with(
        &self,
        transport: Transport,
        adjust: impl FnOnce(&mut OneCConfig),
    ) -> Arc<dyn OneCClient> {
        let mut config = self.config(transport);
        adjust(&mut config);
        build_client(config).expect("the client builds")
    }

    /// Queues exact answers for the next non-admin requests.
    pub fn script(&self, answers: Vec<ScriptedAnswer>) {
        self.handle.script(answers);
    }

    /// How many counterparties the emulator holds for this platform id.
    pub fn count_for(&self, platform_id: &str) -> usize {
        self.handle.find_by_platform_id(platform_id).len()
    }

    pub async fn stop(self) {
        self.handle
            .stop()
            .await
            .expect("the 1C emulator stops cleanly");
    }
}

fn url_of(text: &str) -> reqwest::Url {
    text.parse().expect("the emulator reports a valid URL")
}

/// An answer with this status, content type and body, and no extra headers.
pub fn respond(status: u16, content_type: &str, body: &str) -> ScriptedAnswer {
    respond_with_headers(status, content_type, body, &[])
}

pub fn respond_with_headers(
    status: u16,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> ScriptedAnswer {
    ScriptedAnswer::Respond {
        status,
        content_type: Some(content_type.to_owned()),
        body: body.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A fresh platform id (a UUID: 36 characters, within CommerceML's 40).
pub fn platform_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An individual as the mapper produces one.
pub fn individual(platform_id: &str) -> Counterparty {
    Counterparty {
        platform_id: platform_id.to_owned(),
        onec_id: None,
        data_version: None,
        kind: CounterpartyKind::Individual,
        name: "Иванов Иван".into(),
        full_name: "Иванов Иван Иванович".into(),
        first_name: Some("Иван".into()),
        last_name: Some("Иванов".into()),
        contact_person: None,
        inn: Some("500100732259".into()),
        kpp: None,
        email: Some("ivanov@example.ru".into()),
        phone: Some("+79123456789".into()),
        role: Some("Розница".into()),
        status: Some("Активен".into()),
        deletion_mark: false,
        extra: BTreeMap::new(),
    }
}

/// A legal entity with a contact person.
pub fn legal_entity(platform_id: &str) -> Counterparty {
    Counterparty {
        platform_id: platform_id.to_owned(),
        onec_id: None,
        data_version: None,
        kind: CounterpartyKind::LegalEntity,
        name: "Ромашка".into(),
        full_name: "ООО \"Ромашка\"".into(),
        first_name: None,
        last_name: None,
        contact_person: Some("Петров Пётр".into()),
        inn: Some("7707083893".into()),
        kpp: Some("770701001".into()),
        email: Some("info@romashka.example".into()),
        phone: Some("+74951234567".into()),
        role: Some("Опт".into()),
        status: Some("Активен".into()),
        deletion_mark: false,
        extra: BTreeMap::new(),
    }
}

/// A request timeout short enough for hang tests, long enough for a loaded CI machine.
pub const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// Counts items by their 1C reference, to check a listing covers each exactly once.
pub fn counts_by_onec_id(items: &[Counterparty]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for cp in items {
        *counts
            .entry(cp.onec_id.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}
