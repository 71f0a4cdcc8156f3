//! `/graphql/billing` (contract billing.md §3–§7): invoices, transactions, payment methods,
//! coupons and user subscriptions through the kernel's GraphQL adapter (lists with
//! `where`/`search`/`orderBy`, `_xsMeta`, CRUD; money as decimal strings), `createInvoice` and
//! `createTransaction` as the REST creates, and the workflow mutations `sendInvoice`,
//! `cancelInvoice`, `recordInvoicePayment`, `refundInvoice`, `refundTransaction`,
//! `cancelUserSubscription` (`{…, errors{field message}}`) and `validateCoupon`.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Type, TypeRef,
};
use kernel::auth::ReadScope;
use kernel::resource_graphql::{
    argument, error, input, payload, payload_type, workflow, GraphqlResource, InputKind, Pinned,
    Writer,
};
use kernel::ApiError;
use serde_json::{json, Value};

use crate::{coupons, invoices, payment_methods, subscriptions, transactions};

pub static INVOICE: GraphqlResource = GraphqlResource {
    resource: &invoices::INVOICE,
    type_name: "Invoice",
    single: "invoice",
    plural: "invoices",
    // HEAD's GraphQL spellings, served beside the REST ones.
    renames: &[
        ("subtotal", "price"),
        ("discount_amount", "discount"),
        ("tax_amount", "tax"),
        ("shipping_amount", "shipping"),
        ("total_amount", "total"),
        ("payment_status", "payment"),
        ("coupon_code", "coupon_key"),
    ],
    has_many: &[],
    belongs_to: &[],
    // Given on create (and on edits, under the rules of §3.4).
    extra_inputs: &[
        ("items", InputKind::Json),
        ("issue", InputKind::Json),
        ("status", InputKind::Text),
        ("payment", InputKind::Text),
        ("payment_status", InputKind::Text),
        ("payment_method", InputKind::Text),
        ("subtotal", InputKind::Json),
        ("price", InputKind::Json),
        ("discount_amount", InputKind::Json),
        ("discount", InputKind::Json),
        ("tax_amount", InputKind::Json),
        ("tax", InputKind::Json),
        ("shipping_amount", InputKind::Json),
        ("shipping", InputKind::Json),
        ("total_amount", InputKind::Json),
        ("total", InputKind::Json),
        ("currency", InputKind::Text),
        ("customer_id", InputKind::Id),
        ("customer_type", InputKind::Text),
        ("customer_name", InputKind::Text),
        ("customer_email", InputKind::Text),
        ("customer_phone", InputKind::Text),
        ("order_id", InputKind::Id),
        ("source_type", InputKind::Text),
        ("source_id", InputKind::Id),
        ("invoice_number", InputKind::Text),
        ("coupon_code", InputKind::Text),
        ("coupon_key", InputKind::Text),
        ("project_id", InputKind::Id),
    ],
    roots: true,
    aliases: &[],
};

pub static TRANSACTION: GraphqlResource = GraphqlResource {
    resource: &transactions::TRANSACTION,
    type_name: "Transaction",
    single: "transaction",
    plural: "transactions",
    renames: &[],
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[
        ("transaction_id", InputKind::Text),
        ("transaction_type", InputKind::Text),
        ("amount", InputKind::Json),
        ("currency", InputKind::Text),
        ("status", InputKind::Text),
        ("invoice_id", InputKind::Id),
        ("refund_of_id", InputKind::Id),
        ("payment_method_id", InputKind::Id),
        ("customer_id", InputKind::Id),
        ("method", InputKind::Text),
        ("gateway_name", InputKind::Text),
        ("gateway", InputKind::Text),
        ("gateway_transaction_id", InputKind::Text),
        ("reference", InputKind::Text),
        ("token", InputKind::Text),
        ("transaction_date", InputKind::Text),
        ("return_url", InputKind::Text),
        ("idempotency_key", InputKind::Text),
        ("project_id", InputKind::Id),
    ],
    roots: true,
    aliases: &[],
};

