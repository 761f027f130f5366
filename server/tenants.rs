//! Tenants: the municipalities. Created by the operator (CLI), listed publicly.

use diesel::prelude::*;
use serde::Serialize;

use crate::auth::secrets::new_id;
use crate::db::schema::tenants;
use crate::db::DbConn;
use crate::error::{ApiError, ApiResult};
use crate::validate;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView { slug: t.slug, name: t.name }
    }
}

pub fn create(conn: &mut DbConn, slug: &str, name: &str, now: i64) -> ApiResult<Tenant> {
    let slug = validate::slug(slug)?;
    let name = validate::text("name", name, 1, 120, false)?;
    if by_slug(conn, &slug).is_ok() {
        return Err(ApiError::conflict("tenant_exists", format!("tenant '{slug}' already exists")));
    }
    let tenant = Tenant { id: new_id(), slug, name, created_at: now };
    diesel::insert_into(tenants::table)
        .values((
            tenants::id.eq(&tenant.id),
            tenants::slug.eq(&tenant.slug),
            tenants::name.eq(&tenant.name),
            tenants::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(tenant)
}

pub fn by_slug(conn: &mut DbConn, slug: &str) -> ApiResult<Tenant> {
    tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .optional()?
        .ok_or(ApiError::NotFound("tenant"))
}

pub fn by_id(conn: &mut DbConn, id: &str) -> ApiResult<Tenant> {
    tenants::table.find(id).select(Tenant::as_select()).first(conn).optional()?.ok_or(ApiError::NotFound("tenant"))
}

pub fn list(conn: &mut DbConn) -> ApiResult<Vec<TenantView>> {
    Ok(tenants::table
        .order(tenants::name.asc())
        .select(Tenant::as_select())
        .load(conn)?
        .into_iter()
        .map(TenantView::from)
        .collect())
}
