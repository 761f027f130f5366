//! Residents' issue reports ("Mängelmelder") over HTTP: a group's intake, a
//! device filing a report with photos, the organization's inbox, replies and
//! status changes that reach the reporting device — and only it — as a push,
//! the public board, blocks, rate limits, and what erasing a device removes.
//!
//! What users rely on: the organization sees a pseudonym, never the device;
//! photos lose their Exif/GPS on the way in; nobody but the resident and the
//! receiving organization reads a report (a town's city admin neither).

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use diesel::prelude::*;
use herold::db::schema::{audit_log, device_blocks, devices, issue_photos, issue_posts, issues};
use herold::limits::{Limit, Rate};
use herold::Config;
use serde_json::{json, Value};

use crate::harness::*;
use crate::photos_fixtures::{
    has_exif_or_gps, jpeg, jpeg_with_gps, jpeg_with_orientation, metadata_blocks, png, png_bomb, png_with_exif,
    webp_with_exif,
};

const CATEGORIES: [&str; 3] = ["Straßenschäden", "Beleuchtung", "Müll"];
const MIB: usize = 1024 * 1024;

// ---- fixtures in the domain's words ----

/// A town with its admin, the town hall's building yard and its report group.
struct Town {
    admin: User,
    hall: Owner,
    group: String,
}

/// Wismar, its admin, "Bauhof Wismar" and the group "Mängelmelder", open for
/// reports in `CATEGORIES` (board off).
async fn town(app: &TestApp) -> Town {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let hall = app.approved_org(&admin, "wismar", "bauhof@wismar.de", "Bauhof Wismar").await;
    let group = app.group(&hall, "Mängelmelder", "administration").await;
    set_intake(app, &hall.user, &group, json!({"open": true, "categories": CATEGORIES, "board": false})).await;
    Town { admin, hall, group }
}

/// Another approved organization of the town, with an open report group.
async fn second_org(app: &TestApp, town: &Town, email: &str, name: &str) -> (Owner, String) {
    let owner = app.approved_org(&town.admin, "wismar", email, name).await;
    let group = app.group(&owner, &format!("Fragen an {name}"), "club").await;
    set_intake(app, &owner.user, &group, json!({"open": true, "categories": ["Allgemein"], "board": false})).await;
    (owner, group)
}

fn intake_path(group: &str) -> String {
    format!("/api/v1/groups/{group}/intake")
}

async fn set_intake(app: &TestApp, user: &User, group: &str, intake: Value) -> Value {
    app.put(&intake_path(group), Some(&user.access), intake).await.expect(200)
}

fn file_path(group: &str) -> String {
    format!("/api/v1/groups/{group}/issues")
}

async fn file(app: &TestApp, device: &Device, group: &str, body: Value) -> Res {
    app.post(&file_path(group), Some(&device.token), body).await
}

/// Files a report about a street light; returns the `MyIssue`.
async fn report(app: &TestApp, device: &Device, group: &str, text: &str) -> Value {
    file(app, device, group, json!({"category": "Beleuchtung", "body": text})).await.expect(201)
}

/// Files a report in the group's only category (`second_org`'s groups).
async fn report_general(app: &TestApp, device: &Device, group: &str, text: &str) -> Value {
    file(app, device, group, json!({"category": "Allgemein", "body": text})).await.expect(201)
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap_or_else(|| panic!("no items in {page}")).iter().map(id).collect()
}

fn mine(issue: &str) -> String {
    format!("/api/v1/devices/me/issues/{issue}")
}

fn org_issue(issue: &str) -> String {
    format!("/api/v1/issues/{issue}")
}

fn inbox(org: &str) -> String {
    format!("/api/v1/organizations/{org}/issues")
}

/// Uploads a photo as the body of the request, as the PWA does.
async fn upload(app: &TestApp, token: Option<&str>, issue: &str, bytes: Vec<u8>, content_type: &str) -> Res {
    upload_from(app, None, token, issue, bytes, content_type).await
}