pub static PAYMENT_METHOD: GraphqlResource = GraphqlResource {
    resource: &payment_methods::PAYMENT_METHOD,
    type_name: "PaymentMethod",
    single: "paymentMethod",
    plural: "paymentMethods",
    renames: &[],
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[("project_id", InputKind::Id)],
    roots: true,
    aliases: &[],
};

pub static COUPON: GraphqlResource = GraphqlResource {
    resource: &coupons::COUPON,
    type_name: "Coupon",
    single: "coupon",
    plural: "coupons",
    renames: &[
        ("code", "key"),
        ("valid_from", "start_date"),
        ("valid_until", "end_date"),
        ("min_order_amount", "minimum_purchase_amount"),
        ("max_discount_amount", "maximum_discount_amount"),
    ],
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[("project_id", InputKind::Id)],
    roots: true,
    aliases: &[],
};

pub static USER_SUBSCRIPTION: GraphqlResource = GraphqlResource {
    resource: &subscriptions::USER_SUBSCRIPTION,
    type_name: "UserSubscription",
    single: "userSubscription",
    plural: "userSubscriptions",
    renames: &[],
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[("project_id", InputKind::Id)],
    roots: true,
    aliases: &[],
};

pub static RESOURCES: &[&GraphqlResource] = &[
    &INVOICE,
    &TRANSACTION,
    &PAYMENT_METHOD,
    &COUPON,
    &USER_SUBSCRIPTION,
];

fn id_arg(ctx: &ResolverContext<'_>, name: &str) -> Result<i64, ApiError> {
    match argument(ctx, name).ok().flatten() {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(ApiError::not_found)
}

fn arg(ctx: &ResolverContext<'_>, name: &str) -> Value {
    argument(ctx, name).ok().flatten().unwrap_or(Value::Null)
}

/// A body of the given arguments (absent ones left out).
fn body(ctx: &ResolverContext<'_>, pairs: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    for (graphql, rest) in pairs {
        let v = arg(ctx, graphql);
        if !v.is_null() {
            map.insert((*rest).to_owned(), v);
        }
    }
    Value::Object(map)
}

async fn invoice_of(w: &Writer, id: i64) -> Result<Value, ApiError> {
    kernel::resource::retrieve(
        &w.svc,
        &invoices::INVOICE,
        &ReadScope::Member(w.scope.clone()),
        id,
        w.lang,
    )
    .await
}

/// A transaction's payload: the row, its invoice, and the gateway's next action.
async fn with_invoice(w: &Writer, row: Value) -> Result<Value, ApiError> {
    let invoice = match row["invoice_id"].as_i64() {
        Some(id) => invoice_of(w, id).await?,
        None => Value::Null,
    };
    Ok(json!({"nextAction": row["next_action"], "transaction": row, "invoice": invoice}))
}

fn create_invoice<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        invoices::create(&w.svc, &w.scope, &body)
            .await
            .map(|(_, invoice)| invoice)
            .map_err(error)
    })
}

fn create_transaction<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let body = input(ctx)?;
        transactions::create(&w.svc, &w.scope, &body)
            .await
            .map(|(_, row)| row)
            .map_err(error)
    })
}

/// `sendInvoice(id, recipientEmail, message)` → `{invoice, errors}`.
fn send_invoice<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "id")?;
            let b = body(
                ctx,
                &[
                    ("recipientEmail", "recipient_email"),
                    ("message", "message"),
                ],
            );
            invoices::send(&w.svc, &w.scope, id, &b).await?;
            Ok(json!({"invoice": invoice_of(&w, id).await?}))
        }
        .await;
        payload(result)
    })
}

/// `cancelInvoice(id, reason)` → `{invoice, errors}`.
fn cancel_invoice<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "id")?;
            let b = body(ctx, &[("reason", "reason")]);
            let invoice = invoices::cancel(&w.svc, &w.scope, id, &b).await?;
            Ok(json!({ "invoice": invoice }))
        }
        .await;
        payload(result)
    })
}

/// `recordInvoicePayment(invoiceId, input{amount, method, gateway, token, reference, …})`.
fn record_payment<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "invoiceId")?;
            let b = input(ctx).map_err(|_| ApiError::field("input", "Give an input object."))?;
            let row = invoices::pay(&w.svc, &w.scope, id, &b).await?;
            with_invoice(&w, row).await
        }
        .await;
        payload(result)
    })
}

