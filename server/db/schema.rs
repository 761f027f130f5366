//! The diesel table definitions, shared by both backends. Kept by hand in
//! step with `migrations/{sqlite,postgres}`; the migration test checks that
//! both schemas expose exactly these tables and columns.

diesel::table! {
    tenants (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        invite_hash -> Nullable<Text>,
        invite_expires_at -> Nullable<BigInt>,
        is_platform_admin -> Bool,
        failed_logins -> Integer,
        locked_until -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    organizations (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        description -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        kind -> Text,
    }
}

diesel::table! {
    memberships (organization_id, user_id) {
        organization_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    city_admins (tenant_id, user_id) {
        tenant_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    broadcast_groups (id) {
        id -> Text,
        tenant_id -> Text,
        organization_id -> Text,
        name -> Text,
        description -> Text,
        category -> Text,
        verified -> Bool,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        subscriber_count -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        tenant_id -> Text,
        group_id -> Text,
        title -> Text,
        body -> Text,
        url -> Nullable<Text>,
        urgency -> Text,
        ttl_seconds -> Integer,
        publish_at -> BigInt,
        hidden -> Bool,
        hidden_reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> BigInt,
        recipients -> BigInt,
        delivered -> BigInt,
        gone -> BigInt,
        failed -> BigInt,
        last_failure -> Nullable<Text>,
        kind -> Text,
    }
}

diesel::table! {
    fanout_jobs (id) {
        id -> Text,
        message_id -> Text,
        run_at -> BigInt,
        state -> Text,
        cursor -> Nullable<Text>,
        leased_until -> Nullable<BigInt>,
        attempts -> Integer,
        created_at -> BigInt,
        finished_at -> Nullable<BigInt>,
        scope -> Text,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        token_hash -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    subscriptions (device_id, group_id) {
        device_id -> Text,
        group_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    reports (id) {
        id -> Text,
        tenant_id -> Text,
        message_id -> Text,
        device_id -> Nullable<Text>,
        reason -> Text,
        details -> Text,
        status -> Text,
        resolution -> Nullable<Text>,
        created_at -> BigInt,
        resolved_at -> Nullable<BigInt>,
        resolved_by -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        actor -> Text,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        reason -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    delivery_retries (id) {
        id -> Text,
        message_id -> Text,
        device_id -> Text,
        attempts -> Integer,
        next_at -> BigInt,
        leased_until -> Nullable<BigInt>,
        last_error -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        organization_id -> Text,
        group_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_by -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    device_notices (id) {
        id -> Text,
        device_id -> Text,
        kind -> Text,
        payload -> Text,
        urgency -> Text,
        expires_at -> BigInt,
        attempts -> Integer,
        next_at -> BigInt,
        leased_until -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    subscriber_counts (group_id, day) {
        group_id -> Text,
        day -> Text,
        subscribers -> BigInt,
    }
}

diesel::table! {
    group_intakes (group_id) {
        group_id -> Text,
        open -> Bool,
        categories -> Text,
        board -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    issues (id) {
        id -> Text,
        tenant_id -> Text,
        organization_id -> Text,
        group_id -> Text,
        device_id -> Text,
        author -> Text,
        category -> Text,
        body -> Text,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        address -> Nullable<Text>,
        lang -> Text,
        status -> Text,
        public -> Bool,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    issue_posts (id) {
        id -> Text,
        issue_id -> Text,
        from_org -> Bool,
        user_id -> Nullable<Text>,
        body -> Nullable<Text>,
        status -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    issue_photos (id) {
        id -> Text,
        issue_id -> Text,
        content_type -> Text,
        width -> Integer,
        height -> Integer,
        bytes -> Integer,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    device_blocks (id) {
        id -> Text,
        organization_id -> Text,
        device_id -> Text,
        author -> Text,
        reason -> Text,
        created_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    qa_sessions (id) {
        id -> Text,
        tenant_id -> Text,
        organization_id -> Text,
        group_id -> Text,
        title -> Text,
        description -> Text,
        starts_at -> BigInt,
        ends_at -> BigInt,
        message_id -> Nullable<Text>,
        cancelled -> Bool,
        version -> BigInt,
        created_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    qa_questions (id) {
        id -> Text,
        session_id -> Text,
        device_id -> Nullable<Text>,
        author -> Text,
        body -> Text,
        lang -> Text,
        status -> Text,
        answer -> Nullable<Text>,
        answer_public -> Bool,
        answered_by -> Nullable<Text>,
        answered_at -> Nullable<BigInt>,
        version -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    qa_votes (question_id, device_id) {
        question_id -> Text,
        device_id -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(organizations -> tenants (tenant_id));
diesel::joinable!(memberships -> organizations (organization_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(city_admins -> tenants (tenant_id));
diesel::joinable!(broadcast_groups -> organizations (organization_id));
diesel::joinable!(broadcast_groups -> tenants (tenant_id));
diesel::joinable!(messages -> broadcast_groups (group_id));
diesel::joinable!(fanout_jobs -> messages (message_id));
diesel::joinable!(subscriptions -> devices (device_id));
diesel::joinable!(subscriptions -> broadcast_groups (group_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(delivery_retries -> messages (message_id));
diesel::joinable!(api_tokens -> organizations (organization_id));
diesel::joinable!(api_tokens -> broadcast_groups (group_id));
diesel::joinable!(reports -> messages (message_id));
diesel::joinable!(delivery_retries -> devices (device_id));
diesel::joinable!(device_notices -> devices (device_id));
diesel::joinable!(subscriber_counts -> broadcast_groups (group_id));
diesel::joinable!(group_intakes -> broadcast_groups (group_id));
diesel::joinable!(issues -> broadcast_groups (group_id));
diesel::joinable!(issues -> organizations (organization_id));
diesel::joinable!(issue_posts -> issues (issue_id));
diesel::joinable!(issue_photos -> issues (issue_id));
diesel::joinable!(device_blocks -> organizations (organization_id));
diesel::joinable!(qa_sessions -> broadcast_groups (group_id));
diesel::joinable!(qa_sessions -> organizations (organization_id));
diesel::joinable!(qa_questions -> qa_sessions (session_id));
diesel::joinable!(qa_votes -> qa_questions (question_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    users,
    organizations,
    memberships,
    city_admins,
    broadcast_groups,
    messages,
    fanout_jobs,
    devices,
    subscriptions,
    refresh_tokens,
    reports,
    audit_log,
    delivery_retries,
    api_tokens,
    server_secrets,
    device_notices,
    subscriber_counts,
    group_intakes,
    issues,
    issue_posts,
    issue_photos,
    device_blocks,
    qa_sessions,
    qa_questions,
    qa_votes,
);
