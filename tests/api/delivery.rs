//! The delivery pipeline end to end: a message posted to a group reaches
//! every subscribed device through the strict test push service, which
//! verifies VAPID and decrypts each payload with its own RFC 8291 code; and
//! every answer of a push service has the effect WEBPUSH.md's table demands;
//! a slow push service holds only its own origin's slots; and what the town
//! hid or suspended is not pushed, not even when it was scheduled or already
//! under way.

use std::time::Duration;

use herold::db::schema::{delivery_retries, devices, fanout_jobs};
use serde_json::json;

use crate::harness::*;
use crate::push_service::Program;

/// A town with an approved parish and its group.
async fn parish(d: &Delivering) -> (Owner, String) {
    d.app.with_tenant("wismar").await;
    let admin = d.app.city_admin("wismar", "rathaus@wismar.de").await;
    let parish = d.app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
    let group = d.app.group(&parish, "Gemeindebrief", "church").await;
    (parish, group)
}

async fn device_count(d: &Delivering) -> i64 {
    use diesel::prelude::*;
    d.app.with_conn(|c| devices::table.count().get_result(c).expect("count")).await
}

async fn retry_count(d: &Delivering) -> i64 {
    use diesel::prelude::*;
    d.app.with_conn(|c| delivery_retries::table.count().get_result(c).expect("count")).await
}

both_backends_delivering!(
    async fn every_subscriber_receives_the_decrypted_payload(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let subscribers = d.devices(3).await;
        for (_, device) in &subscribers {
            d.follow(device, &group).await;
        }
        let (bystander, _) = d.devices(1).await.remove(0);

        let body = d
            .app
            .post(
                &format!("/api/v1/groups/{group}/messages"),
                Some(&parish.user.access),
                json!({"title": "Adventskonzert", "body": "Sonntag 17 Uhr", "url": "https://st-nikolai.de/advent", "urgency": "high", "ttl": 7200}),
            )
            .await
            .expect(201);
        let id = body["id"].as_str().unwrap().to_owned();
        d.deliver().await;

        assert_eq!(d.push.count(), 3);
        d.push.assert_no_violations();
        assert!(d.push.deliveries_for(&bystander.id).is_empty(), "a device that follows nothing gets nothing");
        for (sub, _) in &subscribers {
            let got = d.push.deliveries_for(&sub.id);
            assert_eq!(got.len(), 1, "exactly once");
            let p = &got[0].payload;
            assert_eq!(p["web_push"], 8030);
            assert_eq!(p["notification"]["title"], "Adventskonzert");
            assert_eq!(p["notification"]["body"], "Sonntag 17 Uhr");
            assert_eq!(p["notification"]["tag"], id.as_str());
            assert_eq!(p["notification"]["navigate"], format!("http://localhost:8080/m/{id}"));
            assert_eq!(p["herold"]["message_id"], id.as_str());
            assert_eq!(p["herold"]["group_id"], group.as_str());
            assert_eq!(p["herold"]["group_name"], "Gemeindebrief");
            assert_eq!(p["herold"]["tenant"], "wismar");
            assert_eq!(p["herold"]["url"], "https://st-nikolai.de/advent");
            assert_eq!(p["herold"]["kind"], "message");
            assert_eq!(got[0].urgency.as_deref(), Some("high"));
            assert_eq!(got[0].ttl, 7200);
            let topic = got[0].topic.clone().expect("a Topic");
            assert_eq!(topic.len(), 32);
            assert_eq!(got[0].vapid_subject, "mailto:rathaus@wismar.de");
        }
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["recipients"], 3);
        assert_eq!(stats["delivered"], 3);
        assert_eq!(stats["pending"], 0);
        assert_eq!(stats["fanout"], "done");

        // The VAPID JWT is signed once per push-service origin, not per message.
        let second = d.app.message(&parish.user, &group, "Zweite Nachricht").await;
        d.deliver().await;
        assert_eq!(d.push.count(), 6);
        assert_eq!(d.stats(&parish.user, &second).await["delivered"], 3);
        let exps: std::collections::HashSet<_> = d.push.deliveries().iter().map(|x| x.vapid_exp).collect();
        assert_eq!(exps.len(), 1, "one cached JWT for one origin");
    }
);

