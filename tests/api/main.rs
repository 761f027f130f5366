//! Herold's HTTP-level integration tests: one binary, every scenario on
//! SQLite and on PostgreSQL (see `harness`).

#[macro_use]
mod harness;

mod smoke;
