//! The authorization matrix: every route of the API × every kind of caller ×
//! own organization / another organization of the same town / another town.
//!
//! `ROWS` is the table. Each row is one request (method, path template,
//! body template, a per-call fixture, a state probe) and the exact status
//! each of the eight callers gets. For every cell the test
//!
//! - sends the request as that caller and compares the status;
//! - for a denial (401, 403 or 404 only): checks the body is a JSON error with
//!   a `code` and carries none of the targets' data (ids, titles, names, e-mails);
//! - reads the row's probe before and after: an allowed mutation must have
//!   changed it, a denied one must have left it as it was.
//!
//! Five impostor credentials (an expired and a foreign-key operator JWT, a
//! refresh token used as bearer, an unknown device token, a revoked API
//! token) run every row too and must get exactly what the anonymous caller
//! gets. So does an active API token of group A — except that it may post to
//! that group (201) and to no other (403). After the table:
//! allowed reads stay scoped (member view of a feed, `mine`, a town's admin
//! list, a device's own subscriptions), and nobody can promote themselves.
//!
//! Routes are checked against the table too: every operation of
//! `GET /api/openapi.json` and every `.route(…)` in `server/api/*.rs` needs
//! at least one row, so a new route without a row fails this test.
//!
//! Rows never share mutable targets: destructive requests work on a fixture
//! made fresh for that single call (`Fresh`), named `{new}` in the templates.
//!
//! Two kinds of request are not JSON: a photo upload (body `PHOTO`: a small
//! JPEG as the raw body) and a session's event stream (`…/events`: only the
//! status and headers are read, never the endless body).

use std::collections::BTreeSet;

use actix_web::http::Method;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::*;
use herold::auth::secrets::hash_secret;
use herold::db::schema::{
    api_tokens, broadcast_groups, device_blocks, device_notices, devices, group_intakes, issue_photos, issue_posts,
    issues, memberships, messages, organizations, qa_questions, qa_sessions, qa_votes, refresh_tokens, subscriptions,
    users,
};

/// The callers, in the column order of `ROWS`.
const ROLES: [&str; 8] =
    ["anonymous", "device", "editor of A", "owner of A", "owner of B", "admin wismar", "admin strausberg", "operator"];

