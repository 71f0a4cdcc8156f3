//! `/graphql/inventory` (contract inventory.md §9): the inventory resources through the kernel's
//! GraphQL adapter (lists with `where`/`search`/`orderBy`, `_xsMeta`, CRUD), and the workflow
//! fields: `reserveStock`, `confirmReservation`, `releaseReservation`, `adjustStock`,
//! `transferStock`, `updateLowStockThreshold`, `lowStockItems`, `productInventory`,
//! `canFulfillOrder`. Workflow mutations answer a payload whose `errors{field message}` carry
//! the refusals of the request (validation and business rules); permission and server problems
//! stay GraphQL errors.

use std::collections::BTreeMap;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Type, TypeRef,
};
use kernel::auth::ReadScope;
use kernel::resource_graphql::{
    argument, error, field_result, input, payload, payload_type, snake_keys as snake, workflow,
    writer, BelongsTo, GraphqlResource, InputKind, Pinned, Shown, Work, Writer,
};
use kernel::ApiError;
use serde_json::{json, Value};

use crate::{operations, reference, reservations, stock, views};

const NONE: &[(&str, &str)] = &[];

pub static WAREHOUSE: GraphqlResource = GraphqlResource {
    resource: &reference::WAREHOUSE,
    type_name: "Warehouse",
    single: "warehouse",
    plural: "warehouses",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static LOCATION_TYPE: GraphqlResource = GraphqlResource {
    resource: &reference::LOCATION_TYPE,
    type_name: "LocationType",
    single: "locationType",
    plural: "locationTypes",
    renames: NONE,
    has_many: &[],
    belongs_to: &[BelongsTo::one("warehouse", &WAREHOUSE)],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static LOCATION: GraphqlResource = GraphqlResource {
    resource: &reference::LOCATION,
    type_name: "Location",
    single: "location",
    plural: "locations",
    renames: NONE,
    has_many: &[],
    belongs_to: &[
        BelongsTo::one("warehouse", &WAREHOUSE),
        BelongsTo::one("location_type", &LOCATION_TYPE),
        BelongsTo::one("parent", &LOCATION),
    ],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static VENDOR: GraphqlResource = GraphqlResource {
    resource: &reference::VENDOR,
    type_name: "Vendor",
    single: "vendor",
    plural: "vendors",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static BATCH: GraphqlResource = GraphqlResource {
    resource: &reference::BATCH,
    type_name: "Batch",
    single: "batch",
    plural: "batches",
    renames: NONE,
    has_many: &[],
    belongs_to: &[
        BelongsTo::one("vendor", &VENDOR),
        BelongsTo::one("warehouse", &WAREHOUSE),
    ],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static INVENTORY: GraphqlResource = GraphqlResource {
    resource: &stock::STOCK,
    type_name: "Inventory",
    single: "inventory",
    plural: "inventories",
    renames: NONE,
    has_many: &[],
    // `location` and `batch` are display strings in REST: the relations read their ids.
    belongs_to: &[
        BelongsTo::one("warehouse", &WAREHOUSE),
        BelongsTo {
            field: "location",
            key: "location_id",
            target: &LOCATION,
            many: false,
            shown: Shown::Ids,
        },
        BelongsTo {
            field: "batch",
            key: "batch_id",
            target: &BATCH,
            many: false,
            shown: Shown::Ids,
        },
    ],
    // Read-only on update, given on create (`createInventory` books the quantity).
    extra_inputs: &[
        ("product_id", InputKind::Id),
        ("variant_id", InputKind::Id),
        ("serial_number", InputKind::Text),
        ("quantity", InputKind::Int),
        ("quantity_on_hand", InputKind::Int),
        ("reference", InputKind::Text),
    ],
    roots: true,
    aliases: &[("inventoryItem", "inventoryItems")],
};

pub static MOVEMENT: GraphqlResource = GraphqlResource {
    resource: &stock::MOVEMENT,
    type_name: "InventoryMovement",
    single: "inventoryMovement",
    plural: "inventoryMovements",
    // 0a47ee5's spellings, served beside the canonical ones.
    renames: &[
        ("movement_type", "type"),
        ("previous_quantity", "quantity_before"),
        ("new_quantity", "quantity_after"),
    ],
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static RESERVATION: GraphqlResource = GraphqlResource {
    resource: &reservations::RESERVATION,
    type_name: "StockReservation",
    single: "stockReservation",
    plural: "stockReservations",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static TRANSFER: GraphqlResource = GraphqlResource {
    resource: &operations::TRANSFER,
    type_name: "Transfer",
    single: "transfer",
    plural: "transfers",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static RESTOCK: GraphqlResource = GraphqlResource {
    resource: &operations::RESTOCK,
    type_name: "Restock",
    single: "restock",
    plural: "restocks",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static RESOURCES: &[&GraphqlResource] = &[
    &WAREHOUSE,
    &LOCATION_TYPE,
    &LOCATION,
    &VENDOR,
    &BATCH,
    &INVENTORY,
    &MOVEMENT,
    &RESERVATION,
    &TRANSFER,
    &RESTOCK,
];

/// A JSON query's answer.
type Answer = for<'a> fn(&'a ResolverContext<'a>, Writer) -> Pinned<'a, Result<Value, ApiError>>;

fn id_value(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

async fn read_row(w: &Writer, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        &w.svc,
        &stock::STOCK,
        &ReadScope::Member(w.scope.clone()),
        id,
        w.lang,
    )
    .await
}

/// `reserveStock(input{orderId, items | productId + quantity, expiresAt | expiresInMinutes,
/// warehouseId, reference})` → `{reservation, errors}`.
fn reserve_stock<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let mut body = input(ctx)?;
        if body.get("items").is_none() {
            if let Some(product) = body.get("product_id").cloned() {
                body["items"] = json!([{"product_id": product, "variant_id": body.get("variant_id"),
                    "quantity": body.get("quantity")}]);
            }
        }
        if let Some(minutes) = body.get("expires_in_minutes").and_then(Value::as_i64) {
            let at = chrono::Utc::now() + chrono::Duration::minutes(minutes);
            body["expires_at"] = json!(at.to_rfc3339());
        }
        if body.get("expires_at").is_some_and(Value::is_null) {
            if let Some(map) = body.as_object_mut() {
                map.remove("expires_at");
            }
        }
        payload(
            reservations::create(&w.svc, &w.scope, &w.username, &body)
                .await
                .map(|(_, r)| json!({ "reservation": r })),
        )
    })
}

fn reservation_key(ctx: &ResolverContext<'_>) -> async_graphql::Result<String> {
    match argument(ctx, "reservationId")? {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(error(ApiError::field(
            "reservationId",
            "This field is required.",
        ))),
    }
}

fn confirm_reservation<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let key = reservation_key(ctx)?;
        let body = json!({"reference": argument(ctx, "reference")?});
        payload(
            reservations::confirm(&w.svc, &w.scope, &w.username, &key, &body)
                .await
                .map(|r| json!({ "reservation": r })),
        )
    })
}

fn release_reservation<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let key = reservation_key(ctx)?;
        let body = json!({"reason": argument(ctx, "reason")?});
        let done = payload(
            reservations::release(&w.svc, &w.scope, &w.username, &key, &body)
                .await
                .map(|r| json!({ "success": true, "reservation": r })),
        )?;
        Ok(if done.get("__errors").is_some() {
            json!({"success": false, "__errors": done["__errors"]})
        } else {
            done
        })
    })
}

