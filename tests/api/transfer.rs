//! `herold export` / `herold import`, run as the real binary the way an
//! operator moves a town: a populated town goes SQLite → PostgreSQL,
//! PostgreSQL → SQLite and SQLite → SQLite, and the new installation shows
//! the same directory, group pages, feeds, organization login, device inbox
//! (with the device's old token), delivery counters and subscriber counts.
//! Another town of the source stays behind; importing twice, a differing
//! VAPID key, and taking over a key where devices exist are refused with
//! one line and nothing written.
//!
//! The source is populated through the API in-process; export and import
//! run the binary against the same databases; the target is then opened
//! in-process (after the import, as a restarted server would be).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::cli::clean_command;
use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(120);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn success(self) -> Run {
        assert!(
            self.status.success(),
            "expected success: {}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit 1 with one line on stderr; returns that line.
    #[track_caller]
    fn refused(self) -> String {
        assert_eq!(self.status.code(), Some(1), "expected exit 1\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{}", self.stderr);
        lines[0].to_owned()
    }
}

/// `herold <args>` on `db`; stdin from a file, stdout into a file (or captured).
fn herold(db: &TestDb, args: &[&str], stdin: Option<&Path>, stdout_to: Option<&Path>) -> Run {
    let scratch = tempfile::tempdir().expect("temp dir");
    let out_path = stdout_to.map(Path::to_path_buf).unwrap_or_else(|| scratch.path().join("stdout"));
    let err_path = scratch.path().join("stderr");
    let mut cmd = clean_command(args);
    cmd.env("DATABASE_URL", &db.url).env("HEROLD_DATA_DIR", db.data_dir());
    cmd.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("stdin file")),
        None => Stdio::null(),
    });
    cmd.stdout(std::fs::File::create(&out_path).expect("stdout file"));
    cmd.stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let mut child = cmd.spawn().expect("start herold");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herold {args:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout =
        if stdout_to.is_some() { String::new() } else { std::fs::read_to_string(&out_path).unwrap_or_default() };
    Run { status, stdout, stderr: std::fs::read_to_string(&err_path).unwrap_or_default() }
}

/// What the populated source holds, as its users know it.
struct Town {
    owner: Owner,
    pending_club: Owner,
    groups: Vec<String>,
    rostock_group: String,
    messages: Vec<String>,
    scheduled: String,
    /// Follows both of Wismar's groups.
    resident: Device,
    /// Follows a Wismar group and Rostock's.
    commuter: Device,
    /// Follows Rostock only.
    rostocker: Device,
    api_token: String,
}

const OWNER: &str = "pfarrer@nikolai.de";
const ADMIN: &str = "rathaus@wismar.de";