async fn upload_from(
    app: &TestApp,
    peer: Option<&str>,
    token: Option<&str>,
    issue: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> Res {
    let mut req = TestRequest::post()
        .uri(&format!("/api/v1/devices/me/issues/{issue}/photos"))
        .insert_header(("Content-Type", content_type))
        .set_payload(bytes);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(p) = peer {
        req = req.peer_addr(p.parse().expect("socket address"));
    }
    app.send(req.to_request()).await
}

/// A response read as bytes (photos are not JSON).
struct Raw {
    status: u16,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// GETs `path` and keeps the body's bytes (the harness reads bodies as JSON
/// or text, which would mangle a JPEG): a second service on the same state.
async fn fetch(app: &TestApp, path: &str, token: Option<&str>) -> Raw {
    let service = test::init_service(herold::app(app.state.clone())).await;
    let mut req = TestRequest::get().uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = test::call_service(&service, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await.to_vec();
    Raw { status, headers, bytes }
}

/// A served photo: a JPEG of `w`×`h` that carries no Exif, GPS or other metadata.
#[track_caller]
fn assert_clean_jpeg(raw: &Raw, w: u32, h: u32) {
    assert_eq!(raw.status, 200, "photo not served: {}", String::from_utf8_lossy(&raw.bytes));
    assert_eq!(raw.header("content-type"), Some("image/jpeg"));
    assert!(raw.bytes.starts_with(&[0xff, 0xd8, 0xff]), "not a JPEG");
    assert!(!has_exif_or_gps(&raw.bytes), "metadata survived: {:?}", metadata_blocks(&raw.bytes));
    let img = image::load_from_memory_with_format(&raw.bytes, image::ImageFormat::Jpeg).expect("decodable JPEG");
    assert_eq!((img.width(), img.height()), (w, h));
}

/// The stored row of the device holding `token`: (id, endpoint).
async fn device_row(app: &TestApp, token: &str) -> (String, String) {
    let hash = herold::auth::secrets::hash_secret(token);
    app.with_conn(move |c| {
        devices::table
            .filter(devices::token_hash.eq(hash))
            .select((devices::id, devices::endpoint))
            .first(c)
            .expect("device row")
    })
    .await
}

/// (actor, target_type, target_id, reason) of every audit row of `action`, oldest first.
async fn audit(app: &TestApp, action: &str) -> Vec<(String, String, String, Option<String>)> {
    let action = action.to_owned();
    app.with_conn(move |c| {
        audit_log::table
            .filter(audit_log::action.eq(action))
            .order((audit_log::created_at.asc(), audit_log::id.asc()))
            .select((audit_log::actor, audit_log::target_type, audit_log::target_id, audit_log::reason))
            .load(c)
            .expect("audit rows")
    })
    .await
}

/// Rows about one issue: (issues, posts, photos).
async fn stored(app: &TestApp, issue: &str) -> (i64, i64, i64) {
    let issue = issue.to_owned();
    app.with_conn(move |c| {
        (
            issues::table.filter(issues::id.eq(&issue)).count().get_result(c).expect("issues"),
            issue_posts::table.filter(issue_posts::issue_id.eq(&issue)).count().get_result(c).expect("posts"),
            issue_photos::table.filter(issue_photos::issue_id.eq(&issue)).count().get_result(c).expect("photos"),
        )
    })
    .await
}

/// A pseudonym reads like `K7QM-2XTP`.
#[track_caller]
fn assert_pseudonym(author: &str) {
    let chars: Vec<char> = author.chars().collect();
    assert_eq!(chars.len(), 9, "{author}");
    assert_eq!(chars[4], '-', "{author}");
    for (i, c) in chars.iter().enumerate() {
        if i != 4 {
            assert!(c.is_ascii_uppercase() || c.is_ascii_digit(), "{author}");
        }
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect();
    k.sort();
    k
}

// ---- a group's intake ----

both_backends!(
    async fn owners_and_editors_open_a_group_for_reports(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let hall = app.approved_org(&admin, "wismar", "bauhof@wismar.de", "Bauhof Wismar").await;
        let group = app.group(&hall, "Mängelmelder", "administration").await;
        let closed = json!({"open": false, "categories": [], "board": false});

        // Never configured: closed, to anyone who asks.
        assert_eq!(app.get(&intake_path(&group), None).await.expect(200), closed);
        let device = app.device().await;
        assert_eq!(app.get(&intake_path(&group), Some(&device.token)).await.expect(200), closed);
        app.get(&intake_path("no-such-group"), None).await.expect_error(404, "not_found");

        // The owner opens it; categories are trimmed.
        let body = set_intake(
            &app,
            &hall.user,
            &group,
            json!({"open": true, "categories": ["  Straßenschäden ", "Beleuchtung"], "board": false}),
        )
        .await;
        let want = json!({"open": true, "categories": ["Straßenschäden", "Beleuchtung"], "board": false});
        assert_eq!(body, want);
        assert_eq!(app.get(&intake_path(&group), None).await.expect(200), want);

        // An editor may change it too.
        let editor = app.invited_editor(&hall, "redaktion@wismar.de").await;
        let twelve: Vec<String> = (1..=12).map(|n| format!("Kategorie {n}")).collect();
        let forty = "ä".repeat(40);
        let mut edge = twelve.clone();
        edge[0] = forty.clone();
        let body = set_intake(&app, &editor, &group, json!({"open": true, "categories": edge, "board": true})).await;
        assert_eq!(body, json!({"open": true, "categories": edge, "board": true}));

        // What is refused leaves the intake as it was.
        let bad = [
            json!({"open": true, "categories": [], "board": false}),
            json!({"open": true, "categories": (1..=13).map(|n| format!("K{n}")).collect::<Vec<_>>(), "board": false}),
            json!({"open": true, "categories": ["ä".repeat(41)], "board": false}),
            json!({"open": true, "categories": ["Müll", "Müll"], "board": false}),
            json!({"open": true, "categories": ["Müll", " Müll "], "board": false}),
            json!({"open": true, "categories": ["Müll", ""], "board": false}),
            json!({"open": true, "categories": ["   "], "board": false}),
        ];
        for intake in bad {
            let res = app.put(&intake_path(&group), Some(&hall.user.access), intake.clone()).await;
            let body = res.expect(422);
            assert_eq!(body["code"], "invalid_field", "{intake}: {body}");
            assert_eq!(body["field"], "categories", "{intake}: {body}");
        }
        assert_eq!(app.get(&intake_path(&group), None).await.expect(200)["categories"], json!(edge));

        // Closing needs no categories.
        assert_eq!(set_intake(&app, &hall.user, &group, closed.clone()).await, closed);
        assert_eq!(app.get(&intake_path(&group), None).await.expect(200), closed);

        // Nobody else: not a device, another organization, the town's admin.
        let other = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        let open = json!({"open": true, "categories": ["Spam"], "board": true});
        app.put(&intake_path(&group), Some(&device.token), open.clone()).await.expect_error(401, "unauthenticated");
        app.put(&intake_path(&group), None, open.clone()).await.expect_error(401, "unauthenticated");
        for user in [&other.user, &admin] {
            let res = app.put(&intake_path(&group), Some(&user.access), open.clone()).await;
            assert!([403, 404].contains(&res.status.as_u16()), "{}: {}", res.status, res.body);
        }
        assert_eq!(app.get(&intake_path(&group), None).await.expect(200), closed);

        // Each change is audit-logged, by whom.
        let rows = audit(&app, "intake.update").await;
        // (All at one pinned time, so their order is not known.)
        let mut actors: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        actors.sort_unstable();
        let (owner, ed) = (format!("user:{}", hall.user.id), format!("user:{}", editor.id));
        let mut want = [owner.as_str(), ed.as_str(), owner.as_str()];
        want.sort_unstable();
        assert_eq!(actors, want, "{rows:?}");
        assert!(rows.iter().all(|r| r.2 == group), "{rows:?}");
    }
);

// ---- filing a report ----

both_backends!(
    async fn a_resident_files_a_report_and_what_is_refused(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;

        let body = file(
            &app,
            &device,
            &t.group,
            json!({"category": "Beleuchtung", "body": "Laterne defekt", "lat": 53.8925, "lon": 11.4647,
                   "address": "Lindenstraße 5", "lang": "de"}),
        )
        .await
        .expect(201);
        let issue = id(&body);
        assert_eq!(body["group"], json!({"id": t.group, "name": "Mängelmelder"}));
        assert_eq!(body["organization"], json!({"id": t.hall.org_id, "name": "Bauhof Wismar"}));
        assert_eq!(body["category"], "Beleuchtung");
        assert_eq!(body["body"], "Laterne defekt");
        assert_eq!(body["location"], json!({"lat": 53.8925, "lon": 11.4647}));
        assert_eq!(body["address"], "Lindenstraße 5");
        assert_eq!(body["status"], "received");
        assert_eq!(body["public"], false);
        assert_eq!(body["photos"], json!([]));
        assert_eq!(body["posts"], json!([]));
        assert_eq!(body["created_at"], "2026-11-26T12:00:00.000Z");
        assert_eq!(body["updated_at"], "2026-11-26T12:00:00.000Z");
        let (device_id, _) = device_row(&app, &device.token).await;
        assert!(!body.to_string().contains(&device_id), "the device id is no one's business: {body}");

        // The resident reads it back.
        let again = app.get(&mine(&issue), Some(&device.token)).await.expect(200);
        assert_eq!(again["body"], "Laterne defekt");
        assert_eq!(again["posts"], json!([]));
        let list = app.get("/api/v1/devices/me/issues", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&list), vec![issue.clone()]);
        assert_eq!(list["items"][0]["posts"], json!([]), "lists carry no posts");

        // Position and address are optional; the edges of the ranges are fine.
        let minimal = file(&app, &device, &t.group, json!({"category": "Müll", "body": "x"})).await.expect(201);
        assert_eq!(minimal["location"], Value::Null);
        assert_eq!(minimal["address"], Value::Null);
        for (lat, lon) in [(90.0, -180.0), (-90.0, 180.0), (0.0, 0.0)] {
            let body =
                file(&app, &device, &t.group, json!({"category": "Müll", "body": "Ecke", "lat": lat, "lon": lon}))
                    .await
                    .expect(201);
            assert_eq!(body["location"], json!({"lat": lat, "lon": lon}));
        }
        // Characters count, not bytes.
        let long = "ä".repeat(1000);
        file(&app, &device, &t.group, json!({"category": "Müll", "body": long, "address": "ß".repeat(200)}))
            .await
            .expect(201);

        // What is refused, and on which field.
        let refused = [
            (json!({"category": "Parkplätze", "body": "x"}), "category"),
            (json!({"category": "beleuchtung", "body": "x"}), "category"),
            (json!({"body": "x"}), "category"),
            (json!({"category": "Müll", "body": ""}), "body"),
            (json!({"category": "Müll", "body": "   "}), "body"),
            (json!({"category": "Müll", "body": "ä".repeat(1001)}), "body"),
            (json!({"category": "Müll", "body": "x", "address": "ß".repeat(201)}), "address"),
        ];
        for (req, field) in refused {
            let res = file(&app, &device, &t.group, req.clone()).await;
            assert_eq!(res.status.as_u16(), 422, "{req}: {}", res.body);
            if res.body["code"] == "invalid_field" {
                assert_eq!(res.body["field"], field, "{req}: {}", res.body);
            } else {
                // A missing field may be refused by the JSON layer.
                assert!(req.get("category").is_none(), "{req}: {}", res.body);
            }
        }
        for (lat, lon) in [
            (json!(53.9), Value::Null),
            (Value::Null, json!(11.4)),
            (json!(90.5), json!(11.4)),
            (json!(-91), json!(11.4)),
            (json!(53.9), json!(180.01)),
            (json!(53.9), json!(-181)),
        ] {
            let mut req = json!({"category": "Müll", "body": "x"});
            if !lat.is_null() {
                req["lat"] = lat;
            }
            if !lon.is_null() {
                req["lon"] = lon;
            }
            let body = file(&app, &device, &t.group, req.clone()).await.expect(422);
            assert_eq!(body["code"], "invalid_field", "{req}: {body}");
            assert!(["lat", "lon", "location"].contains(&body["field"].as_str().unwrap_or_default()), "{req}: {body}");
        }
        let res =
            file(&app, &device, &t.group, json!({"category": "Müll", "body": "x", "lat": "53.9", "lon": 11})).await;
        assert_eq!(res.status.as_u16(), 422, "{}", res.body);

        // Only a device files; only into a group that is open and exists.
        let ok = json!({"category": "Müll", "body": "x"});
        app.post(&file_path(&t.group), None, ok.clone()).await.expect_error(401, "unauthenticated");
        app.post(&file_path(&t.group), Some(&t.hall.user.access), ok.clone())
            .await
            .expect_error(401, "unauthenticated");
        file(&app, &device, "no-such-group", ok.clone()).await.expect_error(404, "not_found");
        let news = app.group(&t.hall, "Neuigkeiten", "administration").await;
        file(&app, &device, &news, ok.clone()).await.expect_error(409, "intake_closed");
        set_intake(&app, &t.hall.user, &t.group, json!({"open": false, "categories": CATEGORIES, "board": false}))
            .await;
        file(&app, &device, &t.group, ok.clone()).await.expect_error(409, "intake_closed");

        // Nothing refused was stored: the first, the minimal, three ranges, the long one.
        let list = app.get("/api/v1/devices/me/issues?limit=100", Some(&device.token)).await.expect(200);
        assert_eq!(ids(&list).len(), 6, "{list}");
        // Closing the intake keeps what was filed.
        app.get(&mine(&issue), Some(&device.token)).await.expect(200);
        app.get(&org_issue(&issue), Some(&t.hall.user.access)).await.expect(200);
    }
);

// ---- the organization's inbox ----

both_backends!(
    async fn the_inbox_filters_by_status_category_and_group_and_pages(app: TestApp) {
        let t = town(&app).await;
        let second = app.group(&t.hall, "Spielplätze", "administration").await;
        set_intake(&app, &t.hall.user, &second, json!({"open": true, "categories": CATEGORIES, "board": false})).await;
        let (club, club_group) = second_org(&app, &t, "info@sv-wismar.de", "SV Wismar").await;
        let (a, b) = (app.device().await, app.device().await);

        let mut filed = Vec::new();
        for (device, group, category, text) in [
            (&a, &t.group, "Beleuchtung", "i1"),
            (&b, &t.group, "Müll", "i2"),
            (&a, &second, "Beleuchtung", "i3"),
            (&b, &t.group, "Beleuchtung", "i4"),
        ] {
            let body = file(&app, device, group, json!({"category": category, "body": text})).await.expect(201);
            filed.push(id(&body));
            app.advance(60_000);
        }
        let [i1, i2, i3, i4] = [filed[0].clone(), filed[1].clone(), filed[2].clone(), filed[3].clone()];
        report_general(&app, &a, &club_group, "beim Verein").await;
        app.advance(60_000);

        // A status change is activity: i1 moves to the top.
        let patched =
            app.patch(&org_issue(&i1), Some(&t.hall.user.access), json!({"status": "in_progress"})).await.expect(200);
        assert_eq!(patched["status"], "in_progress");
        assert_eq!(patched["updated_at"], "2026-11-26T12:05:00.000Z");

        let user = Some(t.hall.user.access.as_str());
        let all = app.get(&inbox(&t.hall.org_id), user).await.expect(200);
        assert_eq!(ids(&all), vec![i1.clone(), i4.clone(), i3.clone(), i2.clone()]);
        assert!(all["next"].is_null());
        for item in all["items"].as_array().unwrap() {
            assert_pseudonym(item["author"].as_str().expect("author"));
            assert_eq!(item["blocked"], false);
            assert_eq!(item["posts"], json!([]), "lists carry no posts: {item}");
            assert_eq!(item["organization"]["id"], t.hall.org_id.as_str());
        }
        let filter = |q: String| {
            let path = format!("{}?{q}", inbox(&t.hall.org_id));
            let app = &app;
            async move { ids(&app.get(&path, user).await.expect(200)) }
        };
        assert_eq!(filter("status=in_progress".into()).await, vec![i1.clone()]);
        assert_eq!(filter("status=received".into()).await, vec![i4.clone(), i3.clone(), i2.clone()]);
        assert_eq!(filter("status=done".into()).await, Vec::<String>::new());
        assert_eq!(filter("category=Beleuchtung".into()).await, vec![i1.clone(), i4.clone(), i3.clone()]);
        assert_eq!(filter("category=M%C3%BCll".into()).await, vec![i2.clone()]);
        assert_eq!(filter(format!("group={second}")).await, vec![i3.clone()]);
        assert_eq!(filter(format!("group={}&category=Beleuchtung", t.group)).await, vec![i1.clone(), i4.clone()]);
        assert_eq!(filter(format!("group={}&status=received&category=Beleuchtung", t.group)).await, vec![i4.clone()]);

        // Pages: [i1 i4 i3] [i2].
        let p1 = app.get(&format!("{}?limit=3", inbox(&t.hall.org_id)), user).await.expect(200);
        assert_eq!(ids(&p1), vec![i1.clone(), i4.clone(), i3.clone()]);
        let next = p1["next"].as_str().expect("next").to_owned();
        let p2 = app.get(&format!("{}?limit=3&cursor={next}", inbox(&t.hall.org_id)), user).await.expect(200);
        assert_eq!(ids(&p2), vec![i2.clone()]);
        assert!(p2["next"].is_null());
        for bad in ["limit=0", "limit=101", "cursor=%21%21", "status=closed"] {
            let res = app.get(&format!("{}?{bad}", inbox(&t.hall.org_id)), user).await;
            assert_eq!(res.status.as_u16(), 422, "{bad}: {}", res.body);
        }

        // The club sees its own report only; the hall never sees the club's.
        let club_inbox = app.get(&inbox(&club.org_id), Some(&club.user.access)).await.expect(200);
        assert_eq!(club_inbox["items"].as_array().unwrap().len(), 1);
        assert!(!ids(&club_inbox).iter().any(|i| filed.contains(i)));

        // Each device lists its own reports, newest activity first.
        let of_a = app.get("/api/v1/devices/me/issues", Some(&a.token)).await.expect(200);
        assert_eq!(ids(&of_a).len(), 3);
        assert_eq!(ids(&of_a)[0], i1, "i1 changed last: {of_a}");
        assert!(ids(&of_a).contains(&i3) && !ids(&of_a).contains(&i2));
        let of_b = app.get("/api/v1/devices/me/issues", Some(&b.token)).await.expect(200);
        assert_eq!(ids(&of_b), vec![i4, i2]);
        let p = app.get("/api/v1/devices/me/issues?limit=2", Some(&a.token)).await.expect(200);
        assert_eq!(ids(&p).len(), 2);
        let next = p["next"].as_str().expect("next");
        let p = app.get(&format!("/api/v1/devices/me/issues?limit=2&cursor={next}"), Some(&a.token)).await.expect(200);
        assert_eq!(ids(&p).len(), 1);
        assert!(p["next"].is_null());
    }
);

// ---- the conversation, with pushes to the reporting device only ----

both_backends_delivering!(
    async fn replies_and_status_changes_reach_the_reporting_device_only(d: Delivering, batch = 500) {
        let app = &d.app;
        let t = town(app).await;
        let mut devs = d.devices(3).await;
        let (sub, resident) = devs.remove(0);
        let (neighbour_sub, neighbour) = devs.remove(0);
        let (follower_sub, follower) = devs.remove(0);
        // Everyone follows the group; the neighbour has a report of its own.
        for device in [&resident, &neighbour, &follower] {
            d.follow(device, &t.group).await;
        }
        let filed = file(
            app,
            &resident,
            &t.group,
            json!({"category": "Beleuchtung", "body": "Laterne Lindenstraße 5 flackert", "lang": "en"}),
        )
        .await
        .expect(201);
        let issue = id(&filed);
        let theirs = id(&report(app, &neighbour, &t.group, "Schlagloch am Markt").await);
        d.deliver().await;
        assert_eq!(d.push.count(), 0, "filing a report notifies nobody");

        // A reply: one post, one push, to the resident.
        app.advance(60_000);
        let staff = Some(t.hall.user.access.as_str());
        let replied = app
            .post(&format!("/api/v1/issues/{issue}/replies"), staff, json!({"body": "Danke, wir kümmern uns."}))
            .await
            .expect(201);
        assert_eq!(replied["id"], issue.as_str());
        assert_eq!(replied["status"], "received", "a reply without status leaves it");
        let posts = replied["posts"].as_array().expect("posts");
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0]["from"], "organization");
        assert_eq!(posts[0]["body"], "Danke, wir kümmern uns.");
        assert_eq!(posts[0]["status"], Value::Null);
        assert_eq!(posts[0]["created_at"], "2026-11-26T12:01:00.000Z");

        d.deliver().await;
        d.push.assert_no_violations();
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 1, "exactly one push to the resident");
        let p = &got[0].payload;
        assert_eq!(p["notification"]["tag"], format!("issue-{issue}"));
        assert_eq!(p["notification"]["navigate"], format!("http://localhost:8080/r/{issue}"));
        assert!(p["notification"]["body"].as_str().is_some_and(|b| b.contains("Danke, wir kümmern uns.")), "{p}");
        assert!(p["notification"]["title"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
        assert_eq!(p["notification"]["lang"], "en", "the report's language: {p}");
        assert_eq!(p["herold"]["kind"], "issue");
        assert!(d.push.requests_for(&neighbour_sub.id).is_empty(), "the neighbour got the resident's reply");
        assert!(d.push.requests_for(&follower_sub.id).is_empty(), "a follower got the resident's reply");

        // A status change by PATCH: a post with the status, and a push.
        app.advance(60_000);
        let patched = app.patch(&org_issue(&issue), staff, json!({"status": "in_progress"})).await.expect(200);
        assert_eq!(patched["status"], "in_progress");
        let last = patched["posts"].as_array().and_then(|p| p.last().cloned());
        if let Some(last) = last {
            assert_eq!(last["status"], "in_progress", "{patched}");
        }
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].payload["notification"]["tag"], format!("issue-{issue}"));
        assert!(got[1].payload["notification"]["navigate"].as_str().is_some_and(|n| n.ends_with(&format!("/r/{issue}"))));
        // Setting the same status again is no change: no post, no push.
        app.patch(&org_issue(&issue), staff, json!({"status": "in_progress"})).await.expect(200);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 2, "no change, no push");

        // A reply with a status: one post carrying both, one push.
        app.advance(60_000);
        let done = app
            .post(
                &format!("/api/v1/issues/{issue}/replies"),
                staff,
                json!({"body": "Die Laterne ist repariert.", "status": "done"}),
            )
            .await
            .expect(201);
        assert_eq!(done["status"], "done");
        let last = done["posts"].as_array().and_then(|p| p.last().cloned()).expect("posts");
        assert_eq!((last["body"].as_str(), last["status"].as_str()), (Some("Die Laterne ist repariert."), Some("done")));
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        assert_eq!(got.len(), 3);
        assert!(got[2].payload["notification"]["body"].as_str().is_some_and(|b| b.contains("repariert")), "{:?}", got[2].payload);

        // The resident's thread shows it all, oldest first.
        let thread = app.get(&mine(&issue), Some(&resident.token)).await.expect(200);
        assert_eq!(thread["status"], "done");
        let posts = thread["posts"].as_array().expect("posts");
        assert_eq!(posts.len(), 3, "{thread}");
        assert!(posts.iter().all(|p| p["from"] == "organization"));
        assert_eq!(posts[0]["body"], "Danke, wir kümmern uns.");
        assert_eq!((posts[1]["status"].as_str(), posts[1]["body"].is_null()), (Some("in_progress"), true));
        assert_eq!(posts[2]["status"], "done");
        assert_eq!(thread["updated_at"], "2026-11-26T12:03:00.000Z");

        // The resident adds to the thread: the organization reads it; no push to anyone.
        app.advance(60_000);
        let post = app
            .post(&format!("{}/posts", mine(&issue)), Some(&resident.token), json!({"body": "Danke schön!"}))
            .await
            .expect(201);
        assert_eq!(post["from"], "resident");
        assert_eq!(post["body"], "Danke schön!");
        assert_eq!(post["status"], Value::Null);
        let seen = app.get(&org_issue(&issue), staff).await.expect(200);
        let last = seen["posts"].as_array().and_then(|p| p.last().cloned()).expect("posts");
        assert_eq!((last["from"].as_str(), last["body"].as_str()), (Some("resident"), Some("Danke schön!")));
        for bad in [json!({"body": ""}), json!({"body": "x".repeat(1001)}), json!({})] {
            let res = app.post(&format!("{}/posts", mine(&issue)), Some(&resident.token), bad.clone()).await;
            assert_eq!(res.status.as_u16(), 422, "{bad}: {}", res.body);
        }

        // A reply needs a body or a status, within limits.
        for bad in [
            json!({}),
            json!({"body": ""}),
            json!({"body": "x".repeat(2001)}),
            json!({"status": "closed"}),
            json!({"body": "x", "status": "erledigt"}),
        ] {
            let res = app.post(&format!("/api/v1/issues/{issue}/replies"), staff, bad.clone()).await;
            assert_eq!(res.status.as_u16(), 422, "{bad}: {}", res.body);
        }
        app.patch(&org_issue(&issue), staff, json!({"status": "archived"})).await.expect(422);
        app.post(&format!("/api/v1/issues/{issue}/replies"), staff, json!({"body": "x".repeat(2000)})).await.expect(201);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 4);

        // The neighbour's own reply goes to the neighbour, in German by default.
        app.post(&format!("/api/v1/issues/{theirs}/replies"), staff, json!({"body": "Ist notiert.", "status": "rejected"}))
            .await
            .expect(201);
        d.deliver().await;
        let got = d.push.deliveries_for(&neighbour_sub.id);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload["notification"]["tag"], format!("issue-{theirs}"));
        assert_eq!(got[0].payload["notification"]["lang"], "de");
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 4);
        assert!(d.push.requests_for(&follower_sub.id).is_empty());
        d.push.assert_no_violations();
    }
);

