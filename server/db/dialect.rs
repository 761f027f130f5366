//! The named escape hatch: statements diesel's `MultiConnection` cannot
//! express through the common subset. Each function matches on the backend
//! and runs the same (or the backend's own) statement on the inner connection.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::schema::{memberships, subscriptions};
use super::DbConn;

/// Runs `$body` with `$c` bound to the inner connection of either backend.
macro_rules! on_inner {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            DbConn::Pg($c) => $body,
            DbConn::Sqlite($c) => $body,
        }
    };
}
/// Also for `migrate_db`'s multi-row inserts, which `MultiConnection` lacks.
pub(crate) use on_inner;

/// Adds a subscription unless it exists (idempotent subscribe). Returns true
/// when a row was inserted.
pub fn insert_subscription(conn: &mut DbConn, device_id: &str, group_id: &str, now: i64) -> QueryResult<bool> {
    let row = (
        subscriptions::device_id.eq(device_id),
        subscriptions::group_id.eq(group_id),
        subscriptions::created_at.eq(now),
    );
    let n =
        on_inner!(conn, |c| diesel::insert_into(subscriptions::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(n > 0)
}

/// Adds a membership unless the user already has one in that organization.
pub fn insert_membership(
    conn: &mut DbConn,
    organization_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> QueryResult<bool> {
    let row = (
        memberships::organization_id.eq(organization_id),
        memberships::user_id.eq(user_id),
        memberships::role.eq(role),
        memberships::created_at.eq(now),
    );
    let n =
        on_inner!(conn, |c| diesel::insert_into(memberships::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(n > 0)
}

/// One transaction for work that may write. On SQLite it is `BEGIN
/// IMMEDIATE`: the write lock is taken up front, waiting up to
/// `busy_timeout` for another writer. A plain (deferred) `BEGIN` that reads
/// first and writes later fails at once with "database is locked" when
/// another connection committed in between (WAL's `SQLITE_BUSY_SNAPSHOT`,
/// which `busy_timeout` cannot help): concurrent requests answered 500.
/// PostgreSQL: an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConn as Connection>::TransactionManager;
    let DbConn::Sqlite(c) = conn else { return conn.transaction(work) };
    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Serializes migrations of several instances starting at once on one
/// PostgreSQL (an advisory lock held for the session); SQLite needs nothing.
pub fn lock_for_migrations(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => c.batch_execute("SELECT pg_advisory_lock(4818110)"),
        DbConn::Sqlite(_) => Ok(()),
    }
}

pub fn unlock_after_migrations(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => c.batch_execute("SELECT pg_advisory_unlock(4818110)"),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Stores an installation secret unless another instance stored it first.
pub fn insert_secret_if_absent(conn: &mut DbConn, name: &str, value: &str, now: i64) -> QueryResult<()> {
    use super::schema::server_secrets;
    let row = (server_secrets::name.eq(name), server_secrets::value.eq(value), server_secrets::created_at.eq(now));
    on_inner!(conn, |c| diesel::insert_into(server_secrets::table).values(row).on_conflict_do_nothing().execute(c))?;
    Ok(())
}

/// The oldest due fan-out job nobody holds. On PostgreSQL the row is locked
/// with `FOR UPDATE SKIP LOCKED`, so instances racing for work pick
/// different jobs instead of queueing behind one another; SQLite has one
/// writer and needs no lock. The caller's conditional update is the claim.
pub fn select_due_job(conn: &mut DbConn, now: i64) -> QueryResult<Option<(String, String, Option<String>, String)>> {
    use super::schema::fanout_jobs as j;
    macro_rules! due {
        () => {
            j::table
                .filter(j::state.ne("done"))
                .filter(j::run_at.le(now))
                .filter(j::leased_until.is_null().or(j::leased_until.lt(now)))
                .order((j::run_at.asc(), j::id.asc()))
                .select((j::id, j::message_id, j::cursor, j::scope))
                .limit(1)
        };
    }
    match conn {
        DbConn::Pg(c) => due!().for_update().skip_locked().first(c).optional(),
        DbConn::Sqlite(c) => due!().first(c).optional(),
    }
}

/// Ids of up to `limit` due retries nobody holds (`SKIP LOCKED` as above).
pub fn select_due_retries(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<Vec<String>> {
    use super::schema::delivery_retries as r;
    macro_rules! due {
        () => {
            r::table
                .filter(r::next_at.le(now))
                .filter(r::leased_until.is_null().or(r::leased_until.lt(now)))
                .order((r::next_at.asc(), r::id.asc()))
                .select(r::id)
                .limit(limit)
        };
    }
    match conn {
        DbConn::Pg(c) => due!().for_update().skip_locked().load(c),
        DbConn::Sqlite(c) => due!().load(c),
    }
}

/// Ids of up to `limit` due device notices nobody holds (`SKIP LOCKED` as above).
pub fn select_due_notices(conn: &mut DbConn, now: i64, limit: i64) -> QueryResult<Vec<String>> {
    use super::schema::device_notices as n;
    macro_rules! due {
        () => {
            n::table
                .filter(n::next_at.le(now))
                .filter(n::leased_until.is_null().or(n::leased_until.lt(now)))
                .order((n::next_at.asc(), n::id.asc()))
                .select(n::id)
                .limit(limit)
        };
    }
    match conn {
        DbConn::Pg(c) => due!().for_update().skip_locked().load(c),
        DbConn::Sqlite(c) => due!().load(c),
    }
}

/// Tells the `LISTEN`ing delivery engines of every instance that work is
/// due. On PostgreSQL a `NOTIFY` inside the caller's transaction: sent on
/// commit, dropped on rollback, and several in one transaction folded into
/// one. SQLite serves one instance per file, whose local wake-up suffices.
pub fn notify_delivery(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => c.batch_execute("NOTIFY herold_jobs"),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// A dedicated PostgreSQL connection (not from the pool) that `LISTEN`s for
/// [`notify_delivery`].
pub struct JobListener {
    conn: PgConnection,
}

impl JobListener {
    /// `Ok(None)` on SQLite: nothing to listen to.
    pub fn connect(backend: &super::Backend) -> ConnectionResult<Option<JobListener>> {
        let super::Backend::Postgres(url) = backend else { return Ok(None) };
        let mut conn = PgConnection::establish(url)?;
        conn.batch_execute("LISTEN herold_jobs").map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(Some(JobListener { conn }))
    }

    /// Takes the notifications received so far, without waiting; returns
    /// how many. An error means the connection is gone.
    pub fn take(&mut self) -> QueryResult<usize> {
        let mut count = 0;
        for notification in self.conn.notifications_iter() {
            notification?;
            count += 1;
        }
        Ok(count)
    }

    /// A round trip: finds a connection that died silently.
    pub fn check(&mut self) -> QueryResult<()> {
        self.conn.batch_execute("SELECT 1")
    }
}

/// Writes a consistent copy of a SQLite database into `file` (absolute, and
/// empty or absent) while the server keeps reading and writing: `VACUUM
/// INTO` reads one snapshot. The name is a bound parameter, never spliced
/// into the SQL. PostgreSQL has `pg_dump` for this: `Ok(false)`.
pub fn backup_sqlite_into(conn: &mut DbConn, file: &str) -> QueryResult<bool> {
    match conn {
        DbConn::Sqlite(c) => {
            diesel::sql_query("VACUUM INTO ?").bind::<diesel::sql_types::Text, _>(file).execute(c)?;
            Ok(true)
        }
        DbConn::Pg(_) => Ok(false),
    }
}

/// A read-only transaction that sees one snapshot of the whole database, so
/// a copy of every table is consistent while a server keeps writing:
/// PostgreSQL's `REPEATABLE READ`; on SQLite (WAL) a deferred transaction
/// reads one snapshot from its first read on.
pub fn snapshot_transaction<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <DbConn as Connection>::TransactionManager;
    match conn {
        DbConn::Pg(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?
        }
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED")?,
    }
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// The tables of the database (diesel's `__diesel_schema_migrations`
/// included), sorted: `sqlite_master` or PostgreSQL's `information_schema`.
pub fn table_names(conn: &mut DbConn) -> QueryResult<Vec<String>> {
    let rows: Vec<TableName> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY name",
        )
        .load(c)?,
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .load(c)?,
    };
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Many rows in one `INSERT … VALUES (…), (…)` (diesel's multi-backend
/// connection has no batch insert; each backend's own connection has).
/// Used where a town's devices are copied by the hundred thousand.
pub fn insert_rows<T, R>(conn: &mut DbConn, table: T, rows: &[R]) -> QueryResult<usize>
where
    T: diesel::Table,
    for<'a> &'a [R]: diesel::Insertable<T>,
    for<'a> diesel::query_builder::InsertStatement<T, <&'a [R] as diesel::Insertable<T>>::Values>:
        diesel::query_dsl::methods::ExecuteDsl<PgConnection> + diesel::query_dsl::methods::ExecuteDsl<SqliteConnection>,
{
    if rows.is_empty() {
        return Ok(0);
    }
    on_inner!(conn, |c| diesel::insert_into(table).values(rows).execute(c))
}
