//! The database: one connection type for both backends, the pool, the
//! embedded migrations, and the few backend-specific statements.
//!
//! Everything outside this module talks to `DbConn` through diesel's common
//! query builder. What the common subset cannot express (upserts, SQLite
//! `PRAGMA`s, row locks) lives in [`dialect`] — nowhere else.

pub mod dialect;
pub mod schema;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

diesel::define_sql_function! {
    /// Unicode-aware `lower()`: PostgreSQL's own; on SQLite replaced per
    /// connection by Rust's `to_lowercase` (see [`Backend::connect`]).
    /// Only for NOT NULL text.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Built by [`Backend::connect`], never by
/// `MultiConnection::establish`, which would guess the backend by trying each.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Which database a `DATABASE_URL` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Postgres(String),
    /// Path of the SQLite file.
    Sqlite(String),
}

impl Backend {
    /// Reads `postgres://…`/`postgresql://…` or `sqlite://path` (also
    /// `sqlite:path` and a bare path ending in `.db`).
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(url.to_owned()));
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(format!("'{url}' is neither postgres://… nor sqlite://path"));
        }
        Ok(Backend::Sqlite(path.to_owned()))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    pub fn connect(&self) -> ConnectionResult<DbConn> {
        match self {
            Backend::Postgres(url) => PgConnection::establish(url).map(DbConn::Pg),
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // busy_timeout makes a second writer wait instead of failing
                // with SQLITE_BUSY; foreign keys are off by default in SQLite.
                // The file was switched to WAL by `pool` before any of these
                // connections opened (the mode is stored in the file).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
                // SQLite's own lower() folds ASCII only; the directory search
                // must match "übungen" to "Übungen" as PostgreSQL does.
                lower_utils::register_impl(&mut conn, |text: String| text.to_lowercase())
                    .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

/// r2d2 manager that connects to the backend chosen from the URL.
pub struct Manager {
    backend: Backend,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        self.backend.connect().map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// Builds the pool. SQLite gets a small pool: it has one writer anyway.
pub fn pool(backend: &Backend, max_size: Option<u32>) -> Result<Pool, String> {
    if let Backend::Sqlite(path) = backend {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
    }
    if let Backend::Sqlite(path) = backend {
        // WAL lets readers run beside the one writer. Switching a fresh file
        // to WAL takes an exclusive lock that SQLite does not always wait for,
        // so it happens once here, before the pool opens its connections side
        // by side (they failed with "database is locked" when each tried it).
        let mut conn = SqliteConnection::establish(path).map_err(|e| format!("cannot open {path}: {e}"))?;
        conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;")
            .map_err(|e| format!("cannot switch {path} to WAL: {e}"))?;
    }
    let size = max_size.unwrap_or(if backend.is_postgres() { 16 } else { 8 });
    r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(10))
        .build(Manager { backend: backend.clone() })
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

/// Applies every pending migration of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, String> {
    dialect::lock_for_migrations(conn).map_err(|e| format!("migration lock: {e}"))?;
    let result = match conn {
        DbConn::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    let unlocked = dialect::unlock_after_migrations(conn);
    let count = result.map_err(|e| format!("migration failed: {e}"))?;
    unlocked.map_err(|e| format!("migration unlock: {e}"))?;
    Ok(count)
}

/// How a database's applied migrations compare with those this binary embeds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Embedded but not applied (names).
    pub pending: Vec<String>,
    /// Applied but unknown to this binary (versions): a newer Herold ran here.
    pub unknown: Vec<String>,
}

/// Compares without changing anything — on a database that has diesel's
/// bookkeeping table (diesel would create it otherwise).
pub fn migration_status(conn: &mut DbConn) -> Result<MigrationStatus, String> {
    use diesel::migration::MigrationSource;
    fn compare<DB: diesel::backend::Backend>(
        source: &EmbeddedMigrations,
        applied: Vec<diesel::migration::MigrationVersion<'static>>,
    ) -> Result<MigrationStatus, String>
    where
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let embedded = MigrationSource::<DB>::migrations(source).map_err(|e| e.to_string())?;
        let applied: Vec<String> = applied.iter().map(ToString::to_string).collect();
        let known: Vec<String> = embedded.iter().map(|m| m.name().version().to_string()).collect();
        Ok(MigrationStatus {
            pending: embedded
                .iter()
                .filter(|m| !applied.contains(&m.name().version().to_string()))
                .map(|m| m.name().to_string())
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }
    let status = match conn {
        DbConn::Pg(c) => c
            .applied_migrations()
            .map_err(|e| e.to_string())
            .and_then(|applied| compare::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS, applied)),
        DbConn::Sqlite(c) => c
            .applied_migrations()
            .map_err(|e| e.to_string())
            .and_then(|applied| compare::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS, applied)),
    };
    status.map_err(|e| format!("reading the applied migrations: {e}"))
}
