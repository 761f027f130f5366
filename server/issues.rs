//! Residents' issue reports to an organization ("Mängelmelder"): a group
//! opens for reports under its own categories; a device sends a report with
//! up to three photos and, if it wishes, a position; the organization
//! answers and changes the status, and each answer reaches that one device
//! by push; the organization may publish a report on the group's board.
//!
//! The organization sees a pseudonym per device (`talk::pseudonym`), never
//! the device. The town's administration does not read reports: they are
//! between the resident and the organization (blocks and publications are
//! in the audit log).
//!
//! Must not: do network or image work (photos arrive processed), or show a
//! device id, endpoint or pseudonym on the public board.

use std::collections::HashSet;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audit::{self, user_actor, Entry};
use crate::auth::secrets::new_id;
use crate::db::schema::{broadcast_groups, group_intakes, issue_photos, issue_posts, issues, organizations};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::groups;
use crate::model::{ts, IssueStatus, Page, PageQuery, Role};
use crate::notices::{self, Notice};
use crate::orgs;
use crate::talk;

pub const BODY_MAX: usize = 1000;
pub const REPLY_MAX: usize = 2000;
pub const ADDRESS_MAX: usize = 200;
pub const PHOTOS_MAX: i64 = 3;
const CATEGORIES_MAX: usize = 12;
const CATEGORY_MAX_CHARS: usize = 40;
/// A reply's push is worth delivering for a week (a phone that was off).
const NOTICE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

// ---------------------------------------------------------------- intake

/// Whether a group takes reports, under which categories, and whether its
/// organization may publish reports on the group's public board.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Intake {
    pub open: bool,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub board: bool,
}

fn load_intake(conn: &mut DbConn, group_id: &str) -> ApiResult<Intake> {
    let row: Option<(bool, String, bool)> = group_intakes::table
        .find(group_id)
        .select((group_intakes::open, group_intakes::categories, group_intakes::board))
        .first(conn)
        .optional()?;
    let Some((open, categories, board)) = row else { return Ok(Intake::default()) };
    let categories = serde_json::from_str(&categories)
        .map_err(|e| ApiError::Internal(format!("group_intakes.categories of {group_id}: {e}")))?;
    Ok(Intake { open, categories, board })
}

/// A group's intake: for anyone while the group is public, and for its
/// organization's members always (a pending organization sets it up first).
pub fn intake(conn: &mut DbConn, viewer: Option<&str>, group_id: &str) -> ApiResult<Intake> {
    let group = groups::by_id(conn, group_id)?;
    let member = match viewer {
        Some(user) => orgs::role_of(conn, user, &group.organization_id)?.is_some(),
        None => false,
    };
    if !member {
        groups::visible(conn, group_id)?;
    }
    load_intake(conn, group_id)
}

/// Sets a group's intake (any member of its organization); audit-logged.
pub fn set_intake(conn: &mut DbConn, actor: &str, group_id: &str, input: Intake, now: i64) -> ApiResult<Intake> {
    let group = groups::by_id(conn, group_id)?;
    let (org, _) = orgs::require_role(conn, actor, &group.organization_id, Role::Editor)
        .map_err(|_| ApiError::NotFound("group"))?;
    let mut categories: Vec<String> = Vec::with_capacity(input.categories.len());
    for c in &input.categories {
        let c = crate::validate::text("categories", c, 1, CATEGORY_MAX_CHARS, false)?;
        if categories.iter().any(|known| known.to_lowercase() == c.to_lowercase()) {
            return Err(ApiError::invalid("categories", format!("the category '{c}' is listed twice")));
        }
        categories.push(c);
    }
    if categories.len() > CATEGORIES_MAX {
        return Err(ApiError::invalid("categories", format!("at most {CATEGORIES_MAX} categories")));
    }
    if input.open && categories.is_empty() {
        return Err(ApiError::invalid("categories", "a group open for reports needs at least one category"));
    }
    let stored = serde_json::to_string(&categories).map_err(|e| ApiError::Internal(e.to_string()))?;
    let changed = diesel::update(group_intakes::table.find(group_id))
        .set((
            group_intakes::open.eq(input.open),
            group_intakes::categories.eq(&stored),
            group_intakes::board.eq(input.board),
            group_intakes::updated_at.eq(now),
        ))
        .execute(conn)?;
    if changed == 0 {
        diesel::insert_into(group_intakes::table)
            .values((
                group_intakes::group_id.eq(group_id),
                group_intakes::open.eq(input.open),
                group_intakes::categories.eq(&stored),
                group_intakes::board.eq(input.board),
                group_intakes::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    // Closing the board takes every report off it.
    if !input.board {
        diesel::update(issues::table.filter(issues::group_id.eq(group_id)).filter(issues::public.eq(true)))
            .set(issues::public.eq(false))
            .execute(conn)?;
    }
    let summary = format!("open={} board={} categories={}", input.open, input.board, categories.join(" | "));
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&org.tenant_id),
            actor: user_actor(actor),
            action: "intake.update",
            target_type: "group",
            target_id: group_id,
            reason: Some(&summary),
        },
        now,
    )?;
    Ok(Intake { open: input.open, categories, board: input.board })
}

