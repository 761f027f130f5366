//! What anyone may read without an account: the towns, a town's group
//! directory, group pages with subscriber counts, public feeds, single
//! messages and the VAPID public key.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::harness::{Owner, TestApp, User};

// ---- helpers private to this file ----

/// Percent-encodes a query-string value.
fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The `id`s of a page's items, in order.
fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items array").iter().map(|i| i["id"].as_str().expect("id").to_owned()).collect()
}

/// The `name`s of a page's items, in order.
fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut k: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

/// Creates a group with a chosen description; returns its id.
async fn described_group(app: &TestApp, owner: &Owner, name: &str, description: &str, category: &str) -> String {
    let body = app
        .post(
            &format!("/api/v1/organizations/{}/groups", owner.org_id),
            Some(&owner.user.access),
            json!({"name": name, "description": description, "category": category}),
        )
        .await
        .expect(201);
    body["id"].as_str().expect("group id").to_owned()
}

/// Suspends an organization as the town's admin.
async fn suspend_org(app: &TestApp, admin: &User, org_id: &str) {
    let body = app
        .post(
            &format!("/api/v1/admin/organizations/{org_id}/suspend"),
            Some(&admin.access),
            json!({"reason": "Beschwerden über Werbung"}),
        )
        .await
        .expect(200);
    assert_eq!(body["status"], "suspended");
}

/// Marks a group official (no endpoint for it yet).
async fn set_verified(app: &TestApp, group_id: &str) {
    use diesel::prelude::*;
    use herold::db::schema::broadcast_groups;
    let id = group_id.to_owned();
    let n = app
        .with_conn(move |c| {
            diesel::update(broadcast_groups::table.find(id)).set(broadcast_groups::verified.eq(true)).execute(c)
        })
        .await
        .expect("update verified");
    assert_eq!(n, 1);
}

/// Walks every page of `path` (which already has a `?`) with `limit`;
/// asserts each page but the last is full and the last has `next: null`.
async fn all_pages(app: &TestApp, path: &str, token: Option<&str>, limit: usize) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            None => format!("{path}&limit={limit}"),
            Some(c) => format!("{path}&limit={limit}&cursor={}", enc(c)),
        };
        let page = app.get(&url, token).await.expect(200);
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        let page_ids = ids(&page);
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page_ids.len(), limit, "a page before the last must be full: {page}");
                cursor = Some(next.to_owned());
                seen.extend(page_ids);
            }
            None => {
                assert!(page["next"].is_null(), "next must be a string or null: {page}");
                assert!(page_ids.len() <= limit);
                seen.extend(page_ids);
                return (seen, pages);
            }
        }
    }
}

fn assert_unique(ids: &[String]) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "duplicates across pages: {ids:?}");
}

/// A town, its admin and one approved organization.
async fn town(app: &TestApp) -> (User, Owner) {
    app.with_tenant("wismar").await;
    let admin = app.city_admin("wismar", "rathaus@wismar.de").await;
    let org = app.approved_org(&admin, "wismar", "info@sv-wismar.de", "SV Wismar").await;
    (admin, org)
}

/// Posts a message with extra fields; returns the response body.
async fn post_message(app: &TestApp, user: &User, group: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/groups/{group}/messages"), Some(&user.access), body).await.expect(201)
}

// ---- towns ----

both_backends!(
    async fn tenants_are_listed_sorted_by_name_in_one_page(app: TestApp) {
        let empty = app.get("/api/v1/tenants", None).await.expect(200);
        assert_eq!(empty, json!({"items": [], "next": null}));

        for slug in ["wismar", "anklam", "strausberg"] {
            app.with_tenant(slug).await;
        }
        let list = app.get("/api/v1/tenants", None).await.expect(200);
        assert_eq!(
            list,
            json!({
                "items": [
                    {"slug": "anklam", "name": "Stadt anklam"},
                    {"slug": "strausberg", "name": "Stadt strausberg"},
                    {"slug": "wismar", "name": "Stadt wismar"},
                ],
                "next": null
            })
        );
    }
);

