//! Herold's HTTP-level integration tests: one binary, every scenario on
//! SQLite and on PostgreSQL (see `harness`).

#[macro_use]
mod harness;

mod admin;
mod alerts;
mod authz;
mod cli;
mod delivery;
mod delivery_process;
mod deploy;
mod errors;
mod issues;
mod limits;
mod migrate_db;
mod migrations;
mod moderation;
mod organizations;
mod photos_fixtures;
mod public;
mod push_https;
mod push_service;
mod pwa;
mod qa;
mod reports;
mod residents;
mod smoke;
mod tokens;
mod transfer;
