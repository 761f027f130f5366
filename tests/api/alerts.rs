//! Town-wide alerts: a city admin's message of urgency `high` reaches every
//! device that follows any group of the town, each device once.

use serde_json::json;

use crate::harness::*;

/// Wismar with two organizations' groups, Strausberg with one.
async fn towns(d: &Delivering) -> (User, Vec<String>, String) {
    d.app.with_tenant("wismar").await;
    d.app.with_tenant("strausberg").await;
    let admin = d.app.city_admin("wismar", "rathaus@wismar.de").await;
    let other = d.app.city_admin("strausberg", "rathaus@strausberg.de").await;
    let parish = d.app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
    let club = d.app.approved_org(&admin, "wismar", "vorstand@hansa.de", "Hansa").await;
    let fire = d.app.approved_org(&other, "strausberg", "wehr@strausberg.de", "Feuerwehr").await;
    let g1 = d.app.group(&parish, "Gemeindebrief", "church").await;
    let g2 = d.app.group(&club, "Vereinsnews", "club").await;
    let g3 = d.app.group(&fire, "Einsätze", "administration").await;
    (admin, vec![g1, g2], g3)
}

both_backends_delivering!(
    async fn an_alert_reaches_every_device_of_the_town_once(d: Delivering, batch = 2) {
        let (admin, wismar, strausberg) = towns(&d).await;
        let mut devices = d.devices(4).await;
        let (both, both_device) = devices.remove(0);
        let (one, one_device) = devices.remove(0);
        let (elsewhere, elsewhere_device) = devices.remove(0);
        let (nothing, _) = devices.remove(0);
        d.follow(&both_device, &wismar[0]).await;
        d.follow(&both_device, &wismar[1]).await;
        d.follow(&both_device, &strausberg).await;
        d.follow(&one_device, &wismar[1]).await;
        d.follow(&elsewhere_device, &strausberg).await;

        let sent = d
            .app
            .post(
                "/api/v1/admin/tenants/wismar/alerts",
                Some(&admin.access),
                json!({"title": "Hochwasser", "body": "Die Altstadt wird bis 18 Uhr geräumt."}),
            )
            .await
            .expect(201);
        let id = sent["id"].as_str().unwrap().to_owned();
        assert_eq!(sent["urgency"], "high");
        assert_eq!(sent["kind"], "alert");
        d.deliver().await;

        assert_eq!(d.push.deliveries_for(&both.id).len(), 1, "once, though it follows two of the town's groups");
        assert_eq!(d.push.deliveries_for(&one.id).len(), 1);
        assert!(d.push.deliveries_for(&elsewhere.id).is_empty(), "another town's residents are not alerted");
        assert!(d.push.deliveries_for(&nothing.id).is_empty());
        d.push.assert_no_violations();
        let got = &d.push.deliveries_for(&one.id)[0];
        assert_eq!(got.urgency.as_deref(), Some("high"));
        assert_eq!(got.payload["herold"]["kind"], "alert");
        assert_eq!(got.payload["herold"]["tenant"], "wismar");
        assert_eq!(got.payload["herold"]["group_name"], "Stadt wismar");
        assert_eq!(got.payload["herold"]["verified"], true);
        assert_eq!(got.payload["notification"]["title"], "Hochwasser");
        assert_eq!(got.ttl, 24 * 3600);

        // In the inboxes of the town's residents, and readable when opened.
        let inbox = d.app.get("/api/v1/devices/me/inbox", Some(&one_device.token)).await.expect(200);
        assert_eq!(inbox["items"][0]["id"], id.as_str());
        assert_eq!(inbox["items"][0]["kind"], "alert");
        let inbox = d.app.get("/api/v1/devices/me/inbox", Some(&elsewhere_device.token)).await.expect(200);
        assert!(inbox["items"].as_array().unwrap().is_empty());
        d.app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200);

        // The city admin sees it with its statistics.
        let list = d.app.get("/api/v1/admin/tenants/wismar/alerts", Some(&admin.access)).await.expect(200);
        assert_eq!(list["items"][0]["id"], id.as_str());
        assert_eq!(list["items"][0]["stats"]["recipients"], 2);
        assert_eq!(list["items"][0]["stats"]["delivered"], 2);
    }
);

both_backends!(
    async fn only_the_town_s_city_admins_may_alert_and_it_is_audited(app: TestApp) {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let other = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let operator = app.operator("ops@herold.de").await;
        let owner = app.approved_org(&admin, "wismar", "buero@st-nikolai.de", "St. Nikolai").await;
        let device = app.device().await;
        let alert = json!({"title": "Sturm", "body": "Bitte zu Hause bleiben."});
        let path = "/api/v1/admin/tenants/wismar/alerts";

        app.post(path, None, alert.clone()).await.expect_error(401, "unauthenticated");
        app.post(path, Some(&device.token), alert.clone()).await.expect_error(401, "unauthenticated");
        app.post(path, Some(&owner.user.access), alert.clone()).await.expect_error(403, "city_admin_required");
        app.post(path, Some(&other.access), alert.clone()).await.expect_error(403, "city_admin_required");
        app.get(path, Some(&other.access)).await.expect_error(403, "city_admin_required");
        app.post("/api/v1/admin/tenants/nowhere/alerts", Some(&admin.access), alert.clone())
            .await
            .expect_error(404, "not_found");
        app.post(path, Some(&admin.access), json!({"title": "", "body": "x"})).await.expect_error(422, "invalid_field");
        app.post(path, Some(&admin.access), json!({"title": "x", "body": "x", "urgency": "low"})).await.expect(422);

        let first = app.post(path, Some(&admin.access), alert.clone()).await.expect(201);
        let second = app.post(path, Some(&operator.access), alert).await.expect(201);
        let list = app.get(path, Some(&admin.access)).await.expect(200);
        assert_eq!(list["items"].as_array().unwrap().len(), 2);

        let actions: Vec<(String, String)> = app
            .with_conn(|c| {
                use diesel::prelude::*;
                use herold::db::schema::audit_log::dsl::*;
                audit_log.filter(action.eq("alert.send")).select((target_id, actor)).load(c).expect("audit")
            })
            .await;
        assert_eq!(actions.len(), 2);
        assert!(actions.contains(&(first["id"].as_str().unwrap().to_owned(), format!("user:{}", admin.id))));
        assert!(actions.contains(&(second["id"].as_str().unwrap().to_owned(), format!("user:{}", operator.id))));
    }
);

both_backends!(
    async fn the_town_s_alert_channel_is_never_listed_or_followed(app: TestApp) {
        app.with_tenant("wismar").await;
        let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
        let sent = app
            .post(
                "/api/v1/admin/tenants/wismar/alerts",
                Some(&admin.access),
                json!({"title": "Test", "body": "Probealarm"}),
            )
            .await
            .expect(201);
        let channel = sent["group"]["id"].as_str().unwrap().to_owned();

        let directory = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert!(directory["items"].as_array().unwrap().is_empty());
        app.get(&format!("/api/v1/groups/{channel}"), None).await.expect(404);
        app.get(&format!("/api/v1/groups/{channel}/messages"), None).await.expect(404);
        let device = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{channel}"), Some(&device.token), json!(null))
            .await
            .expect(404);
        let orgs = app.get("/api/v1/admin/tenants/wismar/organizations", Some(&admin.access)).await.expect(200);
        assert!(orgs["items"].as_array().unwrap().is_empty(), "{orgs}");
        app.post(
            &format!("/api/v1/groups/{channel}/messages"),
            Some(&admin.access),
            json!({"title": "x", "body": "y"}),
        )
        .await
        .expect(404);
    }
);
