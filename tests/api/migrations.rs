//! Migrations in pairs (STYLE.md point 4): the folder names under
//! `migrations/sqlite` and `migrations/postgres` match one to one, every
//! migration runs up, down and up again cleanly on a fresh database, and both
//! backends end with the tables, columns, column types, nullability and
//! indexes that `server/db/schema.rs` declares.
//!
//! The introspection runs raw SQL on the inner connection of each backend:
//! `sqlite_master` + `pragma_table_info` on SQLite, `information_schema` and
//! `pg_catalog` on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::MigrationHarness;
use herold::db::{Backend, DbConn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

use crate::harness::{Db, TestDb};

/// diesel's own bookkeeping table: the only one left when all is reverted.
const DIESEL_TABLE: &str = "__diesel_schema_migrations";

/// One column as both backends and `schema.rs` can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// diesel's name of the SQL type (`Text`, `BigInt`, `Integer`, `Bool`, …).
    sql_type: String,
    nullable: bool,
}

/// table → column → description.
type Schema = BTreeMap<String, BTreeMap<String, Column>>;

// ---- the migration folders ----

fn migrations_dir(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend)
}

/// The migration folder names of one backend, sorted.
fn folder_names(backend: &str) -> Vec<String> {
    let dir = migrations_dir(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.file_type().expect("file type").is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn folder_names_match_one_to_one_and_each_has_up_and_down() {
    let sqlite = folder_names("sqlite");
    let postgres = folder_names("postgres");
    assert!(!sqlite.is_empty(), "no migrations under migrations/sqlite");
    assert_eq!(sqlite, postgres, "migrations/sqlite and migrations/postgres must hold the same folder names");
    for backend in ["sqlite", "postgres"] {
        for name in folder_names(backend) {
            for file in ["up.sql", "down.sql"] {
                let path = migrations_dir(backend).join(&name).join(file);
                let sql = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("migrations/{backend}/{name}/{file} is missing: {e}"));
                assert!(
                    sql.lines().any(|l| !l.trim().is_empty() && !l.trim().starts_with("--")),
                    "migrations/{backend}/{name}/{file} has no statement"
                );
            }
        }
    }
}

#[test]
fn embedded_migrations_are_exactly_the_folders() {
    let sqlite: Vec<String> = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .expect("embedded sqlite migrations")
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let postgres: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
        .expect("embedded postgres migrations")
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let (mut sqlite_sorted, mut postgres_sorted) = (sqlite.clone(), postgres.clone());
    sqlite_sorted.sort();
    postgres_sorted.sort();
    assert_eq!(sqlite_sorted, folder_names("sqlite"), "the binary embeds other sqlite migrations than the folders");
    assert_eq!(
        postgres_sorted,
        folder_names("postgres"),
        "the binary embeds other postgres migrations than the folders"
    );
}

// ---- introspection ----

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Maps a backend's type name to diesel's name for it.
fn canonical_type(declared: &str) -> String {
    match declared.trim().to_ascii_lowercase().as_str() {
        "text" | "character varying" | "varchar" => "Text",
        "bigint" | "int8" => "BigInt",
        "integer" | "int" | "int4" => "Integer",
        "smallint" | "int2" => "SmallInt",
        "boolean" | "bool" => "Bool",
        "blob" | "bytea" => "Binary",
        "double precision" | "float8" => "Double",
        "real" | "float4" => "Float",
        other => return format!("<{other}>"),
    }
    .to_owned()
}

fn connect(db: &TestDb) -> DbConn {
    Backend::from_url(&db.url).expect("test database URL").connect().expect("connect to the test database")
}

/// Every table's columns, diesel's bookkeeping table included.
fn schema_of(conn: &mut DbConn) -> Schema {
    let rows: Vec<ColumnRow> = match conn {
        // A SQLite `TEXT PRIMARY KEY` column is nullable by a historical quirk,
        // but the application (and schema.rs) treats primary keys as NOT NULL.
        DbConn::Sqlite(c) => sql_query(
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                    (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY m.name, p.cid",
        )
        .load(c),
        DbConn::Pg(c) => sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                    data_type::text AS data_type, (is_nullable = 'YES') AS nullable \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
        )
        .load(c),
    }
    .expect("introspect columns");
    let mut schema = Schema::new();
    for row in rows {
        schema
            .entry(row.table_name)
            .or_default()
            .insert(row.column_name, Column { sql_type: canonical_type(&row.data_type), nullable: row.nullable });
    }
    schema
}

fn table_names(conn: &mut DbConn) -> BTreeSet<String> {
    schema_of(conn).into_keys().collect()
}

/// Indexes created by the migrations (not those backing a primary key or a
/// UNIQUE constraint, whose names differ by backend).
fn index_names(conn: &mut DbConn) -> BTreeSet<String> {
    let rows: Vec<NameRow> = match conn {
        DbConn::Sqlite(c) => {
            sql_query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").load(c)
        }
        DbConn::Pg(c) => sql_query(
            "SELECT i.relname::text AS name \
             FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid \
             JOIN pg_namespace n ON n.oid = i.relnamespace \
             WHERE n.nspname = current_schema() AND NOT x.indisprimary \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) \
             ORDER BY 1",
        )
        .load(c),
    }
    .expect("introspect indexes");
    rows.into_iter().map(|r| r.name).collect()
}

/// The application's tables: the schema without diesel's bookkeeping.
fn app_schema(conn: &mut DbConn) -> Schema {
    let mut schema = schema_of(conn);
    schema.remove(DIESEL_TABLE);
    schema
}

/// The tables and columns declared by the `diesel::table!` macros of
/// `server/db/schema.rs`, read as text.
fn declared_schema() -> Schema {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("server/db/schema.rs");
    let text = std::fs::read_to_string(&path).expect("read server/db/schema.rs");
    let mut schema = Schema::new();
    let mut in_macro = false;
    let mut table: Option<String> = None;
    let mut sql_name: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("diesel::table!") {
            in_macro = true;
            continue;
        }
        if !in_macro {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#[sql_name = \"") {
            sql_name = Some(rest.trim_end_matches("\"]").to_owned());
            continue;
        }
        match &table {
            None => {
                // `name (primary key) {`
                if line.ends_with('{') && line.contains('(') {
                    let name = line.split(['(', ' ']).next().expect("table name").trim_start_matches("r#");
                    let name = sql_name.take().unwrap_or_else(|| name.to_owned());
                    schema.insert(name.clone(), BTreeMap::new());
                    table = Some(name);
                }
            }
            Some(name) => {
                if line == "}" {
                    table = None;
                    in_macro = false;
                } else if let Some((column, ty)) = line.split_once("->") {
                    let column = column.trim().trim_start_matches("r#");
                    let column = sql_name.take().unwrap_or_else(|| column.to_owned());
                    let ty = ty.trim().trim_end_matches(',').trim();
                    let (nullable, ty) = match ty.strip_prefix("Nullable<") {
                        Some(inner) => (true, inner.trim_end_matches('>')),
                        None => (false, ty),
                    };
                    let ty = ty.rsplit("::").next().unwrap_or(ty).to_owned();
                    schema.get_mut(name).expect("table").insert(column, Column { sql_type: ty, nullable });
                }
            }
        }
    }
    assert!(schema.len() > 5, "could not read the table! macros of server/db/schema.rs: {schema:?}");
    schema
}

