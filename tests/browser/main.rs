//! The PWA in a real browser: headless Chromium driven over the DevTools
//! protocol against a real `herold serve` (one per test, on SQLite and —
//! with `TEST_DATABASE_URL` — on PostgreSQL) and the strict test push
//! service. See `tests/browser/README.md`.

mod cdp;
mod chrome;
mod http;
#[path = "../api/push_service.rs"]
mod push_service;
mod server;

mod accessibility;
mod moderation;
mod offline;
mod org_talk;
mod organization;
mod resident;
mod support;
mod talk;

/// Prints `text` once per run, past libtest's output capture.
pub fn say_once(key: &str, text: &str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::Mutex;
    static SAID: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.get_or_insert_with(HashSet::new).insert(key.to_owned()) {
        let _ = writeln!(std::io::stderr(), "\n{text}\n");
    }
}

/// One scenario `fn(Db)` as a `sqlite` and a `postgres` test.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(crate::server::Db::Sqlite);
                }
                #[test]
                fn postgres() {
                    super::$name(crate::server::Db::Postgres);
                }
            }
        )*
    };
}
pub(crate) use both_backends;
