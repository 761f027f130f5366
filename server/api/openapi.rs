//! The OpenAPI document, generated from the handlers' annotations. Served
//! as JSON only: UI bundles that load from a CDN would break the privacy rule.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, issues, moderation, organizations, public, residents, tokens};

#[derive(OpenApi)]
#[openapi(
    info(title = "Herold API", description = "Local broadcast groups delivered by Web Push. Errors are JSON `{code, message}`."),
    paths(
        public::list_tenants, public::directory, public::group, public::group_messages, public::message, public::vapid_public_key,
        public::group_qr,
        residents::create_device, residents::update_push, residents::erase_device, residents::list_subscriptions,
        residents::subscribe, residents::unsubscribe, residents::inbox, residents::test_notification,
        organizations::register, organizations::login, organizations::refresh, organizations::logout,
        organizations::accept_invite, organizations::me, organizations::create_organization,
        organizations::my_organizations, organizations::organization, organizations::members,
        organizations::add_member, organizations::change_member, organizations::remove_member,
        organizations::organization_groups, organizations::create_group, organizations::update_group,
        organizations::archive_group, organizations::post_message, organizations::message_stats,
        organizations::subscriber_history,
        tokens::create_token, tokens::list_tokens, tokens::revoke_token,
        admin::organizations, admin::decide, admin::send_alert, admin::list_alerts,
        moderation::report, moderation::town_groups, moderation::group_action, moderation::message_action,
        moderation::reports, moderation::resolve, moderation::town_audit, moderation::all_audit,
        issues::intake, issues::set_intake, issues::create_issue, issues::upload_photo, issues::my_issues,
        issues::my_issue, issues::delete_my_issue, issues::post_to_my_issue, issues::my_photo, issues::org_issues,
        issues::org_issue, issues::reply, issues::update_issue, issues::org_photo, issues::block, issues::blocks,
        issues::unblock, issues::board, issues::board_photo,
        super::qa::create_session, super::qa::group_sessions, super::qa::session, super::qa::session_events, super::qa::ask, super::qa::vote, super::qa::unvote, super::qa::answer, super::qa::dismiss, super::qa::block, super::qa::end_session, super::qa::cancel_session,
    ),
    modifiers(&BearerSchemes),
)]
struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        components.add_security_scheme("jwt", SecurityScheme::Http(jwt));
        components.add_security_scheme("device", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        // An organization's API token (`hapi_…`): posts to its one group.
        components.add_security_scheme("api_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