// ---- deleting a report ----

both_backends!(
    async fn a_resident_deletes_a_report_with_its_posts_and_photos(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;
        let issue = id(&report(&app, &device, &t.group, "Laterne defekt").await);
        let photo = id(&upload(&app, Some(&device.token), &issue, jpeg(64, 48), "image/jpeg").await.expect(201));
        let staff = Some(t.hall.user.access.as_str());
        app.post(&format!("/api/v1/issues/{issue}/replies"), staff, json!({"body": "Wir schauen."})).await.expect(201);
        let keep = id(&report(&app, &device, &t.group, "Noch eine").await);
        let org_photo = format!("/api/v1/issues/{issue}/photos/{photo}");
        assert_clean_jpeg(&fetch(&app, &org_photo, staff).await, 64, 48);
        assert_eq!(stored(&app, &issue).await, (1, 1, 1));

        app.delete(&mine(&issue), Some(&device.token)).await.expect(204);

        app.get(&org_issue(&issue), staff).await.expect_error(404, "not_found");
        assert_eq!(fetch(&app, &org_photo, staff).await.status, 404);
        app.get(&mine(&issue), Some(&device.token)).await.expect_error(404, "not_found");
        let device_photo = format!("{}/photos/{photo}", mine(&issue));
        assert_eq!(fetch(&app, &device_photo, Some(&device.token)).await.status, 404);
        assert_eq!(stored(&app, &issue).await, (0, 0, 0), "issue, posts and photos are gone");
        let list = app.get(&inbox(&t.hall.org_id), staff).await.expect(200);
        assert_eq!(ids(&list), vec![keep.clone()]);
        app.delete(&mine(&issue), Some(&device.token)).await.expect_error(404, "not_found");
        app.get(&mine(&keep), Some(&device.token)).await.expect(200);
    }
);

