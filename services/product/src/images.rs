//! Product images (contract product.md §2.4). The file is a public attachment of the project
//! (uploaded through the project service's checks: type from content, size, quota); a row here
//! links it to a product with its alt text, position and the primary flag. A product with images
//! always has exactly one primary: the first image becomes primary, choosing another clears the
//! old one in the same transaction, and deleting the primary promotes the lowest position.

use async_trait::async_trait;
use integration::files::{FileUpload, SharedProjectFiles, StoredFile};
use kernel::auth::{ProjectScope, ReadScope};
use kernel::extract::FilePart;
use kernel::list::{Field as Col, Kind, ListQuery, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Hooks, Resource, Values, Write, Written};
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::catalogue::GRANTS;
use crate::products::PRODUCT;

/// At most this many live images per product.
pub const MAX_IMAGES: i64 = 50;

pub static PRODUCT_IMAGE: Resource = Resource {
    service: "product",
    model: "productimage",
    label: "Product image",
    table: "product_images",
    fields: &[
        Field::new("product", FieldKind::Ref { table: "products" }).aliases(&["product_id"]),
        Field::new("variant", FieldKind::Ref { table: "variants" }).aliases(&["variant_id"]),
        Field::new(
            "attachment_id",
            FieldKind::Int {
                min: Some(1),
                max: None,
            },
        ),
        Field::text("url", 2048),
        Field::text("alt_text", 255),
        Field::new("is_primary", FieldKind::Bool),
        Field::new("position", FieldKind::int_from(0)),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col {
                name: "product",
                column: "t.product",
                kind: Kind::Int,
            },
            Col {
                name: "variant",
                column: "t.variant",
                kind: Kind::Int,
            },
            Col {
                name: "is_primary",
                column: "t.is_primary",
                kind: Kind::Bool,
            },
        ],
        ordering: &[
            Col {
                name: "position",
                column: "t.position",
                kind: Kind::Int,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.alt_text"],
        default_ordering: "position",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: Some(product_on_sale!()),
    grants: GRANTS,
    unique: &[],
    hooks: Some(&ImageRules),
    params: None,
    hidden: None,
    related: &[],
};

/// Inputs only the service sets (from the upload or the checked attachment).
const SERVICE_SET: &[&str] = &["product", "product_id", "attachment_id", "url"];

/// Where an image comes from.
pub enum Source {
    /// A file sent with the request: stored as a new attachment the image owns.
    Upload(FilePart),
    /// An existing public image attachment of the project.
    Attachment(i64),
    /// An image hosted elsewhere (`http(s)://…`).
    External(String),
}

impl Source {
    /// From a create body (`attachment_id` or `url`) and/or a multipart `image` file.
    pub fn from_input(body: &Value, file: Option<FilePart>) -> Result<Option<Source>, ApiError> {
        if let Some(file) = file {
            return Ok(Some(Source::Upload(file)));
        }
        match (body.get("attachment_id"), body.get("url")) {
            (Some(id), _) if !id.is_null() => id
                .as_i64()
                .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|id| *id > 0)
                .map(|id| Some(Source::Attachment(id)))
                .ok_or_else(|| ApiError::field("attachment_id", "A valid integer is required.")),
            (_, Some(Value::String(url))) => {
                let url = url.trim();
                let parsed = url::Url::parse(url).ok();
                match parsed {
                    Some(u)
                        if (u.scheme() == "https" || u.scheme() == "http") && url.len() <= 2048 =>
                    {
                        Ok(Some(Source::External(url.to_owned())))
                    }
                    _ => Err(ApiError::field("url", "Enter a valid http(s) URL.")),
                }
            }
            _ => Ok(None),
        }
    }
}

fn files(ctx: &ServiceContext) -> Result<SharedProjectFiles, ApiError> {
    ctx.platform.lookup::<SharedProjectFiles>().ok_or_else(|| {
        ApiError::service_unavailable("Project files are not available in this process.")
    })
}

/// A file ready to be linked: stored (or checked) in the project's attachments, or external.
pub struct Resolved {
    stored: Option<StoredFile>,
    url: String,
    /// Uploaded for the image (deleted with it).
    owned: bool,
}

/// Stores or checks the file of `source` (`product_id` is recorded on an uploaded file).
pub async fn store(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    origin: &str,
    product_id: Option<i64>,
    source: Source,
) -> Result<Resolved, ApiError> {
    scope.require(&PRODUCT_IMAGE.codename("add"), &PRODUCT_IMAGE.grants)?;
    match source {
        Source::Upload(file) => {
            let stored = files(ctx)?
                .upload(
                    scope,
                    username,
                    FileUpload {
                        entity_type: "product",
                        entity_id: product_id.map(|id| id.to_string()),
                        category: "image",
                        file_name: file.file_name,
                        content_type: file.content_type,
                        bytes: file.bytes,
                    },
                    origin,
                )
                .await
                .map_err(|e| e.rename_field("file", "image"))?;
            Ok(Resolved {
                url: stored.url.clone(),
                stored: Some(stored),
                owned: true,
            })
        }
        Source::Attachment(id) => {
            let found = files(ctx)?
                .find(scope.project_id(), id, "image", origin)
                .await?
                .ok_or_else(|| {
                    ApiError::field(
                        "attachment_id",
                        format!(
                            "Invalid pk \"{id}\" - no public image attachment of this project."
                        ),
                    )
                })?;
            Ok(Resolved {
                url: found.url.clone(),
                stored: Some(found),
                owned: false,
            })
        }
        Source::External(url) => Ok(Resolved {
            stored: None,
            url,
            owned: false,
        }),
    }
}

/// Deletes a file uploaded for an image that was not written or is deleted (best effort:
/// logged; the file then stays in the project's attachments).
async fn discard(ctx: &ServiceContext, scope: &ProjectScope, attachment_id: i64) {
    let result = match files(ctx) {
        Ok(files) => files.discard(scope, attachment_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, attachment_id, "could not delete an image file");
    }
}

/// [`discard`] for a file uploaded for a row that was not written.
pub async fn abandon(ctx: &ServiceContext, scope: &ProjectScope, resolved: &Resolved) {
    if let (Some(stored), true) = (&resolved.stored, resolved.owned) {
        discard(ctx, scope, stored.attachment_id).await;
    }
}

/// Writes the image row of a stored file (the file is discarded when the row cannot be).
pub async fn attach(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    product_id: i64,
    resolved: Resolved,
    body: &Value,
    lang: &str,
) -> Result<Value, ApiError> {
    let mut map = match body {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    for key in SERVICE_SET {
        map.remove(*key);
    }
    map.insert("product".into(), json!(product_id));
    map.insert("url".into(), json!(resolved.url));
    map.insert(
        "attachment_id".into(),
        json!(resolved.stored.as_ref().map(|s| s.attachment_id)),
    );
    map.insert("owns_attachment".into(), json!(resolved.owned));
    let created =
        kernel::resource::create(ctx, &PRODUCT_IMAGE, scope, &Value::Object(map), lang).await;
    if created.is_err() {
        abandon(ctx, scope, &resolved).await;
    }
    created
}

/// Adds an image to an existing product: the file first, then the row.
#[allow(clippy::too_many_arguments)]
pub async fn add(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    username: &str,
    origin: &str,
    product_id: i64,
    source: Source,
    body: &Value,
    lang: &str,
) -> Result<Value, ApiError> {
    let member = ReadScope::Member(scope.clone());
    kernel::resource::retrieve(ctx, &PRODUCT, &member, product_id, lang).await?;
    let resolved = store(ctx, scope, username, origin, Some(product_id), source).await?;
    attach(ctx, scope, product_id, resolved, body, lang).await
}

/// An image of `product_id` (404 when it belongs to another product).
pub async fn get(
    ctx: &ServiceContext,
    scope: &ReadScope,
    product_id: i64,
    image_id: i64,
    lang: &str,
) -> Result<Value, ApiError> {
    let image = kernel::resource::retrieve(ctx, &PRODUCT_IMAGE, scope, image_id, lang).await?;
    if image["product"].as_i64() != Some(product_id) {
        return Err(ApiError::not_found());
    }
    Ok(image)
}

/// The images of a visible product, by position.
pub async fn list(
    ctx: &ServiceContext,
    scope: &ReadScope,
    product_id: i64,
    query: Option<&str>,
    lang: &str,
) -> Result<(i64, Vec<Value>), ApiError> {
    kernel::resource::retrieve(ctx, &PRODUCT, scope, product_id, lang).await?;
    let query = format!("product={product_id}&page_size=50&{}", query.unwrap_or(""));
    let query = ListQuery::from_query(&PRODUCT_IMAGE.list, Some(&query))?;
    let (total, rows) =
        kernel::resource::list(ctx, &PRODUCT_IMAGE, scope, &query, lang, false).await?;
    Ok((
        total,
        rows.into_iter()
            .map(kernel::resource::Row::into_value)
            .collect(),
    ))
}

/// PATCH: alt text, position, primary flag, variant (the file and product stay).
pub async fn update(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    product_id: i64,
    image_id: i64,
    body: &Value,
    lang: &str,
) -> Result<Value, ApiError> {
    get(
        ctx,
        &ReadScope::Member(scope.clone()),
        product_id,
        image_id,
        lang,
    )
    .await?;
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        for key in SERVICE_SET {
            map.remove(*key);
        }
    }
    kernel::resource::update(ctx, &PRODUCT_IMAGE, scope, image_id, &body, true, lang).await
}

/// DELETE: the row goes; a file uploaded for it goes too.
pub async fn delete(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    product_id: i64,
    image_id: i64,
) -> Result<(), ApiError> {
    let image = get(
        ctx,
        &ReadScope::Member(scope.clone()),
        product_id,
        image_id,
        "en",
    )
    .await?;
    let owned: bool =
        sqlx::query_scalar("SELECT owns_attachment FROM product_images WHERE id = $1")
            .bind(image_id)
            .fetch_one(&ctx.pool)
            .await?;
    kernel::resource::delete(ctx, &PRODUCT_IMAGE, scope, image_id).await?;
    if let (true, Some(attachment_id)) = (owned, image["attachment_id"].as_i64()) {
        discard(ctx, scope, attachment_id).await;
    }
    Ok(())
}

/// The primary flag, the limit and the variant's product.
pub struct ImageRules;

/// Makes the lowest-positioned live image primary when none is (`not_first`: prefer others).
async fn ensure_primary(
    tx: &mut PgConnection,
    product: i64,
    not_first: Option<i64>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE product_images SET is_primary = true, updated_at = now() WHERE id = ( \
           SELECT id FROM product_images WHERE product = $1 AND deleted_at IS NULL \
           ORDER BY id IS NOT DISTINCT FROM $2, position, id LIMIT 1) \
         AND NOT EXISTS (SELECT 1 FROM product_images \
           WHERE product = $1 AND deleted_at IS NULL AND is_primary)",
    )
    .bind(product)
    .bind(not_first)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl Hooks for ImageRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let product = match (id, values.get("product")) {
            (None, Some(Bind::Int(p))) => *p,
            (Some(id), _) => {
                values.remove("product");
                sqlx::query_scalar("SELECT product FROM product_images WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
            }
            _ => return Err(ApiError::field("product", "This field is required.")),
        };
        // Writers of one product's images queue on the product row.
        sqlx::query("SELECT 1 FROM products WHERE id = $1 FOR UPDATE")
            .bind(product)
            .execute(&mut *tx)
            .await?;
        if let Some(Bind::Int(variant)) = values.get("variant") {
            let same: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM variants WHERE id = $1 AND product = $2)",
            )
            .bind(variant)
            .bind(product)
            .fetch_one(&mut *tx)
            .await?;
            if !same {
                return Err(ApiError::field(
                    "variant",
                    "The variant belongs to another product.",
                ));
            }
        }
        if id.is_none() {
            let (count, next): (i64, i32) = sqlx::query_as(
                "SELECT count(*), COALESCE(max(position) + 1, 0) FROM product_images \
                 WHERE product = $1 AND deleted_at IS NULL",
            )
            .bind(product)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_IMAGES {
                return Err(ApiError::field(
                    "image",
                    format!("A product has at most {MAX_IMAGES} images."),
                ));
            }
            if count == 0 {
                values.insert("is_primary".into(), Bind::Bool(true));
            }
            values
                .entry("position".into())
                .or_insert(Bind::Int(next.into()));
            let owned = body["owns_attachment"].as_bool().unwrap_or(false);
            values.insert("owns_attachment".into(), Bind::Bool(owned));
        }
        if values.get("is_primary") == Some(&Bind::Bool(true)) {
            sqlx::query(
                "UPDATE product_images SET is_primary = false, updated_at = now() \
                 WHERE product = $1 AND is_primary AND deleted_at IS NULL AND id IS DISTINCT FROM $2",
            )
            .bind(product)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn after_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        written: Written<'_>,
    ) -> Result<(), ApiError> {
        let product = written.row["product"].as_i64().unwrap_or_default();
        let id = written.row["id"].as_i64();
        match written.write {
            Write::Update if written.row["is_primary"] == json!(false) => {
                ensure_primary(tx, product, id).await
            }
            Write::Delete | Write::Restore => ensure_primary(tx, product, None).await,
            _ => Ok(()),
        }
    }
}
