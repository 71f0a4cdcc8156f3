//! Events published by the product service (contract product.md §8). camelCase payloads.

use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

/// What order and inventory need of a product.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductSnapshot {
    pub product_id: i64,
    pub sku: Option<String>,
    /// In the default language (English, else the first non-empty).
    pub name: String,
    /// Decimal string.
    pub price: String,
    pub cost_price: Option<String>,
    pub is_active: bool,
    pub status: String,
    pub track_inventory: bool,
    pub category_id: Option<i64>,
    pub brand_id: Option<i64>,
    pub low_stock_threshold: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductCreated {
    #[serde(flatten)]
    pub product: ProductSnapshot,
    /// The create-time `stock_quantity` (inventory books it as an initial IN).
    pub initial_stock: i64,
}

impl IntegrationEvent for ProductCreated {
    const TYPE: &'static str = "product.created";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductUpdated {
    #[serde(flatten)]
    pub product: ProductSnapshot,
    pub changed: Vec<String>,
}

impl IntegrationEvent for ProductUpdated {
    const TYPE: &'static str = "product.updated";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductDeleted {
    pub product_id: i64,
    pub variant_ids: Vec<i64>,
}

impl IntegrationEvent for ProductDeleted {
    const TYPE: &'static str = "product.deleted";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProductRestored {
    pub product_id: i64,
    pub variant_ids: Vec<i64>,
}

impl IntegrationEvent for ProductRestored {
    const TYPE: &'static str = "product.restored";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PriceChanged {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub old_price: Option<String>,
    pub new_price: String,
    pub changed_by: Option<i64>,
}

impl IntegrationEvent for PriceChanged {
    const TYPE: &'static str = "price.changed";
}

/// What order, pos and inventory need of a variant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VariantSnapshot {
    pub variant_id: i64,
    pub product_id: i64,
    pub sku: Option<String>,
    pub name: String,
    pub selling_price: Option<String>,
    pub cost_price: Option<String>,
    pub is_active: bool,
    pub attributes: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VariantCreated(pub VariantSnapshot);

impl IntegrationEvent for VariantCreated {
    const TYPE: &'static str = "variant.created";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VariantUpdated(pub VariantSnapshot);

impl IntegrationEvent for VariantUpdated {
    const TYPE: &'static str = "variant.updated";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VariantDeleted(pub VariantSnapshot);

impl IntegrationEvent for VariantDeleted {
    const TYPE: &'static str = "variant.deleted";
}

/// A product or variant as the product service holds it now, with whether it is deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed<T> {
    pub item: T,
    pub deleted: bool,
}

/// The product service's catalogue as other services read it when their replica has not yet
/// heard of a record (a product created a moment ago).
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    async fn product(
        &self,
        project_id: i64,
        product_id: i64,
    ) -> anyhow::Result<Option<Listed<ProductSnapshot>>>;

    async fn variant(
        &self,
        project_id: i64,
        variant_id: i64,
    ) -> anyhow::Result<Option<Listed<VariantSnapshot>>>;
}

/// How the catalogue is shared through `Platform::provide` / `Platform::lookup`.
pub type SharedCatalog = std::sync::Arc<dyn Catalog>;

/// A unit price as order and pos must charge it (product.md `products/pricing/`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PriceQuote {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub name: Option<String>,
    pub variant_name: Option<String>,
    pub sku: Option<String>,
    /// Decimal strings.
    pub unit_price: Option<String>,
    pub list_price: Option<String>,
    pub is_available: bool,
    pub track_inventory: Option<bool>,
    pub image_url: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    /// Units on sale now as the product service last heard from inventory (`None` when the
    /// product does not track stock). Carts show it; placement reserves for real.
    #[serde(default)]
    pub stock_available: Option<i64>,
}

/// Prices of a project's products now, in the order asked, and the project's currency.
#[async_trait::async_trait]
pub trait Pricing: Send + Sync {
    async fn quote(
        &self,
        project_id: i64,
        lang: &str,
        items: &[(i64, Option<i64>)],
    ) -> Result<(String, Vec<PriceQuote>), kernel::ApiError>;
}

/// How pricing is shared through `Platform::provide` / `Platform::lookup`.
pub type SharedPricing = std::sync::Arc<dyn Pricing>;
