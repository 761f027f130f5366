//! Question hours: scheduling and its push, asking and voting as a device,
//! public and private answers (and who gets which push), dismissing and
//! blocking, ending and cancelling, who may do what — and the live stream
//! on a real listening server, across two instances on one database, with
//! resume, draining and the listener limits; what erasing a device takes off
//! the stream; the rate limits of questions and votes.

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use herold::db::schema::{audit_log, fanout_jobs, messages};
use serde_json::{json, Value};

use crate::harness::*;

const HOUR: i64 = 3_600_000;

/// A town with its administration's organization (approved) and a group.
struct Town {
    owner: Owner,
    group: String,
}

async fn town(app: &TestApp) -> Town {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let owner = app.approved_org(&admin, "wismar", "buergerbuero@wismar.de", "Hansestadt Wismar").await;
    let group = app.group(&owner, "Rathaus", "administration").await;
    Town { owner, group }
}

/// Schedules a session from `T0 + from` for `hours`; returns its JSON.
async fn schedule(app: &TestApp, town: &Town, from: i64, hours: i64) -> Value {
    app.post(
        &format!("/api/v1/groups/{}/sessions", town.group),
        Some(&town.owner.user.access),
        json!({
            "title": "Bürgersprechstunde",
            "description": "Fragen an den Bürgermeister",
            "starts_at": herold::model::ts(T0 + from),
            "ends_at": herold::model::ts(T0 + from + hours * HOUR),
        }),
    )
    .await
    .expect(201)
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn ask(app: &TestApp, session: &str, device: &Device, body: &str) -> Value {
    app.post(&format!("/api/v1/sessions/{session}/questions"), Some(&device.token), json!({"body": body}))
        .await
        .expect(201)
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    app.with_conn(|c| {
        audit_log::table
            .order(audit_log::created_at.asc())
            .select((audit_log::action, audit_log::target_id))
            .load(c)
            .expect("audit")
    })
    .await
}

both_backends!(
    async fn scheduling_checks_its_fields(app: TestApp) {
        let town = town(&app).await;
        let path = format!("/api/v1/groups/{}/sessions", town.group);
        let token = Some(town.owner.user.access.as_str());
        let at = |ms: i64| herold::model::ts(T0 + ms);
        for (body, field) in [
            (json!({"starts_at": at(HOUR), "ends_at": at(2 * HOUR)}), "title"),
            (json!({"title": "  ", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}), "title"),
            (json!({"title": "x".repeat(121), "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}), "title"),
            (
                json!({"title": "F", "description": "d".repeat(1001), "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}),
                "description",
            ),
            (json!({"title": "F", "starts_at": at(2 * HOUR), "ends_at": at(HOUR)}), "ends_at"),
            (json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(HOUR)}), "ends_at"),
            (json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(13 * HOUR + 1)}), "ends_at"),
            (
                json!({"title": "F", "starts_at": at(400 * 24 * HOUR), "ends_at": at(400 * 24 * HOUR + HOUR)}),
                "starts_at",
            ),
            (json!({"title": "F", "starts_at": "morgen", "ends_at": at(HOUR)}), "starts_at"),
            (json!({"title": "F", "starts_at": at(HOUR)}), "ends_at"),
        ] {
            let res = app.post(&path, token, body.clone()).await;
            let err = res.expect(422);
            assert_eq!(err["code"], "invalid_field", "{body}: {err}");
            assert_eq!(err["field"], field, "{body}: {err}");
        }
        // Twelve hours exactly is fine; a start in the past means now.
        let s = app
            .post(&path, token, json!({"title": "Lang", "starts_at": at(-HOUR), "ends_at": at(12 * HOUR)}))
            .await
            .expect(201);
        assert_eq!(s["starts_at"], at(0));
        assert_eq!(s["state"], "open");
        assert_eq!(s["group"], json!({"id": town.group, "name": "Rathaus"}));
        assert_eq!(s["organization"], json!({"id": town.owner.org_id, "name": "Hansestadt Wismar"}));
        assert!(s.get("questions").is_none(), "no questions outside GET /sessions/{{id}}: {s}");
        assert!(audit_actions(&app).await.contains(&("session.create".into(), id(&s))));

        // Nobody else schedules in this group.
        app.post(&path, None, json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)})).await.expect(401);
        let device = app.device().await;
        app.post(&path, Some(&device.token), json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}))
            .await
            .expect(401);
        let admin = app.login("rathaus@wismar.de").await;
        let other = app.approved_org(&admin, "wismar", "kontakt@verein.de", "Sportverein").await;
        app.post(
            &path,
            Some(&other.user.access),
            json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}),
        )
        .await
        .expect_error(404, "not_found");
        app.post(&path, Some(&admin.access), json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}))
            .await
            .expect_error(404, "not_found");
        // A pending organization may not reach its town yet.
        let pending = app.register_org("wismar", "neu@laden.de", "Neuer Laden").await;
        let pending_group = app.group(&pending, "Angebote", "business").await;
        app.post(
            &format!("/api/v1/groups/{pending_group}/sessions"),
            Some(&pending.user.access),
            json!({"title": "F", "starts_at": at(HOUR), "ends_at": at(2 * HOUR)}),
        )
        .await
        .expect_error(403, "organization_pending");
    }
);

both_backends_delivering!(
    async fn subscribers_get_the_opening_push_when_it_opens(d: Delivering, batch = 500) {
        let town = town(&d.app).await;
        let (follower, device) = d.devices(1).await.remove(0);
        d.follow(&device, &town.group).await;
        let (bystander, _) = d.devices(1).await.remove(0);
        let session = schedule(&d.app, &town, HOUR, 1).await;
        let sid = id(&session);
        assert_eq!(session["state"], "scheduled");
        d.deliver().await;
        assert_eq!(d.push.count(), 0, "nothing before it opens");
        d.app.advance(HOUR - 1000);
        d.deliver().await;
        assert_eq!(d.push.count(), 0);
        d.app.advance(1000);
        d.deliver().await;
        let got = d.push.deliveries_for(&follower.id);
        assert_eq!(got.len(), 1, "the follower gets it once");
        let p = &got[0].payload;
        assert_eq!(p["notification"]["title"], "Bürgersprechstunde");
        assert_eq!(p["notification"]["navigate"], format!("http://localhost:8080/q/{sid}"));
        assert_eq!(p["herold"]["kind"], "session");
        assert!(got[0].ttl <= 3600, "useless after the session: ttl {}", got[0].ttl);
        assert!(d.push.deliveries_for(&bystander.id).is_empty());
        d.push.assert_no_violations();
        let now = d.app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        assert_eq!(now["state"], "open");
    }
);