/// Explains the first difference between two schemas.
#[track_caller]
fn assert_same_schema(actual: &Schema, expected: &Schema, what: &str) {
    let actual_tables: BTreeSet<_> = actual.keys().collect();
    let expected_tables: BTreeSet<_> = expected.keys().collect();
    assert_eq!(actual_tables, expected_tables, "{what}: the tables differ");
    for (table, expected_columns) in expected {
        let actual_columns = &actual[table];
        let a: BTreeSet<_> = actual_columns.keys().collect();
        let e: BTreeSet<_> = expected_columns.keys().collect();
        assert_eq!(a, e, "{what}: the columns of table {table} differ");
        for (column, expected_column) in expected_columns {
            assert_eq!(&actual_columns[column], expected_column, "{what}: column {table}.{column} differs");
        }
    }
}

// ---- running the migrations ----

fn pending(conn: &mut DbConn) -> usize {
    match conn {
        DbConn::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConn::Pg(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
    }
    .expect("pending migrations")
}

fn run_next(conn: &mut DbConn) -> String {
    match conn {
        DbConn::Sqlite(c) => c.run_next_migration(SQLITE_MIGRATIONS).map(|v| v.to_string()),
        DbConn::Pg(c) => c.run_next_migration(POSTGRES_MIGRATIONS).map(|v| v.to_string()),
    }
    .unwrap_or_else(|e| panic!("migration up failed: {e}"))
}

fn revert_last(conn: &mut DbConn) -> String {
    match conn {
        DbConn::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).map(|v| v.to_string()),
        DbConn::Pg(c) => c.revert_last_migration(POSTGRES_MIGRATIONS).map(|v| v.to_string()),
    }
    .unwrap_or_else(|e| panic!("migration down failed: {e}"))
}

fn applied(conn: &mut DbConn) -> usize {
    match conn {
        DbConn::Sqlite(c) => c.applied_migrations().map(|v| v.len()),
        DbConn::Pg(c) => c.applied_migrations().map(|v| v.len()),
    }
    .expect("applied migrations")
}

