//! Public reference data: countries and their first-level regions. Anonymous callers are
//! welcome; an invalid bearer is still refused (`MaybePrincipal`), as on every public read.

use axum::extract::{Path, State};
use axum::Json as JsonOut;
use kernel::auth::MaybePrincipal;
use kernel::extract::Query;
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde::Deserialize;
use serde_json::Value;

use crate::api::paging::PageRequest;
use crate::data::geo;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CountryParams {
    page: Option<String>,
    limit: Option<String>,
    page_size: Option<String>,
    search: Option<String>,
}

/// Countries, by name (default 10 a page).
#[utoipa::path(get, path = "/api/v1/auth/country/", tag = "reference", params(CountryParams),
    responses((status = 200, description = "auth pagination of Country")))]
pub async fn list_countries(
    State(ctx): State<ServiceContext>,
    _caller: MaybePrincipal,
    Query(p): Query<CountryParams>,
) -> Result<JsonOut<Value>, ApiError> {
    let page = PageRequest::parse(
        p.page.as_deref(),
        p.limit.as_deref(),
        p.page_size.as_deref(),
        10,
    )?;
    let search = p.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (count, rows) = geo::countries(&ctx.pool, search, page.limit, page.offset()).await?;
    page.body(count, rows).map(JsonOut)
}

/// One country by slug.
#[utoipa::path(get, path = "/api/v1/auth/country/{slug}/", tag = "reference",
    responses((status = 200, description = "Country"), (status = 404, description = "unknown slug")))]
pub async fn get_country(
    State(ctx): State<ServiceContext>,
    _caller: MaybePrincipal,
    Path(slug): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    geo::country(&ctx.pool, &slug)
        .await?
        .map(JsonOut)
        .ok_or_else(ApiError::not_found)
}

/// The regions of a country, by name.
#[utoipa::path(get, path = "/api/v1/auth/region/{country_slug}/", tag = "reference",
    responses((status = 200, description = "[Region]"), (status = 404, description = "unknown country")))]
pub async fn list_regions(
    State(ctx): State<ServiceContext>,
    _caller: MaybePrincipal,
    Path(slug): Path<String>,
) -> Result<JsonOut<Vec<Value>>, ApiError> {
    geo::regions(&ctx.pool, &slug)
        .await?
        .map(JsonOut)
        .ok_or_else(ApiError::not_found)
}