// ---- photos ----

both_backends!(
    async fn photos_are_re_encoded_without_exif_or_gps(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;
        let token = Some(device.token.as_str());
        let staff = Some(t.hall.user.access.as_str());
        let issue = id(&report(&app, &device, &t.group, "Laterne defekt").await);

        let mut uploaded = Vec::new();
        for (bytes, content_type, w, h) in [
            (jpeg_with_gps(640, 480), "image/jpeg", 640, 480),
            (png_with_exif(300, 200), "image/png", 300, 200),
            (webp_with_exif(120, 90), "image/webp", 120, 90),
        ] {
            assert!(has_exif_or_gps(&bytes), "the fixture carries metadata");
            let photo = upload(&app, token, &issue, bytes, content_type).await.expect(201);
            assert_eq!(keys(&photo), ["bytes", "height", "id", "width"], "{photo}");
            assert_eq!((photo["width"].as_u64(), photo["height"].as_u64()), (Some(w), Some(h)), "{photo}");
            uploaded.push((photo, w as u32, h as u32));
            app.advance(1000);
        }
        // A fourth is one too many, and is not stored.
        upload(&app, token, &issue, jpeg(32, 32), "image/jpeg").await.expect_error(409, "too_many_photos");

        let thread = app.get(&mine(&issue), token).await.expect(200);
        let listed: Vec<String> = thread["photos"].as_array().expect("photos").iter().map(id).collect();
        assert_eq!(listed, uploaded.iter().map(|(p, _, _)| id(p)).collect::<Vec<_>>());
        let org_view = app.get(&org_issue(&issue), staff).await.expect(200);
        assert_eq!(org_view["photos"], thread["photos"]);

        // Both the resident and the organization get a clean JPEG.
        for (photo, w, h) in &uploaded {
            let pid = id(photo);
            let own = fetch(&app, &format!("{}/photos/{pid}", mine(&issue)), token).await;
            assert_clean_jpeg(&own, *w, *h);
            assert_eq!(own.header("cache-control"), Some("private, max-age=86400"));
            assert_eq!(own.bytes.len() as u64, photo["bytes"].as_u64().expect("bytes"), "`bytes` is the stored size");
            let org = fetch(&app, &format!("/api/v1/issues/{issue}/photos/{pid}"), staff).await;
            assert_clean_jpeg(&org, *w, *h);
            assert_eq!(org.bytes, own.bytes);
        }
        // Stored as served: no Exif, no GPS in the database either.
        let id0 = issue.clone();
        let blobs: Vec<(String, Vec<u8>)> = app
            .with_conn(move |c| {
                issue_photos::table
                    .filter(issue_photos::issue_id.eq(id0))
                    .select((issue_photos::content_type, issue_photos::data))
                    .load(c)
                    .expect("photos")
            })
            .await;
        assert_eq!(blobs.len(), 3);
        for (content_type, data) in &blobs {
            assert_eq!(content_type, "image/jpeg");
            assert!(!has_exif_or_gps(data), "stored with metadata: {:?}", metadata_blocks(data));
        }

        // On a second report: the orientation is applied, large photos shrink,
        // and the format is read from the bytes, not the header.
        let second = id(&report(&app, &device, &t.group, "Noch eine Laterne").await);
        let turned = upload(&app, token, &second, jpeg_with_orientation(60, 40, 6), "image/jpeg").await.expect(201);
        assert_eq!((turned["width"].as_u64(), turned["height"].as_u64()), (Some(40), Some(60)), "{turned}");
        let served = fetch(&app, &format!("{}/photos/{}", mine(&second), id(&turned)), token).await;
        assert_clean_jpeg(&served, 40, 60);
        let big = upload(&app, token, &second, png(3000, 1000), "image/jpeg").await.expect(201);
        assert_eq!(big["width"], 2048, "{big}");
        let height = big["height"].as_u64().expect("height");
        assert!((682..=683).contains(&height), "{big}");
        let served = fetch(&app, &format!("{}/photos/{}", mine(&second), id(&big)), token).await;
        assert_clean_jpeg(&served, 2048, height as u32);

        // Refused without harm: not images, cut off, bombs, too large.
        let full = jpeg(200, 150);
        let truncated = full[..full.len() / 2].to_vec();
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut fake_header = vec![0xff, 0xd8, 0xff, 0xe0];
        fake_header.extend(&random);
        for (what, bytes, content_type) in [
            ("truncated JPEG", truncated, "image/jpeg"),
            ("random bytes", random.clone(), "image/jpeg"),
            ("JPEG magic, then noise", fake_header, "image/jpeg"),
            ("text", b"Dies ist kein Bild.".to_vec(), "image/png"),
            ("empty", Vec::new(), "image/webp"),
            ("PNG bomb", png_bomb(), "image/png"),
        ] {
            let res = upload(&app, token, &second, bytes, content_type).await;
            assert_eq!(res.status.as_u16(), 422, "{what}: {}", res.body);
            assert_eq!(res.body["code"], "invalid_image", "{what}: {}", res.body);
            app.get("/healthz", None).await.expect(200);
        }
        let mut huge = jpeg(64, 64);
        huge.resize(10 * MIB + 1, 0);
        upload(&app, token, &second, huge, "image/jpeg").await.expect_error(413, "payload_too_large");
        // Still answering, and nothing refused counted as a photo: a third fits.
        upload(&app, token, &second, jpeg(64, 64), "image/jpeg").await.expect(201);
        upload(&app, token, &second, jpeg(64, 64), "image/jpeg").await.expect_error(409, "too_many_photos");
        assert_eq!(stored(&app, &second).await.2, 3);

        // Someone else's report, or none: 404; without a token: 401.
        let stranger = app.device().await;
        upload(&app, Some(&stranger.token), &issue, jpeg(32, 32), "image/jpeg").await.expect_error(404, "not_found");
        let third = id(&report(&app, &device, &t.group, "Dritte").await);
        upload(&app, Some(&stranger.token), &third, jpeg(32, 32), "image/jpeg").await.expect_error(404, "not_found");
        upload(&app, token, "no-such-issue", jpeg(32, 32), "image/jpeg").await.expect_error(404, "not_found");
        upload(&app, None, &third, jpeg(32, 32), "image/jpeg").await.expect_error(401, "unauthenticated");
        assert_eq!(stored(&app, &third).await.2, 0);
    }
);

