//! `herold export` / `herold import`, run as the real binary the way an
//! operator moves a town: a populated town goes SQLite → PostgreSQL,
//! PostgreSQL → SQLite and SQLite → SQLite, and the new installation shows
//! the same directory, group pages, feeds, organization login, device inbox
//! (with the device's old token), delivery counters and subscriber counts,
//! and what residents said: issue reports with their conversation and
//! photos (bytes identical), the public board, blocks, question hours with
//! questions, answers and votes — and a resident who reports again keeps
//! their pseudonym. Another town of the source stays behind; importing
//! twice, a differing VAPID key, and taking over a key where devices exist
//! are refused with one line and nothing written; without the devices, what
//! they own stays behind as when a device erases itself. A version 1 file
//! (before residents could talk back) still imports.
//!
//! The source is populated through the API in-process; export and import
//! run the binary against the same databases; the target is then opened
//! in-process (after the import, as a restarted server would be).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use herold::transfer::{BlockRow, IntakeRow, IssuePhotoRow, IssuePostRow, IssueRow, QuestionRow, SessionRow, VoteRow};

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
    /// Follows Rostock only, but reported an issue in Wismar (and was blocked there).
    reporter: Device,
    api_token: String,
    talk: Talk,
}

/// What residents said in Wismar.
struct Talk {
    /// The resident's report: located, with a photo, a conversation, on the board.
    issue: String,
    photo: String,
    /// The photo's stored bytes (a JPEG, re-encoded on upload).
    photo_bytes: Vec<u8>,
    /// The reporter's report (the reporter was blocked for it).
    reported: String,
    session: String,
    /// Asked by the resident, answered publicly (the commuter asked two
    /// more: one answered privately, one open).
    public_question: String,
}

/// Latitude and longitude with all 17 significant digits: they must come
/// back bit for bit (`LON`'s shortest text, parsed by serde_json without its
/// `float_roundtrip` feature, comes back one unit in the last place off).
const LAT: f64 = 53.891_234_567_890_12;
const LON: f64 = 11.464_729_199_999_999;

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
    let reporter = app.device().await;
    for (device, group) in [
        (&resident, &letter),
        (&resident, &youth),
        (&commuter, &letter),
        (&commuter, &rostock_group),
        (&rostocker, &rostock_group),
        (&reporter, &rostock_group),
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

    let talk = talk_back(app, &owner, &letter, [&resident, &commuter, &reporter]).await;
    // Rostock's residents talk too: none of it may leave with Wismar.
    app.put(
        &format!("/api/v1/groups/{rostock_group}/intake"),
        Some(&harbour.user.access),
        json!({"open": true, "categories": ["Hafenanlagen"], "board": false}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/groups/{rostock_group}/issues"),
        Some(&rostocker.token),
        json!({"category": "Hafenanlagen", "body": "Poller an der Hafenkante locker"}),
    )
    .await
    .expect(201);
    let session = app
        .post(
            &format!("/api/v1/groups/{rostock_group}/sessions"),
            Some(&harbour.user.access),
            json!({"title": "Hafensprechstunde", "starts_at": herold::model::ts(T0), "ends_at": herold::model::ts(T0 + 3_600_000)}),
        )
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/sessions/{}/questions", session["id"].as_str().expect("id")),
        Some(&commuter.token),
        json!({"body": "Wann fährt die Hafenfähre wieder?"}),
    )
    .await
    .expect(201);

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
        reporter,
        api_token: token["secret"].as_str().expect("secret").to_owned(),
        talk,
    }
}

/// Uploads a photo to the device's issue; returns its id.
async fn upload_photo(app: &TestApp, device: &Device, issue: &str, bytes: Vec<u8>) -> String {
    let req = actix_web::test::TestRequest::post()
        .uri(&format!("/api/v1/devices/me/issues/{issue}/photos"))
        .insert_header(("Authorization", format!("Bearer {}", device.token)))
        .insert_header(("Content-Type", "image/jpeg"))
        .set_payload(bytes)
        .to_request();
    app.send(req).await.expect(201)["id"].as_str().expect("photo id").to_owned()
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}")).to_owned()
}