/// `adjustStock(input{productId, variantId, warehouseId | locationId, quantity, type,
/// reference, notes})`: `type` ADDITION/REMOVAL (0a47ee5) or a movement type.
fn adjust_stock<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let mut body = input(ctx)?;
        let quantity = body.get("quantity").and_then(Value::as_i64).unwrap_or(0);
        let kind = body
            .get("type")
            .or_else(|| body.get("movement_type"))
            .and_then(Value::as_str)
            .unwrap_or("ADJUSTMENT")
            .to_ascii_uppercase();
        match kind.as_str() {
            "ADDITION" => {
                body["movement_type"] = json!("ADJUSTMENT");
                body["quantity"] = json!(quantity.abs());
            }
            "REMOVAL" => {
                body["movement_type"] = json!("ADJUSTMENT");
                body["quantity"] = json!(-quantity.abs());
            }
            other => body["movement_type"] = json!(other),
        }
        let result = async {
            let movement = stock::record(&w.svc, &w.scope, &w.username, &body).await?;
            let item = match movement["inventory_id"].as_i64() {
                Some(id) => read_row(&w, id).await?,
                None => Value::Null,
            };
            Ok(json!({"inventoryItem": item, "movement": movement}))
        }
        .await;
        payload(result)
    })
}

/// `transferStock(input{productId, variantId, fromLocationId | fromWarehouseId, toLocationId |
/// toWarehouseId, quantity, reference})` → `{transfer, movement, errors}`.
fn transfer_stock<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let mut body = input(ctx)?;
        if body.get("items").is_none() {
            body["items"] = json!([{"product_id": body.get("product_id"),
                "variant_id": body.get("variant_id"), "quantity": body.get("quantity")}]);
        }
        let result = async {
            let transfer = operations::transfer(&w.svc, &w.scope, &w.username, &body).await?;
            let movement: Option<Value> = sqlx::query_scalar(
                "SELECT to_jsonb(m.*) FROM movements m WHERE m.transfer_id = $1 \
                 AND m.project_id = $2 AND m.quantity < 0 ORDER BY m.id LIMIT 1",
            )
            .bind(transfer["id"].as_i64())
            .bind(w.scope.project_id())
            .fetch_optional(&w.svc.pool)
            .await?;
            let movement = movement.map(|m| {
                let mut shaped = stock::MOVEMENT.shape(&m, "en", true);
                shaped["from_location"] = transfer["from_location"].clone();
                shaped["to_location"] = transfer["to_location"].clone();
                shaped
            });
            Ok(json!({"transfer": transfer, "movement": movement}))
        }
        .await;
        payload(result)
    })
}