// ------------------------------------------------------------------ views

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhotoView {
    pub id: String,
    pub width: i32,
    pub height: i32,
    pub bytes: i32,
}

/// One entry of an issue's thread: a text, a status change, or both.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostView {
    pub id: String,
    /// `resident` or `organization`.
    pub from: &'static str,
    pub body: Option<String>,
    pub status: Option<IssueStatus>,
    pub created_at: String,
}

/// An issue as its resident sees it (`author` and `blocked` absent) or as
/// its organization sees it (with them).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssueView {
    pub id: String,
    pub group: NamedRef,
    pub organization: NamedRef,
    pub category: String,
    pub body: String,
    pub location: Option<Location>,
    pub address: Option<String>,
    pub status: IssueStatus,
    pub public: bool,
    pub photos: Vec<PhotoView>,
    pub created_at: String,
    pub updated_at: String,
    /// The thread, oldest first; empty in lists.
    pub posts: Vec<PostView>,
    /// The device's pseudonym for this organization (organization only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Whether the organization blocked this device (organization only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
}

/// A report on a group's public board: no author, position or address.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardIssue {
    pub id: String,
    pub category: String,
    pub body: String,
    pub status: IssueStatus,
    pub photos: Vec<PhotoView>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = issues)]
struct Issue {
    id: String,
    tenant_id: String,
    organization_id: String,
    group_id: String,
    device_id: String,
    author: String,
    category: String,
    body: String,
    lat: Option<f64>,
    lon: Option<f64>,
    address: Option<String>,
    lang: String,
    status: String,
    public: bool,
    created_at: i64,
    updated_at: i64,
}

/// Whose view: the resident's, or the organization's (with pseudonym and
/// block state).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    Resident,
    Organization,
}

type Row = (Issue, String, String);

macro_rules! rows_query {
    () => {
        issues::table.inner_join(broadcast_groups::table).inner_join(organizations::table).select((
            Issue::as_select(),
            broadcast_groups::name,
            organizations::name,
        ))
    };
}

fn photos_of(conn: &mut DbConn, ids: &[&str]) -> ApiResult<Vec<(String, PhotoView)>> {
    let rows: Vec<(String, String, i32, i32, i32)> = issue_photos::table
        .filter(issue_photos::issue_id.eq_any(ids))
        .select((
            issue_photos::issue_id,
            issue_photos::id,
            issue_photos::width,
            issue_photos::height,
            issue_photos::bytes,
        ))
        .order((issue_photos::created_at.asc(), issue_photos::id.asc()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(issue, id, width, height, bytes)| (issue, PhotoView { id, width, height, bytes }))
        .collect())
}

/// id, from the organization, body, status, created at.
type PostRow = (String, bool, Option<String>, Option<String>, i64);

fn posts_of(conn: &mut DbConn, issue_id: &str) -> ApiResult<Vec<PostView>> {
    let rows: Vec<PostRow> = issue_posts::table
        .filter(issue_posts::issue_id.eq(issue_id))
        .select((
            issue_posts::id,
            issue_posts::from_org,
            issue_posts::body,
            issue_posts::status,
            issue_posts::created_at,
        ))
        .order((issue_posts::created_at.asc(), issue_posts::id.asc()))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, from_org, body, status, at)| {
            Ok(PostView {
                id,
                from: if from_org { "organization" } else { "resident" },
                body,
                status: status.as_deref().map(IssueStatus::from_db).transpose()?,
                created_at: ts(at),
            })
        })
        .collect()
}

