//! Domain vocabulary shared by the modules: statuses, roles, categories,
//! urgencies, and the `{items, next}` page with its opaque cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Declares a string-backed enum stored as text and sent as the same text in
/// JSON (so `Urgency::VeryLow` is `"very-low"` everywhere, as in RFC 8030).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// Reads a stored value; an unknown one is a bug, not bad input.
            pub fn from_db(text: &str) -> Result<Self, ApiError> {
                Self::parse(text).ok_or_else(|| {
                    ApiError::Internal(format!("unknown {} '{}' in database", stringify!($name), text))
                })
            }

            /// Reads an optional filter such as `?status=`: blank is none,
            /// an unknown value a 422 naming `field`.
            pub fn parse_filter(field: &'static str, text: Option<&str>) -> Result<Option<Self>, ApiError> {
                text.filter(|t| !t.is_empty())
                    .map(|t| {
                        Self::parse(t).ok_or_else(|| {
                            ApiError::invalid(field, format!("{field} must be one of {}", Self::names()))
                        })
                    })
                    .transpose()
            }

            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

text_enum!(
    /// Where an organization stands with its town.
    OrgStatus { Pending = "pending", Approved = "approved", Rejected = "rejected", Suspended = "suspended" }
);
text_enum!(
    /// An organization member's role.
    Role { Owner = "owner", Editor = "editor" }
);
text_enum!(
    /// `system`: the town's own alert channel, never listed or followed.
    GroupStatus { Active = "active", Archived = "archived", Suspended = "suspended", System = "system" }
);
text_enum!(
    Category {
        Administration = "administration",
        Church = "church",
        Club = "club",
        Business = "business",
        School = "school",
        Culture = "culture",
        Other = "other",
    }
);
text_enum!(
    /// RFC 8030 §5.3 urgency; `high` is for alerts.
    Urgency { VeryLow = "very-low", Low = "low", Normal = "normal", High = "high" }
);
text_enum!(
    /// Why a resident flags a message.
    ReportReason { Spam = "spam", Offensive = "offensive", FalseInformation = "false_information", Other = "other" }
);
text_enum!(
    ReportStatus { Open = "open", Resolved = "resolved" }
);
text_enum!(
    /// How the town resolved a message's reports.
    Resolution { HideMessage = "hide_message", Dismiss = "dismiss", SuspendGroup = "suspend_group" }
);

text_enum!(
    /// Where a resident's issue report stands with the organization.
    IssueStatus { Received = "received", InProgress = "in_progress", Done = "done", Rejected = "rejected" }
);

/// A page of a list: `{"items": [...], "next": cursor-or-null}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Query parameters every paginated list takes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(20),
            Some(n @ 1..=100) => Ok(n as i64),
            Some(_) => Err(ApiError::invalid("limit", "limit must be between 1 and 100")),
        }
    }

    /// Decodes the cursor into the (time, id) position it stands for.
    pub fn position(&self) -> Result<Option<(i64, String)>, ApiError> {
        let Some(cursor) = &self.cursor else { return Ok(None) };
        let bad = || ApiError::invalid("cursor", "cursor is not one this server gave out");
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (time, id) = text.split_once(':').ok_or_else(bad)?;
        if id.chars().any(char::is_control) {
            return Err(bad());
        }
        Ok(Some((time.parse().map_err(|_| bad())?, id.to_owned())))
    }
}

pub fn encode_cursor(time: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{time}:{id}"))
}

/// Cuts a list fetched with `limit + 1` rows into a page.
pub fn page_of<R, T>(
    mut rows: Vec<R>,
    limit: i64,
    key: impl Fn(&R) -> (i64, String),
    map: impl FnMut(R) -> T,
) -> Page<T> {
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            let (t, id) = key(r);
            encode_cursor(t, &id)
        })
    } else {
        None
    };
    Page { items: rows.into_iter().map(map).collect(), next }
}

/// RFC 3339 in UTC with milliseconds, as the API writes every time.
pub fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The UTC day of a time, as `YYYY-MM-DD`.
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// Reads an RFC 3339 time with any offset into UTC milliseconds.
pub fn parse_ts(field: &'static str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value.trim()).map(|t| t.timestamp_millis()).map_err(|_| {
        ApiError::invalid(field, format!("{field} must be an RFC 3339 time such as 2026-12-24T18:00:00+01:00"))
    })
}
