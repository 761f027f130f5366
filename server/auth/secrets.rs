//! Random identifiers and bearer secrets, and their storage hashes.
//!
//! Ids are 128 random bits, base64url: opaque, not countable. Bearer secrets
//! (device, refresh, API, invitation tokens) are 256 random bits with a short
//! prefix that says what they are; only their SHA-256 is stored. A fast hash
//! is right here: the secrets are random, not guessable passwords.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh bearer secret such as `hdv_…` (device) or `hrt_…` (refresh).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

pub const DEVICE_PREFIX: &str = "hdv";
pub const REFRESH_PREFIX: &str = "hrt";
pub const INVITE_PREFIX: &str = "hin";