both_backends_delivering!(
    async fn a_verified_group_s_pushes_carry_the_badge(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let admin = town_admin(&d).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        let before = d.app.message(&parish.user, &group, "Noch ohne Siegel").await;
        d.deliver().await;
        let verify = format!("/api/v1/admin/groups/{group}/verify");
        d.app.post(&verify, Some(&admin.access), serde_json::Value::Null).await.expect(200);
        let after = d.app.message(&parish.user, &group, "Mit Siegel").await;
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        let verified = |id: &str| {
            let push = got.iter().find(|x| x.payload["herold"]["message_id"] == id).expect("delivered");
            push.payload["herold"]["verified"].clone()
        };
        assert_eq!(verified(&before), json!(false));
        assert_eq!(verified(&after), json!(true), "the official badge travels with the notification");
    }
);

both_backends_delivering!(
    async fn long_bodies_are_cut_to_fit_and_the_pwa_fetches_the_rest(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        let long = "Gemeindefest mit Kuchen und Musik. ".repeat(114);
        let body = d
            .app
            .post(&format!("/api/v1/groups/{group}/messages"), Some(&parish.user.access), json!({"title": "Fest", "body": long}))
            .await
            .expect(201);
        d.deliver().await;
        let got = d.push.deliveries_for(&sub.id);
        assert!(got[0].plaintext_len <= 2048, "payload {} bytes", got[0].plaintext_len);
        let cut = got[0].payload["notification"]["body"].as_str().unwrap();
        assert!(cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
        assert_eq!(got[0].payload["herold"]["truncated"], true);
        let full = d.app.get(&format!("/api/v1/messages/{}", body["id"].as_str().unwrap()), None).await.expect(200);
        assert_eq!(full["body"].as_str().unwrap(), long.trim());
    }
);

both_backends_delivering!(
    async fn a_scheduled_message_goes_out_at_its_time(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        let at = herold::model::ts(T0 + 3_600_000);
        d.app
            .post(&format!("/api/v1/groups/{group}/messages"), Some(&parish.user.access), json!({"title": "Später", "body": "x", "publish_at": at}))
            .await
            .expect(201);
        d.deliver().await;
        assert_eq!(d.push.count(), 0, "not before its time");
        d.app.advance(3_599_000);
        d.deliver().await;
        assert_eq!(d.push.count(), 0);
        d.app.advance(1_000);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&sub.id).len(), 1);
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn a_large_group_is_walked_in_batches_each_device_once(d: Delivering, batch = 7) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(40).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        let id = d.app.message(&parish.user, &group, "Alle").await;
        // One batch per step: the cursor advances and is stored with the job.
        assert!(d.engine.step().await.unwrap());
        assert_eq!(d.push.count(), 7);
        let cursor: Option<String> = d
            .app
            .with_conn(|c| {
                use diesel::prelude::*;
                fanout_jobs::table.select(fanout_jobs::cursor).first(c).expect("job")
            })
            .await;
        assert!(cursor.is_some());
        d.deliver().await;
        assert_eq!(d.push.count(), 40);
        for (sub, _) in &devices {
            assert_eq!(d.push.deliveries_for(&sub.id).len(), 1);
        }
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!((stats["recipients"].as_i64(), stats["delivered"].as_i64()), (Some(40), Some(40)));
    }
);

both_backends_delivering!(
    async fn a_crashed_worker_s_batch_is_taken_over_after_its_lease(d: Delivering, batch = 10) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(25).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        d.app.message(&parish.user, &group, "Trotzdem").await;
        // A worker claims the job and dies before recording anything.
        let now = d.app.state.now_ms();
        let claimed = d.app.with_conn(move |c| herold::delivery::store::claim_job(c, now, 60_000).expect("claim")).await;
        assert!(claimed.is_some());
        d.deliver().await;
        assert_eq!(d.push.count(), 0, "the lease keeps others off");
        d.app.advance(60_001);
        d.deliver().await;
        assert_eq!(d.push.count(), 25);
        for (sub, _) in &devices {
            assert_eq!(d.push.deliveries_for(&sub.id).len(), 1);
        }
    }
);

