//! `/graphql/order` (contract order.md §12): orders, payments, returns and their lines, return
//! reasons, statuses, tags and shipping methods through the kernel's GraphQL adapter (`x(id)`,
//! `xs(where, search, orderBy, limit, offset)`, `_xsMeta`, create/update/delete), with
//! `createOrder` = placement (§4), `cancelOrder` and `updateOrderStatus` (`{order, errors{field
//! message}}`), `orderByNumber`, and `addOrderTags` / `removeOrderTags`.

use async_graphql::dynamic::{Field, FieldFuture, FieldValue, InputValue, Object, Type, TypeRef};
use kernel::resource_graphql::{
    argument, error, field_result, input, payload, payload_type, workflow, writer, BelongsTo,
    GraphqlResource, HasMany, InputKind, Pinned, Shown, Writer,
};
use serde_json::{json, Value};

use crate::{extras, items, orders, payments, returns};

pub static ORDER: GraphqlResource = GraphqlResource {
    resource: &orders::ORDER,
    type_name: "Order",
    single: "order",
    plural: "orders",
    // HEAD's GraphQL spells the main status `mainStatus` and the note `note`.
    renames: &[("status", "main_status"), ("notes", "note")],
    has_many: &[
        HasMany {
            field: "payments",
            target: &PAYMENT,
            foreign_key: "order_id",
        },
        HasMany {
            field: "returns",
            target: &ORDER_RETURN,
            foreign_key: "order_id",
        },
        HasMany {
            field: "orderProducts",
            target: &ORDER_PRODUCT,
            foreign_key: "order_id",
        },
    ],
    // GraphQL `status` is the custom Status (HEAD); the main status is `mainStatus`.
    belongs_to: &[BelongsTo {
        field: "status",
        key: "status_id",
        target: &STATUS,
        many: false,
        shown: Shown::Ids,
    }],
    // Given on placement only.
    extra_inputs: &[
        ("items", InputKind::Json),
        ("shipping_method", InputKind::Text),
        ("payment_method", InputKind::Text),
        ("reference", InputKind::Text),
    ],
    roots: true,
    aliases: &[],
};

/// A plain resource: no renames, relations or extra inputs.
const fn plain(
    resource: &'static kernel::resource::Resource,
    type_name: &'static str,
    single: &'static str,
    plural: &'static str,
) -> GraphqlResource {
    GraphqlResource {
        resource,
        type_name,
        single,
        plural,
        renames: &[],
        has_many: &[],
        belongs_to: &[],
        extra_inputs: &[],
        roots: true,
        aliases: &[],
    }
}

pub static ORDER_PRODUCT: GraphqlResource = plain(
    &items::ORDER_ITEM,
    "OrderProduct",
    "orderProduct",
    "orderProducts",
);
pub static PAYMENT: GraphqlResource = plain(&payments::PAYMENT, "Payment", "payment", "payments");
pub static ORDER_RETURN: GraphqlResource = plain(
    &returns::ORDER_RETURN,
    "OrderReturn",
    "orderReturn",
    "orderReturns",
);
pub static RETURN_REASON: GraphqlResource = plain(
    &returns::RETURN_REASON,
    "ReturnReason",
    "returnReason",
    "returnReasons",
);
pub static RETURN_ITEM: GraphqlResource = plain(
    &returns::RETURN_ITEM,
    "ReturnOrderRating",
    "returnOrderRating",
    "returnOrderRatings",
);
pub static STATUS: GraphqlResource = plain(&extras::STATUS, "Status", "status", "statuses");
pub static TAG: GraphqlResource = plain(&extras::TAG, "Tag", "tag", "tags");
pub static SHIPPING_METHOD: GraphqlResource = plain(
    &extras::SHIPPING_METHOD,
    "ShippingMethod",
    "shippingMethod",
    "shippingMethods",
);

pub static RESOURCES: &[&GraphqlResource] = &[
    &ORDER,
    &ORDER_PRODUCT,
    &PAYMENT,
    &ORDER_RETURN,
    &RETURN_REASON,
    &RETURN_ITEM,
    &STATUS,
    &TAG,
    &SHIPPING_METHOD,
];

