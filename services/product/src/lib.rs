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

use std::time::Duration;

use axum::Router;
use kernel::events::Outbox;
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

fn routes() -> Router<ServiceContext> {
    use kernel::resource::rest::routes as resource;
    let r = Router::new();
    let r = resource(r, "products", "categories", &catalogue::CATEGORY);
    let r = resource(r, "products", "tags", &catalogue::TAG);
    let r = resource(r, "products", "brands", &catalogue::BRAND);
    let r = resource(r, "products", "collections", &catalogue::COLLECTION);
    let r = resource(r, "products", "schemas", &variants::SCHEMA);
    let r = resource(r, "products", "variant-schemas", &variants::SCHEMA);
    let r = resource(r, "products", "variants", &variants::VARIANT);
    let r = resource(r, "products", "barcodes", &variants::BARCODE);
    let r = resource(r, "products", "shipping", &variants::SHIPPING);
    let r = resource(r, "products", "discounts", &merch::DISCOUNT);
    let r = resource(r, "products", "product-discounts", &merch::PRODUCT_DISCOUNT);
    let r = resource(
        r,
        "products",
        "product-collections",
        &merch::PRODUCT_COLLECTION,
    );
    let r = actions::routes(r);
    let r = kernel::resource::rest::routes_with(
        r,
        "",
        "products",
        &products::PRODUCT,
        Some(nested::product_create()),
    );
    nested::routes(r)
}

pub async fn build(platform: &Platform) -> anyhow::Result<MountedService> {
    let pool = kernel::db::open_service_pool(platform.config(), SPEC.name, &MIGRATOR).await?;
    kernel::events::install(&pool).await?;
    let outbox = Outbox::new(pool.clone(), SPEC.name, platform.events().clone());
    outbox.spawn_relay(Duration::from_secs(2));
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
    let router = routes()
        .layer(kernel::service::upload_body_limit(platform.config()))
        .with_state(ctx)
        .merge(kernel::graphql::routes(schema, "/graphql/product"));
    Ok(mount(&SPEC, "/api/v1/product", router, pool, None))
}