/// `refundInvoice(invoiceId, amount, reason, transactionId)`.
fn refund_invoice<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "invoiceId")?;
            let b = body(
                ctx,
                &[
                    ("amount", "amount"),
                    ("reason", "reason"),
                    ("transactionId", "transaction_id"),
                ],
            );
            let row = invoices::refund(&w.svc, &w.scope, id, &b).await?;
            with_invoice(&w, row).await
        }
        .await;
        payload(result)
    })
}

/// `refundTransaction(id, amount, reason)`.
fn refund_transaction<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "id")?;
            let b = body(ctx, &[("amount", "amount"), ("reason", "reason")]);
            let row = transactions::refund(&w.svc, &w.scope, id, &b).await?;
            with_invoice(&w, row).await
        }
        .await;
        payload(result)
    })
}

/// `cancelUserSubscription(id, reason, cancelImmediately)` → `{userSubscription, errors}`.
fn cancel_subscription<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let result = async {
            let id = id_arg(ctx, "id")?;
            let b = body(
                ctx,
                &[
                    ("reason", "reason"),
                    ("cancelImmediately", "cancel_immediately"),
                ],
            );
            subscriptions::cancel(&w.svc, &w.scope, id, &b).await?;
            let row = kernel::resource::retrieve(
                &w.svc,
                &subscriptions::USER_SUBSCRIPTION,
                &ReadScope::Member(w.scope.clone()),
                id,
                w.lang,
            )
            .await?;
            Ok(json!({ "userSubscription": row }))
        }
        .await;
        payload(result)
    })
}

/// `validateCoupon(code, orderAmount, customerId)` → `{valid, coupon, discountAmount,
/// finalAmount, message, code}`; a refusal is `valid: false` with its code.
fn validate_coupon<'a>(
    ctx: &'a ResolverContext<'a>,
    w: Writer,
) -> Pinned<'a, async_graphql::Result<Value>> {
    Box::pin(async move {
        let b = body(
            ctx,
            &[
                ("code", "code"),
                ("orderAmount", "order_amount"),
                ("customerId", "customer_id"),
            ],
        );
        match coupons::validate(&w.svc, &w.scope, &b).await {
            Ok(v) => Ok(json!({
                "valid": true,
                "coupon": v["coupon"],
                "discountAmount": v["discount_amount"],
                "finalAmount": v["final_amount"],
                "message": v["message"],
                "code": null,
            })),
            Err(e) if e.status().as_u16() == 422 => Ok(json!({
                "valid": false,
                "coupon": null,
                "discountAmount": null,
                "finalAmount": null,
                "message": e.detail(),
                "code": e.code(),
            })),
            Err(e) => Err(error(e)),
        }
    })
}

/// An object whose fields read the parent JSON as plain values.
fn plain_object(name: &str, fields: &'static [(&'static str, &'static str)]) -> Object {
    fields.iter().fold(Object::new(name), |o, &(field, ty)| {
        o.field(Field::new(field, TypeRef::named(ty), move |ctx| {
            FieldFuture::new(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                Ok(match &parent[field] {
                    Value::Null => None,
                    v => Some(FieldValue::value(async_graphql::Value::from_json(
                        kernel::resource_graphql::camel_keys(v.clone()),
                    )?)),
                })
            })
        }))
    })
}

