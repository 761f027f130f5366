//! Message encryption for Web Push (RFC 8291 over RFC 8188 `aes128gcm`):
//! a fresh ephemeral P-256 key and a fresh 16-byte salt for every message
//! to every device, one record. Built on `ring` (fast P-256, AES-GCM, HKDF);
//! the test push service decrypts with an independent implementation.

use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, agreement, hkdf};

/// Record size announced in the header; one record holds the whole message.
const RECORD_SIZE: u32 = 4096;
/// Header (salt 16 + rs 4 + idlen 1 + key 65) + delimiter 1 + tag 16.
pub const OVERHEAD: usize = 103;
/// Largest plaintext that fits one 4096-byte record.
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - OVERHEAD;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncryptError {
    #[error("the device's p256dh key is not a P-256 point")]
    BadDeviceKey,
    #[error("the device's auth secret is not 16 bytes")]
    BadAuthSecret,
    #[error("payload of {0} bytes is larger than {MAX_PLAINTEXT}")]
    TooLarge(usize),
    #[error("crypto failure")]
    Crypto,
}

impl From<ring::error::Unspecified> for EncryptError {
    fn from(_: ring::error::Unspecified) -> Self {
        EncryptError::Crypto
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), EncryptError> {
    prk.expand(info, Len(out.len()))?.fill(out)?;
    Ok(())
}

/// Encrypts `plaintext` for the device with public key `ua_public` (65 bytes,
/// uncompressed) and `auth_secret` (16 bytes). Returns the request body.
pub fn encrypt(ua_public: &[u8], auth_secret: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    encrypt_with(&SystemRandom::new(), ua_public, auth_secret, plaintext)
}

/// `encrypt` with the randomness given (the RFC's test vector fixes it).
pub fn encrypt_with(
    rng: &dyn SecureRandom,
    ua_public: &[u8],
    auth_secret: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if ua_public.len() != 65 || ua_public[0] != 4 {
        return Err(EncryptError::BadDeviceKey);
    }
    if auth_secret.len() != 16 {
        return Err(EncryptError::BadAuthSecret);
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncryptError::TooLarge(plaintext.len()));
    }
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    let ephemeral = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng)?;
    let as_public = ephemeral.compute_public_key()?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ua_public);
    let mut ecdh_secret = [0u8; 32];
    agreement::agree_ephemeral(ephemeral, &peer, |shared| ecdh_secret.copy_from_slice(shared))
        .map_err(|_| EncryptError::BadDeviceKey)?;

    // RFC 8291 §3.3: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0 || ua_public || as_public, 32)
    let prk_key = hkdf::Salt::new(hkdf::HKDF_SHA256, auth_secret).extract(&ecdh_secret);
    let mut ikm = [0u8; 32];
    expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public.as_ref()], &mut ikm)?;

    // RFC 8188 §2.2–2.3: content-encryption key and nonce from the salt.
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&ikm);
    let mut cek = [0u8; 16];
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    let mut nonce = [0u8; 12];
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;

    let mut body = Vec::with_capacity(plaintext.len() + OVERHEAD);
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_ref());
    let header_len = body.len();
    body.extend_from_slice(plaintext);
    body.push(2); // last-record delimiter, no padding
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek)?);
    let tag = key.seal_in_place_separate_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut body[header_len..],
    )?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// RFC 8291 Appendix A: with the RFC's salt and sender key, the output
    /// must be the RFC's message byte for byte.
    #[test]
    #[allow(deprecated)]
    fn rfc8291_appendix_a() {
        let salt = b64("DGv6ra1nlYgDCS1FRnbzlw");
        let as_private = b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let slices: [&[u8]; 2] = [&salt, &as_private];
        let rng =
            ring::test::rand::FixedSliceSequenceRandom { bytes: &slices, current: core::cell::UnsafeCell::new(0) };
        let ua = b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let body = encrypt_with(&rng, &ua, &auth, b"When I grow up, I want to be a watermelon").unwrap();
        let expected = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), expected);
    }

    #[test]
    fn sizes_add_up() {
        let ua = b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let a = encrypt(&ua, &auth, b"hello").unwrap();
        let b = encrypt(&ua, &auth, b"hello").unwrap();
        assert_eq!(a.len(), 5 + OVERHEAD);
        assert_ne!(a[..16], b[..16], "fresh salt per message");
        assert_ne!(a[21..86], b[21..86], "fresh ephemeral key per message");
        assert_eq!(encrypt(&ua, &auth, &vec![0; MAX_PLAINTEXT + 1]), Err(EncryptError::TooLarge(MAX_PLAINTEXT + 1)));
        assert_eq!(encrypt(&ua[..64], &auth, b"x"), Err(EncryptError::BadDeviceKey));
    }
}