both_backends!(
    async fn questions_only_while_open_and_votes_once_per_device(app: TestApp) {
        let town = town(&app).await;
        let session = schedule(&app, &town, HOUR, 1).await;
        let sid = id(&session);
        let (alice, bob) = (app.device().await, app.device().await);
        let path = format!("/api/v1/sessions/{sid}/questions");
        app.post(&path, Some(&alice.token), json!({"body": "Zu früh?"})).await.expect_error(409, "session_not_open");
        app.advance(HOUR);
        app.post(&path, None, json!({"body": "Anonym?"})).await.expect(401);
        for bad in [json!({"body": ""}), json!({"body": "x".repeat(501)}), json!({})] {
            let err = app.post(&path, Some(&alice.token), bad).await.expect(422);
            assert_eq!(err["field"], "body", "{err}");
        }
        let q1 = ask(&app, &sid, &alice, "Wann wird die Brücke repariert?").await;
        assert_eq!(q1["mine"], true);
        assert_eq!(q1["votes"], 0);
        assert_eq!(q1["status"], "open");
        assert_eq!(q1["answer"], Value::Null);
        assert!(q1.get("author").is_none(), "a device never sees pseudonyms: {q1}");
        let q2 = ask(&app, &sid, &bob, "Gibt es einen Radweg?").await;
        let (q1, q2) = (id(&q1), id(&q2));

        // Upvotes: idempotent, once per device; withdrawing is idempotent too.
        let vote = |q: &str| format!("/api/v1/sessions/{sid}/questions/{q}/vote");
        let v = app.put(&vote(&q2), Some(&alice.token), Value::Null).await.expect(200);
        assert_eq!(
            (v["votes"].as_i64(), v["voted"].as_bool(), v["mine"].as_bool()),
            (Some(1), Some(true), Some(false))
        );
        let v = app.put(&vote(&q2), Some(&alice.token), Value::Null).await.expect(200);
        assert_eq!(v["votes"], 1, "a second upvote of one device counts once");
        let v = app.put(&vote(&q2), Some(&bob.token), Value::Null).await.expect(200);
        assert_eq!(v["votes"], 2);
        app.put(&vote(&q2), None, Value::Null).await.expect(401);
        app.put(&vote("nope"), Some(&bob.token), Value::Null).await.expect(404);

        // Most votes first; `mine` and `voted` per device; anonymous sees neither.
        let seen = app.get(&format!("/api/v1/sessions/{sid}"), Some(&alice.token)).await.expect(200);
        let qs = seen["questions"].as_array().unwrap();
        assert_eq!(qs.iter().map(id).collect::<Vec<_>>(), vec![q2.clone(), q1.clone()]);
        assert_eq!((qs[0]["voted"].as_bool(), qs[0]["mine"].as_bool()), (Some(true), Some(false)));
        assert_eq!((qs[1]["voted"].as_bool(), qs[1]["mine"].as_bool()), (Some(false), Some(true)));
        let anon = app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        assert!(anon["questions"].as_array().unwrap().iter().all(|q| q["mine"] == false && q["voted"] == false));

        let v = app.delete(&vote(&q2), Some(&alice.token)).await.expect(200);
        assert_eq!((v["votes"].as_i64(), v["voted"].as_bool()), (Some(1), Some(false)));
        let v = app.delete(&vote(&q2), Some(&alice.token)).await.expect(200);
        assert_eq!(v["votes"], 1);

        // After the end: no more questions or votes.
        app.advance(HOUR);
        app.post(&path, Some(&bob.token), json!({"body": "Zu spät?"})).await.expect_error(409, "session_not_open");
        app.put(&vote(&q1), Some(&bob.token), Value::Null).await.expect_error(409, "session_not_open");
        let ended = app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        assert_eq!(ended["state"], "ended");
        assert_eq!(ended["questions"].as_array().unwrap().len(), 2, "the record stays readable");
    }
);