// ---- directory ----

both_backends!(
    async fn directory_lists_only_active_groups_of_approved_organizations(app: TestApp) {
        let (admin, club) = town(&app).await;
        app.with_tenant("anklam").await;
        let anklam_admin = app.city_admin("anklam", "rathaus@anklam.de").await;

        let fussball = app.group(&club, "Fußball", "club").await;
        let handball = app.group(&club, "Handball", "club").await;
        let archived = app.group(&club, "Alte Herren", "club").await;
        app.delete(&format!("/api/v1/groups/{archived}"), Some(&club.user.access)).await.expect(204);

        let pending = app.register_org("wismar", "info@baeckerei.de", "Bäckerei Korn").await;
        app.group(&pending, "Brötchendienst", "business").await;

        let shady = app.approved_org(&admin, "wismar", "info@shady.de", "Shady Shop").await;
        let shady_group = app.group(&shady, "Angebote", "business").await;
        suspend_org(&app, &admin, &shady.org_id).await;

        let elsewhere = app.approved_org(&anklam_admin, "anklam", "info@anklam-sv.de", "SV Anklam").await;
        let anklam_group = app.group(&elsewhere, "Anklamer Fußball", "club").await;

        let dir = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert_eq!(ids(&dir), vec![fussball.clone(), handball.clone()]);
        assert!(dir["next"].is_null());

        let item = &dir["items"][0];
        assert_eq!(
            keys(item),
            [
                "category",
                "created_at",
                "description",
                "id",
                "name",
                "organization",
                "status",
                "subscriber_count",
                "tenant",
                "verified"
            ]
        );
        assert_eq!(item["tenant"], "wismar");
        assert_eq!(item["organization"], json!({"id": club.org_id, "name": "SV Wismar"}));
        assert_eq!(item["name"], "Fußball");
        assert_eq!(item["description"], "Fußball — Neuigkeiten");
        assert_eq!(item["category"], "club");
        assert_eq!(item["verified"], false);
        assert_eq!(item["status"], "active");
        assert_eq!(item["subscriber_count"], 0);
        assert_eq!(item["created_at"], "2026-11-26T12:00:00.000Z");

        let other = app.get("/api/v1/tenants/anklam/groups", None).await.expect(200);
        assert_eq!(ids(&other), vec![anklam_group]);

        // Reinstating the organization brings its group back, unchanged.
        app.post(&format!("/api/v1/admin/organizations/{}/reinstate", shady.org_id), Some(&admin.access), json!(null))
            .await
            .expect(200);
        let dir = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert_eq!(ids(&dir), vec![shady_group, fussball, handball]);

        app.get("/api/v1/tenants/nirgendwo/groups", None).await.expect_error(404, "not_found");
    }
);