both_backends_delivering!(
    async fn push_service_answers_have_their_effects(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let mut devices = d.devices(6).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        let (ok, _) = devices.remove(0);
        let (gone, gone_device) = devices.remove(0);
        let (not_found, _) = devices.remove(0);
        let (throttled, _) = devices.remove(0);
        let (broken, _) = devices.remove(0);
        let (too_large, _) = devices.remove(0);
        d.push.program_for(&gone.id, Program::status(410));
        d.push.program_for(&not_found.id, Program::status(404));
        d.push.program_for(&throttled.id, Program::too_many_requests(120).once());
        d.push.program_for(&broken.id, Program::status(500));
        d.push.program_for(&too_large.id, Program::status(413));

        let id = d.app.message(&parish.user, &group, "Wichtig").await;
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&ok.id).len(), 1);
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["recipients"], 6);
        assert_eq!(stats["delivered"], 1);
        assert_eq!(stats["gone"], 2, "404 and 410 mean gone");
        assert_eq!(stats["failed"], 1, "413 fails at once");
        assert_eq!(stats["pending"], 2, "429 and 500 wait for a retry");
        assert!(stats["last_failure"].as_str().unwrap().starts_with("413"), "{stats}");

        // Gone devices are deleted with their subscriptions.
        assert_eq!(device_count(&d).await, 4);
        d.app.get("/api/v1/devices/me/subscriptions", Some(&gone_device.token)).await.expect(401);
        assert_eq!(d.app.get(&format!("/api/v1/groups/{group}"), None).await.expect(200)["subscriber_count"], 4);
        assert_eq!(retry_count(&d).await, 2);

        // Retry-After: 120 is honoured — nothing is retried before it.
        d.app.advance(60_000);
        d.deliver().await;
        assert!(d.push.deliveries_for(&throttled.id).is_empty());
        d.app.advance(90_000);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&throttled.id).len(), 1, "delivered on retry");
        assert_eq!(d.push.requests_for(&throttled.id).len(), 2, "one refusal, one delivery");

        // A push service that keeps failing: retried with backoff up to the
        // limit, then counted failed — and the device is kept.
        for _ in 0..12 {
            d.app.advance(3_600_000);
            d.deliver().await;
        }
        let parish_user = d.app.login("buero@st-nikolai.de").await;
        let stats = d.stats(&parish_user, &id).await;
        assert_eq!(stats["delivered"], 2);
        assert_eq!(stats["failed"], 2);
        assert_eq!(stats["pending"], 0);
        assert!(stats["last_failure"].as_str().unwrap().contains("gave up after 8 attempts"), "{stats}");
        assert_eq!(d.push.requests_for(&broken.id).len(), 8);
        assert_eq!(retry_count(&d).await, 0);
        assert_eq!(device_count(&d).await, 4, "5xx never deletes a device");
        d.push.assert_no_violations();
    }
);

/// One push service, plus an allowed origin where nothing listens.
fn with_a_closed_origin() -> DeliverySetup {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    DeliverySetup { also_allowed: vec![format!("http://127.0.0.1:{port}")], ..DeliverySetup::batch(500) }
}