/// Up, down, up for each migration in turn; then all down; then all up.
fn runs_down_and_up_cleanly(kind: Db) {
    let Some(db) = TestDb::new(kind) else { return };
    let mut conn = connect(&db);
    let total = folder_names("sqlite").len();
    assert_eq!(pending(&mut conn), total, "a fresh database has every migration pending");

    // Each migration on its own: its down.sql restores exactly the schema
    // before it, and its up.sql runs again on top of that.
    for step in 0..total {
        let before = (app_schema(&mut conn), index_names(&mut conn));
        let version = run_next(&mut conn);
        let after = (app_schema(&mut conn), index_names(&mut conn));
        assert_eq!(revert_last(&mut conn), version, "reverted another migration than the one just applied");
        assert_eq!(
            (app_schema(&mut conn), index_names(&mut conn)),
            before,
            "down.sql of {version} does not restore the schema before it"
        );
        assert_eq!(run_next(&mut conn), version);
        assert_eq!((app_schema(&mut conn), index_names(&mut conn)), after, "{version} up again gives another schema");
        assert_eq!(applied(&mut conn), step + 1);
    }
    assert_eq!(pending(&mut conn), 0);
    assert_same_schema(&app_schema(&mut conn), &declared_schema(), &format!("{kind:?} after all migrations"));

    // All down, one after the other, newest first.
    let mut reverted = 0;
    while applied(&mut conn) > 0 {
        revert_last(&mut conn);
        reverted += 1;
        assert!(reverted <= total, "reverting never ends");
    }
    assert_eq!(reverted, total);
    assert_eq!(
        table_names(&mut conn),
        BTreeSet::from([DIESEL_TABLE.to_owned()]),
        "{kind:?}: all migrations reverted must leave no table but diesel's own"
    );
    assert_eq!(index_names(&mut conn), BTreeSet::new(), "{kind:?}: reverted migrations left indexes behind");

    // And up again, the way the server does it.
    assert_eq!(herold::db::run_migrations(&mut conn).expect("migrations up again"), total);
    assert_eq!(herold::db::run_migrations(&mut conn).expect("nothing pending"), 0);
    assert_same_schema(&app_schema(&mut conn), &declared_schema(), &format!("{kind:?} after down and up"));
}

#[test]
fn sqlite_migrations_run_down_and_up_cleanly() {
    runs_down_and_up_cleanly(Db::Sqlite);
}

#[test]
fn postgres_migrations_run_down_and_up_cleanly() {
    runs_down_and_up_cleanly(Db::Postgres);
}

/// A freshly migrated database of `kind`: (tables with columns, indexes).
fn migrated(kind: Db) -> Option<(Schema, BTreeSet<String>)> {
    let db = TestDb::new(kind)?;
    let mut conn = connect(&db);
    herold::db::run_migrations(&mut conn).expect("migrations");
    Some((app_schema(&mut conn), index_names(&mut conn)))
}

#[test]
fn sqlite_schema_matches_schema_rs() {
    let (schema, _) = migrated(Db::Sqlite).expect("sqlite");
    assert_same_schema(&schema, &declared_schema(), "SQLite vs server/db/schema.rs");
}

#[test]
fn postgres_schema_matches_schema_rs() {
    if let Some((schema, _)) = migrated(Db::Postgres) {
        assert_same_schema(&schema, &declared_schema(), "PostgreSQL vs server/db/schema.rs");
    }
}

#[test]
fn both_backends_have_the_same_tables_columns_and_indexes() {
    let (sqlite, sqlite_indexes) = migrated(Db::Sqlite).expect("sqlite");
    assert!(!sqlite_indexes.is_empty(), "index introspection found nothing on SQLite");
    let Some((postgres, postgres_indexes)) = migrated(Db::Postgres) else { return };
    assert_same_schema(&postgres, &sqlite, "PostgreSQL vs SQLite");
    assert_eq!(postgres_indexes, sqlite_indexes, "the backends create different indexes");
}

#[test]
fn schema_rs_parser_reads_the_declared_tables() {
    // Guards the text parser above: a few facts known from schema.rs.
    let declared = declared_schema();
    assert_eq!(declared["tenants"]["slug"], Column { sql_type: "Text".into(), nullable: false });
    assert_eq!(declared["users"]["password_hash"], Column { sql_type: "Text".into(), nullable: true });
    assert_eq!(declared["messages"]["ttl_seconds"], Column { sql_type: "Integer".into(), nullable: false });
    assert_eq!(declared["messages"]["hidden"], Column { sql_type: "Bool".into(), nullable: false });
    assert!(declared.contains_key("server_secrets"));
}