both_backends!(
    async fn directory_search_is_case_insensitive_and_matches_every_word(app: TestApp) {
        let (_, org) = town(&app).await;
        let ffw = described_group(&app, &org, "Freiwillige Feuerwehr", "Einsätze und Übungen", "administration").await;
        let verein = described_group(&app, &org, "Feuerwehrverein", "Geselliges für Mitglieder", "club").await;
        let sport = described_group(&app, &org, "Sportverein", "Fit mit 100% Einsatz", "club").await;
        let kita_sonne = described_group(&app, &org, "Kita_Sonnenschein", "Elternbriefe", "school").await;
        let kita_regen = described_group(&app, &org, "Kita Regenbogen", "Elternbriefe", "school").await;

        let search = |q: &str| format!("/api/v1/tenants/wismar/groups?q={}", enc(q));
        let mut cases: Vec<(&str, Vec<&String>)> = vec![
            ("feuerwehr", vec![&verein, &ffw]),
            ("FEUERWEHR", vec![&verein, &ffw]),
            ("FeUeRwEhR", vec![&verein, &ffw]),
            // in the description only
            ("übungen", vec![&ffw]),
            ("MITGLIEDER", vec![&verein]),
            // every word must match, in any order, in name or description
            ("feuerwehr verein", vec![&verein]),
            ("verein   feuerwehr", vec![&verein]),
            ("feuerwehr einsätze", vec![&ffw]),
            ("verein einsatz", vec![&sport]),
            ("feuerwehr kita", vec![]),
            // `%` and `_` are plain characters, not wildcards
            ("%", vec![&sport]),
            ("100%", vec![&sport]),
            ("_", vec![&kita_sonne]),
            ("kita_", vec![&kita_sonne]),
            ("kita", vec![&kita_regen, &kita_sonne]),
            ("\\", vec![]),
            ("zirkus", vec![]),
            // blank means no filter
            ("   ", vec![&verein, &ffw, &kita_regen, &kita_sonne, &sport]),
        ];
        // Case-insensitive beyond ASCII: German names start with umlauts.
        cases.push(("ÜBUNGEN", vec![&ffw]));
        cases.push(("EINSÄTZE", vec![&ffw]));
        for (q, want) in cases {
            let page = app.get(&search(q), None).await.expect(200);
            let want: Vec<String> = want.into_iter().cloned().collect();
            assert_eq!(ids(&page), want, "q={q:?}: got {:?}", names(&page));
            assert!(page["next"].is_null());
        }

        let too_long = "x".repeat(101);
        app.get(&search(&too_long), None).await.expect_error(422, "invalid_field");
    }
);

both_backends!(
    async fn directory_filters_by_category(app: TestApp) {
        let (_, org) = town(&app).await;
        let rathaus = app.group(&org, "Rathaus aktuell", "administration").await;
        let kirche = app.group(&org, "Kirchenchor", "church").await;
        let gemeinde = app.group(&org, "Gemeindebrief", "church").await;
        let verein = app.group(&org, "Kirchturmverein", "club").await;

        let base = "/api/v1/tenants/wismar/groups";
        let church = app.get(&format!("{base}?category=church"), None).await.expect(200);
        assert_eq!(ids(&church), vec![gemeinde.clone(), kirche.clone()]);
        assert!(church["items"].as_array().unwrap().iter().all(|g| g["category"] == "church"));

        let admin = app.get(&format!("{base}?category=administration"), None).await.expect(200);
        assert_eq!(ids(&admin), vec![rathaus.clone()]);

        let culture = app.get(&format!("{base}?category=culture"), None).await.expect(200);
        assert_eq!(culture, json!({"items": [], "next": null}));

        // category and text search combine
        let kirch_club = app.get(&format!("{base}?category=club&q=kirch"), None).await.expect(200);
        assert_eq!(ids(&kirch_club), vec![verein.clone()]);

        // an empty category means all
        let all = app.get(&format!("{base}?category="), None).await.expect(200);
        assert_eq!(ids(&all).len(), 4);

        app.get(&format!("{base}?category=sports"), None).await.expect_error(422, "invalid_field");
        app.get(&format!("{base}?category=Church"), None).await.expect_error(422, "invalid_field");
    }
);