/// The service's own fields (see the module documentation).
pub fn extend(query: Object, mutation: Object) -> (Object, Object, Vec<Type>) {
    let payment_input = [
        ("amount", "Decimal"),
        ("method", TypeRef::STRING),
        ("paymentMethod", TypeRef::STRING),
        ("paymentMethodId", TypeRef::ID),
        ("gateway", TypeRef::STRING),
        ("gatewayName", TypeRef::STRING),
        ("token", TypeRef::STRING),
        ("reference", TypeRef::STRING),
        ("transactionId", TypeRef::STRING),
        ("transactionDate", TypeRef::STRING),
        ("description", TypeRef::STRING),
        ("returnUrl", TypeRef::STRING),
        ("currency", TypeRef::STRING),
        ("idempotencyKey", TypeRef::STRING),
    ]
    .into_iter()
    .fold(InputObject::new("RecordPaymentInput"), |o, (n, ty)| {
        o.field(InputValue::new(n, TypeRef::named(ty)))
    });
    let id = |name: &str| InputValue::new(name, TypeRef::named_nn(TypeRef::ID));
    let text = |name: &str| InputValue::new(name, TypeRef::named(TypeRef::STRING));
    let mutation = mutation
        .field(
            workflow("createInvoice", "Invoice", create_invoice)
                .argument(InputValue::new("input", TypeRef::named_nn("InvoiceInput"))),
        )
        .field(
            workflow("createTransaction", "Transaction", create_transaction).argument(
                InputValue::new("input", TypeRef::named_nn("TransactionInput")),
            ),
        )
        .field(
            workflow("sendInvoice", "InvoicePayload", send_invoice)
                .argument(id("id"))
                .argument(text("recipientEmail"))
                .argument(text("message")),
        )
        .field(
            workflow("cancelInvoice", "InvoicePayload", cancel_invoice)
                .argument(id("id"))
                .argument(text("reason")),
        )
        .field(
            workflow("recordInvoicePayment", "TransactionPayload", record_payment)
                .argument(id("invoiceId"))
                .argument(InputValue::new(
                    "input",
                    TypeRef::named("RecordPaymentInput"),
                )),
        )
        .field(
            workflow("refundInvoice", "TransactionPayload", refund_invoice)
                .argument(id("invoiceId"))
                .argument(InputValue::new("amount", TypeRef::named("Decimal")))
                .argument(text("reason"))
                .argument(InputValue::new(
                    "transactionId",
                    TypeRef::named(TypeRef::ID),
                )),
        )
        .field(
            workflow(
                "refundTransaction",
                "TransactionPayload",
                refund_transaction,
            )
            .argument(id("id"))
            .argument(InputValue::new("amount", TypeRef::named("Decimal")))
            .argument(text("reason")),
        )
        .field(
            workflow(
                "cancelUserSubscription",
                "UserSubscriptionPayload",
                cancel_subscription,
            )
            .argument(id("id"))
            .argument(text("reason"))
            .argument(InputValue::new(
                "cancelImmediately",
                TypeRef::named(TypeRef::BOOLEAN),
            )),
        )
        .field(
            workflow("validateCoupon", "CouponValidation", validate_coupon)
                .argument(InputValue::new("code", TypeRef::named_nn(TypeRef::STRING)))
                .argument(InputValue::new("orderAmount", TypeRef::named_nn("Decimal")))
                .argument(InputValue::new("customerId", TypeRef::named(TypeRef::ID))),
        );
    // Read-only, so a query too.
    let query = query.field(
        workflow("validateCoupon", "CouponValidation", validate_coupon)
            .argument(InputValue::new("code", TypeRef::named_nn(TypeRef::STRING)))
            .argument(InputValue::new("orderAmount", TypeRef::named_nn("Decimal")))
            .argument(InputValue::new("customerId", TypeRef::named(TypeRef::ID))),
    );
    let types: Vec<Type> = vec![
        payment_input.into(),
        payload_type("InvoicePayload", &[("invoice", "Invoice")]).into(),
        payload_type(
            "TransactionPayload",
            &[
                ("transaction", "Transaction"),
                ("invoice", "Invoice"),
                ("nextAction", "JSON"),
            ],
        )
        .into(),
        payload_type(
            "UserSubscriptionPayload",
            &[("userSubscription", "UserSubscription")],
        )
        .into(),
        plain_object(
            "CouponValidation",
            &[
                ("valid", TypeRef::BOOLEAN),
                ("coupon", "JSON"),
                ("discountAmount", "Decimal"),
                ("finalAmount", "Decimal"),
                ("message", TypeRef::STRING),
                ("code", TypeRef::STRING),
            ],
        )
        .into(),
    ];
    (query, mutation, types)
}