both_backends_delivering!(
    async fn more_push_service_answers_have_their_effects(d: Delivering, setup = with_a_closed_origin()) {
        let (parish, group) = parish(&d).await;
        let mut devices = d.devices(4).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        let (ok, _) = devices.remove(0);
        let (bad_request, _) = devices.remove(0);
        let (unauthorized, _) = devices.remove(0);
        let (edge_throttled, _) = devices.remove(0);
        d.push.program_for(&bad_request.id, Program::status(400));
        d.push.program_for(&unauthorized.id, Program::status(401));
        d.push.program_for(&edge_throttled.id, Program::status(406).once());
        // A device whose (allowed) push service does not answer the phone: connection refused.
        let closed = d
            .app
            .state
            .config
            .push_allowed_origins
            .iter()
            .map(|o| o.origin().ascii_serialization())
            .find(|o| o != d.push.origin())
            .expect("the closed origin");
        let refused = d.app.post("/api/v1/devices", None, push_subscription(&format!("{closed}/push/nobody"))).await;
        let refused = Device { token: refused.expect(201)["device_token"].as_str().expect("token").to_owned() };
        d.follow(&refused, &group).await;
        let id = d.app.message(&parish.user, &group, "Antworten").await;
        d.deliver().await;
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["recipients"], 5, "{stats}");
        assert_eq!(stats["delivered"], 1, "{stats}");
        assert_eq!(stats["failed"], 2, "400 and 401 fail at once: {stats}");
        assert_eq!(stats["gone"], 0, "{stats}");
        assert_eq!(stats["pending"], 2, "406 and the refused connection wait for a retry: {stats}");
        assert_eq!(retry_count(&d).await, 2);

        // 406 (Edge's throttle) is retried, and delivered.
        d.app.advance(60_000);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&edge_throttled.id).len(), 2);
        assert_eq!(d.push.deliveries_for(&edge_throttled.id).len(), 1, "delivered on retry");

        // The refused connection is retried up to the limit, then counted failed.
        for _ in 0..12 {
            d.app.advance(3_600_000);
            d.deliver().await;
        }
        let parish_user = d.app.login("buero@st-nikolai.de").await;
        let stats = d.stats(&parish_user, &id).await;
        assert_eq!(stats["delivered"], 2, "{stats}");
        assert_eq!(stats["failed"], 3, "{stats}");
        assert_eq!(stats["pending"], 0, "{stats}");
        let reason = stats["last_failure"].as_str().unwrap();
        assert!(reason.starts_with("gave up after 8 attempts: connection"), "{reason}");
        // 400 and 401 were never retried; nothing was deleted.
        assert_eq!(d.push.requests_for(&bad_request.id).len(), 1);
        assert_eq!(d.push.requests_for(&unauthorized.id).len(), 1);
        assert_eq!(d.push.deliveries_for(&ok.id).len(), 1);
        assert_eq!(retry_count(&d).await, 0);
        assert_eq!(device_count(&d).await, 5, "no answer but 404/410 deletes a device");
        d.app.get("/api/v1/devices/me/subscriptions", Some(&refused.token)).await.expect(200);
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn a_short_lived_message_fails_as_expired_before_the_attempt_limit(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        d.push.program_for(&sub.id, Program::status(500));
        let body = d
            .app
            .post(
                &format!("/api/v1/groups/{group}/messages"),
                Some(&parish.user.access),
                json!({"title": "Gleich", "body": "x", "ttl": 120}),
            )
            .await
            .expect(201);
        let id = body["id"].as_str().unwrap().to_owned();
        // Waits of 30 s, 60 s, 120 s (± 20 %): by the third, the two minutes are over.
        d.deliver().await;
        for _ in 0..5 {
            d.app.advance(40_000);
            d.deliver().await;
        }
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!((stats["failed"].as_i64(), stats["pending"].as_i64()), (Some(1), Some(0)), "{stats}");
        let reason = stats["last_failure"].as_str().unwrap();
        assert!(reason.starts_with("expired after ") && reason.ends_with(" attempts: 500"), "{reason}");
        let attempts = d.push.requests_for(&sub.id).len();
        assert!((2..=3).contains(&attempts), "{attempts} attempts in two minutes (limit 8)");
        // Each attempt asked the push service to keep it only for what was left of the two minutes.
        let ttls: Vec<u64> =
            d.push.requests_for(&sub.id).iter().map(|r| r.ttl.as_deref().unwrap().parse().unwrap()).collect();
        assert_eq!(ttls[0], 120);
        assert!(ttls.windows(2).all(|w| w[1] < w[0]), "{ttls:?}");
        assert_eq!(retry_count(&d).await, 0);
        assert_eq!(device_count(&d).await, 1);
    }
);

