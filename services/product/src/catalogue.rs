//! Categories (a tree), tags, brands and collections: each is its fields, table, permissions
//! and allow-lists (contract product.md §4–5); `kernel::resource` does the rest.

use async_trait::async_trait;
use kernel::auth::ProjectScope;
use kernel::db::ConstraintField;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::rbac::Grants;
use kernel::resource::{Bind, Field, FieldKind, Hooks, Resource, Values};
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::Value;
use sqlx::PgConnection;

/// Owners and admins write the catalogue; editors and viewers read it (product.md §7).
pub const GRANTS: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&[]),
};

/// Money: decimal strings with two places, never negative.
pub const MONEY: FieldKind = FieldKind::Decimal {
    min: Some(0),
    max: None,
    scale: 2,
};

const NAME: &str = "COALESCE(NULLIF(t.name_en, ''), NULLIF(t.name_ar, ''), t.name_fr)";

const TAG_PRODUCTS: &str =
    "(SELECT count(*) FROM product_tags pt JOIN products p ON p.id = pt.product_id \
    WHERE pt.tag_id = t.id AND p.deleted_at IS NULL)";
const CATEGORY_PRODUCTS: &str =
    "(SELECT count(*) FROM products p WHERE p.category = t.id AND p.deleted_at IS NULL)";
const COLLECTION_PRODUCTS: &str = "(SELECT count(*) FROM product_collections pc JOIN products p \
    ON p.id = pc.product WHERE pc.collection = t.id AND pc.deleted_at IS NULL AND p.deleted_at IS NULL)";

