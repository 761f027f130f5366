//! Web Push: which endpoints are acceptable, the installation's VAPID keys,
//! message encryption, the payload, and sending one request.

pub mod allowlist;
pub mod crypto;
pub mod payload;
pub mod sender;
pub mod vapid;