both_backends_delivering!(
    async fn an_endpoint_changed_behind_the_allowlist_s_back_is_not_sent_to(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(2).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        // A push service that is not allowed (another loopback port), and a
        // device row pointed at it by hand, past the API's check.
        let rogue = crate::push_service::TestPushService::start(d.app.state.keys.vapid.public_key());
        let lure = rogue.new_subscription();
        let (endpoint, p256dh, auth) = (lure.endpoint.clone(), lure.p256dh.clone(), lure.auth.clone());
        let target = devices[1].0.endpoint.clone();
        d.app
            .with_conn(move |c| {
                use diesel::prelude::*;
                diesel::update(devices::table.filter(devices::endpoint.eq(target)))
                    .set((devices::endpoint.eq(endpoint), devices::p256dh.eq(p256dh), devices::auth.eq(auth)))
                    .execute(c)
                    .expect("rewrite")
            })
            .await;
        let id = d.app.message(&parish.user, &group, "Nur erlaubte Ziele").await;
        d.deliver().await;
        assert_eq!(rogue.request_count(), 0, "a request went to an origin outside the allowlist");
        assert_eq!(d.push.deliveries_for(&devices[0].0.id).len(), 1);
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!((stats["delivered"].as_i64(), stats["failed"].as_i64()), (Some(1), Some(1)), "{stats}");
        assert_eq!(stats["pending"], 0, "refused for good, not retried: {stats}");
        assert!(stats["last_failure"].as_str().unwrap().starts_with("endpoint refused"), "{stats}");
    }
);

both_backends_delivering!(
    async fn vapid_refusals_fail_without_deleting_anything(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(3).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        d.push.program_all(Program::status(403));
        let id = d.app.message(&parish.user, &group, "Abgelehnt").await;
        d.deliver().await;
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["failed"], 3);
        assert_eq!(stats["gone"], 0);
        assert_eq!(device_count(&d).await, 3, "never mass-delete on 401/403");
        assert_eq!(retry_count(&d).await, 0);
    }
);

/// Two push services: A holds every request far longer than the test runs,
/// B answers at once. Per-origin concurrency 2.
fn slow_and_fast() -> DeliverySetup {
    DeliverySetup {
        push_services: 2,
        also_allowed: Vec::new(),
        engine: herold::delivery::DeliveryConfig {
            batch_size: 500,
            per_origin_concurrency: 2,
            request_timeout: Duration::from_secs(60),
            ..Default::default()
        },
    }
}

both_backends_delivering!(
    async fn a_slow_push_service_does_not_stall_delivery_elsewhere(d: Delivering, setup = slow_and_fast()) {
        let (parish, group) = parish(&d).await;
        let (slow, fast) = (d.pushes[0].clone(), d.pushes[1].clone());
        // Interleaved registration: the batch (in device-id order) mixes both origins.
        let mut devices = Vec::new();
        for _ in 0..6 {
            devices.extend(d.devices_at(&slow, 1).await);
            devices.extend(d.devices_at(&fast, 1).await);
        }
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        slow.program_all(Program::delay(Duration::from_secs(120)));
        d.app.message(&parish.user, &group, "Langsam und schnell").await;

        let engine = d.engine.clone();
        let batch = actix_web::rt::spawn(async move { engine.step().await });
        let started = std::time::Instant::now();
        let (mut most_in_flight, mut held_connections, mut pool_checks) = (0, Vec::new(), 0);
        let mut fast_done_after = None;
        // Watch until B is done and half a second more (5 s at most; A holds its
        // requests for 120 s, so B done at all means B did not wait behind A),
        // and A must never have more than 2 requests open.
        while started.elapsed() < Duration::from_secs(5)
            && fast_done_after.is_none_or(|done: Duration| started.elapsed() < done + Duration::from_millis(500))
        {
            let in_flight = slow.in_flight();
            most_in_flight = most_in_flight.max(in_flight);
            if in_flight > 0 {
                // The batch's database work is done before its first request and
                // recorded after its last: no connection may be out meanwhile.
                let pool = d.app.state.pool.state();
                assert!(pool.connections > 0, "the pool has connections to check");
                pool_checks += 1;
                if pool.idle_connections != pool.connections {
                    held_connections.push((pool.connections, pool.idle_connections));
                }
            }
            if fast_done_after.is_none() && fast.count() == 6 {
                fast_done_after = Some(started.elapsed());
            }
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!batch.is_finished(), "the slow origin's requests should still be held");
        batch.abort();

        let fast_done_after = fast_done_after.expect("the fast push service's devices were not all delivered");
        eprintln!("B's {} devices delivered after {fast_done_after:?}", fast.count());
        for (sub, _) in devices.iter().filter(|(s, _)| s.endpoint.starts_with(fast.origin())) {
            assert_eq!(fast.deliveries_for(&sub.id).len(), 1);
        }
        assert_eq!(most_in_flight, 2, "requests open at the slow origin (per-origin concurrency 2)");
        assert_eq!(slow.request_count(), 0);
        assert!(pool_checks > 20, "the pool was looked at only {pool_checks} times");
        assert!(
            held_connections.is_empty(),
            "database connections held while requests were in flight (open, idle): {held_connections:?}"
        );
        fast.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn a_timed_out_request_is_retried(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(4).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        // One device's push service hangs past the request timeout (5 s).
        d.push.program_for(&devices[0].0.id, Program::status(503).with_delay(Duration::from_secs(8)).once());
        let id = d.app.message(&parish.user, &group, "Langsam").await;
        d.deliver().await;
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["delivered"], 3);
        assert_eq!(stats["pending"], 1, "the timed-out one waits for a retry");
        d.app.advance(60_000);
        d.deliver().await;
        assert_eq!(d.push.deliveries_for(&devices[0].0.id).len(), 1, "delivered on retry");
    }
);

