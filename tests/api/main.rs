//! Herold's HTTP-level integration tests: one binary, every scenario on
//! SQLite and on PostgreSQL (see `harness`).

#[macro_use]
mod harness;

mod admin;
mod authz;
mod cli;
mod delivery;
mod errors;
mod migrations;
mod organizations;
mod public;
mod push_service;
mod residents;
mod smoke;