// ---- pseudonyms ----

both_backends!(
    async fn organizations_see_a_pseudonym_per_organization_never_the_device(app: TestApp) {
        let t = town(&app).await;
        let (club, club_group) = second_org(&app, &t, "info@sv-wismar.de", "SV Wismar").await;
        let device = app.device().await;
        let other = app.device().await;
        let (device_id, endpoint) = device_row(&app, &device.token).await;

        let h1 = id(&report(&app, &device, &t.group, "erste").await);
        let h2 = id(&report(&app, &device, &t.group, "zweite").await);
        let c1 = id(&report_general(&app, &device, &club_group, "beim Verein").await);
        let h3 = id(&report(&app, &other, &t.group, "von jemand anderem").await);
        let hall = Some(t.hall.user.access.as_str());
        let author = |issue: String, user: &'static str| {
            let app = &app;
            let token = if user == "hall" { t.hall.user.access.clone() } else { club.user.access.clone() };
            async move {
                app.get(&org_issue(&issue), Some(&token)).await.expect(200)["author"]
                    .as_str()
                    .expect("author")
                    .to_owned()
            }
        };
        let (a1, a2, b1, other_a) = (
            author(h1.clone(), "hall").await,
            author(h2.clone(), "hall").await,
            author(c1.clone(), "club").await,
            author(h3.clone(), "hall").await,
        );
        for a in [&a1, &b1, &other_a] {
            assert_pseudonym(a);
        }
        assert_eq!(a1, a2, "stable within one organization");
        assert_ne!(a1, b1, "two organizations cannot link one resident");
        assert_ne!(a1, other_a, "two residents are two pseudonyms");

        // Nothing the organization reads carries the device, its token or endpoint.
        let token_tail = device.token.trim_start_matches("hdv_").to_owned();
        let secrets = [device_id.as_str(), device.token.as_str(), token_tail.as_str(), endpoint.as_str()];
        for a in [&a1, &b1] {
            assert!(!device_id.contains(a.as_str()) && !a.contains(&device_id), "{a}");
        }
        app.post(&format!("/api/v1/issues/{h1}/block"), hall, json!({"reason": "Test"})).await.expect(204);
        let texts = [
            app.get(&inbox(&t.hall.org_id), hall).await.expect(200).to_string(),
            app.get(&org_issue(&h1), hall).await.expect(200).to_string(),
            app.get(&format!("/api/v1/organizations/{}/blocks", t.hall.org_id), hall).await.expect(200).to_string(),
            app.get(&inbox(&club.org_id), Some(&club.user.access)).await.expect(200).to_string(),
            app.get(&org_issue(&c1), Some(&club.user.access)).await.expect(200).to_string(),
        ];
        for text in &texts {
            for secret in secrets {
                assert!(!text.contains(secret), "organization JSON shows `{secret}`: {text}");
            }
            assert!(!text.contains("device"), "organization JSON names the device: {text}");
        }
        // The hall never sees the club's pseudonym and vice versa.
        assert!(!texts[0].contains(&b1) && !texts[3].contains(&a1));
    }
);

// ---- authorization ----

