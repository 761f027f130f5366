//! Which push endpoints Herold accepts. Endpoints come from anonymous clients
//! and the server POSTs to them, so this is an SSRF boundary: only `https`
//! endpoints on the public push services' hosts, plus origins the operator
//! lists in `HEROLD_PUSH_ALLOWED_ORIGINS` (e.g. a test push service). IP
//! literals, loopback, private and link-local hosts are never accepted
//! unless their exact origin is listed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use url::{Host, Url};

/// Host suffixes of the public push services (FCM, Mozilla, Apple, WNS).
const PUBLIC_PUSH_HOSTS: &[&str] = &[
    "fcm.googleapis.com",
    "android.googleapis.com",
    "push.services.mozilla.com",
    "push.apple.com",
    "notify.windows.com",
];

pub const MAX_ENDPOINT_LEN: usize = 2048;

#[derive(Debug, Clone)]
pub struct PushAllowlist {
    extra_origins: Vec<String>,
}

impl PushAllowlist {
    pub fn new(extra: &[Url]) -> Self {
        PushAllowlist { extra_origins: extra.iter().map(|u| u.origin().ascii_serialization()).collect() }
    }

    /// Why `endpoint` is refused, or `Ok` with the parsed URL.
    pub fn check(&self, endpoint: &str) -> Result<Url, String> {
        if endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(format!("endpoint longer than {MAX_ENDPOINT_LEN} characters"));
        }
        let url = Url::parse(endpoint).map_err(|_| "endpoint is not a URL".to_owned())?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("endpoint must not carry credentials".into());
        }
        if self.extra_origins.iter().any(|o| *o == url.origin().ascii_serialization()) {
            return Ok(url);
        }
        if url.scheme() != "https" {
            return Err("endpoint must use https".into());
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(_) => return Err("endpoint host must be a push service, not an IP address".into()),
            None => return Err("endpoint has no host".into()),
        };
        if url.port().is_some() {
            return Err("endpoint must use the push service's default port".into());
        }
        let known = PUBLIC_PUSH_HOSTS.iter().any(|h| host == *h || host.ends_with(&format!(".{h}")));
        if !known {
            return Err(format!("'{host}' is not a known push service"));
        }
        Ok(url)
    }
}

/// Decodes base64url (padding tolerated), as browsers' `PushSubscription.toJSON()` gives it.
fn decode_b64url(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()
}

/// Checks the subscription's `p256dh` (an uncompressed P-256 point) and `auth` (16 bytes).
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(), (&'static str, &'static str)> {
    let point = decode_b64url(p256dh).ok_or(("keys.p256dh", "p256dh is not base64url"))?;
    if point.len() != 65 || p256::PublicKey::from_sec1_bytes(&point).is_err() {
        return Err(("keys.p256dh", "p256dh is not an uncompressed P-256 public key"));
    }
    let secret = decode_b64url(auth).ok_or(("keys.auth", "auth is not base64url"))?;
    if secret.len() != 16 {
        return Err(("keys.auth", "auth must be 16 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> PushAllowlist {
        PushAllowlist::new(&[Url::parse("http://localhost:8090").unwrap()])
    }

    #[test]
    fn accepts_public_push_services() {
        for ok in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/abc",
            "https://web.push.apple.com/QGx",
            "https://wns2-par02p.notify.windows.com/w/?token=abc",
            "http://localhost:8090/push/abc",
        ] {
            assert!(list().check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://127.0.0.1/push",
            "https://[::1]/push",
            "https://10.0.0.5/push",
            "https://169.254.169.254/latest",
            "https://localhost/push",
            "http://localhost:8091/push",
            "https://evil.example.com/push",
            "https://fcm.googleapis.com.evil.example/x",
            "https://notfcm.googleapis.com/x",
            "https://fcm.googleapis.com:8443/x",
            "https://user:pw@fcm.googleapis.com/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(list().check(bad).is_err(), "{bad}");
        }
    }
}