both_backends!(
    async fn directory_lists_verified_groups_first_then_by_name(app: TestApp) {
        let (_, org) = town(&app).await;
        let zoo = app.group(&org, "Zoo-Freunde", "club").await;
        let angler = app.group(&org, "Anglerverein", "club").await;
        let buerger = app.group(&org, "bürgerbüro", "administration").await;
        let amt = app.group(&org, "Amtsblatt", "administration").await;
        let chor = app.group(&org, "Chor", "culture").await;

        set_verified(&app, &buerger).await;
        set_verified(&app, &amt).await;

        let dir = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        // verified first; within each part by name, ignoring case
        assert_eq!(ids(&dir), vec![amt.clone(), buerger.clone(), angler.clone(), chor.clone(), zoo.clone()]);
        let verified: Vec<bool> = dir["items"].as_array().unwrap().iter().map(|g| g["verified"] == true).collect();
        assert_eq!(verified, [true, true, false, false, false]);

        // the group page shows the badge too
        let page = app.get(&format!("/api/v1/groups/{amt}"), None).await.expect(200);
        assert_eq!(page["verified"], true);

        // search keeps the order ("r" is in every name but "Amtsblatt")
        let hits = app.get("/api/v1/tenants/wismar/groups?q=r", None).await.expect(200);
        assert_eq!(ids(&hits), vec![buerger, angler, chor, zoo]);
    }
);

both_backends!(
    async fn directory_pages_have_no_duplicates_or_gaps(app: TestApp) {
        let (_, org) = town(&app).await;
        let mut created = Vec::new();
        for name in ["Elf", "Eins", "Zwei", "Drei", "Vier", "Fünf", "Sechs", "Sieben"] {
            created.push(app.group(&org, name, "club").await);
        }
        set_verified(&app, &created[3]).await;

        let full = app.get("/api/v1/tenants/wismar/groups?limit=100", None).await.expect(200);
        let full_ids = ids(&full);
        assert_eq!(full_ids.len(), 8);
        assert_eq!(full_ids[0], created[3], "verified group leads");

        for limit in [1, 3, 4, 7, 8] {
            let (paged, pages) = all_pages(&app, "/api/v1/tenants/wismar/groups?", None, limit).await;
            assert_unique(&paged);
            assert_eq!(paged, full_ids, "limit={limit}");
            assert_eq!(pages, 8usize.div_ceil(limit).max(1), "limit={limit}");
        }

        // pagination inside a search: Eins, Sechs, Sieben
        let (hits, pages) = all_pages(&app, "/api/v1/tenants/wismar/groups?q=s", None, 2).await;
        let all_hits = ids(&app.get("/api/v1/tenants/wismar/groups?q=s", None).await.expect(200));
        assert_eq!(all_hits.len(), 3);
        assert_eq!(hits, all_hits);
        assert_eq!(pages, 2);

        // default page size is 20: everything fits, next is null
        let default = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert_eq!(ids(&default), full_ids);
        assert!(default["next"].is_null());

        let base = "/api/v1/tenants/wismar/groups";
        for bad in ["limit=0", "limit=101", "cursor=%21%21%21", "cursor=bm90LWEtY3Vyc29y", "cursor=YWJjOmQ"] {
            app.get(&format!("{base}?{bad}"), None).await.expect_error(422, "invalid_field");
        }
        app.get(&format!("{base}?limit=100"), None).await.expect(200);
        app.get(&format!("{base}?limit=1"), None).await.expect(200);
    }
);

// ---- group pages ----

