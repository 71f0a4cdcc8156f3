//! Reference data of the stock (contract inventory.md §3, §7): warehouses, location types,
//! locations, vendors and batches — simple resources on `kernel::resource`. Read by every
//! member, written by owners and admins, soft-deleted.

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

/// Editors read the reference data; owners and admins write it.
pub const GRANTS: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&[]),
};

/// Members read stock; editors ("staff") and up move it; owners and admins manage the
/// reference data and reverse movements.
pub const STOCK_GRANTS: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&[
        "inventory.add_inventory",
        "inventory.change_inventory",
        "inventory.add_movement",
        "inventory.add_batch",
        "inventory.change_batch",
        "inventory.add_stockreservation",
        "inventory.change_stockreservation",
        "inventory.reserve_stock",
        "inventory.confirm_reservation",
        "inventory.release_reservation",
        "inventory.add_transfer",
        "inventory.add_restock",
    ]),
};

const NAME: &str = "COALESCE(NULLIF(t.name_en, ''), NULLIF(t.name_ar, ''), t.name_fr)";

const CREATED: Col = Col::new("created_at", "t.created_at", Kind::DateTime);
const BY_NAME: Col = Col::new("name", NAME, Kind::Text);
const NAMES: &[&str] = &["t.name_en", "t.name_ar", "t.name_fr"];

pub static WAREHOUSE: Resource = Resource {
    service: "inventory",
    model: "warehouse",
    label: "Warehouse",
    table: "warehouses",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 5000).translated(),
        Field::text("address", 1000).aliases(&["location"]),
        Field::text("code", 50),
        Field::new("is_active", FieldKind::Bool),
        Field::new("is_default", FieldKind::Bool),
        Field::new("priority", FieldKind::int_from(0)),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("is_active", "t.is_active", Kind::Bool),
            Col::new("is_default", "t.is_default", Kind::Bool),
            Col::new("code", "lower(t.code)", Kind::Text),
        ],
        ordering: &[
            BY_NAME,
            Col::new("priority", "t.priority", Kind::Int),
            CREATED,
        ],
        search: &["t.name_en", "t.name_ar", "t.name_fr", "t.code", "t.address"],
        default_ordering: "-is_default,priority,name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[
        ConstraintField {
            constraint: "warehouses_code_live",
            field: "code",
            message: "A warehouse with this code already exists.",
        },
        ConstraintField {
            constraint: "warehouses_one_default",
            field: "is_default",
            message: "Another warehouse is the default.",
        },
    ],
    hooks: Some(&WarehouseRules),
    params: None,
    hidden: None,
    related: &[],
};

/// One default warehouse per project: choosing a new one clears the old flag in the same
/// transaction (the partial unique index backs it).
pub struct WarehouseRules;

#[async_trait]
impl Hooks for WarehouseRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        if values.get("is_default") == Some(&Bind::Bool(true)) {
            sqlx::query(
                "UPDATE warehouses SET is_default = false, updated_at = now() \
                 WHERE project_id = $1 AND is_default AND deleted_at IS NULL AND id IS DISTINCT FROM $2",
            )
            .bind(scope.project_id())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// A warehouse holding or reserving units stays (inventory.md §3).
    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM stock_items WHERE warehouse = $1 AND deleted_at IS NULL              AND (quantity > 0 OR reserved_quantity > 0))",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if busy {
            return Err(ApiError::rule(
                "warehouse_not_empty",
                "This warehouse still holds or reserves units: transfer them first.",
            ));
        }
        Ok(())
    }
}

pub static LOCATION_TYPE: Resource = Resource {
    service: "inventory",
    model: "locationtype",
    label: "Location type",
    table: "location_types",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 5000).translated(),
        Field::new(
            "warehouse",
            FieldKind::Ref {
                table: "warehouses",
            },
        )
        .required()
        .aliases(&["warehouse_id"]),
        Field::new("order", FieldKind::int_from(0)),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[Col::new("warehouse", "t.warehouse", Kind::Int)],
        ordering: &[
            Col::new("order", "t.\"order\"", Kind::Int),
            BY_NAME,
            CREATED,
        ],
        search: NAMES,
        default_ordering: "order,name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static LOCATION: Resource = Resource {
    service: "inventory",
    model: "location",
    label: "Location",
    table: "locations",
    fields: &[
        Field::text("name", 255).translated().required(),
        Field::text("description", 5000).translated(),
        Field::new(
            "warehouse",
            FieldKind::Ref {
                table: "warehouses",
            },
        )
        .required()
        .aliases(&["warehouse_id"]),
        Field::new(
            "location_type",
            FieldKind::Ref {
                table: "location_types",
            },
        )
        .aliases(&["location_type_id"]),
        Field::new("parent", FieldKind::Ref { table: "locations" }).aliases(&["parent_id"]),
        Field::new("capacity", FieldKind::int_from(0)),
        Field::text("code", 50),
        Field::new("is_active", FieldKind::Bool),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("warehouse", "t.warehouse", Kind::Int),
            Col::new("location_type", "t.location_type", Kind::Int),
            Col::new("parent", "t.parent", Kind::Int),
            Col::new("is_active", "t.is_active", Kind::Bool),
        ],
        ordering: &[BY_NAME, Col::new("code", "t.code", Kind::Text), CREATED],
        search: &["t.name_en", "t.name_ar", "t.name_fr", "t.code"],
        default_ordering: "name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&LocationTree),
    params: None,
    hidden: None,
    related: &[],
};