both_backends_delivering!(
    async fn a_public_answer_is_for_everyone_and_pushed_to_the_asker_only(d: Delivering, batch = 500) {
        let town = town(&d.app).await;
        let mut devices = d.devices(2).await;
        let (other_sub, other) = devices.pop().unwrap();
        let (asker_sub, asker) = devices.pop().unwrap();
        let session = schedule(&d.app, &town, 0, 1).await;
        let sid = id(&session);
        d.deliver().await;
        let qid = id(&ask(&d.app, &sid, &asker, "Wann öffnet das Freibad?").await);
        d.app.advance(60_000);
        let answer = d
            .app
            .post(
                &format!("/api/v1/sessions/{sid}/questions/{qid}/answer"),
                Some(&town.owner.user.access),
                json!({"body": "Am 1. Mai.", "public": true}),
            )
            .await
            .expect(200);
        assert_eq!(answer["status"], "answered");
        assert_eq!(answer["answer"]["body"], "Am 1. Mai.");
        assert_eq!(answer["answer"]["public"], true);
        assert_eq!(answer["answer"]["answered_at"], herold::model::ts(T0 + 60_000));
        for token in [None, Some(other.token.as_str()), Some(asker.token.as_str())] {
            let s = d.app.get(&format!("/api/v1/sessions/{sid}"), token).await.expect(200);
            assert_eq!(s["questions"][0]["answer"]["body"], "Am 1. Mai.", "{token:?}");
        }
        d.deliver().await;
        let got = d.push.deliveries_for(&asker_sub.id);
        assert_eq!(got.len(), 1, "the asker gets the answer by push");
        let n = &got[0].payload["notification"];
        assert_eq!(n["body"], "Am 1. Mai.");
        assert_eq!(n["tag"], format!("question-{qid}"));
        assert_eq!(n["navigate"], format!("http://localhost:8080/q/{sid}"));
        assert_eq!(got[0].payload["herold"]["kind"], "answer");
        assert!(n["title"].as_str().unwrap().contains("Hansestadt Wismar"), "{n}");
        assert!(d.push.deliveries_for(&other_sub.id).is_empty(), "nobody else gets a push");
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn a_private_answer_is_for_the_asker_only(d: Delivering, batch = 500) {
        let town = town(&d.app).await;
        let mut devices = d.devices(2).await;
        let (other_sub, other) = devices.pop().unwrap();
        let (asker_sub, asker) = devices.pop().unwrap();
        let sid = id(&schedule(&d.app, &town, 0, 1).await);
        d.deliver().await;
        let qid = id(&d
            .app
            .post(&format!("/api/v1/sessions/{sid}/questions"), Some(&asker.token), json!({"body": "Mein Antrag?", "lang": "en-GB"}))
            .await
            .expect(201));
        d.app
            .post(
                &format!("/api/v1/sessions/{sid}/questions/{qid}/answer"),
                Some(&town.owner.user.access),
                json!({"body": "Ihr Antrag ist genehmigt.", "public": false}),
            )
            .await
            .expect(200);
        let body_for = |s: &Value| s["questions"][0]["answer"]["body"].clone();
        let mine = d.app.get(&format!("/api/v1/sessions/{sid}"), Some(&asker.token)).await.expect(200);
        assert_eq!(body_for(&mine), "Ihr Antrag ist genehmigt.");
        assert_eq!(mine["questions"][0]["answer"]["public"], false);
        for token in [None, Some(other.token.as_str())] {
            let s = d.app.get(&format!("/api/v1/sessions/{sid}"), token).await.expect(200);
            assert_eq!(s["questions"][0]["status"], "answered");
            assert_eq!(body_for(&s), Value::Null, "{token:?} must not read a private answer");
            assert!(!s.to_string().contains("genehmigt"), "{s}");
        }
        let staff = d.app.get(&format!("/api/v1/sessions/{sid}"), Some(&town.owner.user.access)).await.expect(200);
        assert_eq!(body_for(&staff), "Ihr Antrag ist genehmigt.");
        let author = staff["questions"][0]["author"].as_str().expect("staff see the pseudonym");
        assert_eq!(author.len(), 9, "{author}");

        d.deliver().await;
        let got = d.push.deliveries_for(&asker_sub.id);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload["notification"]["body"], "Ihr Antrag ist genehmigt.");
        assert_eq!(got[0].payload["notification"]["lang"], "en", "in the language the question was asked in");
        assert!(d.push.deliveries_for(&other_sub.id).is_empty(), "another device gets nothing");
    }
);

both_backends!(
    async fn dismissing_hides_and_blocking_silences(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let (troll, resident) = (app.device().await, app.device().await);
        let bad = id(&ask(&app, &sid, &troll, "Beleidigung").await);
        let good = id(&ask(&app, &sid, &resident, "Sachliche Frage").await);
        let staff = Some(town.owner.user.access.as_str());
        let q = |qid: &str, what: &str| format!("/api/v1/sessions/{sid}/questions/{qid}/{what}");

        let dismissed = app.post(&q(&bad, "dismiss"), staff, json!({"reason": "beleidigend"})).await.expect(200);
        assert_eq!(dismissed["status"], "dismissed");
        let public = app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        assert_eq!(public["questions"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), vec![good.clone()]);
        assert!(!public.to_string().contains("Beleidigung"));
        let own = app.get(&format!("/api/v1/sessions/{sid}"), Some(&troll.token)).await.expect(200);
        assert_eq!(own["questions"].as_array().unwrap().len(), 1);
        let all = app.get(&format!("/api/v1/sessions/{sid}"), staff).await.expect(200);
        assert_eq!(all["questions"].as_array().unwrap().len(), 2, "the staff still see it");
        app.put(&q(&bad, "vote"), Some(&resident.token), Value::Null).await.expect(404);
        // Without a body, too.
        let spam = id(&ask(&app, &sid, &troll, "Werbung").await);
        app.post(&q(&spam, "dismiss"), staff, Value::Null).await.expect(200);
        let actions = audit_actions(&app).await;
        assert!(actions.contains(&("question.dismiss".into(), bad.clone())), "{actions:?}");

        app.post(&q(&bad, "block"), staff, json!({})).await.expect(422);
        app.post(&q(&bad, "block"), staff, json!({"reason": "Beleidigungen"})).await.expect(204);
        app.post(&format!("/api/v1/sessions/{sid}/questions"), Some(&troll.token), json!({"body": "Noch eine"}))
            .await
            .expect_error(403, "blocked");
        app.put(&q(&good, "vote"), Some(&troll.token), Value::Null).await.expect_error(403, "blocked");
        ask(&app, &sid, &resident, "Andere dürfen weiter fragen").await;
        let blocks = app.get(&format!("/api/v1/organizations/{}/blocks", town.owner.org_id), staff).await.expect(200);
        assert_eq!(blocks["items"].as_array().unwrap().len(), 1);
        assert_eq!(blocks["items"][0]["reason"], "Beleidigungen");
        let actions = audit_actions(&app).await;
        assert!(actions.iter().any(|(a, _)| a == "device.block"), "{actions:?}");
    }
);