fn views(conn: &mut DbConn, rows: Vec<Row>, audience: Audience) -> ApiResult<Vec<IssueView>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.0.id.as_str()).collect();
    let mut photos = photos_of(conn, &ids)?;
    let blocks = match audience {
        Audience::Organization => {
            let devices: Vec<&str> = rows.iter().map(|r| r.0.device_id.as_str()).collect();
            talk::blocked_pairs(conn, &devices)?
        }
        Audience::Resident => HashSet::new(),
    };
    rows.into_iter()
        .map(|(i, group_name, org_name)| {
            let (mine, rest): (Vec<_>, Vec<_>) = photos.drain(..).partition(|(issue, _)| *issue == i.id);
            photos = rest;
            let blocked = (audience == Audience::Organization)
                .then(|| blocks.contains(&(i.organization_id.clone(), i.device_id.clone())));
            Ok(IssueView {
                location: i.lat.zip(i.lon).map(|(lat, lon)| Location { lat, lon }),
                status: IssueStatus::from_db(&i.status)?,
                group: NamedRef { id: i.group_id, name: group_name },
                organization: NamedRef { id: i.organization_id, name: org_name },
                photos: mine.into_iter().map(|(_, p)| p).collect(),
                created_at: ts(i.created_at),
                updated_at: ts(i.updated_at),
                posts: Vec::new(),
                author: (audience == Audience::Organization).then_some(i.author),
                blocked,
                id: i.id,
                category: i.category,
                body: i.body,
                address: i.address,
                public: i.public,
            })
        })
        .collect()
}

fn full_view(conn: &mut DbConn, id: &str, audience: Audience) -> ApiResult<IssueView> {
    let row: Row = rows_query!().filter(issues::id.eq(id)).first(conn)?;
    let mut view = views(conn, vec![row], audience)?.remove(0);
    view.posts = posts_of(conn, id)?;
    Ok(view)
}

fn issue(conn: &mut DbConn, id: &str) -> ApiResult<Issue> {
    issues::table.find(id).select(Issue::as_select()).first(conn).optional()?.ok_or(ApiError::NotFound("issue"))
}

/// The device's own issue (404 for anyone else's).
fn own(conn: &mut DbConn, device_id: &str, id: &str) -> ApiResult<Issue> {
    let issue = issue(conn, id)?;
    if issue.device_id != device_id {
        return Err(ApiError::NotFound("issue"));
    }
    Ok(issue)
}

/// An issue of an organization `actor` belongs to (404 otherwise).
fn of_member(conn: &mut DbConn, actor: &str, id: &str) -> ApiResult<Issue> {
    let issue = issue(conn, id)?;
    if orgs::role_of(conn, actor, &issue.organization_id)?.is_none() {
        return Err(ApiError::NotFound("issue"));
    }
    Ok(issue)
}

/// Newest activity first, keyset on (updated_at, id).
macro_rules! by_activity {
    ($query:expr, $page:expr) => {{
        let mut q = $query;
        if let Some((at, id)) = $page.position()? {
            q = q.filter(issues::updated_at.lt(at).or(issues::updated_at.eq(at).and(issues::id.lt(id))));
        }
        q.order((issues::updated_at.desc(), issues::id.desc()))
    }};
}

fn page(conn: &mut DbConn, rows: Vec<Row>, limit: i64, audience: Audience) -> ApiResult<Page<IssueView>> {
    let page = crate::model::page_of(rows, limit, |r| (r.0.updated_at, r.0.id.clone()), |r| r);
    Ok(Page { items: views(conn, page.items, audience)?, next: page.next })
}

// --------------------------------------------------------------- resident

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewIssue {
    /// One of the group's categories.
    pub category: String,
    /// Up to 1,000 characters.
    pub body: String,
    /// A position the resident chose to share (both or neither).
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    /// A typed address instead of, or as well as, a position.
    #[serde(default)]
    pub address: Option<String>,
    /// `de` (default) or `en`: the language of the notifications about it.
    #[serde(default)]
    pub lang: Option<String>,
}

