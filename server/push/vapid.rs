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