both_backends!(
    async fn strangers_cannot_work_a_session(app: TestApp) {
        let town = town(&app).await;
        app.with_tenant("strausberg").await;
        let admin_s = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let foreign = app.approved_org(&admin_s, "strausberg", "info@strausberg.de", "Stadt Strausberg").await;
        let admin = app.login("rathaus@wismar.de").await;
        let neighbour = app.approved_org(&admin, "wismar", "kontakt@verein.de", "Sportverein").await;
        let scheduled = id(&schedule(&app, &town, HOUR, 1).await);
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let device = app.device().await;
        let qid = id(&ask(&app, &sid, &device, "Frage").await);
        let q = |what: &str| format!("/api/v1/sessions/{sid}/questions/{qid}/{what}");

        for user in [&neighbour.user, &foreign.user, &admin, &admin_s] {
            let t = Some(user.access.as_str());
            app.post(&q("answer"), t, json!({"body": "x", "public": true})).await.expect_error(404, "not_found");
            app.post(&q("dismiss"), t, json!({})).await.expect_error(404, "not_found");
            app.post(&q("block"), t, json!({"reason": "x"})).await.expect_error(404, "not_found");
            app.post(&format!("/api/v1/sessions/{sid}/end"), t, Value::Null).await.expect_error(404, "not_found");
            app.delete(&format!("/api/v1/sessions/{scheduled}"), t).await.expect_error(404, "not_found");
            // Reading is public: they see what anybody sees, not the staff's view.
            let s = app.get(&format!("/api/v1/sessions/{sid}"), t).await.expect(200);
            assert!(s["questions"][0].get("author").is_none(), "{s}");
        }
        // A device is no staff member.
        app.post(&q("answer"), Some(&device.token), json!({"body": "x", "public": true})).await.expect(401);
        app.post(&format!("/api/v1/sessions/{sid}/end"), None, Value::Null).await.expect(401);
        let s = app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        assert_eq!(s["questions"][0]["answer"], Value::Null, "nothing was answered");
        assert_eq!(s["state"], "open");
        // A token that is not (or no longer) valid reads what anybody reads.
        for token in ["hdv_unknown", "not.a.jwt"] {
            let s = app.get(&format!("/api/v1/sessions/{sid}"), Some(token)).await.expect(200);
            assert_eq!(s["questions"][0]["mine"], false);
            assert!(s["questions"][0].get("author").is_none());
        }
        app.get("/api/v1/sessions/unknown", None).await.expect_error(404, "not_found");
    }
);

both_backends_delivering!(
    async fn ending_and_cancelling(d: Delivering, batch = 500) {
        let app = &d.app;
        let town = town(app).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &town.group).await;
        let staff = Some(town.owner.user.access.as_str());
        let later = id(&schedule(app, &town, 2 * HOUR, 1).await);
        let open = id(&schedule(app, &town, 0, 1).await);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 1, "the open one's push");

        // Cancelling: only before the start; the push is withdrawn.
        app.delete(&format!("/api/v1/sessions/{open}"), staff).await.expect_error(409, "session_started");
        app.post(&format!("/api/v1/sessions/{later}/end"), staff, Value::Null).await.expect_error(409, "session_not_open");
        app.delete(&format!("/api/v1/sessions/{later}"), staff).await.expect(204);
        app.delete(&format!("/api/v1/sessions/{later}"), staff).await.expect(204);
        let cancelled = app.get(&format!("/api/v1/sessions/{later}"), None).await.expect(200);
        assert_eq!(cancelled["state"], "cancelled");
        let list = app.get(&format!("/api/v1/groups/{}/sessions", town.group), None).await.expect(200);
        assert_eq!(list["items"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), vec![open.clone()]);
        assert!(audit_actions(app).await.contains(&("session.cancel".into(), later.clone())));
        let (queued, jobs): (i64, i64) = app
            .with_conn(|c| {
                (
                    messages::table.filter(messages::kind.eq("session")).count().get_result(c).unwrap(),
                    fanout_jobs::table.filter(fanout_jobs::state.ne("done")).count().get_result(c).unwrap(),
                )
            })
            .await;
        assert_eq!((queued, jobs), (1, 0), "the cancelled session's message and job are gone");

        // Ending: an open session ends now; answers are still allowed after.
        let qid = id(&ask(app, &open, &device, "Noch offen?").await);
        app.advance(10 * 60_000);
        let ended = app.post(&format!("/api/v1/sessions/{open}/end"), staff, Value::Null).await.expect(200);
        assert_eq!(ended["state"], "ended");
        assert_eq!(ended["ends_at"], herold::model::ts(T0 + 10 * 60_000));
        app.post(&format!("/api/v1/sessions/{open}/end"), staff, Value::Null).await.expect_error(409, "session_not_open");
        app.post(&format!("/api/v1/sessions/{open}/questions"), Some(&device.token), json!({"body": "Und?"}))
            .await
            .expect_error(409, "session_not_open");
        app.post(&format!("/api/v1/sessions/{open}/questions/{qid}/answer"), staff, json!({"body": "Ja.", "public": true}))
            .await
            .expect(200);

        // Past the cancelled session's start nobody gets its push.
        d.push.clear();
        app.advance(3 * HOUR);
        d.deliver().await;
        let pushed: Vec<_> = d.push.deliveries_for(&sub.id).iter().map(|x| x.payload["herold"]["kind"].clone()).collect();
        assert_eq!(pushed, vec![json!("answer")], "only the answer, never the cancelled session's opening");
    }
);

both_backends!(
    async fn lists_are_newest_start_first_and_paged(app: TestApp) {
        let town = town(&app).await;
        let a = id(&schedule(&app, &town, HOUR, 1).await);
        let b = id(&schedule(&app, &town, 3 * HOUR, 1).await);
        let c = id(&schedule(&app, &town, 2 * HOUR, 1).await);
        let path = format!("/api/v1/groups/{}/sessions", town.group);
        let first = app.get(&format!("{path}?limit=2"), None).await.expect(200);
        assert_eq!(first["items"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), vec![b, c]);
        let next = first["next"].as_str().expect("a next page");
        let second = app.get(&format!("{path}?limit=2&cursor={next}"), None).await.expect(200);
        assert_eq!(second["items"].as_array().unwrap().iter().map(id).collect::<Vec<_>>(), vec![a]);
        assert_eq!(second["next"], Value::Null);
        app.get("/api/v1/groups/unknown/sessions", None).await.expect(404);
    }
);

// ---------------------------------------------------------------------------
// The live stream, on real listening servers
// ---------------------------------------------------------------------------

/// The app on a real port (the stream is a long response; in-process calls
/// read bodies to the end).
struct Served {
    base: String,
    handle: actix_web::dev::ServerHandle,
}

impl Served {
    fn start(state: herold::AppState) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = actix_web::HttpServer::new(move || herold::app(state.clone()))
            .workers(2)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Served { base, handle }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<i64>,
    event: String,
    data: Value,
}