/// A location's type and parent are in its warehouse, and the parents form no cycle.
pub struct LocationTree;

#[async_trait]
impl Hooks for LocationTree {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let warehouse: Option<i64> = match (values.get("warehouse"), id) {
            (Some(Bind::Int(w)), _) => Some(*w),
            (_, Some(id)) => {
                sqlx::query_scalar("SELECT warehouse FROM locations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            _ => None,
        };
        for (field, table) in [("location_type", "location_types"), ("parent", "locations")] {
            let Some(Bind::Int(other)) = values.get(field) else {
                continue;
            };
            let same: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND warehouse IS NOT DISTINCT FROM $2)"
            ))
            .bind(other)
            .bind(warehouse)
            .fetch_one(&mut *tx)
            .await?;
            if !same {
                return Err(ApiError::field(field, "It belongs to another warehouse."));
            }
        }
        if let (Some(id), Some(Bind::Int(parent))) = (id, values.get("parent")) {
            let above = kernel::resource::ancestors(tx, "locations", *parent).await?;
            if above.iter().any(|(a, _)| *a == id) {
                return Err(ApiError::field(
                    "parent",
                    "A location cannot be inside itself.",
                ));
            }
        }
        Ok(())
    }
}

pub static VENDOR: Resource = Resource {
    service: "inventory",
    model: "vendor",
    label: "Vendor",
    table: "vendors",
    fields: &[
        Field::text("name", 255).required(),
        Field::text("contact_person", 255),
        Field::text("email", 254),
        Field::text("phone", 50),
        Field::text("address", 1000),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[],
        ordering: &[Col::new("name", "t.name", Kind::Text), CREATED],
        search: &["t.name", "t.contact_person", "t.email", "t.phone"],
        default_ordering: "name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

/// Whether a batch is past its expiry, and the days left.
const IS_EXPIRED: &str = "(t.expiry_date IS NOT NULL AND t.expiry_date < current_date)";
const DAYS_TO_EXPIRY: &str = "(t.expiry_date - current_date)";
const ON_HAND: &str = "(SELECT COALESCE(sum(s.quantity), 0)::bigint FROM stock_items s \
    WHERE s.batch = t.id AND s.deleted_at IS NULL)";

pub static BATCH: Resource = Resource {
    service: "inventory",
    model: "batch",
    label: "Batch",
    table: "batches",
    fields: &[
        Field::text("batch_number", 100).required(),
        Field::new("quantity", FieldKind::int_from(0)),
        Field::new("expiry_date", FieldKind::Date),
        Field::new("manufacture_date", FieldKind::Date),
        Field::new("vendor", FieldKind::Ref { table: "vendors" }).aliases(&["vendor_id"]),
        Field::new("product_id", FieldKind::int_from(1)).aliases(&["product"]),
        Field::new(
            "warehouse",
            FieldKind::Ref {
                table: "warehouses",
            },
        )
        .aliases(&["warehouse_id"]),
        Field::text("notes", 5000),
    ],
    slug_from: None,
    computed: &[
        ("is_expired", IS_EXPIRED),
        ("days_to_expiry", DAYS_TO_EXPIRY),
        ("quantity_on_hand", ON_HAND),
    ],
    list: ListSpec {
        filters: &[
            Col::new("product", "t.product_id", Kind::Int),
            Col::new("warehouse", "t.warehouse", Kind::Int),
            Col::new("vendor", "t.vendor", Kind::Int),
            Col::new("batch_number", "t.batch_number", Kind::Text),
            Col::new("is_expired", IS_EXPIRED, Kind::Bool),
            Col::new("expiry_date", "t.expiry_date", Kind::DateTime),
        ],
        ordering: &[
            Col::new("expiry_date", "t.expiry_date", Kind::DateTime),
            CREATED,
        ],
        search: &["t.batch_number", "t.notes"],
        default_ordering: "expiry_date",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: STOCK_GRANTS,
    unique: &[ConstraintField {
        constraint: "batches_number_live",
        field: "batch_number",
        message: "A batch with this number already exists.",
    }],
    hooks: Some(&BatchDates),
    params: None,
    hidden: None,
    related: &[],
};

/// A batch is not made after it expires.
pub struct BatchDates;

#[async_trait]
impl Hooks for BatchDates {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let stored: (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>) = match id {
            Some(id) => {
                sqlx::query_as("SELECT manufacture_date, expiry_date FROM batches WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
            }
            None => (None, None),
        };
        let date = |field: &str, stored: Option<chrono::NaiveDate>| match values.get(field) {
            Some(Bind::Date(d)) => Some(*d),
            Some(_) => None,
            None => stored,
        };
        if let (Some(made), Some(expires)) = (
            date("manufacture_date", stored.0),
            date("expiry_date", stored.1),
        ) {
            if made > expires {
                return Err(ApiError::field(
                    "expiry_date",
                    "The expiry date is before the manufacture date.",
                ));
            }
        }
        Ok(())
    }

    /// A batch with units on hand stays (inventory.md §7).
    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: i64,
    ) -> Result<(), ApiError> {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM stock_items WHERE batch = $1 AND deleted_at IS NULL \
             AND (quantity > 0 OR reserved_quantity > 0))",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if held {
            return Err(ApiError::rule(
                "stock_not_empty",
                "Units of this batch are still on hand.",
            ));
        }
        Ok(())
    }
}
