//! Notifications for one device that are not a group's message: the
//! resident's "send me a test notification", replies and status changes of
//! a resident's issue report, answers to a resident's question. Written to the `device_notices` outbox in the request's
//! transaction; the delivery engine sends them like messages.
//!
//! Must not: send anything itself (no network here), or keep a notice
//! beyond its device (the rows go with it).

use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use crate::auth::secrets::new_id;
use crate::db::schema::device_notices;
use crate::db::DbConn;
use crate::error::ApiResult;

/// A test notification is useless after a few minutes.
const TEST_TTL_MS: i64 = 10 * 60 * 1000;
/// Its `tag`: a second test replaces the first on the device.
pub const TEST_TAG: &str = "herold-test";

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TestRequest {
    /// `de` (default) or `en`: the language of the notification's text.
    #[serde(default)]
    pub lang: Option<String>,
}

fn test_text(lang: Option<&str>) -> (&'static str, &'static str) {
    match lang {
        Some(l) if l.starts_with("en") => {
            ("Test notification", "Notifications work: this is how news from your town will arrive.")
        }
        _ => {
            ("Testbenachrichtigung", "Benachrichtigungen funktionieren: So erreichen Sie Nachrichten aus Ihrer Stadt.")
        }
    }
}

/// A notification for one device.
pub struct Notice<'a> {
    /// `test`, `issue` (a reply or status change of a resident's report) or
    /// `answer` (an answer to a resident's question).
    pub kind: &'a str,
    /// The notification's `tag`: a newer one with the same tag replaces the
    /// older on the device.
    pub tag: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    /// Path under the public URL the notification opens, such as `/r/<id>`.
    pub path: &'a str,
    /// `de` or `en`.
    pub lang: &'a str,
    pub ttl_ms: i64,
}

/// Notification text is cut to this many characters (payloads stay small).
const BODY_MAX_CHARS: usize = 240;

/// Writes a notice to the outbox and wakes the delivery workers (on commit).
pub fn enqueue(
    conn: &mut DbConn,
    public_url: &url::Url,
    device_id: &str,
    notice: Notice<'_>,
    now: i64,
) -> ApiResult<()> {
    let navigate = format!("{}{}", public_url.as_str().trim_end_matches('/'), notice.path);
    let body: String = if notice.body.chars().count() > BODY_MAX_CHARS {
        notice.body.chars().take(BODY_MAX_CHARS - 1).chain(std::iter::once('…')).collect()
    } else {
        notice.body.to_owned()
    };
    let payload = json!({
        "web_push": 8030,
        "notification": {
            "title": notice.title,
            "body": body,
            "navigate": navigate,
            "tag": notice.tag,
            "lang": notice.lang,
            "silent": false,
        },
        "herold": { "kind": notice.kind, "sent_at": crate::model::ts(now) }
    })
    .to_string();
    diesel::insert_into(device_notices::table)
        .values((
            device_notices::id.eq(new_id()),
            device_notices::device_id.eq(device_id),
            device_notices::kind.eq(notice.kind),
            device_notices::payload.eq(payload),
            device_notices::urgency.eq("normal"),
            device_notices::expires_at.eq(now + notice.ttl_ms),
            device_notices::attempts.eq(0),
            device_notices::next_at.eq(now),
            device_notices::created_at.eq(now),
        ))
        .execute(conn)?;
    crate::db::dialect::notify_delivery(conn)?;
    Ok(())
}

/// Queues a test notification for the device, replacing one not yet sent.
pub fn enqueue_test(
    conn: &mut DbConn,
    public_url: &url::Url,
    device_id: &str,
    lang: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    let (title, body) = test_text(lang);
    diesel::delete(
        device_notices::table.filter(device_notices::device_id.eq(device_id)).filter(device_notices::kind.eq("test")),
    )
    .execute(conn)?;
    let lang = if lang.is_some_and(|l| l.starts_with("en")) { "en" } else { "de" };
    let notice = Notice { kind: "test", tag: TEST_TAG, title, body, path: "/settings", lang, ttl_ms: TEST_TTL_MS };
    enqueue(conn, public_url, device_id, notice, now)
}