both_backends!(
    async fn group_page_shows_subscriber_count_only(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Vereinsnews", "club").await;
        let other = app.group(&org, "Jugend", "club").await;
        let path = format!("/api/v1/groups/{group}");

        let page = app.get(&path, None).await.expect(200);
        assert_eq!(page["id"], group);
        assert_eq!(page["name"], "Vereinsnews");
        assert_eq!(page["tenant"], "wismar");
        assert_eq!(page["organization"]["name"], "SV Wismar");
        assert_eq!(page["subscriber_count"], 0);
        let count = |v: &Value| v["subscriber_count"].as_i64().expect("count");

        let a = app.device().await;
        let b = app.device().await;
        let sub = |d: &str| format!("/api/v1/devices/me/subscriptions/{d}");
        app.put(&sub(&group), Some(&a.token), json!(null)).await.expect(200);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 1);
        app.put(&sub(&group), Some(&b.token), json!(null)).await.expect(200);
        app.put(&sub(&other), Some(&b.token), json!(null)).await.expect(200);
        let page = app.get(&path, None).await.expect(200);
        assert_eq!(count(&page), 2);
        // following again changes nothing
        app.put(&sub(&group), Some(&a.token), json!(null)).await.expect(200);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 2);
        // the directory shows the same count
        let dir = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        let in_dir = dir["items"].as_array().unwrap().iter().find(|g| g["id"] == group).cloned().unwrap();
        assert_eq!(count(&in_dir), 2);

        app.delete(&sub(&group), Some(&a.token)).await.expect(204);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 1);
        assert_eq!(count(&app.get(&format!("/api/v1/groups/{other}"), None).await.expect(200)), 1);
        // unfollowing again changes nothing either
        app.delete(&sub(&group), Some(&a.token)).await.expect(204);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 1);
        // an erased device leaves every group it followed
        app.delete("/api/v1/devices/me", Some(&b.token)).await.expect(204);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 0);
        assert_eq!(count(&app.get(&format!("/api/v1/groups/{other}"), None).await.expect(200)), 0);
        // so does a purged one; the stored counts stay equal to the subscriptions
        app.put(&sub(&group), Some(&a.token), json!(null)).await.expect(200);
        app.put(&sub(&other), Some(&a.token), json!(null)).await.expect(200);
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 1);
        let later = app.state.now_ms() + 1;
        app.with_conn(move |c| herold::delivery::store::purge_stale_devices(c, later).expect("purge")).await;
        assert_eq!(count(&app.get(&path, None).await.expect(200)), 0);
        let dir = app.get("/api/v1/tenants/wismar/groups", None).await.expect(200);
        assert!(dir["items"].as_array().unwrap().iter().all(|g| count(g) == 0), "{dir}");

        // counts, never who: nothing in the page names a device
        let text = app.get(&path, None).await.expect(200).to_string();
        assert!(!text.contains(&a.token) && !text.contains(&b.token));
        assert!(!text.contains("device"), "{text}");
    }
);

both_backends!(
    async fn group_page_is_404_for_unknown_pending_suspended_or_archived(app: TestApp) {
        let (admin, org) = town(&app).await;
        let archived = app.group(&org, "Archiv", "club").await;
        app.delete(&format!("/api/v1/groups/{archived}"), Some(&org.user.access)).await.expect(204);

        let pending = app.register_org("wismar", "info@neu.de", "Neuer Verein").await;
        let pending_group = app.group(&pending, "Neuigkeiten", "club").await;

        let suspended = app.approved_org(&admin, "wismar", "info@weg.de", "Weg GmbH").await;
        let suspended_group = app.group(&suspended, "Werbung", "business").await;
        app.get(&format!("/api/v1/groups/{suspended_group}"), None).await.expect(200);
        suspend_org(&app, &admin, &suspended.org_id).await;

        for id in [archived.as_str(), pending_group.as_str(), suspended_group.as_str(), "no-such-group"] {
            app.get(&format!("/api/v1/groups/{id}"), None).await.expect_error(404, "not_found");
            app.get(&format!("/api/v1/groups/{id}/messages"), None).await.expect_error(404, "not_found");
        }

        // once approved, the pending organization's group appears
        app.post(&format!("/api/v1/admin/organizations/{}/approve", pending.org_id), Some(&admin.access), json!(null))
            .await
            .expect(200);
        app.get(&format!("/api/v1/groups/{pending_group}"), None).await.expect(200);
    }
);

// ---- feeds and messages ----

