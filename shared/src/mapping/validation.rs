//! Field problems found while mapping, reported all at once.

use crate::error::{Classify, ErrorClass};
use std::fmt;

/// One field that cannot be mapped, and why. `reason` never contains the field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Platform attribute name (`email`, `tax_id`, an extra field…), or `name` for the combined
    /// 1C name, `platform_id` / `onec_id` for the keys.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Every problem that stops a customer from being mapped. Never empty when returned as an error.
///
/// Permanent: the data must change before another attempt can succeed. The message lists fields
/// and reasons but no values, so it is safe for logs, the sync log and `sync_error_message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldProblem>);

impl ValidationErrors {
    pub fn problems(&self) -> &[FieldProblem] {
        &self.0
    }

    /// Fields with at least one problem, in the order found (each once).
    pub fn fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = Vec::new();
        for p in &self.0 {
            if !fields.contains(&p.field.as_str()) {
                fields.push(&p.field);
            }
        }
        fields
    }

    pub fn has_problem_with(&self, field: &str) -> bool {
        self.0.iter().any(|p| p.field == field)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid customer data: ")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Classify for ValidationErrors {
    fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// Collects problems while a mapping runs to the end.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<FieldProblem>);

impl Problems {
    pub(crate) fn push(&mut self, field: &str, reason: impl fmt::Display) {
        self.0.push(FieldProblem {
            field: field.to_owned(),
            reason: reason.to_string(),
        });
    }

    /// A trimmed text value: `None` when absent or blank; a problem (and `None`) when it has
    /// control characters or more than `max` characters.
    pub(crate) fn text(&mut self, field: &str, value: Option<&str>, max: usize) -> Option<String> {
        let value = value.map(str::trim).filter(|v| !v.is_empty())?;
        if value.chars().any(char::is_control) {
            self.push(field, "contains control characters");
            return None;
        }
        if value.chars().count() > max {
            self.push(field, format_args!("is longer than {max} characters"));
            return None;
        }
        Some(value.to_owned())
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}
