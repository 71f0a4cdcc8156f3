//! The product service: a project's sellable catalogue (contract product.md). Built so far:
//! products and the reference resources (categories, tags, brands, collections), all on
//! `kernel::resource`.

/// SQL: the row under `$alias` is a product the public may see (active, not a draft, inactive
/// or archived). One definition for every public filter of the service.
macro_rules! on_sale {
    ($alias:literal) => {
        concat!(
            $alias,
            ".is_active AND ",
            $alias,
            ".status NOT IN ('draft', 'inactive', 'archived')"
        )
    };
}

/// SQL: the product of the row `t` (a variant, a barcode) is one the public may see.
macro_rules! product_on_sale {
    () => {
        concat!(
            "EXISTS (SELECT 1 FROM products p WHERE p.id = t.product AND p.deleted_at IS NULL AND ",
            on_sale!("p"),
            ")"
        )
    };
}

pub mod actions;
pub mod catalogue;
pub mod graphql;
pub mod images;
pub mod merch;
pub mod products;
pub mod settings;
pub mod stock;
pub mod variants;

use kernel::events::Outbox;
use kernel::routing::Routes;
use kernel::service::{mount, MountedService, ServiceContext, ServiceSpec};
use kernel::Platform;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

mod nested;

pub static SPEC: ServiceSpec = ServiceSpec {
    name: "product",
    health_name: "zv-product-eco-service",
    // Catalogue reads are public (with X-Project-ID); every handler checks writes itself.
    public_paths: &[
        "/products",
        "/categories",
        "/tags",
        "/brands",
        "/collections",
        "/schemas",
        "/variant-schemas",
        "/variants",
        "/barcodes",
        "/shipping",
        "/discounts",
        "/product-discounts",
        "/product-collections",
        "/price-history",
    ],
    public_exact: &[],
};

fn routes() -> Routes<ServiceContext> {
    // Sub-resources under `products/` (0a47ee5), the same at the service root (aliases).
    let r = Routes::new()
        .resource(
            "",
            &["products/categories", "categories"],
            &catalogue::CATEGORY,
        )
        .resource("", &["products/tags", "tags"], &catalogue::TAG)
        .resource("", &["products/brands", "brands"], &catalogue::BRAND)
        .resource(
            "",
            &["products/collections", "collections"],
            &catalogue::COLLECTION,
        )
        .resource(
            "",
            &[
                "products/schemas",
                "schemas",
                "products/variant-schemas",
                "variant-schemas",
            ],
            &variants::SCHEMA,
        )
        .resource("", &["products/variants", "variants"], &variants::VARIANT)
        .resource("", &["products/barcodes", "barcodes"], &variants::BARCODE)
        .resource("", &["products/shipping", "shipping"], &variants::SHIPPING)
        .resource("", &["products/discounts", "discounts"], &merch::DISCOUNT)
        .resource(
            "",
            &["products/product-discounts", "product-discounts"],
            &merch::PRODUCT_DISCOUNT,
        )
        .resource(
            "",
            &["products/product-collections", "product-collections"],
            &merch::PRODUCT_COLLECTION,
        );
    let r = actions::routes(r).resource_with(
        "",
        &["products"],
        &products::PRODUCT,
        Some(nested::product_create()),
    );
    nested::routes(r)
}

/// The service's document: the resources describe themselves as they are mounted; these are
/// the hand-written operations.
fn declared() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(utoipa::openapi::Info::new("ZoneVast product service", "1"))
        .build();
    doc.merge(actions::Api::openapi());
    doc.merge(nested::Api::openapi());
    doc
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let pool = kernel::db::open_service_pool(platform.config(), SPEC.name, &MIGRATOR).await?;
    kernel::events::install(&pool).await?;
    let outbox = Outbox::new(pool.clone(), SPEC.name, platform.events().clone());
    outbox.spawn_relay();
    platform.events().subscribe(
        "product",
        &["project.settings_changed"],
        std::sync::Arc::new(settings::SettingsFollower { pool: pool.clone() }),
    );
    let ctx = ServiceContext {
        platform: platform.clone(),
        pool: pool.clone(),
        outbox,
    };
    platform.events().subscribe(
        "product",
        &["inventory.stock_changed"],
        std::sync::Arc::new(stock::StockFollower { ctx: ctx.clone() }),
    );
    platform.provide::<integration::product::SharedCatalog>(std::sync::Arc::new(stock::Lookup(
        pool.clone(),
    )));
    platform.provide::<integration::product::SharedPricing>(std::sync::Arc::new(stock::Lookup(
        pool.clone(),
    )));
    let schema = kernel::resource_graphql::ResourceSchema::with_mutations(
        graphql::RESOURCES,
        ctx.clone(),
        graphql::mutations,
    )?;
    let (router, api) = routes().finish("/api/v1/product", declared());
    let router = router
        .layer(kernel::service::upload_body_limit(platform.config()))
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/product"));
    Ok(mount(&SPEC, "/api/v1/product", router, pool, api))
}
