//! Countries and regions: bundled ISO 3166 data, loaded once into the database.

use kernel::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;

const GEO_JSON: &str = include_str!("../../data/geo.json");

#[derive(Deserialize)]
struct Bundle {
    countries: Vec<CountrySeed>,
    regions: Vec<RegionSeed>,
}

#[derive(Deserialize)]
struct CountrySeed {
    code2: String,
    code3: String,
    numeric: String,
    name: String,
    name_ascii: String,
    slug: String,
    official_name: String,
    tld: String,
    translations: Value,
}

#[derive(Deserialize)]
struct RegionSeed {
    country: String,
    code: String,
    name: String,
    name_ascii: String,
    slug: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Loads the bundled data when the tables are empty (idempotent, safe when two processes race).
pub async fn seed(db: &PgPool) -> anyhow::Result<()> {
    let loaded: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM countries)")
        .fetch_one(db)
        .await?;
    if loaded {
        return Ok(());
    }
    let bundle: Bundle = serde_json::from_str(GEO_JSON)?;
    let mut tx = db.begin().await?;
    let col =
        |f: fn(&CountrySeed) -> String| bundle.countries.iter().map(f).collect::<Vec<String>>();
    sqlx::query(
        "INSERT INTO countries (code2, code3, numeric_code, name, name_ascii, slug, official_name, tld, translations) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::jsonb[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(col(|c| c.code2.clone()))
    .bind(col(|c| c.code3.clone()))
    .bind(col(|c| c.numeric.clone()))
    .bind(col(|c| c.name.clone()))
    .bind(col(|c| c.name_ascii.clone()))
    .bind(col(|c| c.slug.clone()))
    .bind(col(|c| c.official_name.clone()))
    .bind(col(|c| c.tld.clone()))
    .bind(bundle.countries.iter().map(|c| c.translations.clone()).collect::<Vec<Value>>())
    .execute(&mut *tx)
    .await?;
    let rcol = |f: fn(&RegionSeed) -> String| bundle.regions.iter().map(f).collect::<Vec<String>>();
    sqlx::query(
        "INSERT INTO regions (country_id, code, name, name_ascii, slug, kind) \
         SELECT c.id, r.code, r.name, r.name_ascii, r.slug, r.kind \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
              AS r(country, code, name, name_ascii, slug, kind) \
         JOIN countries c ON c.code2 = r.country ON CONFLICT DO NOTHING",
    )
    .bind(rcol(|r| r.country.clone()))
    .bind(rcol(|r| r.code.clone()))
    .bind(rcol(|r| r.name.clone()))
    .bind(rcol(|r| r.name_ascii.clone()))
    .bind(rcol(|r| r.slug.clone()))
    .bind(rcol(|r| r.kind.clone()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct CountryRow {
    id: i64,
    code2: String,
    code3: String,
    name: String,
    name_ascii: String,
    slug: String,
    tld: String,
    translations: Value,
}

/// The Country object (auth.md §3); GeoNames-only fields are null in the ISO dataset.
fn country_json(c: CountryRow) -> Value {
    json!({
        "id": c.id, "name": c.name, "name_ascii": c.name_ascii, "slug": c.slug,
        "geoname_id": null, "alternate_names": "", "translations": c.translations,
        "code2": c.code2, "code3": c.code3, "continent": null, "tld": c.tld, "phone": null,
    })
}

const COUNTRY: &str = "id, code2, code3, name, name_ascii, slug, tld, translations";

pub async fn countries(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Value>), ApiError> {
    let pattern = search.map(|s| format!("%{}%", kernel::list::escape_like(s)));
    let filter = "($1::text IS NULL OR name ILIKE $1 OR name_ascii ILIKE $1 OR code2 ILIKE $1 OR translations::text ILIKE $1)";
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM countries WHERE {filter}"))
        .bind(&pattern)
        .fetch_one(db)
        .await?;
    let rows: Vec<CountryRow> = sqlx::query_as(&format!(
        "SELECT {COUNTRY} FROM countries WHERE {filter} ORDER BY name, id LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    Ok((count, rows.into_iter().map(country_json).collect()))
}

pub async fn country(db: &PgPool, slug: &str) -> Result<Option<Value>, ApiError> {
    let row: Option<CountryRow> = sqlx::query_as(&format!(
        "SELECT {COUNTRY} FROM countries WHERE slug = lower($1)"
    ))
    .bind(slug)
    .fetch_optional(db)
    .await?;
    Ok(row.map(country_json))
}

#[derive(sqlx::FromRow)]
struct RegionRow {
    id: i64,
    country: String,
    code: String,
    name: String,
    name_ascii: String,
    slug: String,
}

/// Regions of a country ordered by name; `None` when the country is unknown.
pub async fn regions(db: &PgPool, country_slug: &str) -> Result<Option<Vec<Value>>, ApiError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM countries WHERE slug = lower($1))")
            .bind(country_slug)
            .fetch_one(db)
            .await?;
    if !exists {
        return Ok(None);
    }
    let rows: Vec<RegionRow> = sqlx::query_as(
        "SELECT r.id, c.name AS country, r.code, r.name, r.name_ascii, r.slug FROM regions r \
         JOIN countries c ON c.id = r.country_id WHERE c.slug = lower($1) ORDER BY r.name, r.id",
    )
    .bind(country_slug)
    .fetch_all(db)
    .await?;
    Ok(Some(
        rows.into_iter()
            .map(|r| {
                json!({
                    "id": r.id, "country": r.country, "name": r.name, "name_ascii": r.name_ascii,
                    "slug": r.slug, "geoname_id": null, "alternate_names": "", "translations": {},
                    "display_name": format!("{}, {}", r.name, r.country), "geoname_code": r.code,
                })
            })
            .collect(),
    ))
}