/// `addOrderTags(id, relatedIds)` / `removeOrderTags(id, relatedIds)` → Boolean.
fn order_tags(add: bool) -> Field {
    let name = if add {
        "addOrderTags"
    } else {
        "removeOrderTags"
    };
    Field::new(name, TypeRef::named_nn(TypeRef::BOOLEAN), move |ctx| {
        FieldFuture::new(async move {
            let w = writer(&ctx).await?;
            let key = order_key(&ctx, "id");
            let ids: Vec<i64> = match argument(&ctx, "relatedIds")? {
                Some(Value::Array(ids)) => ids
                    .iter()
                    .filter_map(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
                    .collect(),
                _ => Vec::new(),
            };
            extras::tag(&w.svc, &w.scope, &key, &ids, add)
                .await
                .map_err(error)?;
            Ok(Some(FieldValue::value(true)))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(
        "relatedIds",
        TypeRef::named_nn_list_nn(TypeRef::ID),
    ))
}

fn order_key(ctx: &async_graphql::dynamic::ResolverContext<'_>, name: &str) -> String {
    match argument(ctx, name).ok().flatten() {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `createOrder(input)`: the placement of §4 (prices from the catalogue, stock reserved).
fn create_order<'a>(
    ctx: &'a async_graphql::dynamic::ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        orders::place(&w.svc, &w.scope, w.lang, &body)
            .await
            .map(|(_, order)| order)
            .map_err(error)
    })
}

/// `cancelOrder(orderId, reason)` → `{order, errors}`.
fn cancel_order<'a>(
    ctx: &'a async_graphql::dynamic::ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let key = order_key(ctx, "orderId");
        let body = json!({"reason": argument(ctx, "reason")?});
        let result = async {
            orders::cancel(&w.svc, &w.scope, &key, &body).await?;
            let id = body_id(&w, &key).await?;
            Ok(json!({"order": orders::show(&w.svc, &w.scope, id).await?}))
        }
        .await;
        payload(result)
    })
}

/// `updateOrderStatus(input{orderId, status, notes, trackingNumber, carrier})` → `{order, errors}`.
fn update_status<'a>(
    ctx: &'a async_graphql::dynamic::ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        let key = match &body["order_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let result = async {
            orders::set_status(&w.svc, &w.scope, &key, &body).await?;
            let id = body_id(&w, &key).await?;
            Ok(json!({"order": orders::show(&w.svc, &w.scope, id).await?}))
        }
        .await;
        payload(result)
    })
}

/// The id of an order named by id or number.
async fn body_id(w: &Writer, key: &str) -> Result<i64, kernel::ApiError> {
    orders::find(&w.svc.pool, w.scope.project_id(), key).await
}

/// `orderByNumber(orderNumber)`.
fn order_by_number() -> Field {
    Field::new("orderByNumber", TypeRef::named("Order"), |ctx| {
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let w = writer(&ctx).await?;
                let number = order_key(&ctx, "orderNumber");
                let id = body_id(&w, &number).await.map_err(error)?;
                let order = orders::show(&w.svc, &w.scope, id).await.map_err(error)?;
                Ok(Some(FieldValue::owned_any(order)))
            }
            .await;
            Ok(field_result(&ctx, out))
        })
    })
    .argument(InputValue::new(
        "orderNumber",
        TypeRef::named_nn(TypeRef::STRING),
    ))
}

/// The service's own fields (see the module documentation).
pub fn extend(query: Object, mutation: Object) -> (Object, Object, Vec<Type>) {
    let status_input = [
        ("orderId", TypeRef::named_nn(TypeRef::ID)),
        ("status", TypeRef::named_nn(TypeRef::STRING)),
        ("notes", TypeRef::named(TypeRef::STRING)),
        ("trackingNumber", TypeRef::named(TypeRef::STRING)),
        ("carrier", TypeRef::named(TypeRef::STRING)),
    ]
    .into_iter()
    .fold(
        async_graphql::dynamic::InputObject::new("UpdateOrderStatusInput"),
        |o, (n, ty)| o.field(InputValue::new(n, ty)),
    );
    let mutation = mutation
        .field(
            kernel::resource_graphql::workflow("createOrder", "Order", create_order)
                .argument(InputValue::new("input", TypeRef::named_nn("OrderInput"))),
        )
        .field(
            workflow("cancelOrder", "OrderPayload", cancel_order)
                .argument(InputValue::new("orderId", TypeRef::named_nn(TypeRef::ID)))
                .argument(InputValue::new(
                    "reason",
                    TypeRef::named_nn(TypeRef::STRING),
                )),
        )
        .field(
            workflow("updateOrderStatus", "OrderPayload", update_status).argument(InputValue::new(
                "input",
                TypeRef::named_nn("UpdateOrderStatusInput"),
            )),
        );
    let mutation = mutation.field(order_tags(true)).field(order_tags(false));
    let query = query.field(order_by_number());
    (
        query,
        mutation,
        vec![
            status_input.into(),
            payload_type("OrderPayload", &[("order", "Order")]).into(),
        ],
    )
}