/// `updateLowStockThreshold(input{productId, threshold, warehouseId?})` → the product's rows
/// get the threshold; `inventoryItem` is the first of them.
fn update_threshold<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        let result = async {
            let product = body
                .get("product_id")
                .and_then(id_value)
                .ok_or_else(|| ApiError::field("product_id", "A valid id is required."))?;
            let warehouse = body.get("warehouse_id").and_then(id_value);
            let threshold = body
                .get("threshold")
                .ok_or_else(|| ApiError::field("threshold", "This field is required."))?;
            let rows: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM stock_items WHERE project_id = $1 AND product_id = $2 \
                 AND ($3::bigint IS NULL OR warehouse = $3) AND deleted_at IS NULL ORDER BY id",
            )
            .bind(w.scope.project_id())
            .bind(product)
            .bind(warehouse)
            .fetch_all(&w.svc.pool)
            .await?;
            if rows.is_empty() {
                return Err(ApiError::field(
                    "product_id",
                    "This product has no stock rows here.",
                ));
            }
            let change = json!({ "low_stock_threshold": threshold });
            let mut first = Value::Null;
            for id in rows {
                let row = kernel::resource::update(
                    &w.svc,
                    &stock::STOCK,
                    &w.scope,
                    id,
                    &change,
                    true,
                    w.lang,
                )
                .await?;
                if first.is_null() {
                    first = row;
                }
            }
            Ok(json!({ "inventoryItem": first }))
        }
        .await;
        payload(result)
    })
}

/// `createInventory` and `createInventoryMovement` book their quantities as movements (the
/// REST `POST stock/` and `POST movements/`).
fn create_with(
    name: &'static str,
    ty: &'static str,
    input_type: &'static str,
    work: Work,
) -> Field {
    Field::new(name, TypeRef::named(ty), move |ctx| {
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let w = writer(&ctx).await?;
                let value = work(&ctx, w).await?;
                Ok(Some(FieldValue::owned_any(value)))
            }
            .await;
            Ok(field_result(&ctx, out))
        })
    })
    .argument(InputValue::new("input", TypeRef::named_nn(input_type)))
}

fn create_inventory<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        stock::create(&w.svc, &w.scope, &w.username, &body, w.lang)
            .await
            .map_err(error)
    })
}

fn create_movement<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let mut body = input(ctx)?;
        if let Some(item) = body.get("item_id").cloned() {
            body["inventory_id"] = item;
        }
        stock::record(&w.svc, &w.scope, &w.username, &body)
            .await
            .map_err(error)
    })
}

/// A query answering JSON (camelCase keys).
fn json_query(name: &'static str, answer: Answer) -> Field {
    Field::new(name, TypeRef::named("JSON"), move |ctx| {
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let w = writer(&ctx).await?;
                let value = answer(&ctx, w).await.map_err(error)?;
                Ok(Some(FieldValue::value(async_graphql::Value::from_json(
                    kernel::resource_graphql::camel_keys(value),
                )?)))
            }
            .await;
            Ok(field_result(&ctx, out))
        })
    })
}

fn params(pairs: &[(&str, Option<String>)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_owned(), v)))
        .collect()
}

