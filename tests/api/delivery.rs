//! The delivery pipeline end to end: a message posted to a group reaches
//! every subscribed device through the strict test push service, which
//! verifies VAPID and decrypts each payload with its own RFC 8291 code; and
//! every answer of a push service has the effect WEBPUSH.md's table demands.

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

both_backends_delivering!(
    async fn a_slow_push_service_does_not_stall_delivery_elsewhere(d: Delivering, batch = 500) {
        let (parish, group) = parish(&d).await;
        let devices = d.devices(4).await;
        for (_, device) in &devices {
            d.follow(device, &group).await;
        }
        // One device's push service hangs past the request timeout.
        d.push.program_for(&devices[0].0.id, Program::status(503).with_delay(Duration::from_secs(8)));
        let id = d.app.message(&parish.user, &group, "Langsam").await;
        d.deliver().await;
        let stats = d.stats(&parish.user, &id).await;
        assert_eq!(stats["delivered"], 3);
        assert_eq!(stats["pending"], 1, "the timed-out one waits for a retry");
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
