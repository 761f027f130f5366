//! Short-lived access tokens: HS256 JWTs whose key lives in the database, so
//! every instance verifies what any instance issued. They carry only the user
//! id; roles are read from the database on each request so that a removed
//! member or a suspended organization loses access at once.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ACCESS_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    typ: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        JwtKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    pub fn issue(&self, user_id: &str, now_ms: i64) -> Result<String, String> {
        let iat = now_ms / 1000;
        let claims = Claims { sub: user_id.to_owned(), iat, exp: iat + ACCESS_TTL_SECS, typ: "access".into() };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| format!("jwt encode: {e}"))
    }

    /// The user id of a valid, unexpired access token at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Option<String> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the app clock (tests move it).
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = decode::<Claims>(token, &self.decoding, &validation).ok()?;
        let claims = data.claims;
        (claims.typ == "access" && claims.exp > now_ms / 1000).then_some(claims.sub)
    }
}
