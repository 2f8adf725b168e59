//! КПП: the tax registration reason code of a legal entity.
//!
//! 9 characters `NNNNPPXXX`: a 4-digit tax office code, a 2-character reason (digits or Latin
//! capitals, FNS order ММВ-7-6/435@), and a 3-digit serial — `^\d{4}[\dA-Z]{2}\d{3}$`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid KPP. Messages never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KppError {
    #[error("is empty")]
    Empty,
    #[error("must have 9 characters")]
    WrongLength,
    #[error("must be 4 digits, 2 digits or Latin capitals, then 3 digits")]
    BadFormat,
}

/// A validated KPP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kpp(String);

impl Kpp {
    pub fn parse(input: &str) -> Result<Self, KppError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(KppError::Empty);
        }
        if s.chars().count() != 9 {
            return Err(KppError::WrongLength);
        }
        // 9 chars, so any non-ASCII char already fails the per-position checks below.
        let ok = s.bytes().enumerate().all(|(i, b)| match i {
            4 | 5 => b.is_ascii_digit() || b.is_ascii_uppercase(),
            _ => b.is_ascii_digit(),
        });
        if !ok || s.len() != 9 {
            return Err(KppError::BadFormat);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kpp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Kpp {
    type Error = KppError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Kpp> for String {
    fn from(value: Kpp) -> Self {
        value.0
    }
}

impl AsRef<str> for Kpp {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_and_latin_reason_codes_are_accepted() {
        for input in ["770701001", "501701001", "7707AB001", " 773601001 "] {
            let kpp = Kpp::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(kpp.as_str(), input.trim());
        }
    }

    #[test]
    fn malformed_kpps_are_rejected_with_the_reason() {
        let cases = [
            ("", KppError::Empty),
            ("77070100", KppError::WrongLength),
            ("7707010011", KppError::WrongLength),
            ("7707ab001", KppError::BadFormat),
            ("A70701001", KppError::BadFormat),
            ("770701A01", KppError::BadFormat),
            ("7707АБ001", KppError::BadFormat),
            ("7707-1001", KppError::BadFormat),
        ];
        for (input, expected) in cases {
            assert_eq!(Kpp::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn a_kpp_serialises_as_a_string_and_a_bad_one_does_not_deserialise() {
        let kpp = Kpp::parse("770701001").unwrap();
        assert_eq!(serde_json::to_string(&kpp).unwrap(), "\"770701001\"");
        assert!(serde_json::from_str::<Kpp>("\"77070100\"").is_err());
    }
}
