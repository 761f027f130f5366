//! The installation's VAPID key pair (RFC 8292): one long-lived P-256 key,
//! generated on first start and kept in the database so every instance signs
//! with it. Changing it invalidates every subscription.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::SecretKey;

pub struct VapidKeys {
    secret: SecretKey,
    /// Uncompressed SEC1 point (65 bytes), base64url: what browsers take as
    /// `applicationServerKey`.
    public_b64: String,
}

impl VapidKeys {
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng))
    }

    fn from_secret(secret: SecretKey) -> Self {
        let point = secret.public_key().to_encoded_point(false);
        let public_b64 = URL_SAFE_NO_PAD.encode(point.as_bytes());
        VapidKeys { secret, public_b64 }
    }

    /// Reads the stored form (base64url of the 32-byte private scalar).
    pub fn from_stored(stored: &str) -> Result<Self, String> {
        let bytes = URL_SAFE_NO_PAD.decode(stored).map_err(|e| format!("stored VAPID key is not base64url: {e}"))?;
        let secret = SecretKey::from_slice(&bytes).map_err(|e| format!("stored VAPID key is not a P-256 key: {e}"))?;
        Ok(Self::from_secret(secret))
    }

    pub fn to_stored(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret.to_bytes())
    }

    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }
}

/// Signs VAPID JWTs (RFC 8292) with the installation key. A JWT depends only
/// on the push service's origin, so it is signed once per origin and reused
/// until half its lifetime has passed — not once per message.
pub struct VapidSigner {
    key_pair: ring::signature::EcdsaKeyPair,
    public_b64: String,
    subject: String,
    cache: std::sync::Mutex<std::collections::HashMap<String, (std::sync::Arc<str>, i64)>>,
}

/// `exp` is 12 h ahead: RFC 8292 allows 24 h, and some services are stricter.
const JWT_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// Renewed after 6 h, well before it expires.
const JWT_RENEW_AFTER_MS: i64 = 6 * 3600 * 1000;

impl VapidSigner {
    pub fn new(keys: &VapidKeys, subject: &str) -> Result<Self, String> {
        let public = URL_SAFE_NO_PAD.decode(&keys.public_b64).map_err(|e| e.to_string())?;
        let key_pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &keys.secret.to_bytes(),
            &public,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| format!("VAPID key rejected by ring: {e}"))?;
        Ok(VapidSigner {
            key_pair,
            public_b64: keys.public_b64.clone(),
            subject: subject.to_owned(),
            cache: Default::default(),
        })
    }

    /// The `Authorization` header value for a push service `origin`
    /// (`scheme://host[:port]`, the port kept: it is part of `aud`).
    pub fn authorization(&self, origin: &str, now_ms: i64) -> Result<std::sync::Arc<str>, String> {
        let mut cache = self.cache.lock().map_err(|_| "VAPID cache poisoned".to_owned())?;
        if let Some((value, renew_at)) = cache.get(origin) {
            if now_ms < *renew_at {
                return Ok(value.clone());
            }
        }
        let jwt = self.sign(origin, now_ms)?;
        let value: std::sync::Arc<str> = format!("vapid t={jwt}, k={}", self.public_b64).into();
        cache.insert(origin.to_owned(), (value.clone(), now_ms + JWT_RENEW_AFTER_MS));
        Ok(value)
    }

    fn sign(&self, origin: &str, now_ms: i64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": origin,
            "exp": (now_ms + JWT_LIFETIME_MS) / 1000,
            "sub": self.subject,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .key_pair
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|e| format!("VAPID signing failed: {e}"))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn jwt_verifies_with_the_public_key_and_is_cached_per_origin() {
        let keys = VapidKeys::generate();
        let signer = VapidSigner::new(&keys, "mailto:ops@wismar.de").unwrap();
        let a = signer.authorization("https://push.example.org:8443", 0).unwrap();
        assert!(Arc::ptr_eq(&a, &signer.authorization("https://push.example.org:8443", 1000).unwrap()));
        let b = signer.authorization("https://push.example.org:8443", JWT_RENEW_AFTER_MS).unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "renewed after half its life");

        let jwt = a.strip_prefix("vapid t=").unwrap().split(',').next().unwrap();
        assert!(a.ends_with(&format!("k={}", keys.public_key())));
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.org:8443");
        assert_eq!(claims["exp"], JWT_LIFETIME_MS / 1000);
        let verifying = p256::ecdsa::VerifyingKey::from(keys.secret_key().public_key());
        let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        verifying.verify(input.as_bytes(), &sig).unwrap();
    }

    use std::sync::Arc;
}
