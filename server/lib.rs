//! Herold: self-hostable, multi-tenant broadcast groups for towns, delivered
//! to residents by Web Push. See DESIGN.md for the shared picture.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod delivery;
pub mod devices;
pub mod error;
pub mod groups;
pub mod issues;
pub mod limits;
pub mod live;
pub mod lockout;
pub mod messages;
pub mod metrics;
pub mod migrate_db;
pub mod model;
pub mod moderation;
pub mod notices;
pub mod orgs;
pub mod photos;
pub mod push;
pub mod qa;
pub mod state;
pub mod talk;
pub mod tenants;
pub mod tokens;
pub mod transfer;
pub mod validate;
pub mod web;

pub use app::app;
pub use config::Config;
pub use state::{AppState, Clock};