both_backends!(
    async fn reports_stay_between_resident_and_organization(app: TestApp) {
        let t = town(&app).await;
        let hall_editor = app.invited_editor(&t.hall, "redaktion@wismar.de").await;
        let club = app.approved_org(&t.admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
        app.with_tenant("anklam").await;
        let anklam = app.city_admin("anklam", "rathaus@anklam.de").await;
        let operator = app.operator("betrieb@herold.example").await;
        let device = app.device().await;
        let stranger = app.device().await;
        let issue = id(&report(&app, &device, &t.group, "Laterne defekt").await);
        let photo = id(&upload(&app, Some(&device.token), &issue, jpeg(64, 48), "image/jpeg").await.expect(201));
        let org_photo = format!("/api/v1/issues/{issue}/photos/{photo}");

        // Members of the organization, editor included, read and answer.
        app.get(&org_issue(&issue), Some(&hall_editor.access)).await.expect(200);
        assert_eq!(fetch(&app, &org_photo, Some(&hall_editor.access)).await.status, 200);

        // Another organization of the town, the town's own city admin (reports
        // are between resident and organization), another town's admin.
        let outsiders = [
            ("club owner", &club.user),
            ("city admin wismar", &t.admin),
            ("city admin anklam", &anklam),
            ("operator", &operator),
        ];
        for (who, user) in outsiders {
            let token = Some(user.access.as_str());
            let denied = |res: Res, what: &str| {
                let status = res.status.as_u16();
                assert!([403, 404].contains(&status), "{who} {what}: {status} {}", res.body);
                let text = res.body.to_string();
                assert!(!text.contains("Laterne") && !text.contains(&photo), "{who} {what} leaks: {text}");
            };
            denied(app.get(&org_issue(&issue), token).await, "reads the report");
            denied(app.get(&inbox(&t.hall.org_id), token).await, "reads the inbox");
            denied(
                app.post(&format!("/api/v1/issues/{issue}/replies"), token, json!({"body": "Hallo"})).await,
                "replies",
            );
            denied(app.patch(&org_issue(&issue), token, json!({"status": "done"})).await, "changes the status");
            denied(app.patch(&org_issue(&issue), token, json!({"public": true})).await, "publishes");
            denied(app.post(&format!("/api/v1/issues/{issue}/block"), token, json!({"reason": "x"})).await, "blocks");
            let raw = fetch(&app, &org_photo, token).await;
            assert!([403, 404].contains(&raw.status), "{who} reads the photo: {}", raw.status);
            assert!(!raw.bytes.starts_with(&[0xff, 0xd8]), "{who} got the photo");
        }
        // Nothing changed.
        let seen = app.get(&org_issue(&issue), Some(&t.hall.user.access)).await.expect(200);
        assert_eq!((seen["status"].as_str(), seen["posts"].as_array().map(Vec::len)), (Some("received"), Some(0)));
        assert_eq!((seen["public"].as_bool(), seen["blocked"].as_bool()), (Some(false), Some(false)));

        // Another device: as if the report did not exist.
        let s = Some(stranger.token.as_str());
        app.get(&mine(&issue), s).await.expect_error(404, "not_found");
        assert_eq!(fetch(&app, &format!("{}/photos/{photo}", mine(&issue)), s).await.status, 404);
        app.post(&format!("{}/posts", mine(&issue)), s, json!({"body": "Ich auch"}))
            .await
            .expect_error(404, "not_found");
        app.delete(&mine(&issue), s).await.expect_error(404, "not_found");
        assert_eq!(app.get("/api/v1/devices/me/issues", s).await.expect(200), json!({"items": [], "next": null}));
        // The resident's own token opens no organization route, and no token opens anything.
        app.get(&org_issue(&issue), Some(&device.token)).await.expect_error(401, "unauthenticated");
        assert_eq!(fetch(&app, &org_photo, Some(&device.token)).await.status, 401);
        app.get(&mine(&issue), None).await.expect_error(401, "unauthenticated");
        assert_eq!(fetch(&app, &format!("{}/photos/{photo}", mine(&issue)), None).await.status, 401);
        // The photo of one report is not reachable through another.
        let other = id(&report(&app, &device, &t.group, "zweite").await);
        assert_eq!(fetch(&app, &format!("{}/photos/{photo}", mine(&other)), Some(&device.token)).await.status, 404);
        assert_eq!(
            fetch(&app, &format!("/api/v1/issues/{other}/photos/{photo}"), Some(&t.hall.user.access)).await.status,
            404
        );
        assert_eq!(stored(&app, &issue).await, (1, 0, 1));
    }
);

// ---- the public board ----

both_backends!(
    async fn a_published_report_shows_on_the_board_without_author_or_place(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;
        let staff = Some(t.hall.user.access.as_str());
        let filed = file(
            &app,
            &device,
            &t.group,
            json!({"category": "Beleuchtung", "body": "Laterne flackert", "lat": 53.8925, "lon": 11.4647,
                   "address": "Lindenstraße 5"}),
        )
        .await
        .expect(201);
        let issue = id(&filed);
        let photo =
            id(&upload(&app, Some(&device.token), &issue, jpeg_with_gps(80, 60), "image/jpeg").await.expect(201));
        let hidden = id(&report(&app, &device, &t.group, "bleibt privat").await);
        let author =
            app.get(&org_issue(&issue), staff).await.expect(200)["author"].as_str().expect("author").to_owned();
        let board = format!("/api/v1/groups/{}/board", t.group);
        let board_photo = format!("{board}/{issue}/photos/{photo}");

        // The board is off: nothing can be published.
        app.patch(&org_issue(&issue), staff, json!({"public": true})).await.expect_error(409, "board_disabled");
        assert_eq!(app.get(&org_issue(&issue), staff).await.expect(200)["public"], false);
        assert_eq!(fetch(&app, &board_photo, None).await.status, 404);

        set_intake(&app, &t.hall.user, &t.group, json!({"open": true, "categories": CATEGORIES, "board": true})).await;
        assert_eq!(app.get(&intake_path(&t.group), None).await.expect(200)["board"], true);
        assert_eq!(app.get(&board, None).await.expect(200), json!({"items": [], "next": null}));
        assert_eq!(fetch(&app, &board_photo, None).await.status, 404, "not public yet");

        let published = app.patch(&org_issue(&issue), staff, json!({"public": true})).await.expect(200);
        assert_eq!(published["public"], true);
        assert_eq!(app.get(&mine(&issue), Some(&device.token)).await.expect(200)["public"], true);

        let page = app.get(&board, None).await.expect(200);
        assert_eq!(ids(&page), vec![issue.clone()], "only the published one: {page}");
        let item = &page["items"][0];
        assert_eq!(keys(item), ["body", "category", "created_at", "id", "photos", "status", "updated_at"], "{item}");
        assert_eq!(item["body"], "Laterne flackert");
        assert_eq!(item["category"], "Beleuchtung");
        assert_eq!(item["status"], "received");
        let photos = item["photos"].as_array().expect("photos");
        assert_eq!(photos.len(), 1, "{item}");
        assert_eq!(
            (photos[0]["id"].as_str(), photos[0]["width"].as_u64(), photos[0]["height"].as_u64()),
            (Some(photo.as_str()), Some(80), Some(60))
        );
        let text = page.to_string();
        for private in [author.as_str(), "Lindenstraße", "53.89", "11.46", "author", "location", "address", &hidden] {
            assert!(!text.contains(private), "the board shows `{private}`: {text}");
        }
        // Anyone sees the published photo, clean; and the board follows status changes.
        let raw = fetch(&app, &board_photo, None).await;
        assert_clean_jpeg(&raw, 80, 60);
        assert_eq!(fetch(&app, &format!("{board}/{hidden}/photos/{photo}"), None).await.status, 404);
        app.patch(&org_issue(&issue), staff, json!({"status": "in_progress"})).await.expect(200);
        assert_eq!(app.get(&board, None).await.expect(200)["items"][0]["status"], "in_progress");

        // Unpublished: gone from the board, photo included.
        let res = app.patch(&org_issue(&issue), staff, json!({"public": false})).await.expect(200);
        assert_eq!(res["public"], false);
        assert_eq!(app.get(&board, None).await.expect(200), json!({"items": [], "next": null}));
        assert_eq!(fetch(&app, &board_photo, None).await.status, 404);

        // Both audit-logged, by the member who did it.
        let actor = format!("user:{}", t.hall.user.id);
        for action in ["issue.publish", "issue.unpublish"] {
            let rows = audit(&app, action).await;
            assert_eq!(rows.len(), 1, "{action}: {rows:?}");
            assert_eq!(
                (rows[0].0.as_str(), rows[0].2.as_str()),
                (actor.as_str(), issue.as_str()),
                "{action}: {rows:?}"
            );
        }
        // Published again and then deleted by the resident: gone from the board too.
        app.patch(&org_issue(&issue), staff, json!({"public": true})).await.expect(200);
        app.delete(&mine(&issue), Some(&device.token)).await.expect(204);
        assert_eq!(app.get(&board, None).await.expect(200)["items"], json!([]));
        assert_eq!(fetch(&app, &board_photo, None).await.status, 404);
    }
);

// ---- blocks ----

both_backends!(
    async fn a_blocked_device_is_no_longer_heard_by_that_organization(app: TestApp) {
        let t = town(&app).await;
        let (club, club_group) = second_org(&app, &t, "info@sv-wismar.de", "SV Wismar").await;
        let troll = app.device().await;
        let other = app.device().await;
        let staff = Some(t.hall.user.access.as_str());
        let issue = id(&report(&app, &troll, &t.group, "Beschimpfung").await);
        let author =
            app.get(&org_issue(&issue), staff).await.expect(200)["author"].as_str().expect("author").to_owned();

        for bad in [json!({"reason": ""}), json!({"reason": "x".repeat(501)}), json!({})] {
            let res = app.post(&format!("/api/v1/issues/{issue}/block"), staff, bad.clone()).await;
            assert_eq!(res.status.as_u16(), 422, "{bad}: {}", res.body);
        }
        app.post(&format!("/api/v1/issues/{issue}/block"), staff, json!({"reason": "Beleidigungen"})).await.expect(204);
        assert_eq!(app.get(&org_issue(&issue), staff).await.expect(200)["blocked"], true);

        // The organization hears nothing more from the device …
        let ok = json!({"category": "Müll", "body": "noch was"});
        file(&app, &troll, &t.group, ok.clone()).await.expect_error(403, "blocked");
        app.post(&format!("{}/posts", mine(&issue)), Some(&troll.token), json!({"body": "Hallo?"}))
            .await
            .expect_error(403, "blocked");
        // … while others still report, and the device still reaches other organizations.
        file(&app, &other, &t.group, ok.clone()).await.expect(201);
        report_general(&app, &troll, &club_group, "beim Verein").await;
        // The device still reads its own report.
        app.get(&mine(&issue), Some(&troll.token)).await.expect(200);

        let blocks_path = format!("/api/v1/organizations/{}/blocks", t.hall.org_id);
        let blocks = app.get(&blocks_path, staff).await.expect(200);
        let items = blocks["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{blocks}");
        assert_eq!(keys(&items[0]), ["author", "created_at", "id", "reason"]);
        assert_eq!(
            (items[0]["author"].as_str(), items[0]["reason"].as_str()),
            (Some(author.as_str()), Some("Beleidigungen"))
        );
        assert!(blocks["next"].is_null());
        let block = id(&items[0]);
        let club_blocks =
            app.get(&format!("/api/v1/organizations/{}/blocks", club.org_id), Some(&club.user.access)).await;
        assert_eq!(club_blocks.expect(200)["items"], json!([]));
        // Blocking twice keeps one block.
        app.post(&format!("/api/v1/issues/{issue}/block"), staff, json!({"reason": "nochmal"})).await.expect(204);
        assert_eq!(app.get(&blocks_path, staff).await.expect(200)["items"].as_array().map(Vec::len), Some(1));
        // Another organization cannot lift it.
        let res = app.delete(&format!("{blocks_path}/{block}"), Some(&club.user.access)).await;
        assert!([403, 404].contains(&res.status.as_u16()), "{}", res.body);
        let res =
            app.delete(&format!("/api/v1/organizations/{}/blocks/{block}", club.org_id), Some(&club.user.access)).await;
        assert_eq!(res.status.as_u16(), 404, "{}", res.body);

        // Lifted: heard again.
        app.delete(&format!("{blocks_path}/{block}"), staff).await.expect(204);
        assert_eq!(app.get(&blocks_path, staff).await.expect(200)["items"], json!([]));
        assert_eq!(app.get(&org_issue(&issue), staff).await.expect(200)["blocked"], false);
        file(&app, &troll, &t.group, ok).await.expect(201);
        app.post(&format!("{}/posts", mine(&issue)), Some(&troll.token), json!({"body": "Entschuldigung"}))
            .await
            .expect(201);
        app.delete(&format!("{blocks_path}/{block}"), staff).await.expect_error(404, "not_found");

        let actor = format!("user:{}", t.hall.user.id);
        let blocked = audit(&app, "device.block").await;
        assert_eq!(blocked.len(), 1, "{blocked:?}");
        assert_eq!((blocked[0].0.as_str(), blocked[0].2.as_str()), (actor.as_str(), author.as_str()));
        assert_eq!(blocked[0].3.as_deref(), Some("Beleidigungen"));
        let unblocked = audit(&app, "device.unblock").await;
        assert_eq!(unblocked.len(), 1, "{unblocked:?}");
        assert_eq!((unblocked[0].0.as_str(), unblocked[0].2.as_str()), (actor.as_str(), author.as_str()));
        let (device_id, _) = device_row(&app, &troll.token).await;
        let rows = format!("{blocked:?}{unblocked:?}");
        assert!(!rows.contains(&device_id), "the audit log names the pseudonym, not the device: {rows}");
    }
);

// ---- rate limits ----

/// An app where residents may file 3 reports or photos an hour and write 2
/// thread posts an hour (per address and per device).
async fn limited_app(kind: Db) -> Option<TestApp> {
    let db = TestDb::new(kind)?;
    let mut config = Config::for_database(&db.url, db.data_dir()).expect("config");
    config.limits.set_rate(Limit::Issues, Some(Rate::new(3, 3600)));
    config.limits.set_rate(Limit::Questions, Some(Rate::new(2, 3600)));
    Some(TestApp::with_config(db, config).await)
}

macro_rules! with_limits {
    (async fn $name:ident($app:ident : TestApp) $body:block) => {
        mod $name {
            use super::*;

            async fn scenario($app: TestApp) $body

            #[actix_web::test]
            async fn sqlite() {
                scenario(limited_app(Db::Sqlite).await.expect("sqlite is always available")).await;
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(app) = limited_app(Db::Postgres).await {
                    scenario(app).await;
                }
            }
        }
    };
}

async fn send_from(app: &TestApp, peer: &str, method: Method, path: &str, token: &str, body: Value) -> Res {
    let req = TestRequest::default()
        .method(method)
        .uri(path)
        .peer_addr(peer.parse().expect("socket address"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .set_json(&body);
    app.send(req.to_request()).await
}

#[track_caller]
fn expect_limited(res: Res, retry_after: &str) {
    let header = res.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    res.expect_error(429, "rate_limited");
    assert_eq!(header.as_deref(), Some(retry_after));
}

with_limits!(
    async fn reports_and_photos_are_limited_per_device_and_per_address(app: TestApp) {
        let t = town(&app).await;
        let (a, b, c) = (app.device().await, app.device().await, app.device().await);
        let (one, two, three, four) =
            ("198.51.100.1:1000", "198.51.100.2:1000", "198.51.100.3:1000", "198.51.100.4:1000");
        let path = file_path(&t.group);
        let body = || json!({"category": "Müll", "body": "Sperrmüll am Hafen"});
        let count_of = |token: &str| {
            let (app, token) = (&app, token.to_owned());
            async move { ids(&app.get("/api/v1/devices/me/issues?limit=100", Some(&token)).await.expect(200)).len() }
        };

        // Device a: a report and a photo from one address, a report from another: three.
        let first = id(&send_from(&app, one, Method::POST, &path, &a.token, body()).await.expect(201));
        upload_from(&app, Some(one), Some(&a.token), &first, jpeg(32, 32), "image/jpeg").await.expect(201);
        send_from(&app, two, Method::POST, &path, &a.token, body()).await.expect(201);
        // A fresh address does not help a device that used its share (per device).
        expect_limited(send_from(&app, three, Method::POST, &path, &a.token, body()).await, "1200");
        let res = upload_from(&app, Some(four), Some(&a.token), &first, jpeg(32, 32), "image/jpeg").await;
        expect_limited(res, "1200");
        assert_eq!(count_of(&a.token).await, 2, "nothing was filed");
        assert_eq!(stored(&app, &first).await.2, 1);

        // Address one has one left: device b uses it, then one is exhausted
        // for every device (per address) while b itself may go on elsewhere.
        send_from(&app, one, Method::POST, &path, &b.token, body()).await.expect(201);
        expect_limited(send_from(&app, one, Method::POST, &path, &b.token, body()).await, "1200");
        expect_limited(send_from(&app, one, Method::POST, &path, &c.token, body()).await, "1200");
        send_from(&app, four, Method::POST, &path, &c.token, body()).await.expect(201);
        send_from(&app, four, Method::POST, &path, &b.token, body()).await.expect(201);

        // Time refills: one more for device a after 20 minutes.
        app.advance(1_200_000);
        send_from(&app, three, Method::POST, &path, &a.token, body()).await.expect(201);
        expect_limited(send_from(&app, three, Method::POST, &path, &a.token, body()).await, "1200");
        assert_eq!(count_of(&a.token).await, 3);

        // Thread posts count against the questions limit (2 an hour), per device.
        let posts = format!("{}/posts", mine(&first));
        send_from(&app, one, Method::POST, &posts, &a.token, json!({"body": "eins"})).await.expect(201);
        send_from(&app, two, Method::POST, &posts, &a.token, json!({"body": "zwei"})).await.expect(201);
        expect_limited(send_from(&app, three, Method::POST, &posts, &a.token, json!({"body": "drei"})).await, "1800");
        let thread = app.get(&mine(&first), Some(&a.token)).await.expect(200);
        assert_eq!(thread["posts"].as_array().map(Vec::len), Some(2));
        // Reading is not limited.
        for _ in 0..5 {
            app.get(&mine(&first), Some(&a.token)).await.expect(200);
        }
    }
);

// ---- erasing a device ----

both_backends!(
    async fn erasing_a_device_erases_its_reports_photos_and_blocks(app: TestApp) {
        let t = town(&app).await;
        let (club, club_group) = second_org(&app, &t, "info@sv-wismar.de", "SV Wismar").await;
        let device = app.device().await;
        let neighbour = app.device().await;
        let staff = Some(t.hall.user.access.as_str());
        let issue = id(&report(&app, &device, &t.group, "Laterne defekt").await);
        let photo = id(&upload(&app, Some(&device.token), &issue, jpeg(64, 48), "image/jpeg").await.expect(201));
        app.post(&format!("/api/v1/issues/{issue}/replies"), staff, json!({"body": "Wir kommen."})).await.expect(201);
        let at_club = id(&report_general(&app, &device, &club_group, "Lärm").await);
        app.post(&format!("/api/v1/issues/{at_club}/block"), Some(&club.user.access), json!({"reason": "Spam"}))
            .await
            .expect(204);
        let kept = id(&report(&app, &neighbour, &t.group, "Schlagloch").await);
        let (device_id, _) = device_row(&app, &device.token).await;

        app.delete("/api/v1/devices/me", Some(&device.token)).await.expect(204);

        app.get(&org_issue(&issue), staff).await.expect_error(404, "not_found");
        assert_eq!(fetch(&app, &format!("/api/v1/issues/{issue}/photos/{photo}"), staff).await.status, 404);
        app.get(&org_issue(&at_club), Some(&club.user.access)).await.expect_error(404, "not_found");
        assert_eq!(ids(&app.get(&inbox(&t.hall.org_id), staff).await.expect(200)), vec![kept.clone()]);
        let blocks = app.get(&format!("/api/v1/organizations/{}/blocks", club.org_id), Some(&club.user.access)).await;
        assert_eq!(blocks.expect(200)["items"], json!([]), "its blocks go with it");
        assert_eq!(stored(&app, &issue).await, (0, 0, 0));
        assert_eq!(stored(&app, &at_club).await, (0, 0, 0));
        let left: (i64, i64) = app
            .with_conn(move |c| {
                (
                    issues::table.filter(issues::device_id.eq(&device_id)).count().get_result(c).expect("issues"),
                    device_blocks::table
                        .filter(device_blocks::device_id.eq(&device_id))
                        .count()
                        .get_result(c)
                        .expect("blocks"),
                )
            })
            .await;
        assert_eq!(left, (0, 0));
        // The neighbour's report is untouched.
        app.get(&mine(&kept), Some(&neighbour.token)).await.expect(200);
        app.get(&org_issue(&kept), staff).await.expect(200);
    }
);

both_backends!(
    async fn a_pending_organization_sets_up_its_intake_before_the_town_approves(app: TestApp) {
        let t = town(&app).await;
        let pending = app.register_org("wismar", "verein@example.de", "Heimatverein").await;
        let group = app.group(&pending, "Fragen an den Vorstand", "club").await;
        let intake = json!({"open": true, "categories": ["Allgemein"], "board": false});
        set_intake(&app, &pending.user, &group, intake.clone()).await;
        // Its members read it back (the dashboard shows it) ...
        let read = app.get(&intake_path(&group), Some(&pending.user.access)).await.expect(200);
        assert_eq!(read, intake);
        // ... residents and strangers do not see a group that is not public yet.
        app.get(&intake_path(&group), None).await.expect(404);
        let device = app.device().await;
        app.get(&intake_path(&group), Some(&device.token)).await.expect(404);
        app.get(&intake_path(&group), Some(&t.hall.user.access)).await.expect(404);
        // Nor can anyone report to it.
        file(&app, &device, &group, json!({"category": "Allgemein", "body": "Hallo"})).await.expect(404);
    }
);

both_backends!(
    async fn inbox_filters_refuse_control_characters(app: TestApp) {
        let t = town(&app).await;
        let org = t.hall.org_id.clone();
        for query in ["category=%00", "category=Licht%00", "group=a%00b", "group=%01"] {
            let res = app.get(&format!("{}?{query}", inbox(&org)), Some(&t.hall.user.access)).await;
            let body = res.expect(422);
            assert_eq!(body["code"], "invalid_field", "{query}: {body}");
        }
    }
);

both_backends!(
    async fn a_suspended_organization_cannot_answer_reports(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;
        let issue = id(&report(&app, &device, &t.group, "Laterne defekt").await);
        app.post(
            &format!("/api/v1/admin/organizations/{}/suspend", t.hall.org_id),
            Some(&t.admin.access),
            json!({"reason": "Prüfung"}),
        )
        .await
        .expect(200);
        let replies = format!("{}/replies", org_issue(&issue));
        let reply = app.post(&replies, Some(&t.hall.user.access), json!({"body": "Danke"})).await;
        assert_eq!(reply.expect(403)["code"], "organization_suspended");
        let status = app.patch(&org_issue(&issue), Some(&t.hall.user.access), json!({"status": "done"})).await;
        assert_eq!(status.expect(403)["code"], "organization_suspended");
        // The report itself stays readable for the organization.
        app.get(&org_issue(&issue), Some(&t.hall.user.access)).await.expect(200);
        let queued: i64 =
            app.with_conn(|c| herold::db::schema::device_notices::table.count().get_result(c).expect("count")).await;
        assert_eq!(queued, 0, "no push for the resident");
    }
);

both_backends!(
    async fn an_upload_beyond_the_instance_s_slots_is_told_to_retry(app: TestApp) {
        let t = town(&app).await;
        let device = app.device().await;
        let issue = id(&report(&app, &device, &t.group, "Schlagloch").await);
        // Every upload slot taken (eight large uploads in flight elsewhere).
        let slots = herold::state::UPLOAD_SLOTS as u32;
        let held = app.state.upload_slots.clone().try_acquire_many_owned(slots).expect("all slots");
        let busy = upload(&app, Some(&device.token), &issue, jpeg_with_gps(64, 48), "image/jpeg").await;
        assert_eq!(busy.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
        busy.expect_error(429, "rate_limited");
        assert_eq!(stored(&app, &issue).await.2, 0, "nothing stored while refused");
        // A slot comes free: the same upload goes through.
        drop(held);
        upload(&app, Some(&device.token), &issue, jpeg_with_gps(64, 48), "image/jpeg").await.expect(201);
    }
);