/// Requests a session's stream (`forwarded_for`: the client as a trusted
/// proxy names it).
async fn connect(
    base: &str,
    session: &str,
    last_event_id: Option<i64>,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}/api/v1/sessions/{session}/events"));
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    if let Some(client) = forwarded_for {
        req = req.header("X-Forwarded-For", client);
    }
    req.send().await.expect("connect")
}

/// A server-sent event stream read by hand (no client library buffers it).
struct Stream {
    response: reqwest::Response,
    buffer: String,
    pings: usize,
}

impl Stream {
    async fn open(base: &str, session: &str, last_event_id: Option<i64>) -> Stream {
        let response = connect(base, session, last_event_id, None).await;
        Stream::from(response)
    }

    fn from(response: reqwest::Response) -> Stream {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        Stream { response, buffer: String::new(), pings: 0 }
    }

    /// The next event, or `None` when the stream ended or `wait` passed.
    async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(at) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..at + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), None);
                for line in frame.lines() {
                    if line.starts_with(": ping") {
                        self.pings += 1;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("data is JSON"));
                    }
                }
                if let Some(data) = data {
                    return Some(SseEvent { id, event, data });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Events until one satisfies `want` (panics after `wait`).
    async fn until(&mut self, wait: Duration, want: impl Fn(&SseEvent) -> bool) -> (SseEvent, Vec<SseEvent>) {
        let mut seen = Vec::new();
        while let Some(e) = self.next(wait).await {
            if want(&e) {
                return (e, seen);
            }
            seen.push(e);
        }
        panic!("no such event within {wait:?}; saw {seen:#?}");
    }

    /// True when the server ends the stream within `wait`.
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(_) => return true,
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    async fn the_live_stream_carries_questions_answers_and_resumes(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let (alice, bob) = (app.device().await, app.device().await);
        let first = id(&ask(&app, &sid, &alice, "Schon vorher gefragt").await);
        let served = Served::start(app.state.clone());

        // A fresh connect: what is there, then the session.
        let mut live = Stream::open(&served.base, &sid, None).await;
        let (session, before) = live.until(WAIT, |e| e.event == "session").await;
        assert_eq!(before.iter().map(|e| id(&e.data)).collect::<Vec<_>>(), vec![first.clone()]);
        assert_eq!(session.data["state"], "open");
        assert!(session.data.get("questions").is_none());

        // New question, vote, private and public answers, as they happen.
        let qid = id(&ask(&app, &sid, &bob, "Wie geht es weiter?").await);
        let (asked, _) = live.until(WAIT, |e| e.event == "question" && id(&e.data) == qid).await;
        assert_eq!(asked.data["body"], "Wie geht es weiter?");
        assert_eq!(asked.data["mine"], false, "the stream is anonymous");
        assert!(asked.data.get("author").is_none());
        let resume_from = asked.id.expect("events carry an id");

        app.put(&format!("/api/v1/sessions/{sid}/questions/{qid}/vote"), Some(&alice.token), Value::Null)
            .await
            .expect(200);
        let (voted, _) = live.until(WAIT, |e| id(&e.data) == qid && e.data["votes"] == 1).await;
        assert!(voted.id > Some(resume_from));

        let staff = Some(town.owner.user.access.as_str());
        app.post(
            &format!("/api/v1/sessions/{sid}/questions/{first}/answer"),
            staff,
            json!({"body": "Geheim", "public": false}),
        )
        .await
        .expect(200);
        let (private, _) = live.until(WAIT, |e| id(&e.data) == first && e.data["status"] == "answered").await;
        assert_eq!(private.data["answer"]["body"], Value::Null, "a private answer's text never goes live");
        assert_eq!(private.data["answer"]["public"], false);

        app.post(
            &format!("/api/v1/sessions/{sid}/questions/{qid}/answer"),
            staff,
            json!({"body": "Gut.", "public": true}),
        )
        .await
        .expect(200);
        let (answered, _) = live.until(WAIT, |e| id(&e.data) == qid && e.data["status"] == "answered").await;
        assert_eq!(answered.data["answer"]["body"], "Gut.");

        app.post(&format!("/api/v1/sessions/{sid}/questions/{first}/dismiss"), staff, json!({})).await.expect(200);
        let (dropped, _) = live.until(WAIT, |e| id(&e.data) == first && e.data["status"] == "dismissed").await;
        assert_eq!(dropped.data["body"], "", "a dismissed question's text is not sent again");
        assert_eq!(dropped.data["answer"], Value::Null);

        // A resume replays what changed after its id, and nothing older.
        let mut resumed = Stream::open(&served.base, &sid, Some(resume_from)).await;
        let mut replayed = Vec::new();
        while let Some(e) = resumed.next(Duration::from_millis(1500)).await {
            replayed.push(e);
        }
        assert!(!replayed.is_empty());
        assert!(
            !replayed.iter().any(|e| e.event == "question" && id(&e.data) == qid && e.data["votes"] == 0),
            "the question as it was at the resumed id is not sent again: {replayed:#?}"
        );
        let last = |q: &str| replayed.iter().rev().find(|e| id(&e.data) == q).map(|e| e.data.clone());
        assert_eq!(last(&qid).expect("the answered question")["answer"]["body"], "Gut.");
        assert_eq!(last(&first).expect("the dismissed question")["status"], "dismissed");
        let (session_events, question_events): (Vec<_>, Vec<_>) = replayed.iter().partition(|e| e.event == "session");
        assert_eq!(session_events.len(), 1, "the session's state, once, at the end: {replayed:#?}");
        assert_eq!(replayed.last().unwrap().event, "session");
        assert!(question_events.iter().all(|e| e.id > Some(resume_from)), "{replayed:#?}");

        // Ending the session reaches both listeners.
        app.post(&format!("/api/v1/sessions/{sid}/end"), staff, Value::Null).await.expect(200);
        for stream in [&mut live, &mut resumed] {
            let (ended, _) = stream.until(WAIT, |e| e.event == "session").await;
            assert_eq!(ended.data["state"], "ended");
        }
        served.stop().await;
    }
);

