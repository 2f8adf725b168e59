//! Masking of personal data for logs, metrics dimensions and error messages.
//!
//! Masks keep just enough to tell records apart while debugging (first letter, last digits) and
//! use a fixed number of stars, so the length of the original does not leak either. Use
//! [`Masked`] in tracing fields: `tracing::info!(email = %Masked::email(&e), "…")`.

use std::fmt;

const STARS: &str = "***";

/// `ivan.petrov@example.ru` → `i***@e***.ru`. Input without `@` is masked with [`mask`].
pub fn mask_email(email: &str) -> String {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return mask(email);
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = match domain.rsplit_once('.') {
        // The TLD says little about a person; a domain that is only a TLD keeps nothing.
        Some((head, tld)) if !head.is_empty() && tld.chars().count() <= 6 => format!(".{tld}"),
        _ => String::new(),
    };
    format!("{}{STARS}@{}{STARS}{tld}", first(local), first(domain))
}

/// `+79123456789` → `+7*******89`: the leading `+` and first digit (the country code's start),
/// then the last two digits. Fewer than 6 digits: nothing is kept.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return STARS.to_owned();
    }
    let plus = if phone.trim_start().starts_with('+') {
        "+"
    } else {
        ""
    };
    let tail: String = digits[digits.len() - 2..].iter().collect();
    format!("{plus}{}*******{tail}", digits[0])
}

/// `7707083893` → `77******93`. Fewer than 6 characters: nothing is kept.
pub fn mask_inn(inn: &str) -> String {
    let chars: Vec<char> = inn.trim().chars().collect();
    if chars.len() < 6 {
        return STARS.to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}******{tail}")
}

/// Any other personal value (a name, an address): first character and `***`; values of up to
/// three characters are masked whole.
pub fn mask(value: &str) -> String {
    let value = value.trim();
    let mut chars = value.chars();
    match (chars.next(), value.chars().count()) {
        (Some(first), n) if n > 3 => format!("{first}{STARS}"),
        _ => STARS.to_owned(),
    }
}

/// What kind of value a [`Masked`] wraps, which picks the mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    Email,
    Phone,
    Inn,
    Other,
}

/// Displays a personal value masked, without allocating until formatted.
#[derive(Clone, Copy)]
pub struct Masked<'a>(pub &'a str, pub MaskKind);

impl<'a> Masked<'a> {
    pub fn email(value: &'a str) -> Self {
        Self(value, MaskKind::Email)
    }

    pub fn phone(value: &'a str) -> Self {
        Self(value, MaskKind::Phone)
    }

    pub fn inn(value: &'a str) -> Self {
        Self(value, MaskKind::Inn)
    }

    pub fn other(value: &'a str) -> Self {
        Self(value, MaskKind::Other)
    }
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = match self.1 {
            MaskKind::Email => mask_email(self.0),
            MaskKind::Phone => mask_phone(self.0),
            MaskKind::Inn => mask_inn(self.0),
            MaskKind::Other => mask(self.0),
        };
        f.write_str(&masked)
    }
}

/// `{:?}` must not leak either (a `Masked` may end up in a `Debug`-printed struct).
impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked_to_initials_and_the_tld() {
        let cases = [
            ("ivan.petrov@example.ru", "i***@e***.ru"),
            ("a@b.ru", "a***@b***.ru"),
            ("иван@пример.рф", "и***@п***.рф"),
            ("user@localhost", "u***@l***"),
            ("not-an-email", "n***"),
            ("", "***"),
        ];
        for (input, expected) in cases {
            // When
            let masked = mask_email(input);
            // Then
            assert_eq!(masked, expected, "input {input:?}");
            if !input.is_empty() {
                assert!(!masked.contains(input), "{masked:?} leaks {input:?}");
            }
        }
    }

    #[test]
    fn phones_keep_only_the_country_digit_and_the_last_two_digits() {
        let cases = [
            ("+79123456789", "+7*******89"),
            ("+77011234567", "+7*******67"),
            ("+4930123456", "+4*******56"),
            ("89123456789", "8*******89"),
            ("12345", "***"),
        ];
        for (input, expected) in cases {
            let masked = mask_phone(input);
            assert_eq!(masked, expected, "input {input:?}");
            assert!(!masked.contains(input), "{masked:?} leaks {input:?}");
        }
    }

    #[test]
    fn inns_keep_only_two_leading_and_two_trailing_digits() {
        let cases = [
            ("7707083893", "77******93"),
            ("500100732259", "50******59"),
            ("123", "***"),
        ];
        for (input, expected) in cases {
            let masked = mask_inn(input);
            assert_eq!(masked, expected, "input {input:?}");
            assert!(!masked.contains(input), "{masked:?} leaks {input:?}");
        }
    }

    #[test]
    fn other_values_keep_only_the_first_character() {
        let cases = [("Иванов", "И***"), ("Ли", "***"), ("", "***")];
        for (input, expected) in cases {
            let masked = mask(input);
            assert_eq!(masked, expected, "input {input:?}");
            if !input.is_empty() {
                assert!(!masked.contains(input), "{masked:?} leaks {input:?}");
            }
        }
    }

    #[test]
    fn masked_displays_and_debugs_without_the_original_value() {
        // Given
        let email = "ivan.petrov@example.ru";
        let phone = "+79123456789";
        let inn = "7707083893";
        // When
        let shown = format!(
            "{} {} {} {}",
            Masked::email(email),
            Masked::phone(phone),
            Masked::inn(inn),
            Masked::other("Петров")
        );
        let debugged = format!("{:?}", Masked::email(email));
        // Then
        assert_eq!(shown, "i***@e***.ru +7*******89 77******93 П***");
        assert_eq!(debugged, "\"i***@e***.ru\"");
        for original in [email, phone, inn, "Петров"] {
            assert!(!shown.contains(original));
        }
    }
}