fn location(lat: Option<f64>, lon: Option<f64>) -> ApiResult<(Option<f64>, Option<f64>)> {
    match (lat, lon) {
        (None, None) => Ok((None, None)),
        (Some(lat), Some(lon)) => {
            if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
                return Err(ApiError::invalid("lat", "lat must be between -90 and 90"));
            }
            if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
                return Err(ApiError::invalid("lon", "lon must be between -180 and 180"));
            }
            Ok((Some(lat), Some(lon)))
        }
        (Some(_), None) => Err(ApiError::invalid("lon", "a position needs both lat and lon")),
        (None, Some(_)) => Err(ApiError::invalid("lat", "a position needs both lat and lon")),
    }
}

/// A device files a report with a group open for reports.
pub fn create(
    conn: &mut DbConn,
    pseudonym_key: &[u8],
    device_id: &str,
    group_id: &str,
    input: NewIssue,
    now: i64,
) -> ApiResult<IssueView> {
    let group = groups::visible(conn, group_id)?;
    let intake = load_intake(conn, group_id)?;
    if !intake.open {
        return Err(ApiError::conflict("intake_closed", "this group does not take reports"));
    }
    talk::ensure_not_blocked(conn, &group.organization_id, device_id)?;
    let category = input.category.trim();
    if !intake.categories.iter().any(|c| c == category) {
        return Err(ApiError::invalid(
            "category",
            format!("category must be one of: {}", intake.categories.join(", ")),
        ));
    }
    let body = crate::validate::text("body", &input.body, 1, BODY_MAX, true)?;
    let (lat, lon) = location(input.lat, input.lon)?;
    let address = input
        .address
        .as_deref()
        .map(|a| crate::validate::text("address", a, 0, ADDRESS_MAX, false))
        .transpose()?
        .filter(|a| !a.is_empty());
    let id = new_id();
    diesel::insert_into(issues::table)
        .values((
            issues::id.eq(&id),
            issues::tenant_id.eq(&group.tenant_id),
            issues::organization_id.eq(&group.organization_id),
            issues::group_id.eq(&group.id),
            issues::device_id.eq(device_id),
            issues::author.eq(talk::pseudonym(pseudonym_key, &group.organization_id, device_id)),
            issues::category.eq(category),
            issues::body.eq(&body),
            issues::lat.eq(lat),
            issues::lon.eq(lon),
            issues::address.eq(&address),
            issues::lang.eq(talk::lang(input.lang.as_deref())),
            issues::status.eq(IssueStatus::Received.as_str()),
            issues::public.eq(false),
            issues::created_at.eq(now),
            issues::updated_at.eq(now),
        ))
        .execute(conn)?;
    full_view(conn, &id, Audience::Resident)
}

/// Checks that the device may add a photo to its issue (before the photo
/// is processed, so a refused upload costs no decoding).
pub fn photo_allowed(conn: &mut DbConn, device_id: &str, issue_id: &str) -> ApiResult<()> {
    own(conn, device_id, issue_id)?;
    let count: i64 = issue_photos::table.filter(issue_photos::issue_id.eq(issue_id)).count().get_result(conn)?;
    if count >= PHOTOS_MAX {
        return Err(ApiError::conflict("too_many_photos", format!("a report has at most {PHOTOS_MAX} photos")));
    }
    Ok(())
}

