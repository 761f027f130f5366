//! Question hours ("Bürgersprechstunde"): an organization opens one of its
//! groups for questions for a few hours. Residents ask and upvote from their
//! device; staff answer publicly (everyone sees it, live) or privately (only
//! the asker, by push), dismiss questions and block devices.
//!
//! Every change bumps the session's `version` in the change's transaction
//! and stamps the changed question with it. The bump is an `UPDATE` of the
//! session row, so on PostgreSQL concurrent changes of one session queue on
//! its row lock and versions commit in order; on SQLite the write lock does
//! the same. The live stream (`crate::live`) therefore only has to ask "what
//! changed after version N", on any instance.
//!
//! Must not: show a device id (staff see the per-organization pseudonym),
//! show a private answer to anyone but its asker and the staff, or send
//! anything itself (pushes go through the outboxes of `messages` and
//! `notices`).

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::dsl::count_star;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audit::{self, user_actor, Entry};
use crate::auth::secrets::new_id;
use crate::db::schema::{broadcast_groups, organizations, qa_questions, qa_sessions, qa_votes};
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::groups;
use crate::messages::{Kind, NewMessage};
use crate::model::{page_of, parse_ts, ts, GroupStatus, Page, PageQuery};
use crate::notices::{self, Notice};
use crate::orgs;
use crate::talk;
use crate::validate;

pub const TITLE_MAX: usize = 120;
pub const DESCRIPTION_MAX: usize = 1000;
pub const QUESTION_MAX: usize = 500;
pub const ANSWER_MAX: usize = 2000;
pub const REASON_MAX: usize = 500;
/// A session lasts at most half a day.
pub const LONGEST_MS: i64 = 12 * 3600 * 1000;
/// How far ahead a session may be scheduled: as far as any message.
pub const HORIZON_MS: i64 = 366 * 24 * 3600 * 1000;
/// An answer's push is kept by the push service this long for an offline phone.
const ANSWER_TTL_MS: i64 = 3 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = qa_sessions)]
pub struct Session {
    pub id: String,
    pub tenant_id: String,
    pub organization_id: String,
    pub group_id: String,
    pub title: String,
    pub description: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub message_id: Option<String>,
    pub cancelled: bool,
    pub version: i64,
    pub created_by: String,
    pub created_at: i64,
}

impl Session {
    pub fn state(&self, now: i64) -> SessionState {
        if self.cancelled {
            SessionState::Cancelled
        } else if now < self.starts_at {
            SessionState::Scheduled
        } else if now < self.ends_at {
            SessionState::Open
        } else {
            SessionState::Ended
        }
    }