both_backends!(
    async fn feed_is_newest_first_and_pages_without_duplicates(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Spielberichte", "club").await;
        let other = app.group(&org, "Jugend", "club").await;
        let mut posted = Vec::new();
        for i in 1..=5 {
            posted.push(app.message(&org.user, &group, &format!("Spiel {i}")).await);
            app.message(&org.user, &other, &format!("Jugend {i}")).await;
            app.advance(60_000);
        }
        let newest_first: Vec<String> = posted.iter().rev().cloned().collect();
        let path = format!("/api/v1/groups/{group}/messages");

        let all = app.get(&path, None).await.expect(200);
        assert_eq!(ids(&all), newest_first);
        assert!(all["next"].is_null());

        let first = &all["items"][0];
        assert_eq!(keys(first), ["body", "group", "id", "kind", "published_at", "title", "urgency", "url"]);
        assert_eq!(first["kind"], "message");
        assert_eq!(first["title"], "Spiel 5");
        assert_eq!(first["body"], "Spiel 5: Text");
        assert_eq!(first["url"], Value::Null);
        assert_eq!(first["urgency"], "normal");
        assert_eq!(first["published_at"], "2026-11-26T12:04:00.000Z");
        assert_eq!(
            first["group"],
            json!({"id": group, "name": "Spielberichte", "tenant": "wismar", "verified": false})
        );

        // limit=2: three pages, [5,4] [3,2] [1]
        let p1 = app.get(&format!("{path}?limit=2"), None).await.expect(200);
        assert_eq!(ids(&p1), newest_first[0..2]);
        let c1 = p1["next"].as_str().expect("next after page 1").to_owned();
        let p2 = app.get(&format!("{path}?limit=2&cursor={}", enc(&c1)), None).await.expect(200);
        assert_eq!(ids(&p2), newest_first[2..4]);
        let c2 = p2["next"].as_str().expect("next after page 2").to_owned();
        let p3 = app.get(&format!("{path}?limit=2&cursor={}", enc(&c2)), None).await.expect(200);
        assert_eq!(ids(&p3), newest_first[4..5]);
        assert!(p3["next"].is_null());

        // a cursor is stable: asking again gives the same page, even after a newer message
        app.message(&org.user, &group, "Spiel 6").await;
        let again = app.get(&format!("{path}?limit=2&cursor={}", enc(&c1)), None).await.expect(200);
        assert_eq!(ids(&again), newest_first[2..4]);

        for bad in ["limit=0", "limit=101", "cursor=%21%21%21", "cursor=bm90LWEtY3Vyc29y", "cursor=eHl6OmFiYw"] {
            app.get(&format!("{path}?{bad}"), None).await.expect_error(422, "invalid_field");
        }
    }
);

both_backends!(
    async fn feed_pages_messages_posted_in_the_same_millisecond(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Ticker", "club").await;
        let mut posted = Vec::new();
        for i in 0..5 {
            posted.push(app.message(&org.user, &group, &format!("Tor {i}")).await);
        }
        let (paged, pages) = all_pages(&app, &format!("/api/v1/groups/{group}/messages?"), None, 2).await;
        assert_eq!(pages, 3);
        assert_unique(&paged);
        let mut want = posted.clone();
        want.sort();
        let mut got = paged.clone();
        got.sort();
        assert_eq!(got, want);
        // same order as the single page
        let all = app.get(&format!("/api/v1/groups/{group}/messages"), None).await.expect(200);
        assert_eq!(ids(&all), paged);
    }
);

