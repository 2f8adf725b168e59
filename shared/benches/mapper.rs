//! Cost of mapping one platform customer to a 1C counterparty
//! (`CustomerDataMapper::map_platform_to_1c`) with the built-in mapping: individuals and legal
//! entities, with phone normalisation and INN/KPP checks.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shared::domain::Customer;
use shared::mapping::{CustomerDataMapper, ExtraAttributes};
use std::hint::black_box;

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
        version: 3,
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
        status: Some("active".into()),
        onec_id: Some("9a1b6f0e-0000-4000-8000-000000000002".into()),
        version: 7,
        ..Customer::default()
    }
}

fn mapper(c: &mut Criterion) {
    let mapper = CustomerDataMapper::default();
    let extra = ExtraAttributes::new();
    let mut group = c.benchmark_group("mapper_platform_to_1c");
    group.throughput(Throughput::Elements(1));
    for (name, customer) in [
        ("individual", individual()),
        ("legal_entity", legal_entity()),
    ] {
        if let Err(err) = mapper.map_platform_to_1c(&customer, &extra) {
            panic!("{name}: the sample customer must map: {err}");
        }
        group.bench_function(name, |b| {
            b.iter(|| mapper.map_platform_to_1c(black_box(&customer), black_box(&extra)))
        });
    }
    group.finish();
}

criterion_group!(benches, mapper);
criterion_main!(benches);