    fn require_open(&self, now: i64) -> ApiResult<()> {
        match self.state(now) {
            SessionState::Open => Ok(()),
            SessionState::Scheduled => Err(ApiError::conflict("session_not_open", "the question hour has not begun")),
            SessionState::Ended => Err(ApiError::conflict("session_not_open", "the question hour is over")),
            SessionState::Cancelled => Err(ApiError::conflict("session_not_open", "the question hour was cancelled")),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = qa_questions)]
pub struct Question {
    pub id: String,
    pub session_id: String,
    pub device_id: Option<String>,
    pub author: String,
    pub body: String,
    pub lang: String,
    pub status: String,
    pub answer: Option<String>,
    pub answer_public: bool,
    pub answered_by: Option<String>,
    pub answered_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Scheduled,
    Open,
    Ended,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionStatus {
    Open,
    Answered,
    /// Hidden by the staff; the live stream says so once, so clients drop it.
    Dismissed,
}

impl QuestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionStatus::Open => "open",
            QuestionStatus::Answered => "answered",
            QuestionStatus::Dismissed => "dismissed",
        }
    }

    fn from_db(text: &str) -> ApiResult<Self> {
        [QuestionStatus::Open, QuestionStatus::Answered, QuestionStatus::Dismissed]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| ApiError::Internal(format!("unknown question status '{text}' in database")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// A question hour. `questions` only on `GET /sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    pub group: Named,
    pub organization: Named,
    pub title: String,
    pub description: String,
    pub starts_at: String,
    pub ends_at: String,
    pub state: SessionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub questions: Option<Vec<QuestionView>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QuestionView {
    pub id: String,
    /// Empty for a dismissed question outside the staff's view.
    pub body: String,
    pub votes: i64,
    /// This device upvoted it (false without a device token).
    pub voted: bool,
    /// This device asked it (false without a device token).
    pub mine: bool,
    pub status: QuestionStatus,
    pub answer: Option<AnswerView>,
    pub created_at: String,
    /// The asker's pseudonym for this organization (staff only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AnswerView {
    /// `null` for a private answer to somebody else's question.
    pub body: Option<String>,
    pub public: bool,
    pub answered_at: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    #[serde(default)]
    pub title: String,
    pub description: Option<String>,
    /// RFC 3339; a time in the past means now.
    pub starts_at: Option<String>,
    /// RFC 3339; after `starts_at`, at most 12 hours later.
    pub ends_at: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuestion {
    #[serde(default)]
    pub body: String,
    /// `de` (default) or `en`: the language of the answer's notification.
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    #[serde(default)]
    pub body: String,
    /// `true`: everyone sees it; `false`: only the asker.
    pub public: bool,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

/// Who reads a session: it decides `mine`, `voted`, private answers, dismissed
/// questions and authors.
#[derive(Debug, Clone)]
pub enum Viewer {
    Public,
    Device(String),
    /// A logged-in user; staff rights only as a member of the session's organization.
    User(String),
}

/// What one reader may see.
#[derive(Debug, Clone, Copy, Default)]
struct Lens<'a> {
    device: Option<&'a str>,
    staff: bool,
}

fn by_id(conn: &mut DbConn, id: &str) -> ApiResult<Session> {
    qa_sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("session"))
}

/// A session residents may see: its group is visible.
fn public_session(conn: &mut DbConn, id: &str) -> ApiResult<Session> {
    let session = by_id(conn, id)?;
    groups::visible(conn, &session.group_id).map_err(|_| ApiError::NotFound("session"))?;
    Ok(session)
}

/// A session `actor` works on as a member of its organization; strangers
/// (other organizations, other towns, city admins) get 404.
fn staff_session(conn: &mut DbConn, actor: &str, id: &str) -> ApiResult<Session> {
    let session = by_id(conn, id)?;
    if orgs::role_of(conn, actor, &session.organization_id)?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    Ok(session)
}

fn question_in(conn: &mut DbConn, session: &Session, qid: &str) -> ApiResult<Question> {
    qa_questions::table
        .find(qid)
        .filter(qa_questions::session_id.eq(&session.id))
        .select(Question::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("question"))
}

/// Counts a change of the session: the new version, for the change to carry.
/// The `UPDATE` also queues concurrent changes of the session (row lock).
fn bump(conn: &mut DbConn, session_id: &str) -> QueryResult<i64> {
    diesel::update(qa_sessions::table.find(session_id))
        .set(qa_sessions::version.eq(qa_sessions::version + 1))
        .execute(conn)?;
    qa_sessions::table.find(session_id).select(qa_sessions::version).first(conn)
}

fn names(conn: &mut DbConn, session: &Session) -> ApiResult<(Named, Named)> {
    let (group, org): (String, String) = broadcast_groups::table
        .inner_join(organizations::table)
        .filter(broadcast_groups::id.eq(&session.group_id))
        .select((broadcast_groups::name, organizations::name))
        .first(conn)?;
    Ok((Named { id: session.group_id.clone(), name: group }, Named { id: session.organization_id.clone(), name: org }))
}

fn session_view(conn: &mut DbConn, session: &Session, now: i64) -> ApiResult<SessionView> {
    let (group, organization) = names(conn, session)?;
    Ok(SessionView {
        id: session.id.clone(),
        group,
        organization,
        title: session.title.clone(),
        description: session.description.clone(),
        starts_at: ts(session.starts_at),
        ends_at: ts(session.ends_at),
        state: session.state(now),
        questions: None,
    })
}

fn vote_counts(conn: &mut DbConn, ids: &[&str]) -> ApiResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = qa_votes::table
        .filter(qa_votes::question_id.eq_any(ids))
        .group_by(qa_votes::question_id)
        .select((qa_votes::question_id, count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

fn voted_by(conn: &mut DbConn, ids: &[&str], device: Option<&str>) -> ApiResult<HashSet<String>> {
    let Some(device) = device else { return Ok(HashSet::new()) };
    let rows: Vec<String> = qa_votes::table
        .filter(qa_votes::question_id.eq_any(ids))
        .filter(qa_votes::device_id.eq(device))
        .select(qa_votes::question_id)
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

fn question_view(q: Question, votes: i64, voted: bool, lens: Lens<'_>) -> ApiResult<QuestionView> {
    let status = QuestionStatus::from_db(&q.status)?;
    let mine = lens.device.is_some() && q.device_id.as_deref() == lens.device;
    // Outside the staff, a dismissed question is only its id and status:
    // the live stream must not carry what the staff took down.
    if status == QuestionStatus::Dismissed && !lens.staff {
        return Ok(QuestionView {
            id: q.id,
            body: String::new(),
            votes,
            voted,
            mine,
            status,
            answer: None,
            created_at: ts(q.created_at),
            author: None,
        });
    }
    let answer = q.answer.map(|body| AnswerView {
        body: (q.answer_public || lens.staff || mine).then_some(body),
        public: q.answer_public,
        answered_at: ts(q.answered_at.unwrap_or(q.created_at)),
    });
    Ok(QuestionView {
        id: q.id,
        body: q.body,
        votes,
        voted,
        mine,
        status,
        answer,
        created_at: ts(q.created_at),
        author: lens.staff.then_some(q.author),
    })
}

fn question_views(conn: &mut DbConn, rows: Vec<Question>, lens: Lens<'_>) -> ApiResult<Vec<QuestionView>> {
    let ids: Vec<&str> = rows.iter().map(|q| q.id.as_str()).collect();
    let counts = vote_counts(conn, &ids)?;
    let voted = voted_by(conn, &ids, lens.device)?;
    rows.into_iter()
        .map(|q| {
            let votes = counts.get(&q.id).copied().unwrap_or(0);
            let mine = voted.contains(&q.id);
            question_view(q, votes, mine, lens)
        })
        .collect()
}

fn one_question(conn: &mut DbConn, qid: &str, lens: Lens<'_>) -> ApiResult<QuestionView> {
    let q: Question = qa_questions::table.find(qid).select(Question::as_select()).first(conn)?;
    question_views(conn, vec![q], lens)?.pop().ok_or(ApiError::NotFound("question"))
}

/// Most votes first, then the oldest.
fn sort(questions: &mut [QuestionView]) {
    questions.sort_by(|a, b| b.votes.cmp(&a.votes).then_with(|| a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id)));
}

/// Schedules a question hour in a group: the session and, in the same
/// transaction, the group's message that opens it (pushed at `starts_at`,
/// linking to the session page).
pub fn create(
    conn: &mut DbConn,
    actor: &str,
    group_id: &str,
    input: NewSession,
    public_url: &url::Url,
    now: i64,
) -> ApiResult<SessionView> {
    let group = groups::by_id(conn, group_id)?;
    let org = orgs::by_id(conn, &group.organization_id)?;
    if orgs::role_of(conn, actor, &org.id)?.is_none() {
        return Err(ApiError::NotFound("group"));
    }
    orgs::require_approved(&org)?;
    match group.status()? {
        GroupStatus::Active => {}
        GroupStatus::Archived => return Err(ApiError::conflict("group_archived", "the group is archived")),
        GroupStatus::Suspended => return Err(ApiError::forbidden("group_suspended", "the town suspended this group")),
        GroupStatus::System => return Err(ApiError::NotFound("group")),
    }
    let title = validate::text("title", &input.title, 1, TITLE_MAX, false)?;
    let description = validate::optional_text("description", input.description.as_deref(), DESCRIPTION_MAX, true)?;
    fn required<'a>(field: &'static str, value: Option<&'a str>) -> ApiResult<&'a str> {
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
    }
    // A start in the past means now: a slow client must not backdate.
    let starts_at = parse_ts("starts_at", required("starts_at", input.starts_at.as_deref())?)?.max(now);
    let ends_at = parse_ts("ends_at", required("ends_at", input.ends_at.as_deref())?)?;
    if starts_at > now + HORIZON_MS {
        return Err(ApiError::invalid("starts_at", "starts_at may be at most a year ahead"));
    }
    if ends_at <= starts_at {
        return Err(ApiError::invalid("ends_at", "ends_at must be after starts_at"));
    }
    if ends_at - starts_at > LONGEST_MS {
        return Err(ApiError::invalid("ends_at", "a question hour lasts at most 12 hours"));
    }

    let id = new_id();
    let link = format!("{}/q/{id}", public_url.as_str().trim_end_matches('/'));
    let mut body = String::from("Die Fragestunde hat begonnen: Stellen Sie jetzt Ihre Fragen.");
    if !description.is_empty() {
        body.push_str("\n\n");
        body.push_str(&description);
    }
    // The notice is pointless once the session is over.
    let ttl = ((ends_at - starts_at) / 1000).clamp(60, i64::from(crate::messages::TTL_MAX)) as i32;
    let message_id = crate::messages::store(
        conn,
        &group,
        &user_actor(actor),
        NewMessage {
            title: title.clone(),
            body,
            url: Some(link),
            urgency: None,
            ttl: Some(ttl),
            publish_at: Some(ts(starts_at)),
        },
        Kind::Session,
        now,
    )?;
    diesel::insert_into(qa_sessions::table)
        .values((
            qa_sessions::id.eq(&id),
            qa_sessions::tenant_id.eq(&group.tenant_id),
            qa_sessions::organization_id.eq(&org.id),
            qa_sessions::group_id.eq(&group.id),
            qa_sessions::title.eq(&title),
            qa_sessions::description.eq(&description),
            qa_sessions::starts_at.eq(starts_at),
            qa_sessions::ends_at.eq(ends_at),
            qa_sessions::message_id.eq(&message_id),
            qa_sessions::cancelled.eq(false),
            qa_sessions::version.eq(0_i64),
            qa_sessions::created_by.eq(user_actor(actor)),
            qa_sessions::created_at.eq(now),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&group.tenant_id),
            actor: user_actor(actor),
            action: "session.create",
            target_type: "session",
            target_id: &id,
            reason: None,
        },
        now,
    )?;
    let session = by_id(conn, &id)?;
    session_view(conn, &session, now)
}

/// A group's sessions, newest start first, cancelled ones left out. Members
/// of the group's organization see them even while the group is not public.
pub fn list(
    conn: &mut DbConn,
    group_id: &str,
    viewer: &Viewer,
    page: &PageQuery,
    now: i64,
) -> ApiResult<Page<SessionView>> {
    let member = match viewer {
        Viewer::User(user) => {
            let group = groups::by_id(conn, group_id)?;
            orgs::role_of(conn, user, &group.organization_id)?.is_some()
        }
        _ => false,
    };
    if !member {
        groups::visible(conn, group_id)?;
    }
    let limit = page.limit()?;
    let mut query = qa_sessions::table
        .filter(qa_sessions::group_id.eq(group_id))
        .filter(qa_sessions::cancelled.eq(false))
        .select(Session::as_select())
        .into_boxed();
    if let Some((at, id)) = page.position()? {
        query =
            query.filter(qa_sessions::starts_at.lt(at).or(qa_sessions::starts_at.eq(at).and(qa_sessions::id.lt(id))));
    }
    let rows: Vec<Session> =
        query.order((qa_sessions::starts_at.desc(), qa_sessions::id.desc())).limit(limit + 1).load(conn)?;
    let page = page_of(rows, limit, |s| (s.starts_at, s.id.clone()), |s| s);
    let items = page.items.iter().map(|s| session_view(conn, s, now)).collect::<ApiResult<_>>()?;
    Ok(Page { items, next: page.next })
}

/// One session with its questions (most votes first), as `viewer` may see it.
pub fn get(conn: &mut DbConn, id: &str, viewer: &Viewer, now: i64) -> ApiResult<SessionView> {
    let session = by_id(conn, id)?;
    let staff = match viewer {
        Viewer::User(user) => orgs::role_of(conn, user, &session.organization_id)?.is_some(),
        _ => false,
    };
    if !staff {
        groups::visible(conn, &session.group_id).map_err(|_| ApiError::NotFound("session"))?;
    }
    let device = match viewer {
        Viewer::Device(d) => Some(d.as_str()),
        _ => None,
    };
    let mut query = qa_questions::table.filter(qa_questions::session_id.eq(id)).into_boxed();
    if !staff {
        query = query.filter(qa_questions::status.ne(QuestionStatus::Dismissed.as_str()));
    }
    let rows: Vec<Question> = query.select(Question::as_select()).load(conn)?;
    let mut questions = question_views(conn, rows, Lens { device, staff })?;
    sort(&mut questions);
    let mut view = session_view(conn, &session, now)?;
    view.questions = Some(questions);
    Ok(view)
}

/// A resident's question, asked while the session is open.
pub fn ask(
    conn: &mut DbConn,
    pseudonym_key: &[u8],
    device_id: &str,
    session_id: &str,
    input: NewQuestion,
    now: i64,
) -> ApiResult<QuestionView> {
    let session = public_session(conn, session_id)?;
    session.require_open(now)?;
    talk::ensure_not_blocked(conn, &session.organization_id, device_id)?;
    let body = validate::text("body", &input.body, 1, QUESTION_MAX, true)?;
    let version = bump(conn, session_id)?;
    let id = new_id();
    diesel::insert_into(qa_questions::table)
        .values((
            qa_questions::id.eq(&id),
            qa_questions::session_id.eq(session_id),
            qa_questions::device_id.eq(device_id),
            qa_questions::author.eq(talk::pseudonym(pseudonym_key, &session.organization_id, device_id)),
            qa_questions::body.eq(&body),
            qa_questions::lang.eq(talk::lang(input.lang.as_deref())),
            qa_questions::status.eq(QuestionStatus::Open.as_str()),
            qa_questions::answer_public.eq(false),
            qa_questions::version.eq(version),
            qa_questions::created_at.eq(now),
        ))
        .execute(conn)?;
    one_question(conn, &id, Lens { device: Some(device_id), staff: false })
}

/// Upvotes (`up`) or withdraws the upvote of a question; idempotent, one
/// vote per device.
pub fn vote(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
    qid: &str,
    up: bool,
    now: i64,
) -> ApiResult<QuestionView> {
    let session = public_session(conn, session_id)?;
    let question = question_in(conn, &session, qid)?;
    if question.status == QuestionStatus::Dismissed.as_str() {
        return Err(ApiError::NotFound("question"));
    }
    session.require_open(now)?;
    talk::ensure_not_blocked(conn, &session.organization_id, device_id)?;
    let lens = Lens { device: Some(device_id), staff: false };
    let has = |conn: &mut DbConn| -> ApiResult<bool> {
        let n: i64 = qa_votes::table
            .filter(qa_votes::question_id.eq(qid))
            .filter(qa_votes::device_id.eq(device_id))
            .count()
            .get_result(conn)?;
        Ok(n > 0)
    };
    if has(conn)? == up {
        return one_question(conn, qid, lens);
    }
    // Looked at again after the bump: on PostgreSQL the bump waits for a
    // concurrent vote of this device to commit, which may have done it.
    let version = bump(conn, session_id)?;
    let voted = has(conn)?;
    if up && !voted {
        diesel::insert_into(qa_votes::table)
            .values((qa_votes::question_id.eq(qid), qa_votes::device_id.eq(device_id), qa_votes::created_at.eq(now)))
            .execute(conn)?;
    } else if !up && voted {
        diesel::delete(qa_votes::table.filter(qa_votes::question_id.eq(qid)).filter(qa_votes::device_id.eq(device_id)))
            .execute(conn)?;
    }
    diesel::update(qa_questions::table.find(qid)).set(qa_questions::version.eq(version)).execute(conn)?;
    one_question(conn, qid, lens)
}

/// Answers a question, publicly or privately; either way the asker gets
/// the answer by push (in the language of the question).
pub fn answer(
    conn: &mut DbConn,
    actor: &str,
    public_url: &url::Url,
    session_id: &str,
    qid: &str,
    input: NewAnswer,
    now: i64,
) -> ApiResult<QuestionView> {
    let session = staff_session(conn, actor, session_id)?;
    let question = question_in(conn, &session, qid)?;
    // A suspended organization reaches nobody, by post or by answer.
    orgs::require_approved(&orgs::by_id(conn, &session.organization_id)?)?;
    if session.cancelled {
        return Err(ApiError::conflict("session_cancelled", "the question hour was cancelled"));
    }
    let body = validate::text("body", &input.body, 1, ANSWER_MAX, true)?;
    let version = bump(conn, session_id)?;
    diesel::update(qa_questions::table.find(qid))
        .set((
            qa_questions::answer.eq(&body),
            qa_questions::answer_public.eq(input.public),
            qa_questions::answered_by.eq(actor),
            qa_questions::answered_at.eq(now),
            qa_questions::status.eq(QuestionStatus::Answered.as_str()),
            qa_questions::version.eq(version),
        ))
        .execute(conn)?;
    if let Some(device) = &question.device_id {
        let (_, org) = names(conn, &session)?;
        let lang = talk::lang(Some(&question.lang));
        let title = match lang {
            "en" => format!("{} answered your question", org.name),
            _ => format!("{} hat Ihre Frage beantwortet", org.name),
        };
        let tag = format!("question-{qid}");
        let path = format!("/q/{session_id}");
        let notice =
            Notice { kind: "answer", tag: &tag, title: &title, body: &body, path: &path, lang, ttl_ms: ANSWER_TTL_MS };
        notices::enqueue(conn, public_url, device, notice, now)?;
    }
    one_question(conn, qid, Lens { device: None, staff: true })
}

/// Takes a question out of the public view; audit-logged.
pub fn dismiss(
    conn: &mut DbConn,
    actor: &str,
    session_id: &str,
    qid: &str,
    input: Reason,
    now: i64,
) -> ApiResult<QuestionView> {
    let session = staff_session(conn, actor, session_id)?;
    question_in(conn, &session, qid)?;
    let reason = input.reason.as_deref().map(|r| validate::text("reason", r, 0, REASON_MAX, true)).transpose()?;
    let reason = reason.filter(|r| !r.is_empty());
    let version = bump(conn, session_id)?;
    diesel::update(qa_questions::table.find(qid))
        .set((qa_questions::status.eq(QuestionStatus::Dismissed.as_str()), qa_questions::version.eq(version)))
        .execute(conn)?;
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&session.tenant_id),
            actor: user_actor(actor),
            action: "question.dismiss",
            target_type: "question",
            target_id: qid,
            reason: reason.as_deref(),
        },
        now,
    )?;
    one_question(conn, qid, Lens { device: None, staff: true })
}

