//! The value parsers (e-mail, phone, INN, KPP) and the PII masks on any text: no panic; a parsed
//! value parses again to itself; a valid phone, INN or e-mail never survives `pii::scrub`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::domain::{Email, Inn, Kpp, Phone};
use shared::pii;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    for masked in [
        pii::mask_email(text),
        pii::mask_phone(text),
        pii::mask_inn(text),
        pii::mask(text),
        pii::scrub(text),
    ] {
        assert!(masked.len() <= text.len() * 3 + 16, "a mask grows the text");
    }
    if let Ok(email) = Email::parse(text) {
        let again = Email::parse(email.as_str()).map(|e| e.as_str().to_owned());
        assert_eq!(
            again.as_deref(),
            Ok(email.as_str()),
            "e-mail not idempotent"
        );
        let scrubbed = pii::scrub(&format!("Контрагент {email} уже есть"));
        assert!(
            !scrubbed.contains(email.as_str()),
            "{scrubbed:?} keeps the e-mail"
        );
    }
    if let Ok(phone) = Phone::parse(text) {
        let again = Phone::parse(phone.as_str()).map(|p| p.as_str().to_owned());
        assert_eq!(again.as_deref(), Ok(phone.as_str()), "phone not idempotent");
        let scrubbed = pii::scrub(&format!("тел. {phone}."));
        assert!(
            !scrubbed.contains(phone.as_str()),
            "{scrubbed:?} keeps the phone"
        );
    }
    if let Ok(inn) = Inn::parse(text) {
        let again = Inn::parse(inn.as_str()).map(|i| i.as_str().to_owned());
        assert_eq!(again.as_deref(), Ok(inn.as_str()), "INN not idempotent");
        let scrubbed = pii::scrub(&format!("ИНН {inn} занят"));
        assert!(
            !scrubbed.contains(inn.as_str()),
            "{scrubbed:?} keeps the INN"
        );
    }
    if let Ok(kpp) = Kpp::parse(text) {
        let again = Kpp::parse(kpp.as_str()).map(|k| k.as_str().to_owned());
        assert_eq!(again.as_deref(), Ok(kpp.as_str()), "KPP not idempotent");
    }
});
