//! Field checks shared by the API: lengths in characters (not bytes), no
//! control characters, e-mail and link shapes. Each failure names its field.

use crate::error::ApiError;

/// Trims `value` and checks its length in characters; single-line text
/// refuses control characters, multi-line text allows newlines and tabs.
pub fn text(field: &'static str, value: &str, min: usize, max: usize, multiline: bool) -> Result<String, ApiError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        return Err(ApiError::invalid(
            field,
            if min <= 1 {
                format!("{field} must not be empty")
            } else {
                format!("{field} needs at least {min} characters")
            },
        ));
    }
    if len > max {
        return Err(ApiError::invalid(field, format!("{field} is longer than {max} characters")));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !value.chars().all(allowed) {
        return Err(ApiError::invalid(field, format!("{field} contains control characters")));
    }
    Ok(value.to_owned())
}

pub fn optional_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<String, ApiError> {
    value.map(|v| text(field, v, 0, max, multiline)).unwrap_or_else(|| Ok(String::new()))
}

/// A lower-cased e-mail address of a plausible shape (no mail is ever sent).
pub fn email(value: &str) -> Result<String, ApiError> {
    let value = value.trim().to_lowercase();
    let ok = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value)
    } else {
        Err(ApiError::invalid("email", "email is not an e-mail address"))
    }
}

pub const URL_MAX: usize = 2048;

/// An absolute http(s) link.
pub fn link(field: &'static str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.len() > URL_MAX {
        return Err(ApiError::invalid(field, format!("{field} is longer than {URL_MAX} characters")));
    }
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u.to_string()),
        _ => Err(ApiError::invalid(field, format!("{field} must be an http(s) URL"))),
    }
}

/// A tenant slug: 2–40 of a–z, 0–9 and '-', not starting or ending with '-'.
pub fn slug(value: &str) -> Result<String, ApiError> {
    let ok = (2..=40).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid("slug", "slug must be 2–40 characters of a–z, 0–9 and '-'"))
    }
}

pub fn password(value: &str) -> Result<(), ApiError> {
    use crate::auth::password::{MAX_LENGTH, MIN_LENGTH};
    let len = value.chars().count();
    if len < MIN_LENGTH {
        return Err(ApiError::invalid("password", format!("password needs at least {MIN_LENGTH} characters")));
    }
    if len > MAX_LENGTH {
        return Err(ApiError::invalid("password", format!("password is longer than {MAX_LENGTH} characters")));
    }
    Ok(())
}
