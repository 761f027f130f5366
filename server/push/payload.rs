//! What the service worker receives, decrypted: Apple's Declarative Web Push
//! JSON (`{"web_push": 8030, "notification": {...}}`, shown by Safari 18.4+
//! without running JavaScript) with Herold's own fields beside it. At most
//! `MAX_BYTES`, so it fits every push service after encryption (Firefox on
//! Android relays through a bridge with less room than 4 KB): a long body is
//! cut with an ellipsis and the PWA fetches the full text.

use serde_json::json;

pub const MAX_BYTES: usize = 2048;

pub struct Notification<'a> {
    pub message_id: &'a str,
    pub group_id: &'a str,
    pub group_name: &'a str,
    pub tenant: &'a str,
    pub verified: bool,
    pub title: &'a str,
    pub body: &'a str,
    pub url: Option<&'a str>,
    pub urgency: &'a str,
    pub published_at: &'a str,
    /// `message` (a group's post) or `alert` (the town's alert).
    pub kind: &'a str,
    /// Where tapping the notification leads: the message in the PWA.
    pub navigate: &'a str,
}

fn render(n: &Notification<'_>, body: &str, truncated: bool) -> String {
    json!({
        "web_push": 8030,
        "notification": {
            "title": n.title,
            "body": body,
            "navigate": n.navigate,
            "tag": n.message_id,
            "lang": "de",
            "silent": false,
        },
        "herold": {
            "kind": n.kind,
            "message_id": n.message_id,
            "group_id": n.group_id,
            "group_name": n.group_name,
            "tenant": n.tenant,
            "verified": n.verified,
            "url": n.url,
            "urgency": n.urgency,
            "published_at": n.published_at,
            "truncated": truncated,
        }
    })
    .to_string()
}

/// Renders the payload, cutting the body (never the title) to fit `MAX_BYTES`.
pub fn build(n: &Notification<'_>) -> Vec<u8> {
    let full = render(n, n.body, false);
    if full.len() <= MAX_BYTES {
        return full.into_bytes();
    }
    // The JSON around an empty body, with the ellipsis: what the body may fill.
    let budget = MAX_BYTES.saturating_sub(render(n, "…", true).len());
    let mut used = 0;
    let mut cut = String::new();
    for c in n.body.chars() {
        // A character's size inside a JSON string (quotes and controls are escaped).
        let size = serde_json::to_string(&c).map(|s| s.len() - 2).unwrap_or(6);
        if used + size > budget {
            break;
        }
        used += size;
        cut.push(c);
    }
    let cut = cut.trim_end().to_owned() + "…";
    render(n, &cut, true).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(body: &str) -> Notification<'_> {
        Notification {
            message_id: "m1",
            group_id: "g1",
            group_name: "Gemeindebrief",
            tenant: "wismar",
            verified: true,
            title: "Adventskonzert",
            body,
            url: None,
            urgency: "normal",
            published_at: "2026-11-26T12:00:00.000Z",
            kind: "message",
            navigate: "https://herold.wismar.de/m/m1",
        }
    }

    #[test]
    fn short_body_is_kept_whole() {
        let v: serde_json::Value = serde_json::from_slice(&build(&note("Sonntag 17 Uhr"))).unwrap();
        assert_eq!(v["web_push"], 8030);
        assert_eq!(v["notification"]["body"], "Sonntag 17 Uhr");
        assert_eq!(v["notification"]["tag"], "m1");
        assert_eq!(v["herold"]["truncated"], false);
    }

    #[test]
    fn long_body_is_cut_with_an_ellipsis_to_fit() {
        for body in ["ä".repeat(4000), "\"".repeat(4000), "x".repeat(4000), "😀".repeat(1500)] {
            let bytes = build(&note(&body));
            assert!(bytes.len() <= MAX_BYTES, "{} bytes", bytes.len());
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let cut = v["notification"]["body"].as_str().unwrap();
            assert!(cut.ends_with('…'));
            assert!(cut.chars().count() > 100, "kept a useful part");
            assert_eq!(v["herold"]["truncated"], true);
        }
    }
}