pub static TAG: Resource = Resource {
    service: "product",
    model: "tag",
    label: "Tag",
    table: "tags",
    fields: &[
        Field::text("name", 100).required(),
        Field::new("color", FieldKind::Color),
    ],
    slug_from: Some("name"),
    computed: &[("product_count", TAG_PRODUCTS)],
    list: ListSpec {
        filters: &[
            Col {
                name: "name",
                column: "t.name",
                kind: Kind::Text,
            },
            Col {
                name: "slug",
                column: "t.slug",
                kind: Kind::Text,
            },
        ],
        ordering: &[
            Col {
                name: "name",
                column: "lower(t.name)",
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.name"],
        default_ordering: "name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: None,
    grants: GRANTS,
    unique: &[ConstraintField {
        constraint: "tags_name_live",
        field: "name",
        message: "Tag with this name already exists.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static BRAND: Resource = Resource {
    service: "product",
    model: "brand",
    label: "Brand",
    table: "brands",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 20_000).translated(),
        Field::text("logo", 1000),
        Field::new("logo_attachment_id", FieldKind::int_from(1)),
        Field::new("featured", FieldKind::Bool),
        Field::new("order", FieldKind::int_from(0)),
    ],
    slug_from: Some("name"),
    computed: &[],
    list: ListSpec {
        filters: &[
            Col {
                name: "featured",
                column: "t.featured",
                kind: Kind::Bool,
            },
            Col {
                name: "slug",
                column: "t.slug",
                kind: Kind::Text,
            },
        ],
        ordering: &[
            Col {
                name: "order",
                column: "t.\"order\"",
                kind: Kind::Int,
            },
            Col {
                name: "name",
                column: NAME,
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr"],
        default_ordering: "order,name",
        extra_params: &[],
    },
    search_vector: Some("search"),
    public_read: true,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static COLLECTION: Resource = Resource {
    service: "product",
    model: "collection",
    label: "Collection",
    table: "collections",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 20_000).translated(),
        Field::text("image", 1000),
        Field::new("is_active", FieldKind::Bool),
        Field::new("featured", FieldKind::Bool),
        Field::new("order", FieldKind::int_from(0)),
    ],
    slug_from: Some("name"),
    computed: &[("product_count", COLLECTION_PRODUCTS)],
    list: ListSpec {
        filters: &[
            Col {
                name: "is_active",
                column: "t.is_active",
                kind: Kind::Bool,
            },
            Col {
                name: "featured",
                column: "t.featured",
                kind: Kind::Bool,
            },
        ],
        ordering: &[
            Col {
                name: "order",
                column: "t.\"order\"",
                kind: Kind::Int,
            },
            Col {
                name: "name",
                column: NAME,
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr"],
        default_ordering: "order,name",
        extra_params: &[],
    },
    search_vector: Some("search"),
    public_read: true,
    public_filter: Some("t.is_active"),
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

/// The tree: live children, depth (root = 0) and the path of ids from the root.
const CHILDREN: &str = "COALESCE((SELECT jsonb_agg(jsonb_build_object('id', c.id, 'name', \
    COALESCE(NULLIF(c.name_en, ''), NULLIF(c.name_ar, ''), c.name_fr), 'slug', c.slug) \
    ORDER BY c.\"order\", c.id) FROM categories c WHERE c.parent = t.id AND c.deleted_at IS NULL), '[]')";
const PATH: &str = "(WITH RECURSIVE up(id, parent, depth) AS (SELECT t.id, t.parent, 0 \
    UNION ALL SELECT c.id, c.parent, up.depth + 1 FROM categories c JOIN up ON c.id = up.parent \
    WHERE up.depth < 20) SELECT jsonb_agg(up.id ORDER BY up.depth DESC) FROM up)";
const LEVEL: &str = "(WITH RECURSIVE up(id, parent, depth) AS (SELECT t.id, t.parent, 0 \
    UNION ALL SELECT c.id, c.parent, up.depth + 1 FROM categories c JOIN up ON c.id = up.parent \
    WHERE up.depth < 20) SELECT max(depth) FROM up)";

pub static CATEGORY: Resource = Resource {
    service: "product",
    model: "category",
    label: "Category",
    table: "categories",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 20_000).translated(),
        Field::new(
            "parent",
            FieldKind::Ref {
                table: "categories",
            },
        )
        .aliases(&["parent_id"]),
        Field::text("image", 1000),
        Field::new("featured", FieldKind::Bool),
        Field::new("order", FieldKind::int_from(0)),
        Field::new("is_active", FieldKind::Bool),
    ],
    slug_from: Some("name"),
    computed: &[
        ("children", CHILDREN),
        ("path", PATH),
        ("level", LEVEL),
        ("product_count", CATEGORY_PRODUCTS),
    ],
    list: ListSpec {
        filters: &[
            Col {
                name: "parent",
                column: "t.parent",
                kind: Kind::Int,
            },
            Col {
                name: "parent_id",
                column: "t.parent",
                kind: Kind::Int,
            },
            Col {
                name: "featured",
                column: "t.featured",
                kind: Kind::Bool,
            },
            Col {
                name: "is_active",
                column: "t.is_active",
                kind: Kind::Bool,
            },
            Col {
                name: "slug",
                column: "t.slug",
                kind: Kind::Text,
            },
        ],
        ordering: &[
            Col {
                name: "order",
                column: "t.\"order\"",
                kind: Kind::Int,
            },
            Col {
                name: "name",
                column: NAME,
                kind: Kind::Text,
            },
            Col {
                name: "created_at",
                column: "t.created_at",
                kind: Kind::DateTime,
            },
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr"],
        default_ordering: "order,name",
        extra_params: &[],
    },
    search_vector: Some("search"),
    public_read: true,
    public_filter: Some("t.is_active"),
    grants: GRANTS,
    unique: &[],
    hooks: Some(&CategoryTree),
    params: None,
    hidden: None,
    related: &[],
};

/// Deepest allowed level (root = 0).
const MAX_DEPTH: i32 = 9;

/// A category's parent is a live category of the project that is not itself or below it, at
/// most ten levels deep; a category with live children cannot be deleted.
pub struct CategoryTree;

#[async_trait]
impl Hooks for CategoryTree {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let Some(Bind::Int(parent)) = values.get("parent") else {
            return Ok(());
        };
        // The parent's ancestors (itself first) and its depth.
        let ancestors = kernel::resource::ancestors(tx, "categories", *parent).await?;
        if id.is_some_and(|id| ancestors.iter().any(|(a, _)| *a == id)) {
            return Err(ApiError::field(
                "parent",
                "Category cannot be its own ancestor.",
            ));
        }
        let parent_level = ancestors.iter().map(|(_, d)| *d).max().unwrap_or(0);
        // The subtree below the moved category goes with it.
        let below: i32 = match id {
            Some(id) => sqlx::query_scalar(
                "WITH RECURSIVE down(id, depth) AS (SELECT id, 0 FROM categories WHERE id = $1 \
                 UNION ALL SELECT c.id, down.depth + 1 FROM categories c JOIN down ON c.parent = down.id \
                 WHERE c.deleted_at IS NULL AND down.depth < 50) SELECT max(depth) FROM down",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?,
            None => 0,
        };
        if parent_level + 1 + below > MAX_DEPTH {
            return Err(ApiError::field(
                "parent",
                "Categories nest at most 10 levels deep.",
            ));
        }
        Ok(())
    }

    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let children: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM categories WHERE parent = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if children > 0 {
            return Err(ApiError::rule(
                "protected",
                format!(
                    "This category has {children} live subcategories; move or delete them first."
                ),
            ));
        }
        Ok(())
    }
}
