//! A customer's phone number, normalised to E.164.
//!
//! Input rules (the forms Russian users actually type):
//! - separators are ignored: spaces (incl. NBSP), `-` and other dashes, `.`, `/`, `(`, `)`;
//! - `+<country code>…` is kept as written (so `+7 7xx…` stays a Kazakhstan number);
//! - without `+`: 11 digits starting with `8` or `7` → `+7` and the last 10 digits; 10 digits →
//!   a national number of the `+7` zone (`9123456789` → `+79123456789`);
//! - anything else without `+` is rejected: we cannot tell which country it belongs to;
//! - letters are rejected; an extension (`доб.`, `ext`, `#`, `,`) is rejected with its own reason
//!   rather than silently dropped, because 1C's `НомерТелефона` holds no extension and calling
//!   the bare number would reach the wrong desk;
//! - the result must pass libphonenumber's validity check (`phonenumber::is_valid`).

use phonenumber::Mode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// E.164 allows at most 15 digits.
pub const PHONE_MAX_DIGITS: usize = 15;
/// No real international number is shorter.
pub const PHONE_MIN_DIGITS: usize = 7;

/// Why a string is not an acceptable phone number. Messages never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("has an extension; store the number without it")]
    Extension,
    #[error("contains letters")]
    Letters,
    #[error("contains characters other than digits, spaces, brackets, dots and dashes")]
    InvalidCharacter,
    #[error("'+' is allowed only at the start")]
    MisplacedPlus,
    #[error("has too few digits")]
    TooShort,
    #[error("has more than {PHONE_MAX_DIGITS} digits")]
    TooLong,
    #[error("has no country code and is not a Russian number; write it as +<country code>…")]
    NoCountryCode,
    #[error("is not a valid phone number")]
    Invalid,
}

/// A validated phone number in E.164 (`+79123456789`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone {
    e164: String,
    /// ISO 3166 region libphonenumber assigns (`RU`, `KZ`, …); `None` for non-geographic codes.
    region: Option<String>,
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '/' | '(' | ')' | '\u{2010}'..='\u{2015}' | '\u{2212}'
        )
}

fn has_extension_marker(s: &str) -> bool {
    let lower = s.to_lowercase();
    lower.contains("доб")
        || lower.contains("ext")
        || lower.contains('#')
        || lower.contains(',')
        || lower.contains(';')
        // "x123" after the number, as in "+7 912 345 67 89 x12"
        || lower.split(|c: char| !c.is_alphabetic()).any(|w| w == "x")
}

/// Validates a `+7 8xx…` national number against libphonenumber's metadata directly.
///
/// phonenumber 0.3 strips a national number's leading `8` after `+7` as if it were the trunk
/// prefix (rust-phonenumber issue #76), turning `+7 800 555-35-35` into an impossible
/// `+7005553535`; the rest of the `+7` zone parses correctly and goes through the crate.
fn zone7_region_of_8xx(national: &str) -> Option<String> {
    let regions = phonenumber::metadata::DATABASE.by_code(&7)?;
    regions
        .into_iter()
        .filter(|meta| {
            meta.leading_digits()
                .is_none_or(|re| re.find(national).is_some_and(|m| m.start() == 0))
        })
        .find(|meta| {
            let d = meta.descriptors();
            d.general().is_match(national)
                && [
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.uan(),
                ]
                .into_iter()
                .flatten()
                .any(|desc| desc.is_match(national))
        })
        .map(|meta| meta.id().to_owned())
}

