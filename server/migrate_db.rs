//! `herold migrate-db --from URL --to URL`: copies a whole installation from
//! one database into another, empty one — SQLite to PostgreSQL for a town
//! that outgrows the embedded default, or back — and then compares the row
//! counts of every table.
//!
//! Owns the list of tables and their copy order. It copies rows as they are
//! (ids, hashes, keys, timestamps): it must not interpret or change any of
//! them, so sessions, device tokens, API tokens, the VAPID key and the
//! residents' pseudonyms keep working on the new database. Both ends are
//! opened with the ordinary `db` code; the few backend-specific statements
//! are in `db::dialect`.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use diesel::connection::DefaultLoadingMode;
use diesel::prelude::*;

use crate::db::dialect::{self, on_inner};
use crate::db::{self, Backend, DbConn};

/// Rows per multi-row `INSERT`: 1,000 rows of the widest table (messages,
/// 19 columns) stay below SQLite's 32,766 and PostgreSQL's 65,535 bind
/// parameters per statement.
const BATCH_ROWS: usize = 1_000;

/// diesel's bookkeeping table: created by the migrations, not copied.
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Copies the rows of `$t` (a `schema` module) with `$insert`: streamed
/// in one query and inserted `BATCH_ROWS` at a time, or — for tables named
/// with `by KEY in pages of N` — read and inserted `N` rows at a time in key
/// order. Pages are for rows too big to hold a thousand of (photos):
/// PostgreSQL's default loading mode reads a whole result into memory.
macro_rules! copy_rows {
    ($from:ident, $to:ident, $t:ident, $row:ty, $insert:ident) => {{
        let rows = $t::table.select($t::all_columns).load_iter::<$row, DefaultLoadingMode>($from)?;
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut copied = 0;
        for row in rows {
            batch.push(row?);
            if batch.len() == BATCH_ROWS {
                copied += $insert($to, std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS)))?;
            }
        }
        if !batch.is_empty() {
            copied += $insert($to, batch)?;
        }
        Ok(copied)
    }};
    ($from:ident, $to:ident, $t:ident, $row:ty, $insert:ident, $key:ident, $page:literal) => {{
        // The key is the first column: the last row's `.0` is where the next page starts.
        let _key_is_the_first_column: $t::$key = $t::all_columns.0;
        // The empty string sorts before every id.
        let mut after = String::new();
        let mut copied = 0;
        loop {
            let rows: Vec<$row> = $t::table
                .select($t::all_columns)
                .filter($t::$key.gt(&after))
                .order($t::$key)
                .limit($page)
                .load($from)?;
            let Some(last) = rows.last() else { break };
            after = last.0.clone();
            let full = rows.len() as i64 == $page;
            copied += $insert($to, rows)?;
            if !full {
                break;
            }
        }
        Ok(copied)
    }};
}

/// Declares every table with its columns and their Rust types, in the order
/// the copy inserts them (a table after those its foreign keys point to).
/// Each arm checks at compile time that its columns are exactly
/// `schema.rs`'s `all_columns`, in order: a column added to a table there
/// and not here does not build. A table added to `schema.rs` and not here
/// makes [`copy`] refuse at run time (the table is in the database) and
/// fails `tests/api/migrate_db.rs`.
macro_rules! herold_tables {
    ($($table:ident $(by $key:ident in pages of $page:literal)? { $($column:ident : $ty:ty),+ $(,)? })+) => {
        /// Every Herold table, parents before children.
        pub const TABLES: &[&str] = &[$(stringify!($table)),+];

        /// Copies one table in batches; returns the rows inserted.
        fn copy_table(table: &str, from: &mut DbConn, to: &mut DbConn) -> anyhow::Result<u64> {
            match table {
                $(stringify!($table) => {
                    use crate::db::schema::$table as t;
                    let _all_columns_listed: ($(t::$column,)+) = t::all_columns;
                    type Row = ($($ty,)+);
                    let insert = |to: &mut DbConn, rows: Vec<Row>| -> anyhow::Result<u64> {
                        let values: Vec<_> =
                            rows.into_iter().map(|($($column,)+)| ($(t::$column.eq($column),)+)).collect();
                        Ok(on_inner!(to, |c| diesel::insert_into(t::table).values(values).execute(c))? as u64)
                    };
                    copy_rows!(from, to, t, Row, insert $(, $key, $page)?)
                })+
                other => bail!("migrate-db does not know the table {other}"),
            }
        }

        fn count_rows(table: &str, conn: &mut DbConn) -> anyhow::Result<u64> {
            let n: i64 = match table {
                $(stringify!($table) => crate::db::schema::$table::table.count().get_result(conn)?,)+
                other => bail!("migrate-db does not know the table {other}"),
            };
            Ok(n as u64)
        }
    };
}

