//! ИНН: the Russian taxpayer number.
//!
//! 10 digits for a legal entity, 12 for an individual (including an individual entrepreneur,
//! ИП), each with check digits (weights from the FNS algorithm, as in python-stdnum's `ru.inn`).

use serde::{Deserialize, Serialize};
use std::fmt;

const WEIGHTS_10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const WEIGHTS_12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

/// Why a string is not a valid INN. Messages never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InnError {
    #[error("is empty")]
    Empty,
    #[error("must contain digits only")]
    NotDigits,
    #[error("must have 10 digits (legal entity) or 12 (individual)")]
    WrongLength,
    #[error("check digit mismatch")]
    BadChecksum,
}

/// A validated INN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Inn(String);

fn check_digit(digits: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    sum % 11 % 10
}

impl Inn {
    pub fn parse(input: &str) -> Result<Self, InnError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(InnError::Empty);
        }
        let digits: Vec<u32> = s
            .chars()
            .map(|c| c.to_digit(10))
            .collect::<Option<_>>()
            .ok_or(InnError::NotDigits)?;
        let ok = match digits.len() {
            10 => check_digit(&digits, &WEIGHTS_10) == digits[9],
            12 => {
                check_digit(&digits, &WEIGHTS_11) == digits[10]
                    && check_digit(&digits, &WEIGHTS_12) == digits[11]
            }
            _ => return Err(InnError::WrongLength),
        };
        if !ok {
            return Err(InnError::BadChecksum);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A 10-digit INN belongs to an organisation; a 12-digit one to a person or ИП.
    pub fn is_legal_entity(&self) -> bool {
        self.0.len() == 10
    }
}

impl fmt::Display for Inn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Inn {
    type Error = InnError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Inn> for String {
    fn from(value: Inn) -> Self {
        value.0
    }
}

impl AsRef<str> for Inn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_and_real_inns_pass_and_know_whether_they_are_legal_entities() {
        let cases = [
            ("1234567894", true),
            ("7707083893", true),
            ("5024089920", true),
            ("123456789047", false),
            ("500100732259", false),
            (" 7707083893 ", true),
        ];
        for (input, legal) in cases {
            let inn = Inn::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(inn.as_str(), input.trim());
            assert_eq!(inn.is_legal_entity(), legal, "input {input:?}");
        }
    }

    #[test]
    fn invalid_inns_are_rejected_with_the_reason() {
        let cases = [
            ("", InnError::Empty),
            ("1234567895", InnError::BadChecksum),
            ("123456789037", InnError::BadChecksum),
            ("123456789046", InnError::BadChecksum),
            ("7707083894", InnError::BadChecksum),
            ("770708389", InnError::WrongLength),
            ("77070838931", InnError::WrongLength),
            ("7707-083893", InnError::NotDigits),
            ("77070838９3", InnError::NotDigits),
        ];
        for (input, expected) in cases {
            assert_eq!(Inn::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn an_inn_serialises_as_a_string_and_a_bad_one_does_not_deserialise() {
        let inn = Inn::parse("7707083893").unwrap();
        assert_eq!(serde_json::to_string(&inn).unwrap(), "\"7707083893\"");
        assert!(serde_json::from_str::<Inn>("\"1234567895\"").is_err());
    }
}