impl Phone {
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PhoneError::Empty);
        }
        if has_extension_marker(s) {
            return Err(PhoneError::Extension);
        }
        if s.chars().any(char::is_alphabetic) {
            return Err(PhoneError::Letters);
        }
        let mut digits = String::with_capacity(s.len());
        let mut plus = false;
        for c in s.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus => plus = true,
                '+' => return Err(PhoneError::MisplacedPlus),
                c if is_separator(c) => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if digits.len() > PHONE_MAX_DIGITS {
            return Err(PhoneError::TooLong);
        }
        let international = if plus {
            if digits.len() < PHONE_MIN_DIGITS {
                return Err(PhoneError::TooShort);
            }
            format!("+{digits}")
        } else {
            match (digits.len(), digits.as_bytes()[0]) {
                (11, b'8' | b'7') => format!("+7{}", &digits[1..]),
                (10, _) => format!("+7{digits}"),
                (n, _) if n < 10 => return Err(PhoneError::TooShort),
                _ => return Err(PhoneError::NoCountryCode),
            }
        };
        if let Some(national) = international.strip_prefix("+78") {
            let national = format!("8{national}");
            let region = zone7_region_of_8xx(&national).ok_or(PhoneError::Invalid)?;
            return Ok(Self {
                e164: international,
                region: Some(region),
            });
        }
        let number = phonenumber::parse(None, &international).map_err(|_| PhoneError::Invalid)?;
        if number.extension().is_some() || !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        let region = number.country().id().map(|id| id.as_ref().to_owned());
        Ok(Self { e164, region })
    }

    /// E.164, e.g. `+79123456789`.
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The region the number belongs to (`"RU"`, `"KZ"`, …); `+7` is shared by both.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(value: Phone) -> Self {
        value.e164
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.e164
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_russian_form_normalises_to_the_same_e164_number() {
        let forms = [
            "8 (912) 345-67-89",
            "+7 912 345 67 89",
            "9123456789",
            "8-912-345-67-89",
            "+7 (912) 345-67-89",
            "79123456789",
            "89123456789",
            "+7.912.345.67.89",
            "8\u{00A0}912\u{00A0}345\u{00A0}67\u{00A0}89",
            "+7\u{202F}(912)\u{202F}345\u{2013}67\u{2013}89",
            "  (912) 345 - 67 - 89  ",
            "8/912/3456789",
        ];
        for input in forms {
            // When
            let phone = Phone::parse(input);
            // Then
            let phone = phone.unwrap_or_else(|e| panic!("{input:?} rejected: {e}"));
            assert_eq!(phone.as_str(), "+79123456789", "input {input:?}");
            assert_eq!(phone.region(), Some("RU"), "input {input:?}");
        }
    }

    #[test]
    fn a_kazakhstan_number_keeps_its_region_and_stays_e164() {
        for input in ["+7 701 123 45 67", "8 (701) 123-45-67", "77011234567"] {
            // When
            let phone = Phone::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            // Then
            assert_eq!(phone.as_str(), "+77011234567", "input {input:?}");
            assert_eq!(phone.region(), Some("KZ"), "input {input:?}");
        }
    }

    #[test]
    fn explicit_foreign_country_codes_and_russian_landlines_are_kept() {
        let cases = [
            ("+49 30 123456", "+4930123456", Some("DE")),
            ("+375 29 123-45-67", "+375291234567", Some("BY")),
            ("8 (495) 123-45-67", "+74951234567", Some("RU")),
            ("8 800 555-35-35", "+78005553535", Some("RU")),
            ("+7 (812) 123-45-67", "+78121234567", Some("RU")),
        ];
        for (input, e164, region) in cases {
            let phone = Phone::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!((phone.as_str(), phone.region()), (e164, region));
        }
    }

    #[test]
    fn unusable_phone_inputs_are_rejected_with_the_reason() {
        let cases = [
            ("", PhoneError::Empty),
            ("  ", PhoneError::Empty),
            ("()- ", PhoneError::Empty),
            ("8-912-345-67-89 доб. 123", PhoneError::Extension),
            ("8-912-345-67-89 доб.", PhoneError::Extension),
            ("+7 912 345 67 89 ext 12", PhoneError::Extension),
            ("+7 912 345 67 89 x12", PhoneError::Extension),
            ("+7 912 345 67 89#12", PhoneError::Extension),
            ("call me", PhoneError::Letters),
            ("8 912 ABC 67 89", PhoneError::Letters),
            ("+7 912 345 67 89 !", PhoneError::InvalidCharacter),
            ("7+9123456789", PhoneError::MisplacedPlus),
            ("12345", PhoneError::TooShort),
            ("912345678", PhoneError::TooShort),
            ("+7 912", PhoneError::TooShort),
            ("+7 912 345 67 89 12345", PhoneError::TooLong),
            ("380501234567", PhoneError::NoCountryCode),
            ("19123456789", PhoneError::NoCountryCode),
            ("+7 012 345 67 89", PhoneError::Invalid),
            ("0123456789", PhoneError::Invalid),
            ("8 (899) 123-45-67", PhoneError::Invalid),
        ];
        for (input, expected) in cases {
            assert_eq!(Phone::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn a_phone_serialises_as_its_e164_string_and_deserialising_revalidates() {
        // Given
        let phone = Phone::parse("8 (912) 345-67-89").unwrap();
        // When
        let json = serde_json::to_string(&phone).unwrap();
        let back: Phone = serde_json::from_str(&json).unwrap();
        // Then
        assert_eq!(json, "\"+79123456789\"");
        assert_eq!(back, phone);
        assert!(serde_json::from_str::<Phone>("\"12\"").is_err());
    }
}