both_backends_delivering!(
    async fn hidden_or_expired_messages_are_not_sent(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let (_, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        let hidden = d.app.message(&parish.user, &group, "Versteckt").await;
        d.app
            .with_conn(move |c| {
                use diesel::prelude::*;
                use herold::db::schema::messages;
                diesel::update(messages::table.find(hidden)).set(messages::hidden.eq(true)).execute(c).expect("hide")
            })
            .await;
        d.app
            .post(&format!("/api/v1/groups/{group}/messages"), Some(&parish.user.access), json!({"title": "Kurz", "body": "x", "ttl": 60}))
            .await
            .expect(201);
        d.app.advance(61_000);
        d.deliver().await;
        assert_eq!(d.push.count(), 0);
        let open: i64 = d
            .app
            .with_conn(|c| {
                use diesel::prelude::*;
                fanout_jobs::table.filter(fanout_jobs::state.ne("done")).count().get_result(c).expect("count")
            })
            .await;
        assert_eq!(open, 0, "both jobs are finished");
    }
);

both_backends_delivering!(
    async fn metrics_count_outcomes_by_origin(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(2).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        d.push.program_for(&devices[1].0.id, Program::status(410));
        d.app.message(&parish.user, &group, "Zählen").await;
        d.deliver().await;
        let res = d.app.get("/metrics", None).await;
        assert_eq!(res.status.as_u16(), 200);
        let text = res.body.as_str().expect("text").to_owned();
        assert!(text.contains(r#"herold_push_deliveries_total{origin="127.0.0.1",outcome="delivered"} 1"#), "{text}");
        assert!(text.contains(r#"herold_push_deliveries_total{origin="127.0.0.1",outcome="gone"} 1"#), "{text}");
        assert!(text.contains("herold_fanout_queue_depth{state=\"due\"} 0"), "{text}");
        assert!(text.contains("herold_fanout_duration_seconds_count{kind=\"message\"} 1"), "{text}");
        assert!(!text.contains("/push/"), "no endpoints in metrics");
    }
);

both_backends_delivering!(
    async fn devices_unseen_for_the_retention_time_are_purged(d: Delivering, batch = 500) {
        let (_, group) = parish(&d).await;
        let devices = d.devices(2).await;
        d.follow(&devices[0].1, &group).await;
        d.app.advance(59 * 24 * 3_600_000);
        // The second device checks in; the first stays silent.
        d.app.get("/api/v1/devices/me/inbox", Some(&devices[1].1.token)).await.expect(200);
        d.app.advance(2 * 24 * 3_600_000);
        let before = d.app.state.now_ms() - 60 * 24 * 3_600_000;
        let purged = d.app.with_conn(move |c| herold::delivery::store::purge_stale_devices(c, before).expect("purge")).await;
        assert_eq!(purged, 1);
        d.app.get("/api/v1/devices/me/inbox", Some(&devices[0].1.token)).await.expect(401);
        d.app.get("/api/v1/devices/me/inbox", Some(&devices[1].1.token)).await.expect(200);
    }
);

both_backends_delivering!(
    async fn a_slow_batch_keeps_its_lease_and_is_not_sent_twice(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(2).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        d.push.program_all(Program::delay(Duration::from_millis(1500)));
        d.app.message(&parish.user, &group, "Langsam").await;
        let lease_ms = 900;
        let config = herold::delivery::DeliveryConfig { lease_ms, ..Default::default() };
        let engine = herold::delivery::Delivery::new(d.app.state.clone(), config.clone()).expect("engine");
        let rival = herold::delivery::Delivery::new(d.app.state.clone(), config).expect("engine");

        let first = actix_web::rt::spawn(async move { engine.step().await });
        // Wait until the batch is in flight at the (slow) push service …
        for _ in 0..100 {
            if d.push.in_flight() == 2 {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(d.push.in_flight(), 2, "the batch is in flight");
        // … then let its lease run out on the clock; the worker renews it
        // every lease/3 (300 ms), so a rival finds nothing to claim.
        d.app.advance(lease_ms + 1);
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        assert!(!rival.step().await.expect("rival step"), "the in-flight batch was claimed again");
        assert!(first.await.expect("join").expect("step"));
        assert_eq!(d.push.count(), 2);
        for (sub, _) in &devices {
            assert_eq!(d.push.deliveries_for(&sub.id).len(), 1);
        }
    }
);

// ---- moderation stops delivery ----

/// The town's city admin (made by `parish`), logged in again.
async fn town_admin(d: &Delivering) -> User {
    d.app.login("rathaus@wismar.de").await
}

/// The parish's owner logged in again (access tokens last 15 minutes of the moved clock).
async fn parish_owner(d: &Delivering, owner: &Owner) -> Owner {
    Owner { user: d.app.login("buero@st-nikolai.de").await, org_id: owner.org_id.clone() }
}

async fn post_at(d: &Delivering, owner: &Owner, group: &str, title: &str, at_ms: i64) -> String {
    let body = d
        .app
        .post(
            &format!("/api/v1/groups/{group}/messages"),
            Some(&owner.user.access),
            json!({"title": title, "body": "x", "publish_at": herold::model::ts(at_ms)}),
        )
        .await
        .expect(201);
    body["id"].as_str().expect("id").to_owned()
}

/// (recipients, delivered, pending, fan-out state) straight from the database
/// (a suspended organization's owner may not read its stats).
async fn counters(d: &Delivering, message: &str) -> (i64, i64, i64, String) {
    use diesel::prelude::*;
    use herold::db::schema::messages as m;
    let id = message.to_owned();
    d.app
        .with_conn(move |c| {
            let (recipients, delivered, gone, failed): (i64, i64, i64, i64) =
                m::table.find(&id).select((m::recipients, m::delivered, m::gone, m::failed)).first(c).expect("message");
            let state: String = fanout_jobs::table
                .filter(fanout_jobs::message_id.eq(&id))
                .select(fanout_jobs::state)
                .first(c)
                .expect("job");
            (recipients, delivered, recipients - delivered - gone - failed, state)
        })
        .await
}

both_backends_delivering!(
    async fn nothing_is_pushed_for_a_suspended_organization(d: Delivering, batch = 2) {
        let (parish, group) = parish(&d).await;
        let admin = town_admin(&d).await;
        let devices = d.devices(6).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        let early = post_at(&d, &parish, &group, "Vor der Sperre geplant", T0 + 3_600_000).await;
        let late = post_at(&d, &parish, &group, "Nach der Wiederzulassung", T0 + 3 * 3_600_000).await;
        let suspend = format!("/api/v1/admin/organizations/{}/suspend", parish.org_id);
        d.app.post(&suspend, Some(&admin.access), json!({"reason": "Prüfung"})).await.expect(200);

        // Its time comes while the organization is suspended: nothing goes out.
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.request_count(), 0, "a suspended organization's message was pushed");
        assert_eq!(counters(&d, &early).await, (0, 0, 0, "done".to_owned()), "withheld, and nothing left pending");

        // Reinstated before the second one's time: that one goes out.
        let admin = town_admin(&d).await;
        let reinstate = format!("/api/v1/admin/organizations/{}/reinstate", parish.org_id);
        d.app.post(&reinstate, Some(&admin.access), serde_json::Value::Null).await.expect(200);
        d.app.advance(2 * 3_600_000);
        d.deliver().await;
        assert_eq!(d.push.count(), 6);
        assert!(d.push.deliveries().iter().all(|x| x.payload["herold"]["message_id"] == late.as_str()));
        assert_eq!(counters(&d, &late).await, (6, 6, 0, "done".to_owned()));

        // A suspension in the middle of a fan-out stops it at the next batch.
        d.push.clear();
        let (parish, admin) = (parish_owner(&d, &parish).await, town_admin(&d).await);
        let running = d.app.message(&parish.user, &group, "Läuft gerade").await;
        assert!(d.engine.step().await.expect("step"));
        assert_eq!(d.push.count(), 2, "one batch of two went out");
        d.app.post(&suspend, Some(&admin.access), json!({"reason": "Beschwerden"})).await.expect(200);
        d.deliver().await;
        assert_eq!(d.push.request_count(), 2, "the fan-out went on after the suspension");
        assert_eq!(counters(&d, &running).await, (2, 2, 0, "done".to_owned()));
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn nothing_is_pushed_for_a_suspended_group(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let admin = town_admin(&d).await;
        let mut devices = d.devices(2).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        let (failing, _) = devices.remove(1);
        d.push.program_for(&failing.id, Program::status(500));
        // Sent before the suspension; one device's push service fails and a retry waits.
        let sent = d.app.message(&parish.user, &group, "Schon unterwegs").await;
        let scheduled = post_at(&d, &parish, &group, "Geplant", T0 + 3_600_000).await;
        d.deliver().await;
        assert_eq!((d.push.count(), d.push.request_count()), (1, 2));
        assert_eq!(retry_count(&d).await, 1);

        d.app
            .post(&format!("/api/v1/admin/groups/{group}/suspend"), Some(&admin.access), json!({"reason": "Prüfung"}))
            .await
            .expect(200);
        d.push.clear_programs();
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.request_count(), 2, "neither the scheduled message nor the retry was pushed");
        assert_eq!(retry_count(&d).await, 0, "the retry is dropped");
        assert_eq!(counters(&d, &scheduled).await, (0, 0, 0, "done".to_owned()));
        assert_eq!(counters(&d, &sent).await, (1, 1, 0, "done".to_owned()), "the dropped retry is not pending");

        // Reinstated: the group's next message reaches both devices.
        let (parish, admin) = (parish_owner(&d, &parish).await, town_admin(&d).await);
        let reinstate = format!("/api/v1/admin/groups/{group}/reinstate");
        d.app.post(&reinstate, Some(&admin.access), serde_json::Value::Null).await.expect(200);
        let next = d.app.message(&parish.user, &group, "Wieder da").await;
        d.deliver().await;
        assert_eq!(d.push.count(), 3);
        assert_eq!(counters(&d, &next).await, (2, 2, 0, "done".to_owned()));

        // An archived group sends nothing either, even what was scheduled before.
        let last = post_at(&d, &parish, &group, "Nach dem Archivieren", T0 + 2 * 3_600_000).await;
        d.app.delete(&format!("/api/v1/groups/{group}"), Some(&parish.user.access)).await.expect(204);
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.count(), 3);
        assert_eq!(counters(&d, &last).await, (0, 0, 0, "done".to_owned()));
        d.push.assert_no_violations();
    }
);

both_backends_delivering!(
    async fn retries_of_a_message_hidden_after_it_went_out_are_not_sent(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let admin = town_admin(&d).await;
        let (sub, device) = d.devices(1).await.remove(0);
        d.follow(&device, &group).await;
        d.push.program_for(&sub.id, Program::status(500).once());
        let id = d.app.message(&parish.user, &group, "Falschmeldung").await;
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 1);
        assert_eq!(retry_count(&d).await, 1);

        d.app
            .post(&format!("/api/v1/admin/messages/{id}/hide"), Some(&admin.access), json!({"reason": "falsch"}))
            .await
            .expect(200);
        // Well past the retry's time (30 s ± 20 %): the push service would now accept it.
        d.app.advance(3_600_000);
        d.deliver().await;
        assert_eq!(d.push.requests_for(&sub.id).len(), 1, "a hidden message was retried");
        assert_eq!(retry_count(&d).await, 0);
        let parish = parish_owner(&d, &parish).await;
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!((stats["recipients"].as_i64(), stats["pending"].as_i64()), (Some(0), Some(0)), "{stats}");
    }
);