both_backends!(
    async fn scheduled_message_appears_when_its_time_comes(app: TestApp) {
        let (_, org) = town(&app).await;
        let group = app.group(&org, "Termine", "club").await;
        let now = app.message(&org.user, &group, "Heute").await;
        // one hour ahead, written with an offset: 14:00+01:00 is 13:00Z
        let scheduled = post_message(
            &app,
            &org.user,
            &group,
            json!({"title": "Weihnachtsfeier", "body": "Am Samstag", "publish_at": "2026-11-26T14:00:00+01:00"}),
        )
        .await;
        assert_eq!(scheduled["status"], "scheduled");
        let id = scheduled["id"].as_str().unwrap().to_owned();
        let feed = format!("/api/v1/groups/{group}/messages");
        let single = format!("/api/v1/messages/{id}");

        assert_eq!(ids(&app.get(&feed, None).await.expect(200)), vec![now.clone()]);
        app.get(&single, None).await.expect_error(404, "not_found");

        app.advance(3_600_000 - 1);
        assert_eq!(ids(&app.get(&feed, None).await.expect(200)), vec![now.clone()]);
        app.get(&single, None).await.expect_error(404, "not_found");

        app.advance(1);
        let list = app.get(&feed, None).await.expect(200);
        assert_eq!(ids(&list), vec![id.clone(), now]);
        assert_eq!(list["items"][0]["published_at"], "2026-11-26T13:00:00.000Z");
        let msg = app.get(&single, None).await.expect(200);
        assert_eq!(msg["title"], "Weihnachtsfeier");
        assert_eq!(msg["published_at"], "2026-11-26T13:00:00.000Z");
    }
);

both_backends!(
    async fn single_message_is_public_unless_unknown_or_hidden_by_suspension(app: TestApp) {
        let (admin, org) = town(&app).await;
        let group = app.group(&org, "Presse", "club").await;
        let id = post_message(
            &app,
            &org.user,
            &group,
            json!({"title": "Sieg!", "body": "3:1 gegen Rostock", "url": "https://sv-wismar.de/bericht", "urgency": "high"}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let msg = app.get(&format!("/api/v1/messages/{id}"), None).await.expect(200);
        assert_eq!(
            msg,
            json!({
                "id": id,
                "group": {"id": group, "name": "Presse", "tenant": "wismar", "verified": false},
                "title": "Sieg!",
                "body": "3:1 gegen Rostock",
                "url": "https://sv-wismar.de/bericht",
                "urgency": "high",
                "published_at": "2026-11-26T12:00:00.000Z",
                "kind": "message"
            })
        );

        app.get("/api/v1/messages/no-such-message", None).await.expect_error(404, "not_found");

        // a message the town hid (moderation) leaves the feed; its page says it was removed
        app.advance(1000);
        let hidden = app.message(&org.user, &group, "Werbung").await;
        let feed = format!("/api/v1/groups/{group}/messages");
        assert_eq!(ids(&app.get(&feed, None).await.expect(200)), vec![hidden.clone(), id.clone()]);
        let h = hidden.clone();
        app.with_conn(move |c| {
            use diesel::prelude::*;
            use herold::db::schema::messages;
            diesel::update(messages::table.find(h)).set(messages::hidden.eq(true)).execute(c).expect("hide")
        })
        .await;
        assert_eq!(ids(&app.get(&feed, None).await.expect(200)), vec![id.clone()]);
        app.get(&format!("/api/v1/messages/{hidden}"), None).await.expect_error(410, "message_removed");

        suspend_org(&app, &admin, &org.org_id).await;
        app.get(&format!("/api/v1/messages/{id}"), None).await.expect_error(404, "not_found");
    }
);

// ---- VAPID ----

both_backends!(
    async fn vapid_public_key_is_a_stable_uncompressed_p256_point(app: TestApp) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        let first = app.get("/api/v1/push/vapid-public-key", None).await.expect(200);
        let key = first["public_key"].as_str().expect("public_key").to_owned();
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "not unpadded base64url: {key}"
        );
        let bytes = URL_SAFE_NO_PAD.decode(&key).expect("base64url");
        assert_eq!(bytes.len(), 65);
        assert_eq!(bytes[0], 0x04);
        assert!(p256::PublicKey::from_sec1_bytes(&bytes).is_ok(), "not a point on P-256");

        let second = app.get("/api/v1/push/vapid-public-key", None).await.expect(200);
        assert_eq!(second["public_key"], key.as_str());
        app.advance(24 * 3600 * 1000);
        let later = app.get("/api/v1/push/vapid-public-key", None).await.expect(200);
        assert_eq!(later["public_key"], key.as_str());
    }
);
