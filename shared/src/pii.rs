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

/// Masks everything in free text that looks like an e-mail address, a phone number or an INN.
///
/// For text we do not control — 1C's error messages and page titles, which may echo the request
/// back — before it reaches an error, a log line, `sync_error_message` or a DLQ attribute.
/// Numbers need 10 to 15 digits, or 7 after a `+` (spaces, brackets and dashes may separate them)
/// and must stand alone: digits inside a longer token (a GUID, a hex string) are left as they are.
/// Exactly 10 or 12 bare digits are masked as an INN, anything else as a phone.
pub fn scrub(text: &str) -> String {
    scrub_numbers(&scrub_emails(text))
}

/// Punctuation that wraps an address in running text rather than belonging to it.
const OPENERS: &[char] = &['<', '(', '[', '{', '"', '\'', '«', '`'];
const CLOSERS: &[char] = &[
    '>', ')', ']', '}', '"', '\'', '»', '`', '.', ',', ';', ':', '!', '?',
];

/// Every whitespace-separated word with an `@` between two non-empty parts is masked whole
/// (minus wrapping punctuation): an address may hold any other character, so nothing narrower
/// is safe.
fn scrub_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_len);
        out.push_str(&mask_address_in(word));
        let space_len = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..space_len]);
        rest = &tail[space_len..];
    }
    out
}

fn mask_address_in(word: &str) -> String {
    let Some(at) = word.rfind('@') else {
        return word.to_owned();
    };
    let trimmed = word.trim_start_matches(OPENERS).trim_end_matches(CLOSERS);
    let core = match trimmed.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => trimmed,
        // Wrapping punctuation was the whole local part or domain: mask the word as it is.
        _ if at > 0 && at + 1 < word.len() => word,
        _ => return word.to_owned(),
    };
    let Some(start) = word.find(core) else {
        return mask_email(word);
    };
    format!(
        "{}{}{}",
        &word[..start],
        mask_email(core),
        &word[start + core.len()..]
    )
}

/// Characters that make a digit part of a longer token rather than a number of its own.
fn joins_token(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '*')
}

fn scrub_numbers(text: &str) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let starts = c.is_ascii_digit()
            || (c == '+' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()));
        let free = i == 0 || !joins_token(chars[i - 1].1);
        if !(starts && free) {
            i += 1;
            continue;
        }
        // The run of digits and separators, cut back to its last digit.
        let mut j = i + 1;
        while j < chars.len() && (chars[j].1.is_ascii_digit() || " ()-".contains(chars[j].1)) {
            j += 1;
        }
        while !chars[j - 1].1.is_ascii_digit() {
            j -= 1;
        }
        let end = chars.get(j).map_or(text.len(), |(p, _)| *p);
        let next_joins = chars.get(j).is_some_and(|(_, n)| {
            // A letter, `_`, `-x` (a reference) or `:5` (a date and time) continues the token.
            n.is_alphanumeric()
                || *n == '_'
                || (*n == '-' && chars.get(j + 1).is_some_and(|(_, m)| m.is_alphanumeric()))
                || (*n == ':' && chars.get(j + 1).is_some_and(|(_, m)| m.is_ascii_digit()))
        });
        let span = &text[pos..end];
        if !next_joins {
            if let Some(masked) = mask_number(span) {
                out.push_str(&text[copied..pos]);
                out.push_str(&masked);
                copied = end;
            }
        }
        i = j;
    }
    out.push_str(&text[copied..]);
    out
}

/// The masked form of a standalone number, or `None` when it is not personal-looking.
fn mask_number(span: &str) -> Option<String> {
    let digits = span.chars().filter(char::is_ascii_digit).count();
    // E.164 numbers of small countries have as few as 7 digits; without the `+` that short a
    // number is more likely a code or a count.
    let min = if span.starts_with('+') { 7 } else { 10 };
    if (min..=15).contains(&digits) {
        let bare = span.chars().all(|c| c.is_ascii_digit());
        return Some(if bare && (digits == 10 || digits == 12) {
            mask_inn(span)
        } else {
            mask_phone(span)
        });
    }
    if digits > 15 && span.contains(' ') && !span.contains('-') {
        // Several numbers in a row ("7707083893 500100732259"): judge each on its own.
        let parts: Vec<String> = span
            .split(' ')
            .map(|part| mask_number(part).unwrap_or_else(|| part.to_owned()))
            .collect();
        return Some(parts.join(" "));
    }
    None
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
    fn scrub_masks_emails_phones_and_inns_in_free_text() {
        let cases = [
            (
                "Контрагент с e-mail ivan.petrov@example.ru уже существует",
                "Контрагент с e-mail i***@e***.ru уже существует",
            ),
            ("<ivan@example.ru>.", "<i***@e***.ru>."),
            ("(a@b.ru),c@d.рф", "(a***@d***.рф"),
            ("и\u{FFFD}@\u{FFFD}н.рф", "и***@\u{FFFD}***.рф"),
            (
                "тел. +7 (912) 345-67-89, ИНН 7707083893",
                "тел. +7*******89, ИНН 77******93",
            ),
            ("ИНН 500100732259 занят", "ИНН 50******59 занят"),
            ("телефон 89123456789", "телефон 8*******89"),
            ("ИНН 7707083893 500100732259", "ИНН 77******93 50******59"),
            ("+79123456789", "+7*******89"),
            ("тел. +67287285.", "тел. +6*******85."),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn scrub_leaves_references_versions_dates_and_short_numbers_alone() {
        let untouched = [
            "Ref_Key 00000000-0000-0000-0000-000000000001 not found",
            "guid'9a1b6f0e-1234-4000-8000-123456789012'",
            "abcdefab-abcd-abcd-abcd-123456789012",
            "HTTP 500 at 2026-11-28 10:15:30, DataVersion AAAAAAAETag=",
            "КПП 770701001, код 42",
            "token a1234567890b and 1234567890abc",
            "no address @ here, nor here@",
            "",
        ];
        for text in untouched {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn scrub_keeps_every_character_that_is_not_masked() {
        // Non-ASCII around the values must survive byte-exactly (slicing at char boundaries).
        let text = "Ошибка 🙂: «a@b.рф» ‏+79123456789‏ конец";
        assert_eq!(scrub(text), "Ошибка 🙂: «a***@b***.рф» ‏+7*******89‏ конец");
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