fn text_arg(ctx: &ResolverContext<'_>, name: &str) -> Option<String> {
    match argument(ctx, name).ok().flatten() {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The schema's own fields (see the module documentation).
pub fn extend(query: Object, mutation: Object) -> (Object, Object, Vec<Type>) {
    let item_input = [
        ("productId", TypeRef::named_nn(TypeRef::ID)),
        ("variantId", TypeRef::named(TypeRef::ID)),
        ("quantity", TypeRef::named_nn(TypeRef::INT)),
        ("warehouseId", TypeRef::named(TypeRef::ID)),
        ("inventoryId", TypeRef::named(TypeRef::ID)),
    ]
    .into_iter()
    .fold(InputObject::new("StockLineInput"), |o, (n, ty)| {
        o.field(InputValue::new(n, ty))
    });
    let input = |name: &str, fields: &[(&str, TypeRef)]| {
        fields.iter().fold(InputObject::new(name), |o, (n, ty)| {
            o.field(InputValue::new(*n, ty.clone()))
        })
    };
    let reserve_input = input(
        "ReserveStockInput",
        &[
            ("orderId", TypeRef::named(TypeRef::STRING)),
            ("reference", TypeRef::named(TypeRef::STRING)),
            ("items", TypeRef::named_nn_list("StockLineInput")),
            ("productId", TypeRef::named(TypeRef::ID)),
            ("variantId", TypeRef::named(TypeRef::ID)),
            ("quantity", TypeRef::named(TypeRef::INT)),
            ("expiresAt", TypeRef::named("DateTime")),
            ("expiresInMinutes", TypeRef::named(TypeRef::INT)),
            ("warehouseId", TypeRef::named(TypeRef::ID)),
            ("projectId", TypeRef::named(TypeRef::ID)),
        ],
    );
    let adjust_input = input(
        "AdjustStockInput",
        &[
            ("productId", TypeRef::named(TypeRef::ID)),
            ("variantId", TypeRef::named(TypeRef::ID)),
            ("inventoryId", TypeRef::named(TypeRef::ID)),
            ("warehouseId", TypeRef::named(TypeRef::ID)),
            ("locationId", TypeRef::named(TypeRef::ID)),
            ("batchId", TypeRef::named(TypeRef::ID)),
            ("quantity", TypeRef::named_nn(TypeRef::INT)),
            ("type", TypeRef::named(TypeRef::STRING)),
            ("reasonCode", TypeRef::named(TypeRef::STRING)),
            ("reason", TypeRef::named(TypeRef::STRING)),
            ("reference", TypeRef::named(TypeRef::STRING)),
            ("notes", TypeRef::named(TypeRef::STRING)),
            ("projectId", TypeRef::named(TypeRef::ID)),
        ],
    );
    let movement_input = input(
        "MovementInput",
        &[
            ("movementType", TypeRef::named(TypeRef::STRING)),
            ("type", TypeRef::named(TypeRef::STRING)),
            ("reasonCode", TypeRef::named(TypeRef::STRING)),
            ("quantity", TypeRef::named_nn(TypeRef::INT)),
            ("productId", TypeRef::named(TypeRef::ID)),
            ("variantId", TypeRef::named(TypeRef::ID)),
            ("inventoryId", TypeRef::named(TypeRef::ID)),
            ("itemId", TypeRef::named(TypeRef::ID)),
            ("warehouseId", TypeRef::named(TypeRef::ID)),
            ("locationId", TypeRef::named(TypeRef::ID)),
            ("batchId", TypeRef::named(TypeRef::ID)),
            ("reason", TypeRef::named(TypeRef::STRING)),
            ("reference", TypeRef::named(TypeRef::STRING)),
            ("notes", TypeRef::named(TypeRef::STRING)),
            ("unitCost", TypeRef::named("Decimal")),
            ("projectId", TypeRef::named(TypeRef::ID)),
        ],
    );
    let transfer_input = input(
        "TransferStockInput",
        &[
            ("productId", TypeRef::named(TypeRef::ID)),
            ("variantId", TypeRef::named(TypeRef::ID)),
            ("quantity", TypeRef::named(TypeRef::INT)),
            ("items", TypeRef::named_list("StockLineInput")),
            ("fromWarehouseId", TypeRef::named(TypeRef::ID)),
            ("toWarehouseId", TypeRef::named(TypeRef::ID)),
            ("fromLocationId", TypeRef::named(TypeRef::ID)),
            ("toLocationId", TypeRef::named(TypeRef::ID)),
            ("reason", TypeRef::named(TypeRef::STRING)),
            ("reference", TypeRef::named(TypeRef::STRING)),
            ("projectId", TypeRef::named(TypeRef::ID)),
        ],
    );
    let threshold_input = input(
        "LowStockThresholdInput",
        &[
            ("productId", TypeRef::named_nn(TypeRef::ID)),
            ("threshold", TypeRef::named_nn(TypeRef::INT)),
            ("warehouseId", TypeRef::named(TypeRef::ID)),
            ("projectId", TypeRef::named(TypeRef::ID)),
        ],
    );
    let mutation = mutation
        .field(create_with(
            "createInventory",
            "Inventory",
            "InventoryInput",
            create_inventory,
        ))
        .field(create_with(
            "createInventoryMovement",
            "InventoryMovement",
            "MovementInput",
            create_movement,
        ))
        .field(
            workflow("reserveStock", "ReserveStockPayload", reserve_stock).argument(
                InputValue::new("input", TypeRef::named_nn("ReserveStockInput")),
            ),
        )
        .field(
            workflow(
                "confirmReservation",
                "ConfirmReservationPayload",
                confirm_reservation,
            )
            .argument(InputValue::new(
                "reservationId",
                TypeRef::named_nn(TypeRef::ID),
            ))
            .argument(InputValue::new(
                "reference",
                TypeRef::named(TypeRef::STRING),
            )),
        )
        .field(
            workflow(
                "releaseReservation",
                "ReleaseReservationPayload",
                release_reservation,
            )
            .argument(InputValue::new(
                "reservationId",
                TypeRef::named_nn(TypeRef::ID),
            ))
            .argument(InputValue::new("reason", TypeRef::named(TypeRef::STRING))),
        )
        .field(
            workflow("adjustStock", "AdjustStockPayload", adjust_stock).argument(InputValue::new(
                "input",
                TypeRef::named_nn("AdjustStockInput"),
            )),
        )
        .field(
            workflow("transferStock", "TransferStockPayload", transfer_stock).argument(
                InputValue::new("input", TypeRef::named_nn("TransferStockInput")),
            ),
        )
        .field(
            workflow(
                "updateLowStockThreshold",
                "UpdateLowStockThresholdPayload",
                update_threshold,
            )
            .argument(InputValue::new(
                "input",
                TypeRef::named_nn("LowStockThresholdInput"),
            )),
        );
    let query = query
        .field(
            json_query("lowStockItems", |ctx, w| {
                Box::pin(async move {
                    let p = params(&[
                        ("severity", text_arg(ctx, "severity")),
                        ("category", text_arg(ctx, "category")),
                    ]);
                    Ok(views::low_stock(&w.svc, &w.scope, &p, w.lang).await?["results"].clone())
                })
            })
            .argument(InputValue::new("severity", TypeRef::named(TypeRef::STRING)))
            .argument(InputValue::new("category", TypeRef::named(TypeRef::ID))),
        )
        .field(
            json_query("productInventory", |ctx, w| {
                Box::pin(async move {
                    let p = params(&[
                        ("product_id", text_arg(ctx, "productId")),
                        ("warehouse", text_arg(ctx, "warehouseId")),
                    ]);
                    views::availability(&w.svc, &w.scope, &p).await
                })
            })
            .argument(InputValue::new("productId", TypeRef::named_nn(TypeRef::ID)))
            .argument(InputValue::new("warehouseId", TypeRef::named(TypeRef::ID))),
        )
        .field(
            json_query("canFulfillOrder", |ctx, w| {
                Box::pin(async move {
                    let items = argument(ctx, "items")
                        .map_err(|_| ApiError::field("items", "Give a list of lines."))?
                        .map(snake)
                        .unwrap_or(Value::Null);
                    let warehouse = text_arg(ctx, "warehouseId");
                    views::check(
                        &w.svc,
                        &w.scope,
                        &json!({"items": items, "warehouse_id": warehouse}),
                    )
                    .await
                })
            })
            .argument(InputValue::new(
                "items",
                TypeRef::named_nn_list_nn("StockLineInput"),
            ))
            .argument(InputValue::new("warehouseId", TypeRef::named(TypeRef::ID))),
        );
    let types: Vec<Type> = vec![
        item_input.into(),
        reserve_input.into(),
        adjust_input.into(),
        movement_input.into(),
        transfer_input.into(),
        threshold_input.into(),
        payload_type(
            "ReserveStockPayload",
            &[("reservation", "StockReservation")],
        )
        .into(),
        payload_type(
            "ConfirmReservationPayload",
            &[("reservation", "StockReservation")],
        )
        .into(),
        payload_type(
            "ReleaseReservationPayload",
            &[
                ("success", TypeRef::BOOLEAN),
                ("reservation", "StockReservation"),
            ],
        )
        .into(),
        payload_type(
            "AdjustStockPayload",
            &[
                ("inventoryItem", "Inventory"),
                ("movement", "InventoryMovement"),
            ],
        )
        .into(),
        payload_type(
            "TransferStockPayload",
            &[("transfer", "Transfer"), ("movement", "JSON")],
        )
        .into(),
        payload_type(
            "UpdateLowStockThresholdPayload",
            &[("inventoryItem", "Inventory")],
        )
        .into(),
    ];
    (query, mutation, types)
}