both_backends!(
    async fn the_clock_opens_a_scheduled_session_live(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, HOUR, 1).await);
        let served = Served::start(app.state.clone());
        let mut live = Stream::open(&served.base, &sid, None).await;
        let (first, _) = live.until(WAIT, |e| e.event == "session").await;
        assert_eq!(first.data["state"], "scheduled");
        app.advance(HOUR);
        let (opened, _) = live.until(WAIT, |e| e.event == "session").await;
        assert_eq!(opened.data["state"], "open");
        app.get("/api/v1/sessions/unknown/events", None).await.expect_error(404, "not_found");
        served.stop().await;
    }
);

both_backends!(
    async fn an_answer_on_one_instance_reaches_a_listener_on_another(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let device = app.device().await;
        let qid = id(&ask(&app, &sid, &device, "Über zwei Server?").await);
        // Instance A serves the stream; instance B (same database, own hub,
        // own pool) takes the answer. Only the database connects them.
        let config = herold::Config::for_database(&app.db.url, app.db.data_dir()).expect("config");
        let clock = app.state.clock.clone();
        let other = actix_web::web::block(move || herold::AppState::open(config, clock)).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&other.live, &app.state.live));
        let a = Served::start(app.state.clone());
        let b = Served::start(other);
        let mut live = Stream::open(&a.base, &sid, None).await;
        live.until(WAIT, |e| e.event == "session").await;

        let login = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", b.base))
            .header("Content-Type", "application/json")
            .body(json!({"email": "buergerbuero@wismar.de", "password": PASSWORD}).to_string())
            .send()
            .await
            .unwrap();
        let login: Value = serde_json::from_slice(&login.bytes().await.unwrap()).unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/sessions/{sid}/questions/{qid}/answer", b.base))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(json!({"body": "Ja, über die Datenbank.", "public": true}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (answered, _) = live.until(WAIT, |e| id(&e.data) == qid && e.data["status"] == "answered").await;
        assert_eq!(answered.data["answer"]["body"], "Ja, über die Datenbank.");

        // And the other way round, resuming on B from A's last id.
        let mut on_b = Stream::open(&b.base, &sid, answered.id).await;
        app.put(&format!("/api/v1/sessions/{sid}/questions/{qid}/vote"), Some(&device.token), Value::Null)
            .await
            .expect(200);
        let (voted, before) = on_b.until(WAIT, |e| e.event == "question").await;
        assert!(before.iter().all(|e| e.event == "session"), "nothing replayed from before the id: {before:#?}");
        assert_eq!(voted.data["votes"], 1);
        a.stop().await;
        b.stop().await;
    }
);

both_backends!(
    async fn streams_end_when_the_instance_drains_and_are_bounded(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);

        // At most `max` listeners per instance; the next one gets 503.
        let config = herold::Config::for_database(&app.db.url, app.db.data_dir()).expect("config");
        let clock = app.state.clock.clone();
        let mut small = actix_web::web::block(move || herold::AppState::open(config, clock)).await.unwrap().unwrap();
        // Pings every 100 ms: a client that left is noticed at the next write.
        small.live = Arc::new(herold::live::Hub::with_ping(1, Duration::from_millis(100)));
        let bounded = Served::start(small.clone());
        let mut one = Stream::open(&bounded.base, &sid, None).await;
        one.until(WAIT, |e| e.event == "session").await;
        let refused = reqwest::get(format!("{}/api/v1/sessions/{sid}/events", bounded.base)).await.unwrap();
        assert_eq!(refused.status(), 503);
        drop(one);
        // The listener that left frees its place, and the room its poller.
        let deadline = std::time::Instant::now() + WAIT;
        while small.live.listeners() > 0 || small.live.rooms_open() > 0 {
            assert!(std::time::Instant::now() < deadline, "a closed stream still counts, or its poller runs on");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let mut again = Stream::open(&bounded.base, &sid, None).await;
        again.until(WAIT, |e| e.event == "session").await;

        // Draining ends open streams within a look, and refuses new ones.
        small.start_draining();
        assert!(again.ends_within(Duration::from_secs(5)).await, "a stream held the shutdown up");
        let refused = reqwest::get(format!("{}/api/v1/sessions/{sid}/events", bounded.base)).await.unwrap();
        assert_eq!(refused.status(), 503);
        bounded.stop().await;
    }
);

both_backends!(
    async fn compression_does_not_hold_events_back(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let device = app.device().await;
        let served = Served::start(app.state.clone());
        let mut res = reqwest::Client::new()
            .get(format!("{}/api/v1/sessions/{sid}/events", served.base))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let encoding = res.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(encoding.as_deref(), Some("gzip"), "the stream is compressed (so this test means something)");
        // The snapshot arrives at once …
        let first = tokio::time::timeout(Duration::from_secs(5), res.chunk()).await.expect("bytes at once").unwrap();
        assert!(first.is_some());
        while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(300), res.chunk()).await {}
        // … and so does a change, long before the next ping.
        ask(&app, &sid, &device, "Komprimiert?").await;
        let change = tokio::time::timeout(Duration::from_secs(5), res.chunk()).await;
        assert!(
            matches!(change, Ok(Ok(Some(ref b))) if !b.is_empty()),
            "a change did not arrive within 5 s (content-encoding {encoding:?})"
        );
        served.stop().await;
    }
);