/// Through the API as residents and the organization do: the letter takes
/// reports; the resident reports a pothole (position, address, photo),
/// writes once more, the parish answers with a status and publishes it;
/// the reporter reports too and is blocked; a question hour with three
/// questions (one answered publicly, one privately, one open) and votes.
async fn talk_back(app: &TestApp, owner: &Owner, letter: &str, [resident, commuter, reporter]: [&Device; 3]) -> Talk {
    let staff = Some(owner.user.access.as_str());
    app.put(
        &format!("/api/v1/groups/{letter}/intake"),
        staff,
        json!({"open": true, "categories": ["Straßenschäden", "Müll"], "board": true}),
    )
    .await
    .expect(200);
    let issue = id_of(
        &app.post(
            &format!("/api/v1/groups/{letter}/issues"),
            Some(&resident.token),
            json!({"category": "Straßenschäden", "body": "Tiefes Schlagloch vor der Kirche", "lat": LAT, "lon": LON,
                   "address": "Lübsche Straße 1", "lang": "en"}),
        )
        .await
        .expect(201),
    );
    // Coordinates whose shortest text serde_json's default parser reads one
    // unit in the last place off: set as stored, the move must keep them.
    let located = issue.clone();
    app.with_conn(move |c| {
        use herold::db::schema::issues as i;
        diesel::update(i::table.find(&located)).set((i::lat.eq(LAT), i::lon.eq(LON))).execute(c).expect("position");
    })
    .await;
    let photo = upload_photo(app, resident, &issue, crate::photos_fixtures::jpeg(96, 64)).await;
    app.post(
        &format!("/api/v1/devices/me/issues/{issue}/posts"),
        Some(&resident.token),
        json!({"body": "Es wird immer größer."}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/issues/{issue}/replies"),
        staff,
        json!({"body": "Danke, der Bauhof ist informiert.", "status": "in_progress"}),
    )
    .await
    .expect(201);
    app.patch(&format!("/api/v1/issues/{issue}"), staff, json!({"public": true})).await.expect(200);
    let reported = id_of(
        &app.post(
            &format!("/api/v1/groups/{letter}/issues"),
            Some(&reporter.token),
            json!({"category": "Müll", "body": "Sperrmüll am Markt"}),
        )
        .await
        .expect(201),
    );
    app.post(&format!("/api/v1/issues/{reported}/block"), staff, json!({"reason": "Beleidigungen"})).await.expect(204);

    let session = id_of(
        &app.post(
            &format!("/api/v1/groups/{letter}/sessions"),
            staff,
            json!({"title": "Bürgersprechstunde", "description": "Fragen an den Pfarrer",
                   "starts_at": herold::model::ts(T0), "ends_at": herold::model::ts(T0 + 3_600_000)}),
        )
        .await
        .expect(201),
    );
    let asks = format!("/api/v1/sessions/{session}/questions");
    let mut asked = Vec::new();
    for (device, body) in [
        (resident, "Wann wird die Orgel repariert?"),
        (commuter, "Kann ich mein Kind hier taufen lassen?"),
        (commuter, "Gibt es Parkplätze?"),
    ] {
        asked.push(id_of(&app.post(&asks, Some(&device.token), json!({"body": body})).await.expect(201)));
    }
    let [public_question, private_question, open_question] = <[String; 3]>::try_from(asked).expect("three");
    for (device, question) in [(commuter, &public_question), (resident, &open_question), (commuter, &open_question)] {
        app.put(&format!("/api/v1/sessions/{session}/questions/{question}/vote"), Some(&device.token), Value::Null)
            .await
            .expect(200);
    }
    app.post(
        &format!("/api/v1/sessions/{session}/questions/{public_question}/answer"),
        staff,
        json!({"body": "Im Frühjahr.", "public": true}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/sessions/{session}/questions/{private_question}/answer"),
        staff,
        json!({"body": "Ja, melden Sie sich im Büro.", "public": false}),
    )
    .await
    .expect(200);

    let photo_id = photo.clone();
    let photo_bytes = app
        .with_conn(move |c| {
            use herold::db::schema::issue_photos as p;
            p::table.find(&photo_id).select(p::data).first::<Vec<u8>>(c).expect("photo")
        })
        .await;
    Talk { issue, photo, photo_bytes, reported, session, public_question }
}

fn as_json<T: serde::Serialize>(rows: Vec<T>) -> Value {
    serde_json::to_value(rows).expect("rows as JSON")
}

/// Wismar's rows of the tables residents write to, as JSON (photos as
/// base64, coordinates as the shortest text that reads back the same f64).
async fn talk_rows(app: &TestApp) -> Value {
    app.with_conn(|c| {
        use herold::db::schema::{
            broadcast_groups as g, device_blocks as b, group_intakes as gi, issue_photos as ph, issue_posts as po,
            issues as i, organizations as o, qa_questions as q, qa_sessions as s, qa_votes as v, tenants as t,
        };
        let tid: String = t::table.filter(t::slug.eq("wismar")).select(t::id).first(c).expect("wismar");
        let groups = || g::table.filter(g::tenant_id.eq(tid.clone())).select(g::id);
        let orgs = || o::table.filter(o::tenant_id.eq(tid.clone())).select(o::id);
        let issues = || i::table.filter(i::tenant_id.eq(tid.clone())).select(i::id);
        let sessions = || s::table.filter(s::tenant_id.eq(tid.clone())).select(s::id);
        let questions = || q::table.filter(q::session_id.eq_any(sessions())).select(q::id);
        json!({
            "intakes": as_json(gi::table.filter(gi::group_id.eq_any(groups())).order(gi::group_id)
                .select(IntakeRow::as_select()).load(c).expect("intakes")),
            "issues": as_json(i::table.filter(i::tenant_id.eq(&tid)).order(i::id)
                .select(IssueRow::as_select()).load(c).expect("issues")),
            "posts": as_json(po::table.filter(po::issue_id.eq_any(issues())).order(po::id)
                .select(IssuePostRow::as_select()).load(c).expect("posts")),
            "photos": as_json(ph::table.filter(ph::issue_id.eq_any(issues())).order(ph::id)
                .select(IssuePhotoRow::as_select()).load(c).expect("photos")),
            "blocks": as_json(b::table.filter(b::organization_id.eq_any(orgs())).order(b::id)
                .select(BlockRow::as_select()).load(c).expect("blocks")),
            "sessions": as_json(s::table.filter(s::tenant_id.eq(&tid)).order(s::id)
                .select(SessionRow::as_select()).load(c).expect("sessions")),
            "questions": as_json(q::table.filter(q::session_id.eq_any(sessions())).order(q::id)
                .select(QuestionRow::as_select()).load(c).expect("questions")),
            "votes": as_json(v::table.filter(v::question_id.eq_any(questions()))
                .order((v::question_id, v::device_id)).select(VoteRow::as_select()).load(c).expect("votes")),
        })
    })
    .await
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

    // What residents said, as the organization, the public and each resident see it.
    let (t, letter, org) = (&town.talk, &town.groups[0], &town.owner.org_id);
    let staff = Some(owner.access.as_str());
    get("intake".into(), app.get(&format!("/api/v1/groups/{letter}/intake"), None).await.expect(200));
    get("inbox".into(), app.get(&format!("/api/v1/organizations/{org}/issues"), staff).await.expect(200));
    for issue in [&t.issue, &t.reported] {
        get(format!("issue {issue}"), app.get(&format!("/api/v1/issues/{issue}"), staff).await.expect(200));
    }
    let photo = app.get(&format!("/api/v1/issues/{}/photos/{}", t.issue, t.photo), staff).await;
    assert_eq!(photo.status, 200);
    get("photo".into(), json!([photo.headers.get("content-type").map(|h| h.to_str().expect("ascii")), photo.body]));
    get("board".into(), app.get(&format!("/api/v1/groups/{letter}/board"), None).await.expect(200));
    get("blocks".into(), app.get(&format!("/api/v1/organizations/{org}/blocks"), staff).await.expect(200));
    for (name, device) in [("resident", &town.resident), ("reporter", &town.reporter)] {
        get(format!("{name} issues"), app.get("/api/v1/devices/me/issues", Some(&device.token)).await.expect(200));
    }
    get(
        "resident issue".into(),
        app.get(&format!("/api/v1/devices/me/issues/{}", t.issue), Some(&town.resident.token)).await.expect(200),
    );
    get("sessions".into(), app.get(&format!("/api/v1/groups/{letter}/sessions"), None).await.expect(200));
    let session = format!("/api/v1/sessions/{}", t.session);
    get("session".into(), app.get(&session, None).await.expect(200));
    get("session staff".into(), app.get(&session, staff).await.expect(200));
    for (name, device) in [("resident", &town.resident), ("commuter", &town.commuter)] {
        get(format!("session {name}"), app.get(&session, Some(&device.token)).await.expect(200));
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
    let talk_before = talk_rows(&source).await;
    // The scenario reached every table residents write to.
    for (table, rows) in talk_before.as_object().expect("tables") {
        assert!(!rows.as_array().expect("rows").is_empty(), "no {table} in the scenario");
    }

    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("wismar.jsonl");
    // To standard output, as in `herold export --tenant wismar > wismar.jsonl`.
    let exported = herold(&source.db, &["export", "--tenant", "wismar", "--with-keys"], None, Some(&file)).success();
    assert!(exported.stderr.contains("device"), "a summary on stderr: {}", exported.stderr);
    let text = std::fs::read_to_string(&file).expect("export");
    let header: Value = serde_json::from_str(text.lines().next().expect("header")).expect("header JSON");
    assert_eq!(header["herold_export"], 2);
    assert!(header["pseudonym_key"].is_string(), "--with-keys carries the pseudonym key");
    assert!(header["pseudonym_key_id"].is_string());
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
    assert_eq!(
        count("device"),
        3,
        "the two devices following Wismar and the one that reported there, not the Rostock-only one"
    );
    assert_eq!(header["devices"], 3);
    assert_eq!(count("subscription"), 3, "Wismar's subscriptions only");
    for (kind, n) in
        [("intake", 1), ("issue", 2), ("issue_photo", 1), ("block", 1), ("session", 1), ("question", 3), ("vote", 3)]
    {
        assert_eq!(count(kind), n, "{kind} records");
    }
    assert!(count("issue_post") >= 2, "the resident's post and the parish's answer");
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    let end: Value = serde_json::from_str(text.lines().last().expect("end")).expect("end JSON");
    for (kind, n) in end["counts"].as_object().expect("counts") {
        assert_eq!(n, &json!(count(kind)), "the end line's count of {kind}");
    }
    let photo_line = text.lines().find(|l| l.contains("\"record\":\"issue_photo\"")).expect("photo line");
    let photo: Value = serde_json::from_str(photo_line).expect("photo JSON");
    {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.decode(photo["data"].as_str().expect("base64"));
        assert_eq!(data.expect("base64"), town.talk.photo_bytes, "the photo's bytes, base64");
    }
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
    assert!(imported.stdout.contains("pseudonyms with the source's key"), "{}", imported.stdout);
    let config = herold::Config::for_database(&target_db.url, target_db.data_dir()).expect("config");
    let target = TestApp::with_config(target_db, config).await;
    let after = view(&target, &town).await;
    assert_same(&before, &after);
    assert_eq!(talk_before, talk_rows(&target).await, "the rows residents wrote differ after the move");
    let issue = town.talk.issue.clone();
    let (lat, lon, data) = target
        .with_conn(move |c| {
            use herold::db::schema::{issue_photos as p, issues as i};
            let (lat, lon) =
                i::table.find(&issue).select((i::lat, i::lon)).first::<(Option<f64>, Option<f64>)>(c).expect("issue");
            let data = p::table.filter(p::issue_id.eq(&issue)).select(p::data).first::<Vec<u8>>(c);
            (lat, lon, data.expect("photo"))
        })
        .await;
    assert_eq!(lat.map(f64::to_bits), Some(LAT.to_bits()), "latitude bit for bit");
    assert_eq!(lon.map(f64::to_bits), Some(LON.to_bits()), "longitude bit for bit");
    assert_eq!(data, town.talk.photo_bytes, "the photo's bytes");

    // The resident reports again from the same phone: the parish sees the
    // same pseudonym as before the move. The blocked reporter stays blocked.
    let letter = &town.groups[0];
    let again = target
        .post(
            &format!("/api/v1/groups/{letter}/issues"),
            Some(&town.resident.token),
            json!({"category": "Müll", "body": "Überquellender Papierkorb"}),
        )
        .await
        .expect(201);
    let owner = target.login(OWNER).await;
    let seen = target.get(&format!("/api/v1/issues/{}", id_of(&again)), Some(&owner.access)).await.expect(200);
    let author = &before[&format!("issue {}", town.talk.issue)]["author"];
    assert!(author.is_string(), "{author}");
    assert_eq!(&seen["author"], author, "the resident's pseudonym after the move");
    target
        .post(
            &format!("/api/v1/groups/{letter}/issues"),
            Some(&town.reporter.token),
            json!({"category": "Müll", "body": "Noch mehr Müll"}),
        )
        .await
        .expect_error(403, "blocked");

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
    assert!(!imported.contains("restart"), "the keys stay: {imported}");
    assert!(imported.contains("left out with the devices"), "{imported}");
    assert!(imported.contains("1 publicly answered questions stay"), "{imported}");
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

    // What the devices owned stayed behind with them, as when a device
    // erases itself: reports (posts, photos), the block, votes, questions —
    // but the publicly answered question stays, without its device.
    let rows = talk_rows(&target).await;
    let source_rows = talk_rows(&source).await;
    for table in ["issues", "posts", "photos", "blocks", "votes"] {
        assert_eq!(rows[table], json!([]), "{table} without the devices");
    }
    assert_eq!(rows["intakes"], source_rows["intakes"]);
    let staff = User::from_tokens(&login);
    // The session's author is the account that was here already.
    let mut sessions = source_rows["sessions"].clone();
    sessions[0]["created_by"] = json!(format!("user:{}", staff.id));
    assert_eq!(rows["sessions"], sessions);
    let questions = rows["questions"].as_array().expect("questions");
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert_eq!(questions[0]["id"], town.talk.public_question.as_str());
    assert_eq!(questions[0]["device_id"], Value::Null);
    let inbox = target.get(&format!("/api/v1/organizations/{}/issues", town.owner.org_id), Some(&staff.access)).await;
    assert_eq!(inbox.expect(200)["items"], json!([]));
    let session = target.get(&format!("/api/v1/sessions/{}", town.talk.session), None).await.expect(200);
    let asked: Vec<&Value> = session["questions"].as_array().expect("questions").iter().map(|q| &q["id"]).collect();
    assert_eq!(asked, [&json!(town.talk.public_question)], "{session}");
    assert_eq!(session["questions"][0]["votes"], 0, "votes left with the devices");
    assert_eq!(session["questions"][0]["answer"]["body"], "Im Frühjahr.");

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

/// An export made before residents could talk back (format version 1: no
/// intake … vote records, no pseudonym key) imports; a version this binary
/// does not know is refused.
#[actix_web::test]
async fn an_export_of_version_1_still_imports() {
    let source = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let town = populate(&source).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("wismar.jsonl");
    herold(&source.db, &["export", "--tenant", "wismar", "--with-keys"], None, Some(&file)).success();
    let new_kinds = ["intake", "issue", "issue_post", "issue_photo", "block", "session", "question", "vote"];
    let mut v1 = Vec::new();
    for (n, line) in std::fs::read_to_string(&file).expect("export").lines().enumerate() {
        let mut value: Value = serde_json::from_str(line).expect("JSON line");
        if n == 0 {
            value["herold_export"] = json!(1);
            let header = value.as_object_mut().expect("header");
            header.remove("pseudonym_key");
            header.remove("pseudonym_key_id");
        } else if new_kinds.contains(&value["record"].as_str().expect("record")) {
            continue;
        } else if value["record"] == "end" {
            let counts = value["counts"].as_object_mut().expect("counts");
            new_kinds.iter().for_each(|k| {
                counts.remove(*k);
            });
        }
        v1.push(value.to_string());
    }
    let old = scratch.path().join("v1.jsonl");
    std::fs::write(&old, v1.join("\n")).expect("write");
    let target = TestApp::new(Db::Sqlite).await.expect("sqlite");
    let imported = herold(&target.db, &["import", "--input", old.to_str().expect("path")], None, None).success();
    assert!(imported.stdout.contains("imported town 'wismar'"), "{}", imported.stdout);
    assert!(!imported.stdout.contains("pseudonym"), "{}", imported.stdout);
    let target = target.reopen().await;
    let feed = target.get(&format!("/api/v1/groups/{}/messages", town.groups[0]), None).await.expect(200);
    assert_eq!(feed, source.get(&format!("/api/v1/groups/{}/messages", town.groups[0]), None).await.expect(200));
    let rows = talk_rows(&target).await;
    assert!(rows.as_object().expect("tables").values().all(|r| r == &json!([])), "{rows}");

    let future = scratch.path().join("v3.jsonl");
    let text =
        std::fs::read_to_string(&file).expect("export").replacen("\"herold_export\":2", "\"herold_export\":3", 1);
    std::fs::write(&future, text).expect("write");
    let other = TestDb::new(Db::Sqlite).expect("sqlite");
    let refused = herold(&other, &["import", "--input", future.to_str().expect("path")], None, None).refused();
    assert!(refused.contains("format version 3") && refused.contains("versions 1 to 2"), "{refused}");
}

/// Without `--with-keys` the pseudonym key stays behind: the stored reports
/// keep the pseudonyms the organization knows, a resident who reports again
/// gets a new one, and the import says so.
async fn pseudonyms_without_the_key(kind: Db) {
    let Some(source) = TestApp::new(kind).await else { return };
    let town = populate(&source).await;
    let before = view(&source, &town).await;
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("wismar.jsonl");
    herold(&source.db, &["export", "--tenant", "wismar", "--output", file.to_str().expect("path")], None, None)
        .success();
    // The target signs with the source's VAPID key (as after an earlier
    // move with --with-keys), but makes pseudonyms with its own key.
    let Some(target) = TestApp::new(kind).await else { return };
    let vapid: String = source
        .with_conn(|c| {
            use herold::db::schema::server_secrets as s;
            s::table.find(herold::state::VAPID_SECRET).select(s::value).first(c).expect("vapid")
        })
        .await;
    target
        .with_conn(move |c| {
            use herold::db::schema::server_secrets as s;
            diesel::update(s::table.find(herold::state::VAPID_SECRET))
                .set(s::value.eq(vapid))
                .execute(c)
                .expect("vapid");
        })
        .await;
    let imported = herold(&target.db, &["import", "--input", file.to_str().expect("path")], None, None).success();
    assert!(imported.stdout.contains("gets a new one"), "{}", imported.stdout);
    let target = target.reopen().await;
    let owner = target.login(OWNER).await;
    let stored = target.get(&format!("/api/v1/issues/{}", town.talk.issue), Some(&owner.access)).await.expect(200);
    let author = &before[&format!("issue {}", town.talk.issue)]["author"];
    assert_eq!(&stored["author"], author, "a stored report keeps its pseudonym");
    let again = target
        .post(
            &format!("/api/v1/groups/{}/issues", town.groups[0]),
            Some(&town.resident.token),
            json!({"category": "Müll", "body": "Überquellender Papierkorb"}),
        )
        .await
        .expect(201);
    let seen = target.get(&format!("/api/v1/issues/{}", id_of(&again)), Some(&owner.access)).await.expect(200);
    assert!(seen["author"].is_string(), "{seen}");
    assert_ne!(&seen["author"], author, "a new report, a new pseudonym");
}

#[actix_web::test]
async fn pseudonyms_without_the_key_sqlite() {
    pseudonyms_without_the_key(Db::Sqlite).await;
}

#[actix_web::test]
async fn pseudonyms_without_the_key_postgres() {
    pseudonyms_without_the_key(Db::Postgres).await;
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