herold_tables! {
    tenants { id: String, slug: String, name: String, created_at: i64 }
    users {
        id: String, email: String, password_hash: Option<String>, invite_hash: Option<String>,
        invite_expires_at: Option<i64>, is_platform_admin: bool, failed_logins: i32, locked_until: Option<i64>,
        created_at: i64,
    }
    organizations {
        id: String, tenant_id: String, name: String, description: String, status: String,
        status_reason: Option<String>, created_at: i64, updated_at: i64, kind: String,
    }
    memberships { organization_id: String, user_id: String, role: String, created_at: i64 }
    city_admins { tenant_id: String, user_id: String, created_at: i64 }
    broadcast_groups {
        id: String, tenant_id: String, organization_id: String, name: String, description: String,
        category: String, verified: bool, status: String, created_at: i64, updated_at: i64,
        subscriber_count: i64,
    }
    messages {
        id: String, tenant_id: String, group_id: String, title: String, body: String, url: Option<String>,
        urgency: String, ttl_seconds: i32, publish_at: i64, hidden: bool, hidden_reason: Option<String>,
        created_by: String, created_at: i64, recipients: i64, delivered: i64, gone: i64, failed: i64,
        last_failure: Option<String>, kind: String,
    }
    devices {
        id: String, token_hash: String, endpoint: String, p256dh: String, auth: String, created_at: i64,
        last_seen_at: i64,
    }
    subscriptions { device_id: String, group_id: String, created_at: i64 }
    fanout_jobs {
        id: String, message_id: String, run_at: i64, state: String, cursor: Option<String>,
        leased_until: Option<i64>, attempts: i32, created_at: i64, finished_at: Option<i64>, scope: String,
    }
    delivery_retries {
        id: String, message_id: String, device_id: String, attempts: i32, next_at: i64,
        leased_until: Option<i64>, last_error: String, created_at: i64,
    }
    device_notices {
        id: String, device_id: String, kind: String, payload: String, urgency: String, expires_at: i64,
        attempts: i32, next_at: i64, leased_until: Option<i64>, created_at: i64,
    }
    subscriber_counts { group_id: String, day: String, subscribers: i64 }
    refresh_tokens {
        id: String, user_id: String, family_id: String, token_hash: String, expires_at: i64,
        revoked_at: Option<i64>, created_at: i64,
    }
    api_tokens {
        id: String, organization_id: String, group_id: String, name: String, token_hash: String,
        created_by: String, created_at: i64, last_used_at: Option<i64>, revoked_at: Option<i64>,
    }
    reports {
        id: String, tenant_id: String, message_id: String, device_id: Option<String>, reason: String,
        details: String, status: String, resolution: Option<String>, created_at: i64,
        resolved_at: Option<i64>, resolved_by: Option<String>,
    }
    audit_log {
        id: String, tenant_id: Option<String>, actor: String, action: String, target_type: String,
        target_id: String, reason: Option<String>, created_at: i64,
    }
    // Residents talking back: issue reports with their conversation and
    // photos, blocks, question hours. The pseudonyms on these rows are
    // copied as they are, and so is the key behind them (server_secrets).
    group_intakes { group_id: String, open: bool, categories: String, board: bool, updated_at: i64 }
    issues {
        id: String, tenant_id: String, organization_id: String, group_id: String, device_id: String,
        author: String, category: String, body: String, lat: Option<f64>, lon: Option<f64>,
        address: Option<String>, lang: String, status: String, public: bool, created_at: i64, updated_at: i64,
    }
    issue_posts {
        id: String, issue_id: String, from_org: bool, user_id: Option<String>, body: Option<String>,
        status: Option<String>, created_at: i64,
    }
    // Up to a few MB each (re-encoded JPEG): 16 at a time, not a thousand.
    issue_photos by id in pages of 16 {
        id: String, issue_id: String, content_type: String, width: i32, height: i32, bytes: i32, data: Vec<u8>,
        created_at: i64,
    }
    device_blocks {
        id: String, organization_id: String, device_id: String, author: String, reason: String,
        created_by: String, created_at: i64,
    }
    qa_sessions {
        id: String, tenant_id: String, organization_id: String, group_id: String, title: String,
        description: String, starts_at: i64, ends_at: i64, message_id: Option<String>, cancelled: bool,
        version: i64, created_by: String, created_at: i64,
    }
    qa_questions {
        id: String, session_id: String, device_id: Option<String>, author: String, body: String, lang: String,
        status: String, answer: Option<String>, answer_public: bool, answered_by: Option<String>,
        answered_at: Option<i64>, version: i64, created_at: i64,
    }
    qa_votes { question_id: String, device_id: String, created_at: i64 }
    // The VAPID, token-signing and pseudonym keys: without them every
    // resident's push subscription and every session would be void on the
    // new database, and residents would get new pseudonyms.
    server_secrets { name: String, value: String, created_at: i64 }
}

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// What a copy did.
#[derive(Debug)]
pub struct Report {
    pub tables: Vec<TableCount>,
    pub seconds: f64,
}