/// Blocks the device that asked a question from the organization (its
/// questions, votes, issue reports and posts); audit-logged by `talk::block`.
pub fn block(conn: &mut DbConn, actor: &str, session_id: &str, qid: &str, reason: &str, now: i64) -> ApiResult<()> {
    let session = staff_session(conn, actor, session_id)?;
    let question = question_in(conn, &session, qid)?;
    // Its device erased itself: there is nobody left to block.
    let device = question.device_id.ok_or(ApiError::NotFound("device"))?;
    let org = orgs::by_id(conn, &session.organization_id)?;
    talk::block(conn, actor, &org, &device, &question.author, reason, now)
}

/// Ends an open session now.
pub fn end(conn: &mut DbConn, actor: &str, session_id: &str, now: i64) -> ApiResult<SessionView> {
    let session = staff_session(conn, actor, session_id)?;
    session.require_open(now)?;
    bump(conn, session_id)?;
    diesel::update(qa_sessions::table.find(session_id)).set(qa_sessions::ends_at.eq(now)).execute(conn)?;
    let session = by_id(conn, session_id)?;
    session_view(conn, &session, now)
}

/// Cancels a session that has not begun and withdraws the push that would
/// have opened it; audit-logged. Cancelling twice is fine.
pub fn cancel(conn: &mut DbConn, actor: &str, session_id: &str, now: i64) -> ApiResult<()> {
    let session = staff_session(conn, actor, session_id)?;
    match session.state(now) {
        SessionState::Scheduled => {}
        SessionState::Cancelled => return Ok(()),
        SessionState::Open | SessionState::Ended => {
            return Err(ApiError::conflict("session_started", "a question hour that has begun cannot be cancelled"))
        }
    }
    bump(conn, session_id)?;
    diesel::update(qa_sessions::table.find(session_id))
        .set((qa_sessions::cancelled.eq(true), qa_sessions::message_id.eq(None::<String>)))
        .execute(conn)?;
    if let Some(message_id) = &session.message_id {
        crate::messages::withdraw_scheduled(conn, message_id, now)?;
    }
    audit::record(
        conn,
        Entry {
            tenant_id: Some(&session.tenant_id),
            actor: user_actor(actor),
            action: "session.cancel",
            target_type: "session",
            target_id: session_id,
            reason: None,
        },
        now,
    )
}