/// What a single call needs made fresh before it runs (`{new}` in templates).
#[derive(Clone, Copy, Debug)]
enum Fresh {
    None,
    /// The device column calls with a brand-new device token.
    Device,
    /// The device column calls with a new device that follows this group.
    SubscribedDevice(&'static str),
    /// `{new}`: a new active group of this organization.
    Group(&'static str),
    /// `{new}`: a new (invited) editor of this organization.
    Member(&'static str),
    /// `{new}`: a new organization (town, status), owned by the owner of A.
    Org(&'static str, &'static str),
    /// `{new}`: a new refresh token of a bystander (the owner of C).
    Refresh,
    /// `{new}`: a new invitation token.
    Invite,
    /// `{new}`: a new published message in this group.
    Message(&'static str),
    /// `{new}`: a new message in this group, hidden by the town.
    HiddenMessage(&'static str),
    /// `{new}`: a new verified group of this organization.
    VerifiedGroup(&'static str),
    /// `{new}`: a new suspended group of this organization.
    SuspendedGroup(&'static str),
    /// `{new}`: an open report (by a new device) of a new message in this group.
    Report(&'static str),
    /// `{new}`: a new API token of this organization (for its fixture group).
    Token(&'static str),
    /// `{new}`: an issue report by a new device in this group, `{photo}` its
    /// photo; the device column calls as that reporting device.
    Issue(&'static str),
    /// As `Issue`, but the device column calls as another device (the world's).
    ForeignIssue(&'static str),
    /// As `ForeignIssue`, published on the group's board.
    PublicIssue(&'static str),
    /// `{new}`: the block of a new reporting device by this group's organization.
    Block(&'static str),
    /// `{new}`: a question by a new device in this session.
    Question(&'static str),
    /// As `Question`, with the world's device's vote on it.
    VotedQuestion(&'static str),
    /// `{new}`: a new question hour of this group, open now for two hours.
    OpenSession(&'static str),
    /// `{new}`: a new question hour of this group, starting tomorrow.
    ScheduledSession(&'static str),
}

/// The state a row may change, read before and after each call.
#[derive(Clone, Copy, Debug)]
enum Probe {
    None,
    Devices,
    /// Devices whose endpoint ends in this call's `{uniq}`.
    DeviceEndpoint,
    Followers(&'static str),
    Users,
    Sessions,
    /// `revoked_at` of the `{new}` refresh token.
    RefreshRevoked,
    /// Whether the `{new}` invitation is still open.
    InviteOpen,
    Orgs,
    /// Status of the `{new}` organization.
    OrgStatus,
    Members(&'static str),
    /// Role of `{new}` in this organization.
    Role(&'static str),
    Groups(&'static str),
    /// Name, description, category and status of a group.
    Group(&'static str),
    Messages(&'static str),
    /// Verified flag and status of the `{new}` group.
    GroupModeration,
    /// Hidden flag and reason of the `{new}` message.
    MessageHidden,
    /// Reports of this message.
    Reports(&'static str),
    /// Status of the `{new}` report.
    ReportStatus,
    /// API tokens of this organization.
    Tokens(&'static str),
    /// `revoked_at` of the `{new}` API token.
    TokenRevoked,
    /// Queued device notices (test notifications).
    Notices,
    /// The intake (open, categories, board) of this group.
    Intake(&'static str),
    /// Issue reports in this group.
    Issues(&'static str),
    /// Photos of the `{new}` issue.
    IssuePhotos,
    /// Posts in the `{new}` issue's thread.
    IssuePosts,
    /// Status and public flag of the `{new}` issue (or its absence).
    IssueState,
    /// Devices this organization blocked.
    Blocks(&'static str),
    /// Question hours of this group.
    QaSessions(&'static str),
    /// Questions of this session.
    Questions(&'static str),
    /// Votes on the `{new}` question.
    Votes,
    /// Status and answer of the `{new}` question.
    QuestionState,
    /// End and cancelled flag of the `{new}` session.
    SessionState,
}

struct Row {
    method: &'static str,
    path: &'static str,
    body: &'static str,
    fresh: Fresh,
    probe: Probe,
    expect: [u16; 8],
}

use Fresh as F;
use Probe as P;

/// `METHOD "path", BODY, fresh, probe => eight statuses;` per row.
macro_rules! rows {
    ($($method:ident $path:literal, $body:expr, $fresh:expr, $probe:expr => $($s:literal)+;)*) => {
        &[$(Row { method: stringify!($method), path: $path, body: $body, fresh: $fresh, probe: $probe, expect: [$($s),+] },)*]
    };
}

// Body templates. Placeholders: {A} {B} {C} organizations, {gA} {gB} {gC}
// groups, {mA} {mB} {mC} messages, {new} the row's fresh fixture, {uniq} a
// value unique to the call, {login} a member's e-mail, {password}.
const NO: &str = "";
const SUB: &str = r#"{"endpoint": "https://fcm.googleapis.com/fcm/send/{uniq}", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}"#;
const REGISTER: &str = r#"{"email": "{uniq}@example.org", "password": "{password}", "organization": {"name": "Verein {uniq}", "tenant": "wismar"}}"#;
const LOGIN: &str = r#"{"email": "{login}", "password": "{password}"}"#;
const LOGIN_UNKNOWN: &str = r#"{"email": "{uniq}@example.org", "password": "{password}"}"#;
const REFRESH_NEW: &str = r#"{"refresh_token": "{new}"}"#;
const REFRESH_BOGUS: &str = r#"{"refresh_token": "hrt_{uniq}"}"#;
const INVITE_NEW: &str = r#"{"invite_token": "{new}", "password": "{password}"}"#;
const INVITE_BOGUS: &str = r#"{"invite_token": "hin_{uniq}", "password": "{password}"}"#;
const NEW_ORG: &str = r#"{"name": "Neu {uniq}", "tenant": "wismar"}"#;
const NEW_MEMBER: &str = r#"{"email": "{uniq}@example.org"}"#;
const TO_OWNER: &str = r#"{"role": "owner"}"#;
const NEW_GROUP: &str = r#"{"name": "Gruppe {uniq}", "description": "neu", "category": "club"}"#;
const EDIT_GROUP: &str = r#"{"description": "geändert {uniq}"}"#;
const NEW_MESSAGE: &str = r#"{"title": "Nachricht {uniq}", "body": "Text"}"#;
const REASON: &str = r#"{"reason": "Test {uniq}"}"#;
const ALERT: &str = r#"{"title": "Probealarm {uniq}", "body": "Nur ein Test."}"#;
const REPORT: &str = r#"{"reason": "spam", "text": "Test {uniq}"}"#;
const DISMISS: &str = r#"{"action": "dismiss", "note": "Test {uniq}"}"#;
const TOKEN_A: &str = r#"{"name": "Website {uniq}", "group_id": "{gA}"}"#;
const TOKEN_B: &str = r#"{"name": "Website {uniq}", "group_id": "{gB}"}"#;
const TOKEN_C: &str = r#"{"name": "Website {uniq}", "group_id": "{gC}"}"#;
const TEST_NOTICE: &str = r#"{"lang": "en"}"#;
const INTAKE: &str = r#"{"open": true, "categories": ["Straße", "Kat {uniq}"], "board": true}"#;
const ISSUE: &str = r#"{"category": "Straße", "body": "Schlagloch {uniq}"}"#;
const THREAD: &str = r#"{"body": "Nachtrag {uniq}"}"#;
const REPLY: &str = r#"{"body": "Antwort {uniq}"}"#;
const STATUS: &str = r#"{"status": "in_progress"}"#;
/// Not JSON: the request's body is a small JPEG (`Content-Type: image/jpeg`).
const PHOTO: &str = "<photo>";
const SESSION: &str = r#"{"title": "Sprechstunde {uniq}", "starts_at": "2026-11-27T12:00:00.000Z", "ends_at": "2026-11-27T13:00:00.000Z"}"#;
const QUESTION: &str = r#"{"body": "Frage {uniq}"}"#;
const ANSWER: &str = r#"{"body": "Antwort {uniq}", "public": true}"#;

// Columns as in `ROLES`: anonymous, device, editor of A, owner of A, owner of B,
// city admin of wismar, city admin of strausberg, operator. A = St. Nikolai and
// B = Hansa (both wismar), C = Feuerwehr (strausberg).
#[rustfmt::skip]
const ROWS: &[Row] = rows![
//  method path                                           body           fresh                              probe                   ano dev edA owA owB adW adS opr
    // ---- system ----
    GET "/healthz",                                       NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/readyz",                                        NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/metrics",                                       NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/openapi.json",                              NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    // ---- public: anyone, any town ----
    GET "/api/v1/tenants",                                NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/tenants/wismar/groups",                  NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/tenants/strausberg/groups",              NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gA}",                            NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gB}",                            NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gC}",                            NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gA}/messages",                   NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gB}/messages",                   NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gC}/messages",                   NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/messages/{mA}",                          NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/messages/{mB}",                          NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/messages/{mC}",                          NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/push/vapid-public-key",                  NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gA}/qr.svg",                     NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gC}/qr.svg",                     NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    // ---- residents: only a device token counts; a device follows any town ----
    POST "/api/v1/devices",                               SUB,           F::None,                           P::Devices           => 201 201 201 201 201 201 201 201;
    PUT "/api/v1/devices/me/push",                        SUB,           F::None,                           P::DeviceEndpoint    => 401 204 401 401 401 401 401 401;
    GET "/api/v1/devices/me/subscriptions",               NO,            F::None,                           P::None              => 401 200 401 401 401 401 401 401;
    PUT "/api/v1/devices/me/subscriptions/{gA}",          NO,            F::Device,                         P::Followers("{gA}") => 401 200 401 401 401 401 401 401;
    PUT "/api/v1/devices/me/subscriptions/{gC}",          NO,            F::Device,                         P::Followers("{gC}") => 401 200 401 401 401 401 401 401;
    DELETE "/api/v1/devices/me/subscriptions/{gA}",       NO,            F::SubscribedDevice("{gA}"),       P::Followers("{gA}") => 401 204 401 401 401 401 401 401;
    DELETE "/api/v1/devices/me/subscriptions/{gC}",       NO,            F::SubscribedDevice("{gC}"),       P::Followers("{gC}") => 401 204 401 401 401 401 401 401;
    GET "/api/v1/devices/me/inbox",                       NO,            F::None,                           P::None              => 401 200 401 401 401 401 401 401;
    POST "/api/v1/devices/me/test-notification",          TEST_NOTICE,   F::Device,                         P::Notices           => 401 202 401 401 401 401 401 401;
    DELETE "/api/v1/devices/me",                          NO,            F::Device,                         P::Devices           => 401 204 401 401 401 401 401 401;
    // ---- accounts: credentials travel in the body; a bearer token adds nothing ----
    POST "/api/v1/auth/register",                         REGISTER,      F::None,                           P::Users             => 201 201 201 201 201 201 201 201;
    POST "/api/v1/auth/login",                            LOGIN,         F::None,                           P::Sessions          => 200 200 200 200 200 200 200 200;
    POST "/api/v1/auth/login",                            LOGIN_UNKNOWN, F::None,                           P::Sessions          => 401 401 401 401 401 401 401 401;
    POST "/api/v1/auth/refresh",                          REFRESH_NEW,   F::Refresh,                        P::RefreshRevoked    => 200 200 200 200 200 200 200 200;
    POST "/api/v1/auth/refresh",                          REFRESH_BOGUS, F::None,                           P::Sessions          => 401 401 401 401 401 401 401 401;
    POST "/api/v1/auth/logout",                           REFRESH_NEW,   F::Refresh,                        P::RefreshRevoked    => 204 204 204 204 204 204 204 204;
    POST "/api/v1/auth/accept-invite",                    INVITE_NEW,    F::Invite,                         P::InviteOpen        => 200 200 200 200 200 200 200 200;
    POST "/api/v1/auth/accept-invite",                    INVITE_BOGUS,  F::None,                           P::Users             => 401 401 401 401 401 401 401 401;
    GET "/api/v1/me",                                     NO,            F::None,                           P::None              => 401 401 200 200 200 200 200 200;
    // ---- organizations: members see their own; a city admin sees those of the town ----
    POST "/api/v1/organizations",                         NEW_ORG,       F::None,                           P::Orgs              => 401 401 201 201 201 201 201 201;
    GET "/api/v1/organizations/mine",                     NO,            F::None,                           P::None              => 401 401 200 200 200 200 200 200;
    GET "/api/v1/organizations/{A}",                      NO,            F::None,                           P::None              => 401 401 200 200 404 200 404 200;
    GET "/api/v1/organizations/{B}",                      NO,            F::None,                           P::None              => 401 401 404 404 200 200 404 200;
    GET "/api/v1/organizations/{C}",                      NO,            F::None,                           P::None              => 401 401 404 404 404 404 200 200;
    GET "/api/v1/organizations/{A}/members",              NO,            F::None,                           P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/organizations/{B}/members",              NO,            F::None,                           P::None              => 401 401 404 404 200 404 404 404;
    GET "/api/v1/organizations/{C}/members",              NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    POST "/api/v1/organizations/{A}/members",             NEW_MEMBER,    F::None,                           P::Members("{A}")    => 401 401 403 201 404 404 404 404;
    POST "/api/v1/organizations/{B}/members",             NEW_MEMBER,    F::None,                           P::Members("{B}")    => 401 401 404 404 201 404 404 404;
    POST "/api/v1/organizations/{C}/members",             NEW_MEMBER,    F::None,                           P::Members("{C}")    => 401 401 404 404 404 404 404 404;
    PATCH "/api/v1/organizations/{A}/members/{new}",      TO_OWNER,      F::Member("{A}"),                  P::Role("{A}")       => 401 401 403 200 404 404 404 404;
    PATCH "/api/v1/organizations/{B}/members/{new}",      TO_OWNER,      F::Member("{B}"),                  P::Role("{B}")       => 401 401 404 404 200 404 404 404;
    PATCH "/api/v1/organizations/{C}/members/{new}",      TO_OWNER,      F::Member("{C}"),                  P::Role("{C}")       => 401 401 404 404 404 404 404 404;
    DELETE "/api/v1/organizations/{A}/members/{new}",     NO,            F::Member("{A}"),                  P::Role("{A}")       => 401 401 403 204 404 404 404 404;
    DELETE "/api/v1/organizations/{B}/members/{new}",     NO,            F::Member("{B}"),                  P::Role("{B}")       => 401 401 404 404 204 404 404 404;
    DELETE "/api/v1/organizations/{C}/members/{new}",     NO,            F::Member("{C}"),                  P::Role("{C}")       => 401 401 404 404 404 404 404 404;
    // ---- groups: owners manage; the town's city admin may edit, not archive ----
    GET "/api/v1/organizations/{A}/groups",               NO,            F::None,                           P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/organizations/{B}/groups",               NO,            F::None,                           P::None              => 401 401 404 404 200 404 404 404;
    GET "/api/v1/organizations/{C}/groups",               NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    POST "/api/v1/organizations/{A}/groups",              NEW_GROUP,     F::None,                           P::Groups("{A}")     => 401 401 403 201 404 404 404 404;
    POST "/api/v1/organizations/{B}/groups",              NEW_GROUP,     F::None,                           P::Groups("{B}")     => 401 401 404 404 201 404 404 404;
    POST "/api/v1/organizations/{C}/groups",              NEW_GROUP,     F::None,                           P::Groups("{C}")     => 401 401 404 404 404 404 404 404;
    PATCH "/api/v1/groups/{gA}",                          EDIT_GROUP,    F::None,                           P::Group("{gA}")     => 401 401 403 200 404 200 404 200;
    PATCH "/api/v1/groups/{gB}",                          EDIT_GROUP,    F::None,                           P::Group("{gB}")     => 401 401 404 404 200 200 404 200;
    PATCH "/api/v1/groups/{gC}",                          EDIT_GROUP,    F::None,                           P::Group("{gC}")     => 401 401 404 404 404 404 200 200;
    DELETE "/api/v1/groups/{new}",                        NO,            F::Group("{A}"),                   P::Group("{new}")    => 401 401 403 204 404 404 404 404;
    DELETE "/api/v1/groups/{new}",                        NO,            F::Group("{B}"),                   P::Group("{new}")    => 401 401 404 404 204 404 404 404;
    DELETE "/api/v1/groups/{new}",                        NO,            F::Group("{C}"),                   P::Group("{new}")    => 401 401 404 404 404 404 404 404;
    // ---- messages: any member posts and reads statistics; nobody else ----
    POST "/api/v1/groups/{gA}/messages",                  NEW_MESSAGE,   F::None,                           P::Messages("{gA}")  => 401 401 201 201 404 404 404 404;
    POST "/api/v1/groups/{gB}/messages",                  NEW_MESSAGE,   F::None,                           P::Messages("{gB}")  => 401 401 404 404 201 404 404 404;
    POST "/api/v1/groups/{gC}/messages",                  NEW_MESSAGE,   F::None,                           P::Messages("{gC}")  => 401 401 404 404 404 404 404 404;
    GET "/api/v1/messages/{mA}/stats",                    NO,            F::None,                           P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/messages/{mB}/stats",                    NO,            F::None,                           P::None              => 401 401 404 404 200 404 404 404;
    GET "/api/v1/messages/{mC}/stats",                    NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    // ---- subscriber history (aggregate): members, and the town's city admin (an operator: any town) ----
    GET "/api/v1/groups/{gA}/subscriber-history",         NO,            F::None,                           P::None              => 401 401 200 200 404 200 404 200;
    GET "/api/v1/groups/{gB}/subscriber-history",         NO,            F::None,                           P::None              => 401 401 404 404 200 200 404 200;
    GET "/api/v1/groups/{gC}/subscriber-history",         NO,            F::None,                           P::None              => 401 401 404 404 404 404 200 200;
    // ---- API tokens: owners only; a city admin is no member (posting with a token: see the API-token caller) ----
    GET "/api/v1/organizations/{A}/tokens",               NO,            F::None,                           P::None              => 401 401 403 200 404 404 404 404;
    GET "/api/v1/organizations/{B}/tokens",               NO,            F::None,                           P::None              => 401 401 404 404 200 404 404 404;
    GET "/api/v1/organizations/{C}/tokens",               NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    POST "/api/v1/organizations/{A}/tokens",              TOKEN_A,       F::None,                           P::Tokens("{A}")     => 401 401 403 201 404 404 404 404;
    POST "/api/v1/organizations/{B}/tokens",              TOKEN_B,       F::None,                           P::Tokens("{B}")     => 401 401 404 404 201 404 404 404;
    POST "/api/v1/organizations/{C}/tokens",              TOKEN_C,       F::None,                           P::Tokens("{C}")     => 401 401 404 404 404 404 404 404;
    DELETE "/api/v1/organizations/{A}/tokens/{new}",      NO,            F::Token("{A}"),                   P::TokenRevoked      => 401 401 403 204 404 404 404 404;
    DELETE "/api/v1/organizations/{B}/tokens/{new}",      NO,            F::Token("{B}"),                   P::TokenRevoked      => 401 401 404 404 204 404 404 404;
    DELETE "/api/v1/organizations/{C}/tokens/{new}",      NO,            F::Token("{C}"),                   P::TokenRevoked      => 401 401 404 404 404 404 404 404;
    DELETE "/api/v1/organizations/{A}/tokens/{new}",      NO,            F::Token("{B}"),                   P::TokenRevoked      => 401 401 403 404 404 404 404 404;
    // ---- city admin: own town only (an operator: every town); an owner never decides about their own ----
    GET "/api/v1/admin/tenants/wismar/organizations",     NO,            F::None,                           P::None              => 401 401 403 403 403 200 403 200;
    GET "/api/v1/admin/tenants/strausberg/organizations", NO,            F::None,                           P::None              => 401 401 403 403 403 403 200 200;
    POST "/api/v1/admin/organizations/{new}/approve",     NO,            F::Org("wismar", "pending"),       P::OrgStatus         => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/organizations/{new}/approve",     NO,            F::Org("strausberg", "pending"),   P::OrgStatus         => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/organizations/{new}/reject",      REASON,        F::Org("wismar", "pending"),       P::OrgStatus         => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/organizations/{new}/reject",      REASON,        F::Org("strausberg", "pending"),   P::OrgStatus         => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/organizations/{new}/suspend",     REASON,        F::Org("wismar", "approved"),      P::OrgStatus         => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/organizations/{new}/suspend",     REASON,        F::Org("strausberg", "approved"),  P::OrgStatus         => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/organizations/{new}/reinstate",   NO,            F::Org("wismar", "suspended"),     P::OrgStatus         => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/organizations/{new}/reinstate",   NO,            F::Org("strausberg", "suspended"), P::OrgStatus         => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/organizations/{new}/publish",     NO,            F::Org("wismar", "pending"),       P::OrgStatus         => 401 401 404 404 404 404 404 404;
    // ---- moderation: a device flags what it can read; the town's city admins (an operator: any town) moderate ----
    POST "/api/v1/messages/{mA}/reports",                 REPORT,        F::Device,                         P::Reports("{mA}")   => 401 201 401 401 401 401 401 401;
    POST "/api/v1/messages/{mC}/reports",                 REPORT,        F::Device,                         P::Reports("{mC}")   => 401 201 401 401 401 401 401 401;
    GET "/api/v1/admin/tenants/wismar/groups",            NO,            F::None,                           P::None              => 401 401 403 403 403 200 403 200;
    GET "/api/v1/admin/tenants/strausberg/groups",        NO,            F::None,                           P::None              => 401 401 403 403 403 403 200 200;
    POST "/api/v1/admin/groups/{new}/verify",             NO,            F::Group("{A}"),                   P::GroupModeration   => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/groups/{new}/verify",             NO,            F::Group("{C}"),                   P::GroupModeration   => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/groups/{new}/unverify",           NO,            F::VerifiedGroup("{A}"),           P::GroupModeration   => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/groups/{new}/unverify",           NO,            F::VerifiedGroup("{C}"),           P::GroupModeration   => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/groups/{new}/suspend",            REASON,        F::Group("{A}"),                   P::GroupModeration   => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/groups/{new}/suspend",            REASON,        F::Group("{B}"),                   P::GroupModeration   => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/groups/{new}/suspend",            REASON,        F::Group("{C}"),                   P::GroupModeration   => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/groups/{new}/reinstate",          NO,            F::SuspendedGroup("{A}"),          P::GroupModeration   => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/groups/{new}/reinstate",          NO,            F::SuspendedGroup("{C}"),          P::GroupModeration   => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/groups/{new}/promote",            NO,            F::Group("{A}"),                   P::GroupModeration   => 401 401 404 404 404 404 404 404;
    POST "/api/v1/admin/messages/{new}/hide",             REASON,        F::Message("{gA}"),                P::MessageHidden     => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/messages/{new}/hide",             REASON,        F::Message("{gB}"),                P::MessageHidden     => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/messages/{new}/hide",             REASON,        F::Message("{gC}"),                P::MessageHidden     => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/messages/{new}/restore",          NO,            F::HiddenMessage("{gA}"),          P::MessageHidden     => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/messages/{new}/restore",          NO,            F::HiddenMessage("{gC}"),          P::MessageHidden     => 401 401 404 404 404 404 200 200;
    POST "/api/v1/admin/messages/{new}/delete",           NO,            F::Message("{gA}"),                P::MessageHidden     => 401 401 404 404 404 404 404 404;
    GET "/api/v1/admin/tenants/wismar/reports",           NO,            F::None,                           P::None              => 401 401 403 403 403 200 403 200;
    GET "/api/v1/admin/tenants/strausberg/reports",       NO,            F::None,                           P::None              => 401 401 403 403 403 403 200 200;
    POST "/api/v1/admin/reports/{new}/resolve",           DISMISS,       F::Report("{gA}"),                 P::ReportStatus      => 401 401 404 404 404 200 404 200;
    POST "/api/v1/admin/reports/{new}/resolve",           DISMISS,       F::Report("{gC}"),                 P::ReportStatus      => 401 401 404 404 404 404 200 200;
    GET "/api/v1/admin/tenants/wismar/audit",             NO,            F::None,                           P::None              => 401 401 403 403 403 200 403 200;
    GET "/api/v1/admin/tenants/strausberg/audit",         NO,            F::None,                           P::None              => 401 401 403 403 403 403 200 200;
    GET "/api/v1/admin/audit",                            NO,            F::None,                           P::None              => 401 401 403 403 403 403 403 200;
    // ---- town-wide alerts: the town's city admins (an operator: any town) ----
    POST "/api/v1/admin/tenants/wismar/alerts",           ALERT,         F::None,                           P::None              => 401 401 403 403 403 201 403 201;
    POST "/api/v1/admin/tenants/strausberg/alerts",       ALERT,         F::None,                           P::None              => 401 401 403 403 403 403 201 201;
    GET "/api/v1/admin/tenants/wismar/alerts",            NO,            F::None,                           P::None              => 401 401 403 403 403 200 403 200;
    GET "/api/v1/admin/tenants/strausberg/alerts",        NO,            F::None,                           P::None              => 401 401 403 403 403 403 200 200;
    // ---- issue reports: a group's intake (its organization's members set it; anyone reads it) ----
    GET "/api/v1/groups/{gA}/intake",                     NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gC}/intake",                     NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    PUT "/api/v1/groups/{gA}/intake",                     INTAKE,        F::None,                           P::Intake("{gA}")    => 401 401 200 200 404 404 404 404;
    PUT "/api/v1/groups/{gB}/intake",                     INTAKE,        F::None,                           P::Intake("{gB}")    => 401 401 404 404 200 404 404 404;
    PUT "/api/v1/groups/{gC}/intake",                     INTAKE,        F::None,                           P::Intake("{gC}")    => 401 401 404 404 404 404 404 404;
    // ---- issue reports, the resident's side: only the reporting device (any town) ----
    POST "/api/v1/groups/{gA}/issues",                    ISSUE,         F::Device,                         P::Issues("{gA}")    => 401 201 401 401 401 401 401 401;
    POST "/api/v1/groups/{gC}/issues",                    ISSUE,         F::Device,                         P::Issues("{gC}")    => 401 201 401 401 401 401 401 401;
    GET "/api/v1/devices/me/issues",                      NO,            F::None,                           P::None              => 401 200 401 401 401 401 401 401;
    GET "/api/v1/devices/me/issues/{new}",                NO,            F::Issue("{gA}"),                  P::None              => 401 200 401 401 401 401 401 401;
    GET "/api/v1/devices/me/issues/{new}",                NO,            F::ForeignIssue("{gA}"),           P::None              => 401 404 401 401 401 401 401 401;
    POST "/api/v1/devices/me/issues/{new}/photos",        PHOTO,         F::Issue("{gA}"),                  P::IssuePhotos       => 401 201 401 401 401 401 401 401;
    POST "/api/v1/devices/me/issues/{new}/photos",        PHOTO,         F::ForeignIssue("{gA}"),           P::IssuePhotos       => 401 404 401 401 401 401 401 401;
    GET "/api/v1/devices/me/issues/{new}/photos/{photo}", NO,            F::Issue("{gA}"),                  P::None              => 401 200 401 401 401 401 401 401;
    GET "/api/v1/devices/me/issues/{new}/photos/{photo}", NO,            F::ForeignIssue("{gA}"),           P::None              => 401 404 401 401 401 401 401 401;
    POST "/api/v1/devices/me/issues/{new}/posts",         THREAD,        F::Issue("{gA}"),                  P::IssuePosts        => 401 201 401 401 401 401 401 401;
    POST "/api/v1/devices/me/issues/{new}/posts",         THREAD,        F::ForeignIssue("{gA}"),           P::IssuePosts        => 401 404 401 401 401 401 401 401;
    DELETE "/api/v1/devices/me/issues/{new}",             NO,            F::Issue("{gA}"),                  P::IssueState        => 401 204 401 401 401 401 401 401;
    DELETE "/api/v1/devices/me/issues/{new}",             NO,            F::ForeignIssue("{gA}"),           P::IssueState        => 401 404 401 401 401 401 401 401;
    // ---- issue reports, the organization's side: its members only; city admins and operators never ----
    GET "/api/v1/organizations/{A}/issues",               NO,            F::None,                           P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/organizations/{B}/issues",               NO,            F::None,                           P::None              => 401 401 404 404 200 404 404 404;
    GET "/api/v1/organizations/{C}/issues",               NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    GET "/api/v1/issues/{new}",                           NO,            F::Issue("{gA}"),                  P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/issues/{new}",                           NO,            F::Issue("{gC}"),                  P::None              => 401 401 404 404 404 404 404 404;
    POST "/api/v1/issues/{new}/replies",                  REPLY,         F::Issue("{gA}"),                  P::IssuePosts        => 401 401 201 201 404 404 404 404;
    POST "/api/v1/issues/{new}/replies",                  REPLY,         F::Issue("{gB}"),                  P::IssuePosts        => 401 401 404 404 201 404 404 404;
    PATCH "/api/v1/issues/{new}",                         STATUS,        F::Issue("{gA}"),                  P::IssueState        => 401 401 200 200 404 404 404 404;
    PATCH "/api/v1/issues/{new}",                         STATUS,        F::Issue("{gC}"),                  P::IssueState        => 401 401 404 404 404 404 404 404;
    GET "/api/v1/issues/{new}/photos/{photo}",            NO,            F::Issue("{gA}"),                  P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/issues/{new}/photos/{photo}",            NO,            F::Issue("{gC}"),                  P::None              => 401 401 404 404 404 404 404 404;
    POST "/api/v1/issues/{new}/block",                    REASON,        F::Issue("{gA}"),                  P::Blocks("{A}")     => 401 401 204 204 404 404 404 404;
    POST "/api/v1/issues/{new}/block",                    REASON,        F::Issue("{gB}"),                  P::Blocks("{B}")     => 401 401 404 404 204 404 404 404;
    GET "/api/v1/organizations/{A}/blocks",               NO,            F::None,                           P::None              => 401 401 200 200 404 404 404 404;
    GET "/api/v1/organizations/{C}/blocks",               NO,            F::None,                           P::None              => 401 401 404 404 404 404 404 404;
    DELETE "/api/v1/organizations/{A}/blocks/{new}",      NO,            F::Block("{gA}"),                  P::Blocks("{A}")     => 401 401 204 204 404 404 404 404;
    DELETE "/api/v1/organizations/{A}/blocks/{new}",      NO,            F::Block("{gB}"),                  P::Blocks("{B}")     => 401 401 404 404 404 404 404 404;
    // ---- the public board: anyone sees what an organization published, nothing else ----
    GET "/api/v1/groups/{gA}/board",                      NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gA}/board/{new}/photos/{photo}", NO,            F::PublicIssue("{gA}"),            P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/groups/{gA}/board/{new}/photos/{photo}", NO,            F::ForeignIssue("{gA}"),           P::None              => 404 404 404 404 404 404 404 404;
    // ---- question hours: members of the organization run them; anyone reads; devices ask and vote ----
    POST "/api/v1/groups/{gA}/sessions",                  SESSION,       F::None,                           P::QaSessions("{gA}") => 401 401 201 201 404 404 404 404;
    POST "/api/v1/groups/{gC}/sessions",                  SESSION,       F::None,                           P::QaSessions("{gC}") => 401 401 404 404 404 404 404 404;
    GET "/api/v1/groups/{gA}/sessions",                   NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/sessions/{sA}",                          NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/sessions/{sC}",                          NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    GET "/api/v1/sessions/{sA}/events",                   NO,            F::None,                           P::None              => 200 200 200 200 200 200 200 200;
    POST "/api/v1/sessions/{sA}/questions",               QUESTION,      F::Device,                         P::Questions("{sA}") => 401 201 401 401 401 401 401 401;
    POST "/api/v1/sessions/{sC}/questions",               QUESTION,      F::Device,                         P::Questions("{sC}") => 401 201 401 401 401 401 401 401;
    PUT "/api/v1/sessions/{sA}/questions/{new}/vote",     NO,            F::Question("{sA}"),               P::Votes             => 401 200 401 401 401 401 401 401;
    DELETE "/api/v1/sessions/{sA}/questions/{new}/vote",  NO,            F::VotedQuestion("{sA}"),          P::Votes             => 401 200 401 401 401 401 401 401;
    POST "/api/v1/sessions/{sA}/questions/{new}/answer",  ANSWER,        F::Question("{sA}"),               P::QuestionState     => 401 401 200 200 404 404 404 404;
    POST "/api/v1/sessions/{sC}/questions/{new}/answer",  ANSWER,        F::Question("{sC}"),               P::QuestionState     => 401 401 404 404 404 404 404 404;
    POST "/api/v1/sessions/{sA}/questions/{new}/dismiss", REASON,        F::Question("{sA}"),               P::QuestionState     => 401 401 200 200 404 404 404 404;
    POST "/api/v1/sessions/{sC}/questions/{new}/dismiss", REASON,        F::Question("{sC}"),               P::QuestionState     => 401 401 404 404 404 404 404 404;
    POST "/api/v1/sessions/{sA}/questions/{new}/block",   REASON,        F::Question("{sA}"),               P::Blocks("{A}")     => 401 401 204 204 404 404 404 404;
    POST "/api/v1/sessions/{sC}/questions/{new}/block",   REASON,        F::Question("{sC}"),               P::Blocks("{C}")     => 401 401 404 404 404 404 404 404;
    POST "/api/v1/sessions/{new}/end",                    NO,            F::OpenSession("{gA}"),            P::SessionState      => 401 401 200 200 404 404 404 404;
    POST "/api/v1/sessions/{new}/end",                    NO,            F::OpenSession("{gC}"),            P::SessionState      => 401 401 404 404 404 404 404 404;
    DELETE "/api/v1/sessions/{new}",                      NO,            F::ScheduledSession("{gA}"),       P::SessionState      => 401 401 204 204 404 404 404 404;
    DELETE "/api/v1/sessions/{new}",                      NO,            F::ScheduledSession("{gC}"),       P::SessionState      => 401 401 404 404 404 404 404 404;
];

/// The fixtures every row refers to.
struct World {
    device: String,
    tokens: [Option<String>; 8],
    owners: Vec<(String, Owner)>,
    /// (placeholder, value) pairs: {A}, {gA}, {mA}, …
    names: Vec<(&'static str, String)>,
    /// Data a denial must never show: ids, titles, names, e-mails.
    secrets: Vec<String>,
    login: String,
    bystander: String,
    /// Credentials that must count for nothing: each gets what `anonymous` gets.
    impostors: Vec<(&'static str, String)>,
    /// An active API token of group A.
    api_token: String,
}

impl World {
    async fn build(app: &TestApp) -> World {
        app.with_tenant("wismar").await;
        app.with_tenant("strausberg").await;
        let admin_w = app.city_admin("wismar", "rathaus@wismar.de").await;
        let admin_s = app.city_admin("strausberg", "rathaus@strausberg.de").await;
        let operator = app.operator("betrieb@herold.example").await;
        let owner_a = app.approved_org(&admin_w, "wismar", "buero@st-nikolai.de", "St. Nikolai Wismar").await;
        let owner_b = app.approved_org(&admin_w, "wismar", "vorstand@hansa-wismar.de", "Hansa Wismar").await;
        let owner_c = app.approved_org(&admin_s, "strausberg", "wehr@feuerwehr-strausberg.de", "Feuerwehr").await;

        // The editor of A: invited by the owner, sets a password with the invitation.
        let added = app
            .post(
                &format!("/api/v1/organizations/{}/members", owner_a.org_id),
                Some(&owner_a.user.access),
                json!({"email": "redaktion@st-nikolai.de"}),
            )
            .await
            .expect(201);
        assert_eq!(added["member"]["role"], "editor");
        let invite = added["invite_token"].as_str().expect("invitation for a new e-mail").to_owned();
        let accepted = app
            .post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": PASSWORD}))
            .await
            .expect(200);
        let editor_a = User::from_tokens(&accepted);

        let g_a = app.group(&owner_a, "Gemeindebrief St. Nikolai", "church").await;
        let g_b = app.group(&owner_b, "Spielplan Hansa", "club").await;
        let g_c = app.group(&owner_c, "Einsatzinfo Strausberg", "administration").await;
        let m_a = app.message(&editor_a, &g_a, "Adventskonzert im Dom").await;
        let m_b = app.message(&owner_b.user, &g_b, "Heimspiel am Samstag").await;
        let m_c = app.message(&owner_c.user, &g_c, "Sirenenprobe Mittwoch").await;

        // Every group takes issue reports; A's shows published ones on its board.
        for (owner, group, board) in [(&owner_a, &g_a, true), (&owner_b, &g_b, false), (&owner_c, &g_c, false)] {
            app.put(
                &format!("/api/v1/groups/{group}/intake"),
                Some(&owner.user.access),
                json!({"open": true, "categories": ["Straße"], "board": board}),
            )
            .await
            .expect(200);
        }
        // A question hour each in A and C, open now for two hours.
        let s_a = open_session(app, &owner_a, &g_a, "Sprechstunde St. Nikolai").await;
        let s_c = open_session(app, &owner_c, &g_c, "Sprechstunde der Wehr").await;

        let forger = herold::auth::jwt::JwtKeys::from_secret(b"not the installation's key");
        let impostors = vec![
            ("expired operator JWT", app.state.keys.jwt.issue(&operator.id, T0 - 3600 * 1000).expect("jwt")),
            ("operator JWT signed with another key", forger.issue(&operator.id, T0).expect("jwt")),
            ("operator's refresh token as bearer", operator.refresh.clone()),
            ("unknown device token", herold::auth::secrets::new_secret(herold::auth::secrets::DEVICE_PREFIX)),
        ];

        let device = app.device().await;
        app.put(&format!("/api/v1/devices/me/subscriptions/{g_a}"), Some(&device.token), Value::Null).await.expect(200);

        let tokens_of_a = format!("/api/v1/organizations/{}/tokens", owner_a.org_id);
        let new_token =
            |name: &str| app.post(&tokens_of_a, Some(&owner_a.user.access), json!({"name": name, "group_id": g_a}));
        let api_token = new_token("Website").await.expect(201)["secret"].as_str().expect("secret").to_owned();
        let revoked = new_token("Altes Skript").await.expect(201);
        app.delete(
            &format!("/api/v1/organizations/{}/tokens/{}", owner_a.org_id, revoked["id"].as_str().expect("id")),
            Some(&owner_a.user.access),
        )
        .await
        .expect(204);
        let mut impostors = impostors;
        impostors.push(("revoked API token", revoked["secret"].as_str().expect("secret").to_owned()));

        let tokens = [
            None,
            Some(device.token.clone()),
            Some(editor_a.access.clone()),
            Some(owner_a.user.access.clone()),
            Some(owner_b.user.access.clone()),
            Some(admin_w.access.clone()),
            Some(admin_s.access.clone()),
            Some(operator.access.clone()),
        ];
        let names = vec![
            ("{A}", owner_a.org_id.clone()),
            ("{B}", owner_b.org_id.clone()),
            ("{C}", owner_c.org_id.clone()),
            ("{gA}", g_a),
            ("{gB}", g_b),
            ("{gC}", g_c),
            ("{mA}", m_a),
            ("{mB}", m_b),
            ("{mC}", m_c),
            ("{sA}", s_a),
            ("{sC}", s_c),
        ];
        let mut secrets: Vec<String> = names.iter().map(|(_, v)| v.clone()).collect();
        secrets.extend(
            [
                "St. Nikolai Wismar",
                "Hansa Wismar",
                "Feuerwehr",
                "Gemeindebrief St. Nikolai",
                "Spielplan Hansa",
                "Einsatzinfo Strausberg",
                "Adventskonzert im Dom",
                "Heimspiel am Samstag",
                "Sirenenprobe Mittwoch",
                "Sprechstunde St. Nikolai",
                "Sprechstunde der Wehr",
                "buero@st-nikolai.de",
                "vorstand@hansa-wismar.de",
                "wehr@feuerwehr-strausberg.de",
                "redaktion@st-nikolai.de",
            ]
            .map(str::to_owned),
        );
        World {
            device: device.token,
            tokens,
            owners: vec![
                (owner_a.org_id.clone(), owner_a.clone()),
                (owner_b.org_id.clone(), owner_b),
                (owner_c.org_id.clone(), owner_c.clone()),
            ],
            names,
            secrets,
            login: "redaktion@st-nikolai.de".into(),
            bystander: owner_c.user.id,
            impostors,
            api_token,
        }
    }

    /// Replaces every placeholder; panics on one the table misspelled.
    fn expand(&self, template: &str, call: &Call) -> String {
        let mut out = template.to_owned();
        for (name, value) in &self.names {
            out = out.replace(name, value);
        }
        out = out
            .replace("{new}", &call.new)
            .replace("{photo}", &call.photo)
            .replace("{uniq}", &call.uniq)
            .replace("{login}", &self.login)
            .replace("{password}", PASSWORD);
        if let Some(start) = out.find('{') {
            let rest = &out[start + 1..];
            let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(
                word.is_empty() || !rest[word.len()..].starts_with('}'),
                "unknown placeholder {{{word}}} in {template}"
            );
        }
        out
    }

    fn owner_of(&self, org_id: &str) -> &Owner {
        &self.owners.iter().find(|(id, _)| id == org_id).expect("fixture organization").1
    }
}

/// One cell's fresh values.
struct Call {
    uniq: String,
    new: String,
    /// `{photo}`: the photo of a fresh issue.
    photo: String,
    device: Option<String>,
}

impl Call {
    fn blank() -> Call {
        Call { uniq: String::new(), new: String::new(), photo: String::new(), device: None }
    }
}

fn uniq() -> String {
    herold::auth::secrets::new_id().to_lowercase().replace(['-', '_'], "x")
}

async fn prepare(app: &TestApp, world: &World, fresh: Fresh) -> Call {
    let mut call = Call { uniq: uniq(), ..Call::blank() };
    let blank = Call::blank();
    match fresh {
        Fresh::None => {}
        Fresh::Device => call.device = Some(app.device().await.token),
        Fresh::SubscribedDevice(group) => {
            let device = app.device().await.token;
            let group = world.expand(group, &blank);
            app.put(&format!("/api/v1/devices/me/subscriptions/{group}"), Some(&device), Value::Null).await.expect(200);
            call.device = Some(device);
        }
        Fresh::Group(org) => {
            let owner = world.owner_of(&world.expand(org, &blank));
            call.new = app.group(owner, &format!("Wegwerf {}", call.uniq), "other").await;
        }
        Fresh::Member(org) => {
            let owner = world.owner_of(&world.expand(org, &blank));
            let added = app
                .post(
                    &format!("/api/v1/organizations/{}/members", owner.org_id),
                    Some(&owner.user.access),
                    json!({"email": format!("mitglied-{}@example.org", call.uniq)}),
                )
                .await
                .expect(201);
            call.new = added["member"]["user_id"].as_str().expect("member id").to_owned();
        }
        Fresh::Org(town, status) => {
            let (owner, town, status, name) = (
                world.owners[0].1.user.id.clone(),
                town.to_owned(),
                status.to_owned(),
                format!("Verein {}", call.uniq),
            );
            call.new = app
                .with_conn(move |c| {
                    let user = herold::accounts::by_id(c, &owner).expect("owner");
                    let new = herold::orgs::NewOrg { name: &name, description: None, tenant_slug: &town };
                    let org = herold::orgs::create(c, &user, new, T0).expect("organization");
                    diesel::update(organizations::table.find(&org.id))
                        .set(organizations::status.eq(&status))
                        .execute(c)
                        .expect("status");
                    org.id
                })
                .await;
        }
        Fresh::Refresh => {
            let (keys, user) = (app.state.keys.clone(), world.bystander.clone());
            call.new = app
                .with_conn(move |c| {
                    let user = herold::accounts::by_id(c, &user).expect("bystander");
                    herold::accounts::issue_tokens(c, &keys, &user, None, T0).expect("tokens").refresh_token
                })
                .await;
        }
        Fresh::Token(org) => {
            let owner = world.owner_of(&world.expand(org, &blank));
            let group = world.expand(&org.replace('{', "{g"), &blank);
            let created = app
                .post(
                    &format!("/api/v1/organizations/{}/tokens", owner.org_id),
                    Some(&owner.user.access),
                    json!({"name": format!("Skript {}", call.uniq), "group_id": group}),
                )
                .await
                .expect(201);
            call.new = created["id"].as_str().expect("token id").to_owned();
        }
        Fresh::Message(group) => call.new = fresh_message(app, world, group, &call.uniq).await,
        Fresh::HiddenMessage(group) => {
            call.new = fresh_message(app, world, group, &call.uniq).await;
            let id = call.new.clone();
            app.with_conn(move |c| {
                diesel::update(messages::table.find(&id))
                    .set((messages::hidden.eq(true), messages::hidden_reason.eq("Test")))
                    .execute(c)
                    .expect("hide")
            })
            .await;
        }
        Fresh::VerifiedGroup(org) | Fresh::SuspendedGroup(org) => {
            let owner = world.owner_of(&world.expand(org, &blank));
            call.new = app.group(owner, &format!("Wegwerf {}", call.uniq), "other").await;
            let (id, verified) = (call.new.clone(), matches!(fresh, Fresh::VerifiedGroup(_)));
            let status = if verified { "active" } else { "suspended" };
            app.with_conn(move |c| {
                diesel::update(broadcast_groups::table.find(&id))
                    .set((broadcast_groups::verified.eq(verified), broadcast_groups::status.eq(status)))
                    .execute(c)
                    .expect("moderate")
            })
            .await;
        }
        Fresh::Report(group) => {
            let message = fresh_message(app, world, group, &call.uniq).await;
            let device = app.device().await;
            let report = app
                .post(&format!("/api/v1/messages/{message}/reports"), Some(&device.token), json!({"reason": "spam"}))
                .await
                .expect(201);
            call.new = report["id"].as_str().expect("report id").to_owned();
        }
        Fresh::Issue(group) | Fresh::ForeignIssue(group) | Fresh::PublicIssue(group) => {
            let (reporter, issue, photo) = fresh_issue(app, world, group, &call.uniq).await;
            if let Fresh::PublicIssue(_) = fresh {
                let owner = world.owner_of(&world.expand(&group.replace("{g", "{"), &blank));
                app.patch(&format!("/api/v1/issues/{issue}"), Some(&owner.user.access), json!({"public": true}))
                    .await
                    .expect(200);
            }
            if let Fresh::Issue(_) = fresh {
                call.device = Some(reporter);
            }
            (call.new, call.photo) = (issue, photo);
        }
        Fresh::Block(group) => {
            let (_, issue, _) = fresh_issue(app, world, group, &call.uniq).await;
            let owner = world.owner_of(&world.expand(&group.replace("{g", "{"), &blank));
            let staff = Some(owner.user.access.as_str());
            let author = app.get(&format!("/api/v1/issues/{issue}"), staff).await.expect(200)["author"]
                .as_str()
                .expect("author")
                .to_owned();
            app.post(&format!("/api/v1/issues/{issue}/block"), staff, json!({"reason": "Wegwerf"})).await.expect(204);
            let blocks =
                app.get(&format!("/api/v1/organizations/{}/blocks?limit=100", owner.org_id), staff).await.expect(200);
            let block = blocks["items"].as_array().expect("items").iter().find(|b| b["author"] == author.as_str());
            call.new = block.expect("the new block")["id"].as_str().expect("block id").to_owned();
        }
        Fresh::Question(session) | Fresh::VotedQuestion(session) => {
            let session = world.expand(session, &blank);
            let asker = app.device().await;
            let question = app
                .post(
                    &format!("/api/v1/sessions/{session}/questions"),
                    Some(&asker.token),
                    json!({"body": format!("Wegwerf {}", call.uniq)}),
                )
                .await
                .expect(201);
            call.new = question["id"].as_str().expect("question id").to_owned();
            if let Fresh::VotedQuestion(_) = fresh {
                app.put(
                    &format!("/api/v1/sessions/{session}/questions/{}/vote", call.new),
                    Some(&world.device),
                    Value::Null,
                )
                .await
                .expect(200);
            }
        }
        Fresh::OpenSession(group) | Fresh::ScheduledSession(group) => {
            let owner = world.owner_of(&world.expand(&group.replace("{g", "{"), &blank));
            let group = world.expand(group, &blank);
            let title = format!("Wegwerf {}", call.uniq);
            call.new = match fresh {
                Fresh::OpenSession(_) => open_session(app, owner, &group, &title).await,
                _ => {
                    let body = json!({"title": title, "starts_at": herold::model::ts(T0 + DAY),
                                      "ends_at": herold::model::ts(T0 + DAY + 3_600_000)});
                    let session = app
                        .post(&format!("/api/v1/groups/{group}/sessions"), Some(&owner.user.access), body)
                        .await
                        .expect(201);
                    session["id"].as_str().expect("session id").to_owned()
                }
            };
        }
        Fresh::Invite => {
            let email = format!("eingeladen-{}@example.org", call.uniq);
            call.new = app
                .with_conn(move |c| {
                    let user = herold::accounts::create_user(c, &email, None, false, T0).expect("user");
                    herold::accounts::invite(c, &user.id, T0).expect("invite")
                })
                .await;
        }
    }
    call
}

const DAY: i64 = 24 * 3_600_000;

/// A question hour of `group`, open from now for two hours.
async fn open_session(app: &TestApp, owner: &Owner, group: &str, title: &str) -> String {
    let body =
        json!({"title": title, "starts_at": herold::model::ts(T0), "ends_at": herold::model::ts(T0 + 7_200_000)});
    let session =
        app.post(&format!("/api/v1/groups/{group}/sessions"), Some(&owner.user.access), body).await.expect(201);
    session["id"].as_str().expect("session id").to_owned()
}

/// An issue report by a new device in `group` (a placeholder), with one
/// photo: (the device's token, the issue, the photo).
async fn fresh_issue(app: &TestApp, world: &World, group: &str, uniq: &str) -> (String, String, String) {
    let group = world.expand(group, &Call::blank());
    let reporter = app.device().await.token;
    let issue = app
        .post(
            &format!("/api/v1/groups/{group}/issues"),
            Some(&reporter),
            json!({"category": "Straße", "body": format!("Wegwerf {uniq}")}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .expect("issue id")
        .to_owned();
    let photo =
        send_photo(app, &format!("/api/v1/devices/me/issues/{issue}/photos"), Some(&reporter)).await.expect(201)["id"]
            .as_str()
            .expect("photo id")
            .to_owned();
    (reporter, issue, photo)
}

/// POSTs a small JPEG as the raw body, as the PWA uploads a photo.
async fn send_photo(app: &TestApp, path: &str, token: Option<&str>) -> Res {
    let mut req = actix_web::test::TestRequest::post()
        .uri(path)
        .insert_header(("Content-Type", "image/jpeg"))
        .set_payload(crate::photos_fixtures::jpeg(32, 24));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    app.send(req.to_request()).await
}

/// Opens an event stream and reads its status and headers only (its body
/// never ends); an error answer is read whole.
async fn open_stream(app: &TestApp, path: &str, token: Option<&str>) -> Res {
    use actix_web::test;
    let service = test::init_service(herold::app(app.state.clone())).await;
    let mut req = test::TestRequest::get().uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let res = test::call_service(&service, req.to_request()).await;
    let (status, headers) = (res.status(), res.headers().clone());
    if status.is_success() {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "{path}: an event stream, not {content_type:?}");
        return Res { status, headers, body: Value::Null };
    }
    let bytes = test::read_body(res).await;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Res { status, headers, body }
}

/// A new published message in `group` (a placeholder), posted by the owner of its organization.
async fn fresh_message(app: &TestApp, world: &World, group: &str, uniq: &str) -> String {
    let blank = Call::blank();
    let owner = world.owner_of(&world.expand(&group.replace("{g", "{"), &blank));
    app.message(&owner.user, &world.expand(group, &blank), &format!("Wegwerf {uniq}")).await
}

/// Reads the state a row may change, as text.
async fn probe(app: &TestApp, world: &World, probe: Probe, call: &Call) -> String {
    let target = match probe {
        Probe::Followers(t)
        | Probe::Members(t)
        | Probe::Role(t)
        | Probe::Groups(t)
        | Probe::Group(t)
        | Probe::Reports(t)
        | Probe::Messages(t)
        | Probe::Tokens(t)
        | Probe::Intake(t)
        | Probe::Issues(t)
        | Probe::Blocks(t)
        | Probe::QaSessions(t)
        | Probe::Questions(t) => world.expand(t, call),
        _ => String::new(),
    };
    let (new, uniq) = (call.new.clone(), call.uniq.clone());
    app.with_conn(move |c| {
        let count = |r: QueryResult<i64>| r.expect("probe").to_string();
        match probe {
            Probe::None => String::new(),
            Probe::Devices => count(devices::table.count().get_result(c)),
            Probe::DeviceEndpoint => {
                count(devices::table.filter(devices::endpoint.like(format!("%/{uniq}"))).count().get_result(c))
            }
            Probe::Followers(_) => {
                count(subscriptions::table.filter(subscriptions::group_id.eq(&target)).count().get_result(c))
            }
            Probe::Users => count(users::table.count().get_result(c)),
            Probe::Sessions => count(refresh_tokens::table.count().get_result(c)),
            Probe::RefreshRevoked => format!(
                "{:?}",
                refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq(hash_secret(&new)))
                    .select(refresh_tokens::revoked_at)
                    .first::<Option<i64>>(c)
                    .expect("probe")
            ),
            Probe::InviteOpen => {
                count(users::table.filter(users::invite_hash.eq(hash_secret(&new))).count().get_result(c))
            }
            Probe::Orgs => count(organizations::table.count().get_result(c)),
            Probe::OrgStatus => {
                organizations::table.find(&new).select(organizations::status).first::<String>(c).expect("probe")
            }
            Probe::Members(_) => {
                count(memberships::table.filter(memberships::organization_id.eq(&target)).count().get_result(c))
            }
            Probe::Role(_) => format!(
                "{:?}",
                memberships::table
                    .filter(memberships::organization_id.eq(&target))
                    .filter(memberships::user_id.eq(&new))
                    .select(memberships::role)
                    .first::<String>(c)
                    .optional()
                    .expect("probe")
            ),
            Probe::Groups(_) => count(
                broadcast_groups::table.filter(broadcast_groups::organization_id.eq(&target)).count().get_result(c),
            ),
            Probe::Group(_) => format!(
                "{:?}",
                broadcast_groups::table
                    .find(&target)
                    .select((
                        broadcast_groups::name,
                        broadcast_groups::description,
                        broadcast_groups::category,
                        broadcast_groups::status,
                    ))
                    .first::<(String, String, String, String)>(c)
                    .expect("probe")
            ),
            Probe::GroupModeration => format!(
                "{:?}",
                broadcast_groups::table
                    .find(&new)
                    .select((broadcast_groups::verified, broadcast_groups::status))
                    .first::<(bool, String)>(c)
                    .expect("probe")
            ),
            Probe::MessageHidden => format!(
                "{:?}",
                messages::table
                    .find(&new)
                    .select((messages::hidden, messages::hidden_reason))
                    .first::<(bool, Option<String>)>(c)
                    .expect("probe")
            ),
            Probe::Reports(_) => {
                use herold::db::schema::reports;
                count(reports::table.filter(reports::message_id.eq(&target)).count().get_result(c))
            }
            Probe::ReportStatus => {
                use herold::db::schema::reports;
                reports::table.find(&new).select(reports::status).first::<String>(c).expect("probe")
            }
            Probe::Messages(_) => count(messages::table.filter(messages::group_id.eq(&target)).count().get_result(c)),
            Probe::Tokens(_) => {
                count(api_tokens::table.filter(api_tokens::organization_id.eq(&target)).count().get_result(c))
            }
            Probe::TokenRevoked => format!(
                "{:?}",
                api_tokens::table.find(&new).select(api_tokens::revoked_at).first::<Option<i64>>(c).expect("probe")
            ),
            Probe::Notices => count(device_notices::table.count().get_result(c)),
            Probe::Intake(_) => format!(
                "{:?}",
                group_intakes::table
                    .find(&target)
                    .select((group_intakes::open, group_intakes::categories, group_intakes::board))
                    .first::<(bool, String, bool)>(c)
                    .optional()
                    .expect("probe")
            ),
            Probe::Issues(_) => count(issues::table.filter(issues::group_id.eq(&target)).count().get_result(c)),
            Probe::IssuePhotos => {
                count(issue_photos::table.filter(issue_photos::issue_id.eq(&new)).count().get_result(c))
            }
            Probe::IssuePosts => count(issue_posts::table.filter(issue_posts::issue_id.eq(&new)).count().get_result(c)),
            Probe::IssueState => format!(
                "{:?}",
                issues::table
                    .find(&new)
                    .select((issues::status, issues::public))
                    .first::<(String, bool)>(c)
                    .optional()
                    .expect("probe")
            ),
            Probe::Blocks(_) => {
                count(device_blocks::table.filter(device_blocks::organization_id.eq(&target)).count().get_result(c))
            }
            Probe::QaSessions(_) => {
                count(qa_sessions::table.filter(qa_sessions::group_id.eq(&target)).count().get_result(c))
            }
            Probe::Questions(_) => {
                count(qa_questions::table.filter(qa_questions::session_id.eq(&target)).count().get_result(c))
            }
            Probe::Votes => count(qa_votes::table.filter(qa_votes::question_id.eq(&new)).count().get_result(c)),
            Probe::QuestionState => format!(
                "{:?}",
                qa_questions::table
                    .find(&new)
                    .select((qa_questions::status, qa_questions::answer))
                    .first::<(String, Option<String>)>(c)
                    .expect("probe")
            ),
            Probe::SessionState => format!(
                "{:?}",
                qa_sessions::table
                    .find(&new)
                    .select((qa_sessions::ends_at, qa_sessions::cancelled))
                    .first::<(i64, bool)>(c)
                    .expect("probe")
            ),
        }
    })
    .await
}

both_backends!(
    async fn every_route_every_role(app: TestApp) {
        let world = World::build(&app).await;
        let failures = run_matrix(&app, &world).await;
        assert!(
            failures.is_empty(),
            "{} cell(s) of the authorization matrix differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
        allowed_reads_stay_scoped(&app, &world).await;
        no_self_promotion(&app, &world).await;
    }
);

both_backends!(
    async fn every_route_has_a_row(app: TestApp) {
        let doc = app.get("/api/openapi.json", None).await.expect(200);
        check_route_coverage(&doc);
    }
);

/// Runs every cell; returns a line per cell that differs from the table.
async fn run_matrix(app: &TestApp, world: &World) -> Vec<String> {
    for row in ROWS {
        for status in row.expect {
            assert!(
                [200, 201, 202, 204, 401, 403, 404].contains(&status),
                "{} {}: {status} is neither allowed (2xx) nor denied (401/403/404)",
                row.method,
                row.path
            );
        }
    }
    let mut failures = Vec::new();
    for row in ROWS {
        let method = Method::from_bytes(row.method.as_bytes()).expect("HTTP method");
        // The eight columns, then the impostors, who get what the anonymous
        // caller gets, then the API token of group A.
        let callers = ROLES
            .iter()
            .enumerate()
            .map(|(col, role)| (*role, Some(col), row.expect[col]))
            .chain(world.impostors.iter().map(|(name, _)| (*name, None, row.expect[0])))
            .chain([(API_TOKEN, None, api_token_expects(row))]);
        for (role, col, want) in callers {
            let call = prepare(app, world, row.fresh).await;
            let path = world.expand(row.path, &call);
            let body = if row.body.is_empty() || row.body == PHOTO {
                Value::Null
            } else {
                serde_json::from_str(&world.expand(row.body, &call)).expect("row body is JSON")
            };
            let token = match (col, &call.device) {
                (Some(1), Some(fresh)) => Some(fresh.clone()),
                (Some(col), _) => world.tokens[col].clone(),
                (None, _) if role == API_TOKEN => Some(world.api_token.clone()),
                (None, _) => world.impostors.iter().find(|(name, _)| *name == role).map(|(_, t)| t.clone()),
            };
            let before = probe(app, world, row.probe, &call).await;
            let res = if row.body == PHOTO {
                send_photo(app, &path, token.as_deref()).await
            } else if row.path.ends_with("/events") {
                open_stream(app, &path, token.as_deref()).await
            } else {
                app.call(method.clone(), &path, token.as_deref(), body).await
            };
            let after = probe(app, world, row.probe, &call).await;

            let got = res.status.as_u16();
            let cell = format!("{} {} [{:?}] as {role}", row.method, row.path, row.fresh);
            if got != want {
                failures.push(format!("{cell}: expected {want}, got {got}: {}", res.body));
                continue;
            }
            if (200..300).contains(&want) {
                if !matches!(row.probe, Probe::None) && before == after {
                    failures.push(format!("{cell}: allowed ({got}) but {:?} is unchanged: {before}", row.probe));
                }
                continue;
            }
            if before != after {
                failures.push(format!("{cell}: denied ({got}) but {:?} changed: {before} -> {after}", row.probe));
            }
            if res.body["code"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{cell}: denial without an error code: {}", res.body));
            }
            for key in ["id", "title", "name", "items", "email", "organization", "member", "stats"] {
                if res.body.get(key).is_some() {
                    failures.push(format!("{cell}: denial carries `{key}`: {}", res.body));
                }
            }
            let text = res.body.to_string();
            for secret in world.secrets.iter().chain([&call.new]).filter(|s| !s.is_empty()) {
                if text.contains(secret.as_str()) {
                    failures.push(format!("{cell}: denial shows target data `{secret}`: {text}"));
                }
            }
        }
    }
    failures
}

const API_TOKEN: &str = "API token of group A";

/// An API token counts for nothing but posting: to its own group (201), to
/// any other group (403 `token_scope`).
fn api_token_expects(row: &Row) -> u16 {
    match (row.method, row.path) {
        ("POST", "/api/v1/groups/{gA}/messages") => 201,
        ("POST", "/api/v1/groups/{gB}/messages" | "/api/v1/groups/{gC}/messages") => 403,
        _ => row.expect[0],
    }
}

/// Allowed reads show only what the caller may see.
async fn allowed_reads_stay_scoped(app: &TestApp, world: &World) {
    let id = |name: &str| world.names.iter().find(|(n, _)| *n == name).expect("fixture").1.clone();
    let token = |col: usize| world.tokens[col].as_deref();
    let (a, b, c, g_a) = (id("{A}"), id("{B}"), id("{C}"), id("{gA}"));

    // A group's feed: members of its organization get statistics, nobody else.
    for (col, role) in ROLES.iter().enumerate() {
        let feed = app.get(&format!("/api/v1/groups/{g_a}/messages"), token(col)).await.expect(200);
        let item = &feed["items"][0];
        assert!(item["title"].is_string(), "{role}: empty feed: {feed}");
        let member = col == 2 || col == 3;
        assert_eq!(item.get("stats").is_some(), member, "{role} sees member view: {item}");
        assert_eq!(item.get("status").is_some(), member, "{role} sees message status: {item}");
    }

    // Own organizations only.
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().expect("items").iter().map(|o| o["id"].as_str().expect("id").to_owned()).collect()
    };
    let mine = app.get("/api/v1/organizations/mine", token(2)).await.expect(200);
    assert!(mine["items"].as_array().expect("items").iter().any(|o| o["id"] == a.as_str() && o["role"] == "editor"));
    for col in [2, 3] {
        let mine = ids(&app.get("/api/v1/organizations/mine", token(col)).await.expect(200));
        assert!(mine.contains(&a) && !mine.contains(&b) && !mine.contains(&c), "{}: {mine:?}", ROLES[col]);
    }
    let mine = ids(&app.get("/api/v1/organizations/mine", token(4)).await.expect(200));
    assert!(mine.contains(&b) && !mine.contains(&a) && !mine.contains(&c), "owner of B: {mine:?}");
    for col in [5, 6, 7] {
        let mine = ids(&app.get("/api/v1/organizations/mine", token(col)).await.expect(200));
        assert!(![&a, &b, &c].iter().any(|o| mine.contains(o)), "{}: {mine:?}", ROLES[col]);
    }

    // A city admin's list is the own town's; the operator's any town's.
    // (Every page: the fixtures share one timestamp, so their order is by id.)
    let all_pages = |path: &'static str, col: usize| async move {
        let mut found = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = app.get(&format!("{path}?limit=100{cursor}"), token(col)).await.expect(200);
            found.extend(ids(&page));
            match page["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return found,
            }
        }
    };
    let wismar = all_pages("/api/v1/admin/tenants/wismar/organizations", 5).await;
    assert!(wismar.contains(&a) && wismar.contains(&b) && !wismar.contains(&c), "admin wismar: {wismar:?}");
    let strausberg = all_pages("/api/v1/admin/tenants/strausberg/organizations", 6).await;
    assert!(strausberg.contains(&c) && !strausberg.contains(&a) && !strausberg.contains(&b), "{strausberg:?}");
    let strausberg = all_pages("/api/v1/admin/tenants/strausberg/organizations", 7).await;
    assert!(strausberg.contains(&c) && !strausberg.contains(&a), "operator: {strausberg:?}");

    // Who am I: the admin's towns, the operator flag.
    let me = app.get("/api/v1/me", token(6)).await.expect(200);
    assert_eq!(me["city_admin_of"], json!(["strausberg"]));
    assert_eq!(me["platform_admin"], false);
    let me = app.get("/api/v1/me", token(7)).await.expect(200);
    assert_eq!(me["platform_admin"], true);

    // A device sees its own subscriptions only.
    let subs = app.get("/api/v1/devices/me/subscriptions", Some(&world.device)).await.expect(200);
    assert_eq!(ids(&subs), vec![g_a.clone()]);
    let other = app.device().await;
    let subs = app.get("/api/v1/devices/me/subscriptions", Some(&other.token)).await.expect(200);
    assert_eq!(subs["items"], json!([]));
    let inbox = app.get("/api/v1/devices/me/inbox", Some(&other.token)).await.expect(200);
    assert_eq!(inbox["items"], json!([]));

    // Issue reports: a device lists its own only; an inbox holds its
    // organization's only; the board shows no pseudonym.
    let reports = app.get("/api/v1/devices/me/issues", Some(&other.token)).await.expect(200);
    assert_eq!(reports["items"], json!([]));
    let reports = app.get("/api/v1/devices/me/issues", Some(&world.device)).await.expect(200);
    assert_eq!(reports["items"], json!([]), "the world's device filed nothing");
    let inbox = app.get(&format!("/api/v1/organizations/{a}/issues?limit=100"), token(3)).await.expect(200);
    let items = inbox["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{inbox}");
    assert!(items.iter().all(|i| i["organization"]["id"] == a.as_str()), "another organization's report: {inbox}");
    let board = app.get(&format!("/api/v1/groups/{g_a}/board?limit=100"), None).await.expect(200);
    assert!(!board["items"].as_array().expect("items").is_empty(), "{board}");
    assert!(!board.to_string().contains("author"), "the board shows a pseudonym: {board}");

    // A question hour shows the askers' pseudonyms to its organization's members only.
    let s_a = id("{sA}");
    for (col, role) in ROLES.iter().enumerate() {
        let session = app.get(&format!("/api/v1/sessions/{s_a}"), token(col)).await.expect(200);
        let questions = session["questions"].as_array().expect("questions");
        assert!(!questions.is_empty(), "{role}: {session}");
        let member = col == 2 || col == 3;
        assert!(questions.iter().all(|q| q.get("author").is_some() == member), "{role} and pseudonyms: {session}");
    }
}

/// Members cannot raise their own role or join someone else's organization;
/// any member may leave.
async fn no_self_promotion(app: &TestApp, world: &World) {
    let id = |name: &str| world.names.iter().find(|(n, _)| *n == name).expect("fixture").1.clone();
    let token = |col: usize| world.tokens[col].as_deref();
    let (a, b) = (id("{A}"), id("{B}"));
    let me = |col: usize| async move {
        app.get("/api/v1/me", token(col)).await.expect(200)["id"].as_str().expect("id").to_owned()
    };
    let role_in = |org: String, user: String| {
        app.with_conn(move |c| {
            memberships::table
                .filter(memberships::organization_id.eq(org))
                .filter(memberships::user_id.eq(user))
                .select(memberships::role)
                .first::<String>(c)
                .optional()
                .expect("role")
        })
    };
    let (editor, owner_b) = (me(2).await, me(4).await);

    // The editor makes itself owner: refused, still editor.
    app.patch(&format!("/api/v1/organizations/{a}/members/{editor}"), token(2), json!({"role": "owner"}))
        .await
        .expect_error(403, "owner_required");
    assert_eq!(role_in(a.clone(), editor.clone()).await.as_deref(), Some("editor"));
    // The owner of B adds itself to A, or promotes itself there: A does not exist for it.
    let res = app
        .post(
            &format!("/api/v1/organizations/{a}/members"),
            token(4),
            json!({"email": "vorstand@hansa-wismar.de", "role": "owner"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 404, "{}", res.body);
    let res =
        app.patch(&format!("/api/v1/organizations/{a}/members/{owner_b}"), token(4), json!({"role": "owner"})).await;
    assert_eq!(res.status.as_u16(), 404, "{}", res.body);
    assert_eq!(role_in(a.clone(), owner_b.clone()).await, None);
    // A city admin of the town is no member either.
    let res = app
        .post(
            &format!("/api/v1/organizations/{b}/members"),
            token(5),
            json!({"email": "rathaus@wismar.de", "role": "owner"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 404, "{}", res.body);

    // Any member may leave; afterwards the organization is closed to it.
    let added = app
        .post(
            &format!("/api/v1/organizations/{a}/members"),
            Some(&world.owners[0].1.user.access),
            json!({"email": "aushilfe@st-nikolai.de"}),
        )
        .await
        .expect(201);
    let invite = added["invite_token"].as_str().expect("invite").to_owned();
    let helper = User::from_tokens(
        &app.post("/api/v1/auth/accept-invite", None, json!({"invite_token": invite, "password": PASSWORD}))
            .await
            .expect(200),
    );
    app.get(&format!("/api/v1/organizations/{a}"), Some(&helper.access)).await.expect(200);
    app.delete(&format!("/api/v1/organizations/{a}/members/{editor}"), Some(&helper.access))
        .await
        .expect_error(403, "owner_required");
    app.delete(&format!("/api/v1/organizations/{a}/members/{}", helper.id), Some(&helper.access)).await.expect(204);
    assert_eq!(role_in(a.clone(), helper.id.clone()).await, None);
    let res = app.get(&format!("/api/v1/organizations/{a}"), Some(&helper.access)).await;
    assert_eq!(res.status.as_u16(), 404, "{}", res.body);
    let res = app
        .post(
            &format!("/api/v1/groups/{}/messages", id("{gA}")),
            Some(&helper.access),
            json!({"title": "x", "body": "y"}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 404, "{}", res.body);
}

/// (METHOD, path) of every operation the OpenAPI document and the route
/// tables in `server/api/*.rs` declare; each needs a row.
fn check_route_coverage(doc: &Value) {
    let mut routes: BTreeSet<(String, String, &str)> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone(), "openapi.json"));
            }
        }
    }
    assert!(routes.len() > 10, "the OpenAPI document lists too few operations: {doc}");
    let scanned = scan_route_tables();
    assert!(scanned.len() > 10, "found too few routes in server/api: {scanned:?}");
    for (method, path) in scanned {
        routes.insert((method, path, "server/api"));
    }

    let mut missing = Vec::new();
    for (method, route, source) in &routes {
        let covered = ROWS
            .iter()
            .any(|row| row.method == method && best_route(row, &routes).is_some_and(|(_, best, _)| best == route));
        if !covered {
            missing.push(format!("{method} {route} (from {source})"));
        }
    }
    assert!(missing.is_empty(), "routes without a row in the authorization matrix:\n{}", missing.join("\n"));
    let stale: Vec<String> = ROWS
        .iter()
        .filter(|row| best_route(row, &routes).is_none())
        .map(|row| format!("{} {}", row.method, row.path))
        .collect();
    assert!(stale.is_empty(), "rows that match no route:\n{}", stale.join("\n"));
}

/// The route a row's request reaches: same method, same segments, where a
/// `{param}` segment matches anything; the most literal route wins
/// (`/organizations/mine` before `/organizations/{id}`).
fn best_route<'r>(
    row: &Row,
    routes: &'r BTreeSet<(String, String, &'static str)>,
) -> Option<&'r (String, String, &'static str)> {
    let path = row.path.split('?').next().unwrap_or_default();
    let want: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .filter(|(method, _, _)| method == row.method)
        .filter_map(|route| {
            let have: Vec<&str> = route.1.split('/').collect();
            if have.len() != want.len() {
                return None;
            }
            let mut literal = 0;
            for (h, w) in have.iter().zip(&want) {
                if h.starts_with('{') {
                    continue;
                }
                if h != w {
                    return None;
                }
                literal += 1;
            }
            Some((literal, route))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, route)| route)
}

/// Every `.route("path", web::method()…)` of `server/api/*.rs`. The
/// modules are mounted under `/api/v1`, except `system.rs` (at the root).
fn scan_route_tables() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("server/api");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("server/api") {
        let file = entry.expect("dir entry").path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let prefix = if file.file_name().is_some_and(|n| n == "system.rs") { "" } else { "/api/v1" };
        let text: String =
            std::fs::read_to_string(&file).expect("source").chars().filter(|c| !c.is_whitespace()).collect();
        for (at, _) in text.match_indices(".route(\"") {
            let rest = &text[at + ".route(\"".len()..];
            let Some(end) = rest.find('"') else { continue };
            let path = &rest[..end];
            let after = &rest[end + 1..];
            let Some(method) = after.strip_prefix(",web::").and_then(|m| m.split_once('(')).map(|(m, _)| m) else {
                continue;
            };
            found.push((method.to_uppercase(), format!("{prefix}{path}")));
        }
    }
    found
}