impl Report {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.target).sum()
    }

    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.tables.iter().filter(|t| t.source != t.target).collect()
    }

    /// The table of counts the command prints.
    pub fn render(&self) -> String {
        let width = TABLES.iter().map(|t| t.len()).max().unwrap_or(5);
        let mut out = format!("{:<width$}  {:>10}  {:>10}\n", "table", "source", "target");
        for t in &self.tables {
            let flag = if t.source == t.target { "" } else { "  MISMATCH" };
            out.push_str(&format!("{:<width$}  {:>10}  {:>10}{flag}\n", t.table, t.source, t.target));
        }
        out
    }
}

/// The command: copy, print the counts, fail on any difference.
pub fn run(from: &str, to: &str) -> anyhow::Result<()> {
    let report = copy(from, to)?;
    print!("{}", report.render());
    let mismatches = report.mismatches();
    if !mismatches.is_empty() {
        let names: Vec<&str> = mismatches.iter().map(|t| t.table).collect();
        bail!("migrate-db: row counts differ in {} after the copy", names.join(", "));
    }
    println!(
        "copied {} rows in {} tables in {:.1} s; row counts verified",
        report.rows(),
        report.tables.len(),
        report.seconds
    );
    Ok(())
}

/// Opens both databases, checks them, copies every table in one transaction
/// on the target (a failed copy leaves it empty, so it can simply be run
/// again) from one snapshot of the source, and counts both sides.
pub fn copy(from: &str, to: &str) -> anyhow::Result<Report> {
    let started = Instant::now();
    let source = Backend::from_url(from).map_err(|e| anyhow!("--from: {e}"))?;
    let target = Backend::from_url(to).map_err(|e| anyhow!("--to: {e}"))?;
    if source == target {
        bail!("--from and --to name the same database");
    }
    if let Backend::Sqlite(path) = &source {
        // Opening a missing SQLite file would create an empty one.
        if !std::path::Path::new(path).is_file() {
            bail!("--from: there is no SQLite database at {path}");
        }
    }
    let mut from_conn = source.connect().map_err(|e| anyhow!("--from: cannot open the database: {e}"))?;
    check_source(&mut from_conn)?;

    let pool = db::pool(&target, Some(1)).map_err(|e| anyhow!("--to: {e}"))?;
    let mut to_conn = pool.get().context("--to: connecting to the database")?;
    db::run_migrations(&mut to_conn).map_err(|e| anyhow!("--to: {e}"))?;
    check_tables(&mut to_conn, "--to")?;

    let tables = dialect::snapshot_transaction(&mut from_conn, |from_conn| {
        let copied = dialect::write_transaction(&mut to_conn, |to_conn| {
            refuse_unless_empty(to_conn)?;
            let mut copied = Vec::with_capacity(TABLES.len());
            for table in TABLES {
                let rows = copy_table(table, from_conn, to_conn).with_context(|| format!("copying {table}"))?;
                tracing::info!(table, rows, "copied");
                copied.push(rows);
            }
            Ok::<_, anyhow::Error>(copied)
        })?;
        // Counted in the same snapshot the rows were read from.
        let mut tables = Vec::with_capacity(TABLES.len());
        for (table, _) in TABLES.iter().zip(copied) {
            tables.push(TableCount { table, source: count_rows(table, from_conn)?, target: 0 });
        }
        Ok::<_, anyhow::Error>(tables)
    })?;
    // And the target after the commit, from what it actually holds.
    let mut tables = tables;
    for t in &mut tables {
        t.target = count_rows(t.table, &mut to_conn)?;
    }
    Ok(Report { tables, seconds: started.elapsed().as_secs_f64() })
}