both_backends!(
    async fn erasing_a_device_takes_its_questions_and_votes_off_the_stream(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        let (leaving, staying) = (app.device().await, app.device().await);
        let served = Served::start(app.state.clone());
        let mut live = Stream::open(&served.base, &sid, None).await;
        live.until(WAIT, |e| e.event == "session").await;

        let private = id(&ask(&app, &sid, &leaving, "Meine Adresse ist Lindenstraße 4").await);
        let answered = id(&ask(&app, &sid, &leaving, "Wann kommt der Bus?").await);
        let kept = id(&ask(&app, &sid, &staying, "Wer mäht den Park?").await);
        let staff = Some(town.owner.user.access.as_str());
        app.post(
            &format!("/api/v1/sessions/{sid}/questions/{answered}/answer"),
            staff,
            json!({"body": "Um acht.", "public": true}),
        )
        .await
        .expect(200);
        app.put(&format!("/api/v1/sessions/{sid}/questions/{kept}/vote"), Some(&leaving.token), Value::Null)
            .await
            .expect(200);
        let (before, _) = live.until(WAIT, |e| id(&e.data) == kept && e.data["votes"] == 1).await;
        let resume_from = before.id;

        app.delete("/api/v1/devices/me", Some(&leaving.token)).await.expect(204);

        // Listeners drop the question, and the vote no longer counts (both
        // in the erasure's change).
        let (dropped, changed) = live.until(WAIT, |e| id(&e.data) == private).await;
        assert_eq!(dropped.event, "question");
        assert_eq!(dropped.data["status"], "dismissed", "clients drop it");
        assert_eq!(dropped.data["body"], "");
        assert!(dropped.id > resume_from);
        let recounted = changed.iter().find(|e| id(&e.data) == kept).expect("the voted question again");
        assert_eq!(recounted.data["votes"], 0, "{changed:#?}");

        // A fresh listener never hears of it; the publicly answered question
        // stays in the record, its answer too; a resume from before hears it went.
        let mut fresh = Stream::open(&served.base, &sid, None).await;
        let (_, replayed) = fresh.until(WAIT, |e| e.event == "session").await;
        let text = format!("{replayed:?}");
        assert!(!text.contains(&private) && !text.contains("Lindenstraße"), "{replayed:#?}");
        let of = |q: &str| replayed.iter().find(|e| id(&e.data) == q).map(|e| e.data.clone());
        assert_eq!(of(&kept).expect("the other question")["votes"], 0);
        assert_eq!(of(&answered).expect("the answered question")["answer"]["body"], "Um acht.");
        let mut resumed = Stream::open(&served.base, &sid, resume_from).await;
        let (gone, _) = resumed.until(WAIT, |e| id(&e.data) == private).await;
        assert_eq!((gone.data["status"].as_str(), gone.data["body"].as_str()), (Some("dismissed"), Some("")));
        served.stop().await;

        // What is read without the stream says the same.
        let read = app.get(&format!("/api/v1/sessions/{sid}"), None).await.expect(200);
        let mut qs: Vec<(String, i64)> =
            read["questions"].as_array().unwrap().iter().map(|q| (id(q), q["votes"].as_i64().unwrap())).collect();
        qs.sort();
        let mut expected = vec![(kept.clone(), 0), (answered.clone(), 0)];
        expected.sort();
        assert_eq!(qs, expected);
    }
);