/// Stores a processed photo with the device's issue.
pub fn add_photo(
    conn: &mut DbConn,
    device_id: &str,
    issue_id: &str,
    photo: crate::photos::Processed,
    now: i64,
) -> ApiResult<PhotoView> {
    // Touch the issue first: its row lock orders concurrent uploads, so the
    // count below sees every photo committed before (at most three, always).
    diesel::update(issues::table.find(issue_id).filter(issues::device_id.eq(device_id)))
        .set(issues::updated_at.eq(now))
        .execute(conn)?;
    photo_allowed(conn, device_id, issue_id)?;
    let view = PhotoView {
        id: new_id(),
        width: i32::try_from(photo.width).unwrap_or(i32::MAX),
        height: i32::try_from(photo.height).unwrap_or(i32::MAX),
        bytes: i32::try_from(photo.data.len()).unwrap_or(i32::MAX),
    };
    diesel::insert_into(issue_photos::table)
        .values((
            issue_photos::id.eq(&view.id),
            issue_photos::issue_id.eq(issue_id),
            issue_photos::content_type.eq(photo.content_type),
            issue_photos::width.eq(view.width),
            issue_photos::height.eq(view.height),
            issue_photos::bytes.eq(view.bytes),
            issue_photos::data.eq(&photo.data),
            issue_photos::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(view)
}

/// The device's reports, newest activity first.
pub fn mine(conn: &mut DbConn, device_id: &str, page_query: &PageQuery) -> ApiResult<Page<IssueView>> {
    let limit = page_query.limit()?;
    let rows: Vec<Row> = by_activity!(rows_query!().filter(issues::device_id.eq(device_id)).into_boxed(), page_query)
        .limit(limit + 1)
        .load(conn)?;
    page(conn, rows, limit, Audience::Resident)
}

pub fn my_issue(conn: &mut DbConn, device_id: &str, id: &str) -> ApiResult<IssueView> {
    own(conn, device_id, id)?;
    full_view(conn, id, Audience::Resident)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewPost {
    pub body: String,
}

/// The resident adds to the thread of their report.
pub fn resident_post(conn: &mut DbConn, device_id: &str, id: &str, input: NewPost, now: i64) -> ApiResult<PostView> {
    let issue = own(conn, device_id, id)?;
    talk::ensure_not_blocked(conn, &issue.organization_id, device_id)?;
    let body = crate::validate::text("body", &input.body, 1, BODY_MAX, true)?;
    let post_id = insert_post(conn, id, None, Some(&body), None, now)?;
    Ok(PostView { id: post_id, from: "resident", body: Some(body), status: None, created_at: ts(now) })
}

/// The resident deletes a report: thread and photos go with it.
pub fn delete_mine(conn: &mut DbConn, device_id: &str, id: &str) -> ApiResult<()> {
    own(conn, device_id, id)?;
    Ok(delete(conn, &[id.to_owned()])?)
}

/// Deletes issues with their posts and photos (a resident's deletion, and
/// an erased device's reports: `store::delete_devices`).
pub fn delete(conn: &mut DbConn, ids: &[String]) -> QueryResult<()> {
    diesel::delete(issue_photos::table.filter(issue_photos::issue_id.eq_any(ids))).execute(conn)?;
    diesel::delete(issue_posts::table.filter(issue_posts::issue_id.eq_any(ids))).execute(conn)?;
    diesel::delete(issues::table.filter(issues::id.eq_any(ids))).execute(conn)?;
    Ok(())
}

/// A stored photo: content type and bytes.
pub type PhotoBytes = (String, Vec<u8>);

fn photo(conn: &mut DbConn, issue_id: &str, photo_id: &str) -> ApiResult<PhotoBytes> {
    issue_photos::table
        .filter(issue_photos::id.eq(photo_id))
        .filter(issue_photos::issue_id.eq(issue_id))
        .select((issue_photos::content_type, issue_photos::data))
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("photo"))
}

pub fn my_photo(conn: &mut DbConn, device_id: &str, issue_id: &str, photo_id: &str) -> ApiResult<PhotoBytes> {
    own(conn, device_id, issue_id)?;
    photo(conn, issue_id, photo_id)
}

// ----------------------------------------------------------- organization

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InboxQuery {
    /// `received`, `in_progress`, `done` or `rejected`.
    pub status: Option<String>,
    pub category: Option<String>,
    /// Only this group's reports.
    pub group: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// An organization's report inbox, newest activity first.
pub fn for_org(conn: &mut DbConn, actor: &str, org_id: &str, query: &InboxQuery) -> ApiResult<Page<IssueView>> {
    orgs::require_role(conn, actor, org_id, Role::Editor)?;
    let status = IssueStatus::parse_filter("status", query.status.as_deref())?;
    let page_query = PageQuery { limit: query.limit, cursor: query.cursor.clone() };
    let limit = page_query.limit()?;
    let mut q = rows_query!().filter(issues::organization_id.eq(org_id)).into_boxed();
    if let Some(status) = status {
        q = q.filter(issues::status.eq(status.as_str()));
    }
    if let Some(category) = query.category.as_deref().filter(|c| !c.is_empty()) {
        let category = crate::validate::text("category", category, 1, CATEGORY_MAX_CHARS, false)?;
        q = q.filter(issues::category.eq(category));
    }
    if let Some(group) = query.group.as_deref().filter(|g| !g.is_empty()) {
        if group.chars().any(char::is_control) {
            return Err(ApiError::invalid("group", "group is not a group id"));
        }
        q = q.filter(issues::group_id.eq(group.to_owned()));
    }
    let rows: Vec<Row> = by_activity!(q, page_query).limit(limit + 1).load(conn)?;
    page(conn, rows, limit, Audience::Organization)
}

pub fn org_issue(conn: &mut DbConn, actor: &str, id: &str) -> ApiResult<IssueView> {
    of_member(conn, actor, id)?;
    full_view(conn, id, Audience::Organization)
}

pub fn org_photo(conn: &mut DbConn, actor: &str, issue_id: &str, photo_id: &str) -> ApiResult<PhotoBytes> {
    of_member(conn, actor, issue_id)?;
    photo(conn, issue_id, photo_id)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Reply {
    /// Up to 2,000 characters.
    #[serde(default)]
    pub body: Option<String>,
    /// A new status with the reply.
    #[serde(default)]
    pub status: Option<IssueStatus>,
}

/// The organization answers and/or changes the status: one post in the
/// thread and one push to the reporting device.
pub fn reply(
    conn: &mut DbConn,
    public_url: &url::Url,
    actor: &str,
    id: &str,
    input: Reply,
    now: i64,
) -> ApiResult<IssueView> {
    let issue = of_member(conn, actor, id)?;
    // A suspended organization reaches nobody, by post or by answer.
    orgs::require_approved(&orgs::by_id(conn, &issue.organization_id)?)?;
    let body = input
        .body
        .as_deref()
        .map(|b| crate::validate::text("body", b, 0, REPLY_MAX, true))
        .transpose()?
        .filter(|b| !b.is_empty());
    let status = input.status.filter(|s| s.as_str() != issue.status);
    if body.is_none() && status.is_none() {
        return match input.status {
            Some(_) => Err(ApiError::conflict("unchanged", "the report already has this status")),
            None => Err(ApiError::invalid("body", "write a reply or choose a new status")),
        };
    }
    record_answer(conn, public_url, actor, &issue, body.as_deref(), status, now)?;
    full_view(conn, id, Audience::Organization)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct IssueUpdate {
    #[serde(default)]
    pub status: Option<IssueStatus>,
    /// Show (or stop showing) the report on the group's public board.
    #[serde(default)]
    pub public: Option<bool>,
}

/// Changes status and/or publication.
pub fn update(
    conn: &mut DbConn,
    public_url: &url::Url,
    actor: &str,
    id: &str,
    input: IssueUpdate,
    now: i64,
) -> ApiResult<IssueView> {
    let issue = of_member(conn, actor, id)?;
    if input.status.is_some() || input.public == Some(true) {
        orgs::require_approved(&orgs::by_id(conn, &issue.organization_id)?)?;
    }
    if let Some(public) = input.public.filter(|p| *p != issue.public) {
        if public && !load_intake(conn, &issue.group_id)?.board {
            return Err(ApiError::conflict("board_disabled", "the group's public board is switched off"));
        }
        diesel::update(issues::table.find(id))
            .set((issues::public.eq(public), issues::updated_at.eq(now)))
            .execute(conn)?;
        audit::record(
            conn,
            Entry {
                tenant_id: Some(&issue.tenant_id),
                actor: user_actor(actor),
                action: if public { "issue.publish" } else { "issue.unpublish" },
                target_type: "issue",
                target_id: id,
                reason: None,
            },
            now,
        )?;
    }
    if let Some(status) = input.status.filter(|s| s.as_str() != issue.status) {
        record_answer(conn, public_url, actor, &issue, None, Some(status), now)?;
    }
    full_view(conn, id, Audience::Organization)
}

fn insert_post(
    conn: &mut DbConn,
    issue_id: &str,
    user_id: Option<&str>,
    body: Option<&str>,
    status: Option<IssueStatus>,
    now: i64,
) -> ApiResult<String> {
    let id = new_id();
    diesel::insert_into(issue_posts::table)
        .values((
            issue_posts::id.eq(&id),
            issue_posts::issue_id.eq(issue_id),
            issue_posts::from_org.eq(user_id.is_some()),
            issue_posts::user_id.eq(user_id),
            issue_posts::body.eq(body),
            issue_posts::status.eq(status.map(IssueStatus::as_str)),
            issue_posts::created_at.eq(now),
        ))
        .execute(conn)?;
    let target = issues::table.find(issue_id);
    match status {
        Some(s) => {
            diesel::update(target).set((issues::updated_at.eq(now), issues::status.eq(s.as_str()))).execute(conn)?
        }
        None => diesel::update(target).set(issues::updated_at.eq(now)).execute(conn)?,
    };
    Ok(id)
}

fn record_answer(
    conn: &mut DbConn,
    public_url: &url::Url,
    actor: &str,
    issue: &Issue,
    body: Option<&str>,
    status: Option<IssueStatus>,
    now: i64,
) -> ApiResult<()> {
    insert_post(conn, &issue.id, Some(actor), body, status, now)?;
    let org_name: String = organizations::table.find(&issue.organization_id).select(organizations::name).first(conn)?;
    let en = issue.lang == "en";
    let title = if en { format!("Your report to {org_name}") } else { format!("Ihre Meldung an {org_name}") };
    let status_line = status.map(|s| status_label(s, en));
    let text = match (body, status_line) {
        (Some(body), Some(label)) => format!("{label} – {body}"),
        (Some(body), None) => body.to_owned(),
        (None, Some(label)) => {
            if en {
                format!("New status: {label}")
            } else {
                format!("Neuer Status: {label}")
            }
        }
        (None, None) => return Ok(()),
    };
    let tag = format!("issue-{}", issue.id);
    let path = format!("/r/{}", issue.id);
    let notice = Notice {
        kind: "issue",
        tag: &tag,
        title: &title,
        body: &text,
        path: &path,
        lang: if en { "en" } else { "de" },
        ttl_ms: NOTICE_TTL_MS,
    };
    notices::enqueue(conn, public_url, &issue.device_id, notice, now)
}

fn status_label(status: IssueStatus, en: bool) -> &'static str {
    match (status, en) {
        (IssueStatus::Received, false) => "Eingegangen",
        (IssueStatus::InProgress, false) => "In Bearbeitung",
        (IssueStatus::Done, false) => "Erledigt",
        (IssueStatus::Rejected, false) => "Abgelehnt",
        (IssueStatus::Received, true) => "Received",
        (IssueStatus::InProgress, true) => "In progress",
        (IssueStatus::Done, true) => "Done",
        (IssueStatus::Rejected, true) => "Rejected",
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BlockRequest {
    /// Why (kept in the audit log; up to 500 characters).
    pub reason: String,
}

/// Blocks the report's device from further reports, posts and questions to
/// this organization.
pub fn block_author(conn: &mut DbConn, actor: &str, id: &str, reason: &str, now: i64) -> ApiResult<()> {
    let issue = of_member(conn, actor, id)?;
    let org = orgs::by_id(conn, &issue.organization_id)?;
    talk::block(conn, actor, &org, &issue.device_id, &issue.author, reason, now)
}

// ------------------------------------------------------------------ board

fn board_rows(conn: &mut DbConn, group_id: &str, page_query: &PageQuery) -> ApiResult<(Vec<Row>, i64)> {
    groups::visible(conn, group_id)?;
    let limit = page_query.limit()?;
    let rows = by_activity!(
        rows_query!().filter(issues::group_id.eq(group_id)).filter(issues::public.eq(true)).into_boxed(),
        page_query
    )
    .limit(limit + 1)
    .load(conn)?;
    Ok((rows, limit))
}

/// A group's public board: the reports its organization published.
pub fn board(conn: &mut DbConn, group_id: &str, page_query: &PageQuery) -> ApiResult<Page<BoardIssue>> {
    if !load_intake(conn, group_id)?.board {
        groups::visible(conn, group_id)?;
        return Ok(Page { items: Vec::new(), next: None });
    }
    let (rows, limit) = board_rows(conn, group_id, page_query)?;
    let page = page(conn, rows, limit, Audience::Resident)?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|v| BoardIssue {
                id: v.id,
                category: v.category,
                body: v.body,
                status: v.status,
                photos: v.photos,
                created_at: v.created_at,
                updated_at: v.updated_at,
            })
            .collect(),
        next: page.next,
    })
}

/// A photo of a published report.
pub fn board_photo(conn: &mut DbConn, group_id: &str, issue_id: &str, photo_id: &str) -> ApiResult<PhotoBytes> {
    groups::visible(conn, group_id)?;
    let issue = issue(conn, issue_id)?;
    if issue.group_id != group_id || !issue.public || !load_intake(conn, group_id)?.board {
        return Err(ApiError::NotFound("photo"));
    }
    photo(conn, issue_id, photo_id)
}