/// The source must be a Herold database at exactly this binary's migration
/// version: an older one would lack columns, a newer one hold data this
/// binary does not know to copy.
fn check_source(conn: &mut DbConn) -> anyhow::Result<()> {
    let tables = dialect::table_names(conn).context("--from: listing the tables")?;
    if !tables.iter().any(|t| t == MIGRATIONS_TABLE) {
        bail!("--from: not a Herold database (no migrations were ever applied to it)");
    }
    let status = db::migration_status(conn).map_err(|e| anyhow!("--from: {e}"))?;
    if !status.unknown.is_empty() {
        bail!(
            "--from: the database was migrated by a newer Herold (unknown migrations {}); \
             run migrate-db with that version",
            status.unknown.join(", ")
        );
    }
    if !status.pending.is_empty() {
        bail!(
            "--from: the database is not fully migrated ({} pending: {}); \
             run `herold migrate` on it first (DATABASE_URL={{--from}})",
            status.pending.len(),
            status.pending.join(", ")
        );
    }
    check_tables(conn, "--from")
}

/// Refuses a database holding a table this module does not copy: it would
/// be left behind silently.
fn check_tables(conn: &mut DbConn, side: &str) -> anyhow::Result<()> {
    let known: BTreeSet<&str> = TABLES.iter().copied().chain([MIGRATIONS_TABLE]).collect();
    let unknown: Vec<String> = dialect::table_names(conn)
        .with_context(|| format!("{side}: listing the tables"))?
        .into_iter()
        .filter(|t| !known.contains(t.as_str()))
        .collect();
    if !unknown.is_empty() {
        bail!("{side}: migrate-db does not know how to copy the table(s) {}", unknown.join(", "));
    }
    Ok(())
}

/// The target must hold no row at all — not even the keys a `herold serve`
/// started on it generates: those would differ from the source's.
fn refuse_unless_empty(conn: &mut DbConn) -> anyhow::Result<()> {
    let mut filled = Vec::new();
    for table in TABLES {
        let n = count_rows(table, conn)?;
        if n > 0 {
            filled.push(format!("{table} ({n})"));
        }
    }
    if !filled.is_empty() {
        bail!(
            "--to: the target database is not empty ({}); migrate-db copies only into a new, empty database \
             (one that no `herold serve` has started on)",
            filled.join(", ")
        );
    }
    Ok(())
}
