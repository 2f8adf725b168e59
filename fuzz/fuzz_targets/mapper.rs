//! Any platform customer through `CustomerDataMapper::map_platform_to_1c`: no panic; what it
//! accepts survives every transport's request format and our reader unchanged, and maps back
//! for the import.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared::domain::{Customer, SyncStatus};
use shared::mapping::{CustomerDataMapper, ExtraAttributes};
use std::sync::OnceLock;

/// A value from a list of realistic ones (so the fuzzer reaches the accepting paths) or any text.
#[derive(Debug, Arbitrary)]
enum Text {
    Known(u8),
    Any(String),
}

impl Text {
    fn pick(&self, known: &[&str]) -> String {
        match self {
            Text::Known(i) => known[usize::from(*i) % known.len()].to_owned(),
            Text::Any(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    id: Text,
    email: Option<Text>,
    phone: Option<Text>,
    first_name: Option<Text>,
    last_name: Option<Text>,
    company_name: Option<Text>,
    tax_id: Option<Text>,
    kpp: Option<Text>,
    role: Option<Text>,
    status: Option<Text>,
    onec_id: Option<Text>,
    created_in_1c: bool,
    version: u64,
    extra: Vec<(String, String)>,
}

const IDS: &[&str] = &["u-1", "3f2b1c9e-8a7d-4e6f-9b0a-1c2d3e4f5a6b", " u-2 ", ""];
const EMAILS: &[&str] = &[
    "ivan.petrov@example.ru",
    "иван@пример.рф",
    "a+b@x.co",
    "a@b",
];
const PHONES: &[&str] = &[
    "+79123456789",
    "8 (912) 345-67-89",
    "+7 701 123 45 67",
    "+4930123456",
];
const NAMES: &[&str] = &[
    "Иван",
    "Zoë 👩‍💻",
    "</Наименование>&amp;",
    "]]>\"'",
    "O'Brien",
];
const COMPANIES: &[&str] = &["ООО \"Ромашка\"", "ИП Петров", "  "];
const INNS: &[&str] = &["7707083893", "500100732259", "7707083894", "12345"];
const KPPS: &[&str] = &["770701001", "77070100A", "1234"];
const ROLES: &[&str] = &["retail", "wholesale", "partner", "vip"];
const STATUSES: &[&str] = &["active", "blocked", "inactive"];
const REFS: &[&str] = &[
    "9a1b6f0e-0000-4000-8000-000000000001",
    "00000000-0000-0000-0000-000000000000",
];

fn mapper() -> &'static CustomerDataMapper {
    static MAPPER: OnceLock<CustomerDataMapper> = OnceLock::new();
    MAPPER.get_or_init(CustomerDataMapper::default)
}

fn customer(input: &Input) -> Customer {
    let opt = |t: &Option<Text>, known: &[&str]| t.as_ref().map(|t| t.pick(known));
    Customer {
        id: input.id.pick(IDS),
        email: opt(&input.email, EMAILS),
        phone: opt(&input.phone, PHONES),
        first_name: opt(&input.first_name, NAMES),
        last_name: opt(&input.last_name, NAMES),
        company_name: opt(&input.company_name, COMPANIES),
        tax_id: opt(&input.tax_id, INNS),
        kpp: opt(&input.kpp, KPPS),
        role: opt(&input.role, ROLES),
        status: opt(&input.status, STATUSES),
        onec_id: opt(&input.onec_id, REFS),
        created_in_1c: input.created_in_1c,
        needs_1c_export: true,
        sync_status: Some(SyncStatus::Pending),
        version: input.version,
        ..Customer::default()
    }
}

fuzz_target!(|input: Input| {
    let customer = customer(&input);
    let extra: ExtraAttributes = input.extra.iter().cloned().collect();
    let Ok(cp) = mapper().map_platform_to_1c(&customer, &extra) else {
        return;
    };
    shared::onec::fuzzing::round_trip(&cp);
    let mut read = cp.clone();
    read.onec_id = Some(REFS[0].to_owned());
    read.data_version = Some("AAAAAAAETag=".to_owned());
    if let Err(problems) = mapper().map_1c_to_platform(&read) {
        panic!("an exported counterparty does not import: {problems}");
    }
});
