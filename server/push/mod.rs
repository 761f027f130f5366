//! Web Push: which endpoints are acceptable, and the installation's VAPID keys.

pub mod allowlist;
pub mod vapid;
