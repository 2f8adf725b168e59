//! A customer's e-mail address.
//!
//! The rule is deliberately simple (full RFC 5322 is neither needed nor what 1C checks):
//! trimmed; at most 254 characters; exactly one `@`; a non-empty local part of at most 64
//! characters; a domain with at least one dot, no empty labels; no whitespace or control
//! characters anywhere. The domain is lowercased (it is case-insensitive); the local part is kept
//! as written because some mail servers treat it case-sensitively.

use serde::{Deserialize, Serialize};
use std::fmt;

/// RFC 5321 path limit.
pub const EMAIL_MAX_LEN: usize = 254;
/// RFC 5321 local-part limit.
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;

/// Why a string is not an acceptable e-mail address. Messages never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {EMAIL_MAX_LEN} characters")]
    TooLong,
    #[error("contains whitespace or control characters")]
    ForbiddenCharacter,
    #[error("missing '@'")]
    MissingAt,
    #[error("has more than one '@'")]
    MultipleAt,
    #[error("has an empty local part")]
    EmptyLocalPart,
    #[error("local part is longer than {EMAIL_LOCAL_MAX_LEN} characters")]
    LocalPartTooLong,
    #[error("domain must contain a dot and no empty labels")]
    InvalidDomain,
}

/// A validated e-mail address (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().count() > EMAIL_MAX_LEN {
            return Err(EmailError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::ForbiddenCharacter);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailError::MissingAt)?;
        if domain.contains('@') {
            return Err(EmailError::MultipleAt);
        }
        if local.is_empty() {
            return Err(EmailError::EmptyLocalPart);
        }
        if local.chars().count() > EMAIL_LOCAL_MAX_LEN {
            return Err(EmailError::LocalPartTooLong);
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_addresses_are_trimmed_and_only_the_domain_is_lowercased() {
        let cases = [
            ("ivan.petrov@example.ru", "ivan.petrov@example.ru"),
            ("  Ivan.Petrov@Example.RU \t", "Ivan.Petrov@example.ru"),
            ("a+tag@sub.domain.com", "a+tag@sub.domain.com"),
            ("иван@пример.рф", "иван@пример.рф"),
            ("USER@ПРИМЕР.РФ", "USER@пример.рф"),
        ];
        for (input, expected) in cases {
            // When
            let email = Email::parse(input);
            // Then
            assert_eq!(
                email.as_ref().map(Email::as_str),
                Ok(expected),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn malformed_addresses_are_rejected_with_the_reason() {
        let long_domain = format!("a@{}.ru", "d".repeat(260));
        let long_local = format!("{}@example.ru", "l".repeat(65));
        let cases: [(&str, EmailError); 11] = [
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("ivan.example.ru", EmailError::MissingAt),
            ("a@b@example.ru", EmailError::MultipleAt),
            ("@example.ru", EmailError::EmptyLocalPart),
            ("ivan@localhost", EmailError::InvalidDomain),
            ("ivan@example.", EmailError::InvalidDomain),
            ("ivan@.example.ru", EmailError::InvalidDomain),
            ("iv an@example.ru", EmailError::ForbiddenCharacter),
            (&long_domain, EmailError::TooLong),
            (&long_local, EmailError::LocalPartTooLong),
        ];
        for (input, expected) in cases {
            assert_eq!(Email::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn a_control_character_inside_the_address_is_rejected() {
        assert_eq!(
            Email::parse("ivan\u{0007}@example.ru"),
            Err(EmailError::ForbiddenCharacter)
        );
    }

    #[test]
    fn an_email_round_trips_through_json_as_a_plain_string_and_bad_json_values_fail() {
        // Given
        let email = Email::parse("ivan@Example.ru").unwrap();
        // When
        let json = serde_json::to_string(&email).unwrap();
        let back: Email = serde_json::from_str(&json).unwrap();
        // Then
        assert_eq!(json, "\"ivan@example.ru\"");
        assert_eq!(back, email);
        assert!(serde_json::from_str::<Email>("\"no-at-sign\"").is_err());
    }
}
