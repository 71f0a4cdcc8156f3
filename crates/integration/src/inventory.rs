//! Events published by the inventory service (contract inventory.md §10). camelCase payloads.

use kernel::events::IntegrationEvent;
use serde::{Deserialize, Serialize};

/// A stock row's levels after a change (a movement, or a reservation moving `reserved`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StockChanged {
    pub inventory_id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub warehouse_id: i64,
    pub quantity: i64,
    pub reserved_quantity: i64,
    pub available_quantity: i64,
    /// The change of `quantity` (0 when only `reserved` moved).
    pub delta: i64,
    pub movement_id: Option<i64>,
    pub reason_code: String,
    /// Increases with every change of the row: a consumer keeps the highest it has seen (and
    /// sums rows itself, so events of different rows may arrive in any order).
    pub version: i64,
}

impl IntegrationEvent for StockChanged {
    const TYPE: &'static str = "inventory.stock_changed";

    /// One row's changes in order; different rows side by side.
    fn ordering_key(&self) -> Option<String> {
        Some(format!("stock:{}", self.inventory_id))
    }
}

/// A threshold crossing of one row (`low_stock`, `out_of_stock`, `restocked`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StockAlert {
    pub inventory_id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub warehouse_id: i64,
    pub available_quantity: i64,
    pub threshold: i64,
}

macro_rules! alert {
    ($name:ident, $type:literal) => {
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
        pub struct $name(pub StockAlert);

        impl IntegrationEvent for $name {
            const TYPE: &'static str = $type;

            fn ordering_key(&self) -> Option<String> {
                Some(format!("stock:{}", self.0.inventory_id))
            }
        }
    };
}

alert!(LowStock, "inventory.low_stock");
alert!(OutOfStock, "inventory.out_of_stock");
alert!(Restocked, "inventory.restocked");

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReservationLine {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub quantity: i64,
}

/// A reservation's state change (`created`, `confirmed`, `released`, `expired`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReservationEvent {
    pub reservation_id: i64,
    pub reservation_number: String,
    pub order_id: Option<String>,
    pub reference: Option<String>,
    pub items: Vec<ReservationLine>,
    pub reason: Option<String>,
}

macro_rules! reservation {
    ($name:ident, $type:literal) => {
        #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
        pub struct $name(pub ReservationEvent);

        impl IntegrationEvent for $name {
            const TYPE: &'static str = $type;
        }
    };
}

reservation!(ReservationCreated, "inventory.reservation_created");
reservation!(ReservationConfirmed, "inventory.reservation_confirmed");
reservation!(ReservationReleased, "inventory.reservation_released");
reservation!(ReservationExpired, "inventory.reservation_expired");

/// Lines of a bulk movement in `shortfall` mode that could not be taken in full.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Shortfall {
    pub reference: String,
    pub lines: Vec<ShortLine>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShortLine {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub requested: i64,
    pub applied: i64,
}

impl IntegrationEvent for Shortfall {
    const TYPE: &'static str = "inventory.shortfall";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TransferCompleted {
    pub transfer_id: i64,
    pub transfer_number: String,
    pub from_warehouse_id: i64,
    pub to_warehouse_id: i64,
    pub items: Vec<ReservationLine>,
}

impl IntegrationEvent for TransferCompleted {
    const TYPE: &'static str = "inventory.transfer_completed";
}

/// A reservation held for an order: new, or the order's active one with the same lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub id: i64,
    pub reservation_number: String,
    pub created: bool,
}

/// An active reservation the order service made for an order (by its number).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderHold {
    /// The reservation's id.
    pub id: i64,
    pub project_id: i64,
    pub order_number: String,
}

/// A page of reservations in id order, every one older than asked, with the order holds
/// among them; the next page starts after `last_id`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderHolds {
    pub last_id: i64,
    pub holds: Vec<OrderHold>,
}

/// The inventory service's reservations as the order service calls them (inventory.md §6.4).
/// Bodies and answers are the REST ones; the scope is the caller's, acting as a service.
#[async_trait::async_trait]
pub trait Stock: Send + Sync {
    /// `POST reservations/` → the reservation held. The same `order_id` with the same lines
    /// answers the existing reservation, so a retry never holds twice.
    async fn reserve(
        &self,
        scope: &kernel::auth::ProjectScope,
        body: &serde_json::Value,
    ) -> Result<Held, kernel::ApiError>;

    /// `POST reservations/release-by-order/`.
    async fn release_by_order(
        &self,
        scope: &kernel::auth::ProjectScope,
        order_id: &str,
    ) -> Result<(), kernel::ApiError>;

    /// Across projects, for the order service's reconciler: the reservations after `after_id`
    /// (0: from just before the oldest active one, or after the last one when none is active),
    /// in id order, up to `limit`, stopping at the first one younger than `older_than`, with
    /// the order service's active holds among them.
    async fn order_holds(
        &self,
        after_id: i64,
        older_than: std::time::Duration,
        limit: i64,
    ) -> Result<OrderHolds, kernel::ApiError>;

    /// `POST reservations/{id}/confirm/` (stock OUT `sale`, referenced by `reference`).
    async fn confirm(
        &self,
        scope: &kernel::auth::ProjectScope,
        reservation: &str,
        reference: &str,
    ) -> Result<serde_json::Value, kernel::ApiError>;

    /// `PATCH reservations/{id}/` `{expires_at: null}`: hold until confirmed or released.
    async fn hold(
        &self,
        scope: &kernel::auth::ProjectScope,
        reservation: &str,
    ) -> Result<(), kernel::ApiError>;

    /// `POST reservations/{id}/adjust/` `{items:[{product_id, variant_id?, quantity}]}`: new
    /// totals for the lines named (0 removes one); all or nothing (422 `insufficient_stock`).
    async fn adjust(
        &self,
        scope: &kernel::auth::ProjectScope,
        reservation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, kernel::ApiError>;

    /// `POST movements/bulk/` (IN `return` of returned goods), once per `reference`: a second
    /// call with a reference already booked books nothing and answers `{"replayed": true}`.
    async fn book_once(
        &self,
        scope: &kernel::auth::ProjectScope,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, kernel::ApiError>;
}

/// How stock is shared through `Platform::provide` / `Platform::lookup`.
pub type SharedStock = std::sync::Arc<dyn Stock>;