/// Counts the erasure of devices (`delivery::store::delete_devices`, which
/// calls this first) as a change of every session they asked or voted in:
/// each session gets a new version, and so do its questions the devices
/// asked (they are about to go or to lose their link) or voted on (their
/// counts drop). The live stream then sees the change like any other and
/// drops what is gone — a deleted row carries no version of its own.
/// Sessions are bumped in id order, so that erasures running side by side
/// take their row locks in the same order.
pub fn touch_for_erasure(conn: &mut DbConn, device_ids: &[String]) -> QueryResult<()> {
    if device_ids.is_empty() {
        return Ok(());
    }
    let voted = qa_votes::table.filter(qa_votes::device_id.eq_any(device_ids)).select(qa_votes::question_id);
    let touched: Vec<(String, String)> = qa_questions::table
        .filter(qa_questions::device_id.eq_any(device_ids).or(qa_questions::id.eq_any(voted)))
        .select((qa_questions::session_id, qa_questions::id))
        .load(conn)?;
    let mut by_session: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (session_id, question_id) in touched {
        by_session.entry(session_id).or_default().push(question_id);
    }
    for (session_id, question_ids) in by_session {
        let version = bump(conn, &session_id)?;
        diesel::update(qa_questions::table.filter(qa_questions::id.eq_any(&question_ids)))
            .set(qa_questions::version.eq(version))
            .execute(conn)?;
    }
    Ok(())
}