/// Wismar with two organizations (one pending), two groups (one verified),
/// messages with delivery counters, a scheduled message, an alert, a hidden
/// message, a report, an API token, subscriber history; and Rostock beside it.
async fn populate(app: &TestApp) -> Town {
    app.with_tenant("wismar").await;
    app.with_tenant("rostock").await;
    let admin = app.city_admin("wismar", ADMIN).await;
    let rostock_admin = app.city_admin("rostock", "rathaus@rostock.de").await;
    let owner = app.approved_org(&admin, "wismar", OWNER, "St. Nikolai").await;
    let pending_club = app.register_org("wismar", "vorstand@sv-wismar.de", "SV Wismar").await;
    let harbour = app.approved_org(&rostock_admin, "rostock", "hafen@rostock.de", "Hafen Rostock").await;
    let letter = app.group(&owner, "Gemeindebrief", "church").await;
    let youth = app.group(&owner, "Jugend", "club").await;
    let rostock_group = app.group(&harbour, "Hafeninfo", "business").await;
    app.post(&format!("/api/v1/admin/groups/{letter}/verify"), Some(&admin.access), Value::Null).await.expect(200);

    let (resident, commuter, rostocker) = (app.device().await, app.device().await, app.device().await);
    for (device, group) in [
        (&resident, &letter),
        (&resident, &youth),
        (&commuter, &letter),
        (&commuter, &rostock_group),
        (&rostocker, &rostock_group),
    ] {
        app.put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device.token), Value::Null)
            .await
            .expect(200);
    }

    let mut messages = vec![
        app.message(&owner.user, &letter, "Gottesdienst am Sonntag").await,
        app.message(&owner.user, &letter, "Adventskonzert").await,
        app.message(&owner.user, &youth, "Jugendabend").await,
    ];
    let alert = app
        .post(
            "/api/v1/admin/tenants/wismar/alerts",
            Some(&admin.access),
            json!({"title": "Sturmflut", "body": "Ufer meiden."}),
        )
        .await
        .expect(201);
    messages.push(alert["id"].as_str().expect("alert id").to_owned());
    app.message(&harbour.user, &rostock_group, "Fähre fällt aus").await;
    app.post(
        &format!("/api/v1/admin/messages/{}/hide", messages[1]),
        Some(&admin.access),
        json!({"reason": "doppelt"}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/messages/{}/reports", messages[0]), Some(&resident.token), json!({"reason": "spam"}))
        .await
        .expect(201);
    let token = app
        .post(
            &format!("/api/v1/organizations/{}/tokens", owner.org_id),
            Some(&owner.user.access),
            json!({"name": "Website", "group_id": letter}),
        )
        .await
        .expect(201);
    let scheduled = app
        .post(
            &format!("/api/v1/groups/{letter}/messages"),
            Some(&owner.user.access),
            json!({"title": "Christvesper", "body": "Heiligabend", "publish_at": herold::model::ts(T0 + 86_400_000)}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Delivery finished for the published messages (counters as a delivery
    // run leaves them); the scheduled one waits for its time.
    let done = messages.clone();
    app.with_conn(move |c| {
        use herold::db::schema::{fanout_jobs, messages as m};
        for (i, id) in done.iter().enumerate() {
            diesel::update(fanout_jobs::table.filter(fanout_jobs::message_id.eq(id)))
                .set((fanout_jobs::state.eq("done"), fanout_jobs::finished_at.eq(T0)))
                .execute(c)
                .expect("finish job");
            diesel::update(m::table.find(id))
                .set((m::recipients.eq(3), m::delivered.eq(2), m::gone.eq(i as i64 % 2), m::failed.eq(0)))
                .execute(c)
                .expect("counters");
        }
        herold::delivery::store::snapshot_subscriber_counts(c, T0 - 86_400_000).expect("yesterday's counts");
        herold::delivery::store::snapshot_subscriber_counts(c, T0).expect("today's counts");
    })
    .await;

    Town {
        owner,
        pending_club,
        groups: vec![letter, youth],
        rostock_group,
        messages,
        scheduled,
        resident,
        commuter,
        rostocker,
        api_token: token["secret"].as_str().expect("secret").to_owned(),
    }
}

/// Everything a town's people see, read through the API.
async fn view(app: &TestApp, town: &Town) -> Value {
    let owner = app.login(OWNER).await;
    let admin = app.login(ADMIN).await;
    let mut v = serde_json::Map::new();
    let mut get = |key: String, value: Value| {
        v.insert(key, value);
    };
    get("directory".into(), app.get("/api/v1/tenants/wismar/groups", None).await.expect(200));
    get("vapid".into(), app.get("/api/v1/push/vapid-public-key", None).await.expect(200));
    for g in &town.groups {
        get(format!("group {g}"), app.get(&format!("/api/v1/groups/{g}"), None).await.expect(200));
        get(format!("feed {g}"), app.get(&format!("/api/v1/groups/{g}/messages"), None).await.expect(200));
        get(
            format!("history {g}"),
            app.get(&format!("/api/v1/groups/{g}/subscriber-history"), Some(&owner.access)).await.expect(200),
        );
    }
    // The organization's messages (the alert is the town's: its counters show in the alert list).
    for m in town.messages[..3].iter().chain([&town.scheduled]) {
        get(
            format!("stats {m}"),
            app.get(&format!("/api/v1/messages/{m}/stats"), Some(&owner.access)).await.expect(200),
        );
    }
    get("owner".into(), json!(owner.id));
    get("mine".into(), app.get("/api/v1/organizations/mine", Some(&owner.access)).await.expect(200));
    get(
        "members".into(),
        app.get(&format!("/api/v1/organizations/{}/members", town.owner.org_id), Some(&owner.access)).await.expect(200),
    );
    // Listed by creation time alone: groups made in the same millisecond
    // come in the backend's order, so compare them by id.
    let mut org_groups =
        app.get(&format!("/api/v1/organizations/{}/groups", town.owner.org_id), Some(&owner.access)).await.expect(200);
    if let Some(items) = org_groups.get_mut("items").and_then(Value::as_array_mut) {
        items.sort_by_key(|g| g["id"].as_str().map(str::to_owned));
    }
    get("org groups".into(), org_groups);
    get(
        "tokens".into(),
        app.get(&format!("/api/v1/organizations/{}/tokens", town.owner.org_id), Some(&owner.access)).await.expect(200),
    );
    get("admin".into(), json!(admin.id));
    get(
        "organizations".into(),
        app.get("/api/v1/admin/tenants/wismar/organizations", Some(&admin.access)).await.expect(200),
    );
    get("reports".into(), app.get("/api/v1/admin/tenants/wismar/reports", Some(&admin.access)).await.expect(200));
    get("audit".into(), app.get("/api/v1/admin/tenants/wismar/audit", Some(&admin.access)).await.expect(200));
    get("alerts".into(), app.get("/api/v1/admin/tenants/wismar/alerts", Some(&admin.access)).await.expect(200));
    for (name, device) in [("resident", &town.resident), ("commuter", &town.commuter)] {
        // Only Wismar moves: compare the Wismar part (the commuter follows Rostock too).
        let mut inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        inbox["items"].as_array_mut().expect("inbox items").retain(|m| m["group"]["tenant"] == "wismar");
        assert!(!inbox["items"].as_array().expect("items").is_empty(), "{name} has Wismar messages");
        get(format!("{name} inbox"), inbox);
        let mut subs = app.get("/api/v1/devices/me/subscriptions", Some(&device.token)).await.expect(200);
        if let Some(items) = subs.get_mut("items").and_then(Value::as_array_mut) {
            items.retain(|g| g["tenant"] == "wismar");
        } else if let Some(items) = subs.as_array_mut() {
            items.retain(|g| g["tenant"] == "wismar");
        }
        get(format!("{name} subscriptions"), subs);
    }
    Value::Object(v)
}

/// Asserts two views are equal key by key (a readable failure).
#[track_caller]
fn assert_same(source: &Value, target: &Value) {
    let (s, t) = (source.as_object().expect("view"), target.as_object().expect("view"));
    for (key, value) in s {
        assert_eq!(Some(value), t.get(key), "'{key}' differs after the move");
    }
    assert_eq!(s.len(), t.len());
}

async fn tenant_count(app: &TestApp) -> i64 {
    app.with_conn(|c| {
        use herold::db::schema::tenants;
        tenants::table.count().get_result::<i64>(c).expect("count")
    })
    .await
}

fn count_jobs(c: &mut herold::db::DbConn, message: &str) -> i64 {
    use herold::db::schema::fanout_jobs;
    fanout_jobs::table
        .filter(fanout_jobs::message_id.eq(message))
        .filter(fanout_jobs::state.ne("done"))
        .count()
        .get_result(c)
        .expect("count jobs")
}

/// Moves Wismar from a `from` installation to a fresh `to` one.
async fn moves(from: Db, to: Db) {
    let Some(source) = TestApp::new(from).await else { return };
    let town = populate(&source).await;
    let before = view(&source, &town).await;

    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("wismar.jsonl");
    // To standard output, as in `herold export --tenant wismar > wismar.jsonl`.
    let exported = herold(&source.db, &["export", "--tenant", "wismar", "--with-keys"], None, Some(&file)).success();
    assert!(exported.stderr.contains("device"), "a summary on stderr: {}", exported.stderr);
    let text = std::fs::read_to_string(&file).expect("export");
    let header: Value = serde_json::from_str(text.lines().next().expect("header")).expect("header JSON");
    assert_eq!(header["herold_export"], 1);
    assert_eq!(header["tenant"], "wismar");
    assert_eq!(header["vapid_public_key"], before["vapid"]["public_key"]);
    assert!(header["vapid_private_key"].is_string(), "--with-keys");
    let leaked = text.lines().find(|l| l.contains("rostock") || l.contains("Hafen"));
    assert!(leaked.is_none(), "Rostock stays behind, but the export has: {leaked:?}");
    assert!(!text.contains("refresh"), "no refresh tokens");
    let kinds: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line")["record"].as_str().expect("record").to_owned())
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("device"), 2, "the two devices following Wismar, not the Rostock-only one");
    assert_eq!(count("subscription"), 3, "Wismar's subscriptions only");
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    for line in text.lines().filter(|l| l.contains("\"record\":\"device\"")) {
        let device: Value = serde_json::from_str(line).expect("device");
        let mut keys: Vec<&str> = device.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["auth", "created_at", "endpoint", "id", "last_seen_at", "p256dh", "record", "token_hash"]);
    }

    let Some(target_db) = TestDb::new(to) else { return };
    // From standard input, as in `herold import < wismar.jsonl`.
    let imported = herold(&target_db, &["import"], Some(&file), None).success();
    assert!(imported.stdout.contains("imported town 'wismar'"), "{}", imported.stdout);
    assert!(imported.stdout.contains("restart"), "the key was taken over: {}", imported.stdout);
    let config = herold::Config::for_database(&target_db.url, target_db.data_dir()).expect("config");
    let target = TestApp::with_config(target_db, config).await;
    let after = view(&target, &town).await;
    assert_same(&before, &after);

    // Only Wismar moved; the Rostock-only device is unknown here.
    let tenants = target.get("/api/v1/tenants", None).await.expect(200);
    assert_eq!(tenants.to_string().matches("\"slug\"").count(), 1, "{tenants}");
    assert!(tenants.to_string().contains("wismar"));
    target.get(&format!("/api/v1/groups/{}", town.rostock_group), None).await.expect(404);
    target.get("/api/v1/devices/me/inbox", Some(&town.rostocker.token)).await.expect(401);
    // The pending organization is still pending; its owner logs in.
    target.login("vorstand@sv-wismar.de").await;
    let pending = target
        .get("/api/v1/admin/tenants/wismar/organizations?status=pending", Some(&target.login(ADMIN).await.access))
        .await
        .expect(200);
    assert!(pending.to_string().contains(&town.pending_club.org_id), "{pending}");
    // The scheduled message waits for its time here, with a job of its own.
    let scheduled = town.scheduled.clone();
    assert_eq!(target.with_conn(move |c| count_jobs(c, &scheduled)).await, 1);
    for m in town.messages.clone() {
        assert_eq!(target.with_conn(move |c| count_jobs(c, &m)).await, 0, "finished fan-outs stay finished");
    }
    // The organization's integration keeps posting with its token.
    target
        .post(
            &format!("/api/v1/groups/{}/messages", town.groups[0]),
            Some(&town.api_token),
            json!({"title": "Per API", "body": "x"}),
        )
        .await
        .expect(201);
    // Residents keep following: a new message reaches the resident's inbox.
    let inbox = target.get("/api/v1/devices/me/inbox", Some(&town.resident.token)).await.expect(200);
    assert!(inbox.to_string().contains("Per API"), "{inbox}");

    // A second import of the same town is refused, and changes nothing.
    let messages_before: i64 = target
        .with_conn(|c| {
            use herold::db::schema::messages;
            messages::table.count().get_result(c).expect("count")
        })
        .await;
    let again = herold(&target.db, &["import", "--input", file.to_str().expect("path")], None, None).refused();
    assert!(again.contains("exists already") && again.contains("nothing imported"), "{again}");
    let messages_after: i64 = target
        .with_conn(|c| {
            use herold::db::schema::messages;
            messages::table.count().get_result(c).expect("count")
        })
        .await;
    assert_eq!(messages_before, messages_after);
}

#[actix_web::test]
async fn a_town_moves_from_sqlite_to_postgres() {
    moves(Db::Sqlite, Db::Postgres).await;
}

#[actix_web::test]
async fn a_town_moves_from_postgres_to_sqlite() {
    moves(Db::Postgres, Db::Sqlite).await;
}

#[actix_web::test]
async fn a_town_moves_from_sqlite_to_sqlite() {
    moves(Db::Sqlite, Db::Sqlite).await;
}

/// On a target that runs already (its own key, a device of its own, a user
/// with the owner's e-mail): a differing key is refused, taking the key over
/// is refused, `--without-devices` moves the town without residents, and
/// the existing user is reused with the password they have here.
async fn refusals(kind: Db) {
    let Some(source) = TestApp::new(kind).await else { return };
    let town = populate(&source).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let plain = scratch.path().join("plain.jsonl");
    let keyed = scratch.path().join("keyed.jsonl");
    let plain_arg = plain.to_str().expect("path");
    let keyed_arg = keyed.to_str().expect("path");
    let out = herold(&source.db, &["export", "--tenant", "wismar", "--output", plain_arg], None, None).success();
    assert!(out.stdout.contains("exported town 'wismar'"), "{}", out.stdout);
    herold(&source.db, &["export", "--tenant", "wismar", "--output", keyed_arg, "--with-keys"], None, None).success();
    // An existing file is not overwritten; an unknown town is refused.
    let exists = herold(&source.db, &["export", "--tenant", "wismar", "--output", plain_arg], None, None).refused();
    assert!(exists.contains("exists already"), "{exists}");
    let unknown =
        herold(&source.db, &["export", "--tenant", "nowhere", "--output", &format!("{plain_arg}.x")], None, None)
            .refused();
    assert!(unknown.contains("no tenant 'nowhere'"), "{unknown}");
    assert!(!PathBuf::from(format!("{plain_arg}.x")).exists(), "no file left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keyed).expect("file").permissions().mode() & 0o777, 0o600);
    }

    let Some(target) = TestApp::new(kind).await else { return };
    let own_device = target.device().await;
    target
        .with_conn(|c| {
            let hash = herold::auth::password::hash("das-passwort-hier-1").expect("hash");
            herold::accounts::create_user(c, OWNER, Some(&hash), false, T0).expect("user");
        })
        .await;

    let refused = herold(&target.db, &["import", "--input", plain_arg], None, None).refused();
    assert!(
        refused.contains("VAPID") && refused.contains("--with-keys") && refused.contains("nothing imported"),
        "{refused}"
    );
    let refused = herold(&target.db, &["import", "--input", keyed_arg], None, None).refused();
    assert!(refused.contains("devices of its own") && refused.contains("nothing imported"), "{refused}");
    assert_eq!(tenant_count(&target).await, 0, "nothing written");
    let key_before = target.get("/api/v1/push/vapid-public-key", None).await.expect(200);

    let imported =
        herold(&target.db, &["import", "--input", keyed_arg, "--without-devices"], None, None).success().stdout;
    assert!(imported.contains(&format!("user {OWNER} existed here already")), "{imported}");
    assert!(imported.contains("left out"), "{imported}");
    assert!(!imported.contains("restart"), "the key stays: {imported}");
    let target = target.reopen().await;
    assert_eq!(target.get("/api/v1/push/vapid-public-key", None).await.expect(200), key_before);
    assert_eq!(tenant_count(&target).await, 1);

    // The town is here, without residents.
    let group = target.get(&format!("/api/v1/groups/{}", town.groups[0]), None).await.expect(200);
    assert_eq!(group["subscriber_count"], 0, "{group}");
    target.get("/api/v1/devices/me/inbox", Some(&town.resident.token)).await.expect(401);
    target.get("/api/v1/devices/me/inbox", Some(&own_device.token)).await.expect(200);
    let feed = target.get(&format!("/api/v1/groups/{}/messages", town.groups[0]), None).await.expect(200);
    assert_eq!(feed, source.get(&format!("/api/v1/groups/{}/messages", town.groups[0]), None).await.expect(200));
    // The existing account keeps its password here and gained the organization.
    target
        .post("/api/v1/auth/login", None, json!({"email": OWNER, "password": PASSWORD}))
        .await
        .expect_error(401, "bad_credentials");
    let login = target
        .post("/api/v1/auth/login", None, json!({"email": OWNER, "password": "das-passwort-hier-1"}))
        .await
        .expect(200);
    let mine = target
        .get("/api/v1/organizations/mine", Some(login["access_token"].as_str().expect("token")))
        .await
        .expect(200);
    assert!(mine.to_string().contains(&town.owner.org_id), "{mine}");
    // Reports lost their link to the device left behind, not the report.
    let reports = target.get("/api/v1/admin/tenants/wismar/reports", Some(&target.login(ADMIN).await.access)).await;
    assert!(reports.expect(200).to_string().contains(&town.messages[0]));

    let twice = herold(&target.db, &["import", "--input", keyed_arg, "--without-devices"], None, None).refused();
    assert!(twice.contains("tenant 'wismar' exists already"), "{twice}");
    let _ = town.commuter;
}

#[actix_web::test]
async fn refusals_sqlite() {
    refusals(Db::Sqlite).await;
}

#[actix_web::test]
async fn refusals_postgres() {
    refusals(Db::Postgres).await;
}

/// A damaged export (cut off before its end line, or a kind that does not
/// belong) is refused as a whole.
#[actix_web::test]
async fn a_cut_off_export_is_refused() {
    let source = TestApp::new(Db::Sqlite).await.expect("sqlite");
    populate(&source).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("wismar.jsonl");
    herold(&source.db, &["export", "--tenant", "wismar", "--with-keys"], None, Some(&file)).success();
    let text = std::fs::read_to_string(&file).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    let cut = scratch.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 3].join("\n")).expect("write");
    let target = TestDb::new(Db::Sqlite).expect("sqlite");
    let refused = herold(&target, &["import", "--input", cut.to_str().expect("path")], None, None).refused();
    assert!(refused.contains("cut off") && refused.contains("nothing imported"), "{refused}");
    let not_ours = scratch.path().join("other.json");
    std::fs::write(&not_ours, "{\"hello\": 1}\n").expect("write");
    let refused = herold(&target, &["import", "--input", not_ours.to_str().expect("path")], None, None).refused();
    assert!(refused.contains("not a herold export"), "{refused}");
    // Nothing of the cut-off import is left: the whole file imports now.
    herold(&target, &["import", "--input", file.to_str().expect("path")], None, None).success();
}
