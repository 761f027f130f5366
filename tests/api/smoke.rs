//! A walk through the main story: town, city admin, organization, group,
//! resident, message.

use serde_json::json;

both_backends!(
    async fn resident_receives_posted_message_in_feed_and_inbox(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let parish = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let group = app.group(&parish, "Gemeindebrief", "church").await;

        let device = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device.token), json!(null))
            .await
            .expect(200);

        let id = app.message(&parish.user, &group, "Adventskonzert").await;

        let feed = app.get(&format!("/api/v1/groups/{group}/messages"), None).await.expect(200);
        assert_eq!(feed["items"][0]["id"], id);
        assert_eq!(feed["items"][0]["title"], "Adventskonzert");
        let inbox = app.get("/api/v1/devices/me/inbox", Some(&device.token)).await.expect(200);
        assert_eq!(inbox["items"][0]["id"], id);
        let detail = app.get(&format!("/api/v1/groups/{group}"), None).await.expect(200);
        assert_eq!(detail["subscriber_count"], 1);
    }
);