/// The public stream's start: the session (for `404`s before streaming).
pub fn ensure_public(conn: &mut DbConn, session_id: &str) -> ApiResult<()> {
    public_session(conn, session_id).map(|_| ())
}

/// What the live stream needs of a session at one version.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The session's version these changes go up to.
    pub version: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub cancelled: bool,
    /// The session as the public sees it (without questions).
    pub session: SessionView,
    /// Questions changed after `since` up to `version`, as the public sees
    /// them, each with the version of its last change; oldest change first.
    pub questions: Vec<(i64, QuestionView)>,
    /// The ids of every question the session has at `version`: one that is
    /// not among them was erased with its device.
    pub present: HashSet<String>,
}

/// The session's version alone: the live stream's cheap look every second.
pub fn version(conn: &mut DbConn, session_id: &str) -> ApiResult<Option<i64>> {
    Ok(qa_sessions::table.find(session_id).select(qa_sessions::version).first(conn).optional()?)
}

/// What changed after version `since` (everything for `since < 0`), read
/// in one snapshot. Only changes up to the session's version as read are
/// included: a later one is picked up by the next look, so none is lost
/// (versions commit in order, see the module's header).
pub fn changes(conn: &mut DbConn, session_id: &str, since: i64, now: i64) -> ApiResult<Option<Changes>> {
    crate::db::dialect::snapshot_transaction(conn, |conn| {
        let Some(session) = qa_sessions::table.find(session_id).select(Session::as_select()).first(conn).optional()?
        else {
            return Ok(None);
        };
        let rows: Vec<Question> = qa_questions::table
            .filter(qa_questions::session_id.eq(session_id))
            .filter(qa_questions::version.gt(since))
            .filter(qa_questions::version.le(session.version))
            .order((qa_questions::version.asc(), qa_questions::id.asc()))
            .select(Question::as_select())
            .load(conn)?;
        let versions: Vec<i64> = rows.iter().map(|q| q.version).collect();
        let views = question_views(conn, rows, Lens::default())?;
        let present: Vec<String> =
            qa_questions::table.filter(qa_questions::session_id.eq(session_id)).select(qa_questions::id).load(conn)?;
        Ok(Some(Changes {
            version: session.version,
            starts_at: session.starts_at,
            ends_at: session.ends_at,
            cancelled: session.cancelled,
            session: session_view(conn, &session, now)?,
            questions: versions.into_iter().zip(views).collect(),
            present: present.into_iter().collect(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(starts_at: i64, ends_at: i64, cancelled: bool) -> Session {
        Session {
            id: "s".into(),
            tenant_id: "t".into(),
            organization_id: "o".into(),
            group_id: "g".into(),
            title: "Fragestunde".into(),
            description: String::new(),
            starts_at,
            ends_at,
            message_id: None,
            cancelled,
            version: 0,
            created_by: "user:u".into(),
            created_at: 0,
        }
    }

    fn question(status: &str, answer: Option<&str>, public: bool) -> Question {
        Question {
            id: "q".into(),
            session_id: "s".into(),
            device_id: Some("asker".into()),
            author: "K7QM-2XTP".into(),
            body: "Wann?".into(),
            lang: "de".into(),
            status: status.into(),
            answer: answer.map(str::to_owned),
            answer_public: public,
            answered_by: answer.map(|_| "u".to_owned()),
            answered_at: answer.map(|_| 5),
            version: 1,
            created_at: 1,
        }
    }

    #[test]
    fn a_session_is_open_from_its_start_until_before_its_end() {
        let s = session(100, 200, false);
        assert_eq!(s.state(99), SessionState::Scheduled);
        assert_eq!(s.state(100), SessionState::Open);
        assert_eq!(s.state(199), SessionState::Open);
        assert_eq!(s.state(200), SessionState::Ended);
        assert_eq!(session(100, 200, true).state(150), SessionState::Cancelled);
        assert!(s.require_open(150).is_ok());
        assert_eq!(s.require_open(50).err().map(|e| e.code()), Some("session_not_open"));
    }

    #[test]
    fn a_private_answer_is_read_by_its_asker_and_the_staff_only() {
        let view = |lens| question_view(question("answered", Some("Morgen."), false), 0, false, lens).ok();
        let public = view(Lens::default()).and_then(|q| q.answer).expect("an answer");
        assert_eq!((public.body, public.public), (None, false));
        let other = view(Lens { device: Some("other"), staff: false }).and_then(|q| q.answer);
        assert_eq!(other.and_then(|a| a.body), None);
        let asker = view(Lens { device: Some("asker"), staff: false }).expect("view");
        assert!(asker.mine);
        assert_eq!(asker.answer.and_then(|a| a.body).as_deref(), Some("Morgen."));
        assert!(asker.author.is_none(), "the pseudonym is for the staff");
        let staff = view(Lens { device: None, staff: true }).expect("view");
        assert_eq!(staff.answer.and_then(|a| a.body).as_deref(), Some("Morgen."));
        assert_eq!(staff.author.as_deref(), Some("K7QM-2XTP"));
    }

    #[test]
    fn a_dismissed_question_keeps_its_text_from_the_public() {
        let public = question_view(question("dismissed", Some("x"), true), 3, false, Lens::default()).expect("view");
        assert_eq!((public.body.as_str(), public.answer.is_none()), ("", true));
        assert_eq!(public.status, QuestionStatus::Dismissed);
        let staff = question_view(question("dismissed", None, false), 3, false, Lens { device: None, staff: true });
        assert_eq!(staff.map(|q| q.body).ok().as_deref(), Some("Wann?"));
    }

    #[test]
    fn most_votes_first_then_the_oldest() {
        let q = |id: &str, votes, created: i64| QuestionView {
            id: id.into(),
            body: String::new(),
            votes,
            voted: false,
            mine: false,
            status: QuestionStatus::Open,
            answer: None,
            created_at: ts(created),
            author: None,
        };
        let mut list = vec![q("a", 1, 10), q("b", 3, 30), q("c", 1, 5), q("d", 3, 20)];
        sort(&mut list);
        assert_eq!(list.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), ["d", "b", "c", "a"]);
    }
}