both_backends!(
    async fn one_client_cannot_take_every_stream(app: TestApp) {
        let town = town(&app).await;
        let sid = id(&schedule(&app, &town, 0, 1).await);
        // Behind a trusted proxy (this test's 127.0.0.1), clients are told
        // apart by `X-Forwarded-For`.
        let mut config = herold::Config::for_database(&app.db.url, app.db.data_dir()).expect("config");
        config.limits.trusted_proxies = herold::limits::LimitsConfig::parse_proxies("127.0.0.1").expect("proxies");
        let clock = app.state.clock.clone();
        let mut state = actix_web::web::block(move || herold::AppState::open(config, clock)).await.unwrap().unwrap();
        state.live = Arc::new(herold::live::Hub::with_ping(100, Duration::from_millis(100)).per_client(2));
        let served = Served::start(state.clone());
        let hog = Some("198.51.100.7");
        let mut first = Stream::from(connect(&served.base, &sid, None, hog).await);
        let mut second = Stream::from(connect(&served.base, &sid, None, hog).await);
        first.until(WAIT, |e| e.event == "session").await;
        second.until(WAIT, |e| e.event == "session").await;
        let refused = connect(&served.base, &sid, None, hog).await;
        assert_eq!(refused.status(), 429);
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
        assert_eq!(body["code"], "rate_limited");
        // Another client still gets in.
        let mut neighbour = Stream::from(connect(&served.base, &sid, None, Some("203.0.113.9")).await);
        neighbour.until(WAIT, |e| e.event == "session").await;
        assert_eq!(state.live.listeners(), 3);

        // A stream that ends gives its client the place back.
        drop(first);
        let deadline = std::time::Instant::now() + WAIT;
        while state.live.listeners() > 2 {
            assert!(std::time::Instant::now() < deadline, "a closed stream still counts for its client");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let mut again = Stream::from(connect(&served.base, &sid, None, hog).await);
        again.until(WAIT, |e| e.event == "session").await;
        served.stop().await;
    }
);

both_backends!(
    async fn withdrawing_leaves_a_message_that_went_out(app: TestApp) {
        let town = town(&app).await;
        let sent = app.message(&town.owner.user, &town.group, "Schon verschickt").await;
        let later = id(&schedule(&app, &town, HOUR, 1).await);
        let (withdrawn, stays) = app
            .with_conn(move |c| {
                let due = herold::messages::withdraw_scheduled(c, &sent, T0).expect("withdraw");
                let left: i64 = messages::table.filter(messages::id.eq(&sent)).count().get_result(c).unwrap();
                (due, left)
            })
            .await;
        assert_eq!((withdrawn, stays), (false, 1), "a message that is due is not withdrawn");
        app.delete(&format!("/api/v1/sessions/{later}"), Some(&town.owner.user.access)).await.expect(204);
        let scheduled: i64 = app
            .with_conn(|c| messages::table.filter(messages::kind.eq("session")).count().get_result(c).unwrap())
            .await;
        assert_eq!(scheduled, 0, "the cancelled session's message is withdrawn");
    }
);

/// Asks from client address `peer`.
async fn ask_from(app: &TestApp, peer: &str, session: &str, device: &Device, body: &str) -> Res {
    let req = actix_web::test::TestRequest::post()
        .uri(&format!("/api/v1/sessions/{session}/questions"))
        .peer_addr(peer.parse().expect("address"))
        .insert_header(("Authorization", format!("Bearer {}", device.token)))
        .set_json(json!({"body": body}));
    app.send(req.to_request()).await
}

async fn questions_are_limited_per_address_and_per_device(kind: Db) {
    let Some(db) = TestDb::new(kind) else { return };
    let mut config = herold::Config::for_database(&db.url, db.data_dir()).expect("config");
    config.limits.set_rate(herold::limits::Limit::Questions, Some(herold::limits::Rate::new(2, 3600)));
    let app = TestApp::with_config(db, config).await;
    let town = town(&app).await;
    let sid = id(&schedule(&app, &town, 0, 1).await);
    let (roaming, first, second) = (app.device().await, app.device().await, app.device().await);
    // One device hopping addresses is held to its own two an hour …
    ask_from(&app, "203.0.113.1:4000", &sid, &roaming, "Eins").await.expect(201);
    ask_from(&app, "203.0.113.2:4000", &sid, &roaming, "Zwei").await.expect(201);
    let res = ask_from(&app, "203.0.113.3:4000", &sid, &roaming, "Drei").await;
    assert!(res.headers.contains_key("retry-after"));
    res.expect_error(429, "rate_limited");
    // … and one address is, whichever devices ask from it.
    ask_from(&app, "198.51.100.7:4000", &sid, &first, "A").await.expect(201);
    ask_from(&app, "198.51.100.7:4000", &sid, &second, "B").await.expect(201);
    ask_from(&app, "198.51.100.7:4000", &sid, &second, "C").await.expect_error(429, "rate_limited");
    ask_from(&app, "198.51.100.8:4000", &sid, &second, "D").await.expect(201);
}

#[actix_web::test]
async fn questions_are_rate_limited_sqlite() {
    questions_are_limited_per_address_and_per_device(Db::Sqlite).await;
}

#[actix_web::test]
async fn questions_are_rate_limited_postgres() {
    questions_are_limited_per_address_and_per_device(Db::Postgres).await;
}

/// Votes `up` (PUT) or withdraws one (DELETE) from client address `peer`.
async fn vote_from(app: &TestApp, peer: &str, up: bool, session: &str, question: &str, device: &Device) -> Res {
    let req = if up { actix_web::test::TestRequest::put() } else { actix_web::test::TestRequest::delete() };
    let req = req
        .uri(&format!("/api/v1/sessions/{session}/questions/{question}/vote"))
        .peer_addr(peer.parse().expect("address"))
        .insert_header(("Authorization", format!("Bearer {}", device.token)));
    app.send(req.to_request()).await
}

async fn votes_are_limited_per_address_and_per_device(kind: Db) {
    let Some(db) = TestDb::new(kind) else { return };
    let mut config = herold::Config::for_database(&db.url, db.data_dir()).expect("config");
    config.limits.set_rate(herold::limits::Limit::Votes, Some(herold::limits::Rate::new(3, 3600)));
    let app = TestApp::with_config(db, config).await;
    let town = town(&app).await;
    let sid = id(&schedule(&app, &town, 0, 1).await);
    let (asker, toggler, first, second) =
        (app.device().await, app.device().await, app.device().await, app.device().await);
    let qid = id(&ask(&app, &sid, &asker, "Gibt es mehr Bänke?").await);
    // One device toggling from ever new addresses is held to its three an hour …
    vote_from(&app, "203.0.113.1:4000", true, &sid, &qid, &toggler).await.expect(200);
    vote_from(&app, "203.0.113.2:4000", false, &sid, &qid, &toggler).await.expect(200);
    vote_from(&app, "203.0.113.3:4000", true, &sid, &qid, &toggler).await.expect(200);
    for up in [false, true] {
        let res = vote_from(&app, "203.0.113.4:4000", up, &sid, &qid, &toggler).await;
        assert!(res.headers.contains_key("retry-after"));
        res.expect_error(429, "rate_limited");
    }
    let counted = app.get(&format!("/api/v1/sessions/{sid}"), Some(&toggler.token)).await.expect(200);
    assert_eq!(
        (counted["questions"][0]["votes"].as_i64(), counted["questions"][0]["voted"].as_bool()),
        (Some(1), Some(true))
    );
    // … and one address is, whichever devices vote from it.
    vote_from(&app, "198.51.100.7:4000", true, &sid, &qid, &first).await.expect(200);
    vote_from(&app, "198.51.100.7:4000", true, &sid, &qid, &second).await.expect(200);
    vote_from(&app, "198.51.100.7:4000", false, &sid, &qid, &second).await.expect(200);
    vote_from(&app, "198.51.100.7:4000", false, &sid, &qid, &first).await.expect_error(429, "rate_limited");
    vote_from(&app, "198.51.100.8:4000", false, &sid, &qid, &first).await.expect(200);
    // The bucket refills one vote every twenty minutes.
    app.advance(20 * 60_000);
    vote_from(&app, "203.0.113.5:4000", false, &sid, &qid, &toggler).await.expect(200);
}

#[actix_web::test]
async fn votes_are_rate_limited_sqlite() {
    votes_are_limited_per_address_and_per_device(Db::Sqlite).await;
}

#[actix_web::test]
async fn votes_are_rate_limited_postgres() {
    votes_are_limited_per_address_and_per_device(Db::Postgres).await;
}

both_backends!(
    async fn a_suspended_organization_answers_nobody(app: TestApp) {
        let t = town(&app).await;
        let session = id(&schedule(&app, &t, 0, 1).await);
        let device = app.device().await;
        let question = id(&ask(&app, &session, &device, "Wann fährt der Bus wieder?").await);
        let admin = app.login("rathaus@wismar.de").await;
        app.post(
            &format!("/api/v1/admin/organizations/{}/suspend", t.owner.org_id),
            Some(&admin.access),
            json!({"reason": "Prüfung"}),
        )
        .await
        .expect(200);
        let refused = app
            .post(
                &format!("/api/v1/sessions/{session}/questions/{question}/answer"),
                Some(&t.owner.user.access),
                json!({"body": "Ab Montag.", "public": false}),
            )
            .await
            .expect(403);
        assert_eq!(refused["code"], "organization_suspended", "{refused}");
        let queued: i64 =
            app.with_conn(|c| herold::db::schema::device_notices::table.count().get_result(c).expect("count")).await;
        assert_eq!(queued, 0, "no push for the asker");
    }
);
