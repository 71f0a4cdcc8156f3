//! `/graphql/product`: the product resources through the kernel's GraphQL adapter (contract
//! product.md §6). Products spell `name`/`description` as `title`/`content` here (both served).
//! Relations are typed and loaded per page: a product's `category`, `brand`, `schema`,
//! `shipping`, `tags`, `variants` and `images`; a variant's `product`; a category's `parent` and
//! `children`.

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Type, TypeRef,
};
use kernel::resource_graphql::{
    argument, error, field_result, writer, BelongsTo, GraphqlResource, HasMany, InputKind, Shown,
};
use kernel::ApiError;
use serde_json::{json, Value};

use crate::{catalogue, images, merch, products, variants};

const NONE: &[(&str, &str)] = &[];

/// What a product row shows of its category and brand (joined, see `products::RELATED`).
const JOINED: &[&str] = &["id", "name", "slug"];

pub static PRODUCT: GraphqlResource = GraphqlResource {
    resource: &products::PRODUCT,
    type_name: "Product",
    single: "product",
    plural: "products",
    renames: &[("name", "title"), ("description", "content")],
    has_many: &[
        HasMany {
            field: "variants",
            target: &VARIANT,
            foreign_key: "product",
        },
        HasMany {
            field: "images",
            target: &PRODUCT_IMAGE,
            foreign_key: "product",
        },
        HasMany {
            field: "barcodes",
            target: &BARCODE,
            foreign_key: "product",
        },
    ],
    extra_inputs: &[("tags", InputKind::Strings), ("tag_ids", InputKind::Ids)],
    belongs_to: &[
        BelongsTo::one("category", &CATEGORY).showing(Shown::Object(JOINED)),
        BelongsTo::one("brand", &BRAND).showing(Shown::Object(JOINED)),
        BelongsTo::one("schema", &SCHEMA),
        BelongsTo::one("shipping", &SHIPPING),
        BelongsTo::many("tags", "tag_ids", &TAG).showing(Shown::Names("tags")),
    ],
    roots: true,
    aliases: &[],
};

pub static VARIANT: GraphqlResource = GraphqlResource {
    resource: &variants::VARIANT,
    type_name: "Variant",
    single: "variant",
    plural: "variants",
    renames: NONE,
    has_many: &[],
    belongs_to: &[BelongsTo::one("product", &PRODUCT)],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

pub static CATEGORY: GraphqlResource = GraphqlResource {
    resource: &catalogue::CATEGORY,
    type_name: "Category",
    single: "category",
    plural: "categories",
    renames: NONE,
    has_many: &[HasMany {
        field: "children",
        target: &CATEGORY,
        foreign_key: "parent",
    }],
    belongs_to: &[BelongsTo::one("parent", &CATEGORY)],
    extra_inputs: &[],
    roots: true,
    aliases: &[],
};

/// Read through `Product.images`; written by `addProductImage`/`removeProductImage`.
pub static PRODUCT_IMAGE: GraphqlResource = GraphqlResource {
    resource: &images::PRODUCT_IMAGE,
    type_name: "ProductImage",
    single: "productImage",
    plural: "productImages",
    renames: NONE,
    has_many: &[],
    belongs_to: &[],
    extra_inputs: &[],
    roots: false,
    aliases: &[],
};

macro_rules! simple {
    ($name:ident, $resource:expr, $type:literal, $single:literal, $plural:literal, $belongs:expr) => {
        pub static $name: GraphqlResource = GraphqlResource {
            resource: &$resource,
            type_name: $type,
            single: $single,
            plural: $plural,
            renames: NONE,
            has_many: &[],
            belongs_to: $belongs,
            extra_inputs: &[],
            roots: true,
            aliases: &[],
        };
    };
}

simple!(TAG, catalogue::TAG, "Tag", "tag", "tags", &[]);
simple!(BRAND, catalogue::BRAND, "Brand", "brand", "brands", &[]);
simple!(
    COLLECTION,
    catalogue::COLLECTION,
    "Collection",
    "collection",
    "collections",
    &[]
);
simple!(
    SCHEMA,
    variants::SCHEMA,
    "VariantSchema",
    "variantSchema",
    "variantSchemas",
    &[]
);
simple!(
    BARCODE,
    variants::BARCODE,
    "Barcode",
    "barcode",
    "barcodes",
    &[
        BelongsTo::one("product", &PRODUCT),
        BelongsTo::one("variant", &VARIANT)
    ]
);
simple!(
    SHIPPING,
    variants::SHIPPING,
    "Shipping",
    "shipping",
    "shippings",
    &[]
);
simple!(
    DISCOUNT,
    merch::DISCOUNT,
    "Discount",
    "discount",
    "discounts",
    &[]
);
simple!(
    PRODUCT_DISCOUNT,
    merch::PRODUCT_DISCOUNT,
    "ProductDiscount",
    "productDiscount",
    "productDiscounts",
    &[
        BelongsTo::one("product", &PRODUCT),
        BelongsTo::one("discount", &DISCOUNT)
    ]
);
simple!(
    PRODUCT_COLLECTION,
    merch::PRODUCT_COLLECTION,
    "ProductCollection",
    "productCollection",
    "productCollections",
    &[
        BelongsTo::one("product", &PRODUCT),
        BelongsTo::one("collection", &COLLECTION)
    ]
);

pub static RESOURCES: &[&GraphqlResource] = &[
    &PRODUCT,
    &VARIANT,
    &CATEGORY,
    &TAG,
    &BRAND,
    &COLLECTION,
    &SCHEMA,
    &BARCODE,
    &SHIPPING,
    &DISCOUNT,
    &PRODUCT_DISCOUNT,
    &PRODUCT_COLLECTION,
    &PRODUCT_IMAGE,
];

/// An id argument given as an ID string or an integer.
fn id_of(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn required_id(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<i64> {
    argument(ctx, name)?
        .as_ref()
        .and_then(id_of)
        .ok_or_else(|| error(ApiError::field(name, "A valid id is required.")))
}

/// `addProductTags` / `removeProductTags` (id, relatedIds) → Boolean.
fn tags_mutation(name: &'static str, add: bool) -> Field {
    Field::new(name, TypeRef::named(TypeRef::BOOLEAN), move |ctx| {
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let w = writer(&ctx).await?;
                let id = required_id(&ctx, "id")?;
                let ids: Vec<i64> = match argument(&ctx, "relatedIds")? {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| {
                            id_of(v).ok_or_else(|| {
                                error(ApiError::field("relatedIds", "Give a list of tag ids."))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    _ => Vec::new(),
                };
                crate::products::change_tags(&w.svc, &w.scope, id, &ids, add, w.lang)
                    .await
                    .map_err(error)?;
                Ok(Some(FieldValue::value(true)))
            }
            .await;
            Ok(field_result(&ctx, out))
        })
    })
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(
        "relatedIds",
        TypeRef::named_nn_list_nn(TypeRef::ID),
    ))
}

/// `addProductImage(productId, input)` → `{productImage, errors}`: validation problems are
/// payload errors (0a47ee5), anything else a GraphQL error.
fn add_image() -> Field {
    Field::new(
        "addProductImage",
        TypeRef::named("AddProductImagePayload"),
        |ctx| {
            FieldFuture::new(async move {
                let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                    let w = writer(&ctx).await?;
                    let product = required_id(&ctx, "productId")?;
                    let input: Value = argument(&ctx, "input")?.unwrap_or(Value::Null);
                    let body: serde_json::Map<String, Value> = input
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (kernel::list::snake_case(k), v.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let body = Value::Object(body);
                    let added = match images::Source::from_input(&body, None) {
                        Ok(Some(source)) => {
                            images::add(
                                &w.svc,
                                &w.scope,
                                &w.username,
                                &w.origin,
                                product,
                                source,
                                &body,
                                w.lang,
                            )
                            .await
                        }
                        Ok(None) => Err(ApiError::field(
                            "attachment_id",
                            "Give an attachmentId or a url.",
                        )),
                        Err(e) => Err(e),
                    };
                    let payload = match added {
                        Ok(row) => json!({"__image": row}),
                        Err(e) if e.field_errors().is_some() => json!({"__error": e.body()}),
                        Err(e) => return Err(error(e)),
                    };
                    Ok(Some(FieldValue::owned_any(payload)))
                }
                .await;
                Ok(field_result(&ctx, out))
            })
        },
    )
    .argument(InputValue::new("productId", TypeRef::named_nn(TypeRef::ID)))
    .argument(InputValue::new(
        "input",
        TypeRef::named_nn("ProductImageInput"),
    ))
}

fn add_image_payload() -> Object {
    Object::new("AddProductImagePayload")
        .field(Field::new(
            "productImage",
            TypeRef::named("ProductImage"),
            |ctx| {
                FieldFuture::new(async move {
                    let p = ctx.parent_value.try_downcast_ref::<Value>()?;
                    Ok(match &p["__image"] {
                        Value::Null => None,
                        row => Some(FieldValue::owned_any(row.clone())),
                    })
                })
            },
        ))
        .field(Field::new(
            "errors",
            TypeRef::named_nn_list_nn("FieldError"),
            |ctx| {
                FieldFuture::new(async move {
                    let p = ctx.parent_value.try_downcast_ref::<Value>()?;
                    let errors: Vec<FieldValue<'_>> = p["__error"]
                        .as_object()
                        .map(|fields| {
                            fields
                                .iter()
                                .flat_map(|(field, messages)| {
                                    let field = kernel::resource_graphql::camel_name(field);
                                    messages
                                        .as_array()
                                        .cloned()
                                        .unwrap_or_default()
                                        .into_iter()
                                        .map(move |m| {
                                            FieldValue::owned_any(
                                                json!({"field": field, "message": m}),
                                            )
                                        })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Ok(Some(FieldValue::list(errors)))
                })
            },
        ))
}

/// `removeProductImage(id)` → Boolean.
fn remove_image() -> Field {
    Field::new(
        "removeProductImage",
        TypeRef::named(TypeRef::BOOLEAN),
        |ctx| {
            FieldFuture::new(async move {
                let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                    let w = writer(&ctx).await?;
                    let id = required_id(&ctx, "id")?;
                    let member = kernel::auth::ReadScope::Member(w.scope.clone());
                    let image = kernel::resource::retrieve(
                        &w.svc,
                        &images::PRODUCT_IMAGE,
                        &member,
                        id,
                        w.lang,
                    )
                    .await
                    .map_err(error)?;
                    let product = image["product"].as_i64().unwrap_or_default();
                    images::delete(&w.svc, &w.scope, product, id)
                        .await
                        .map_err(error)?;
                    Ok(Some(FieldValue::value(true)))
                }
                .await;
                Ok(field_result(&ctx, out))
            })
        },
    )
    .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
}

/// The product service's own mutations (contract §6): image and tag links.
pub fn mutations(query: Object, mutation: Object) -> (Object, Object, Vec<Type>) {
    let image_input = [
        ("attachmentId", TypeRef::named(TypeRef::ID)),
        ("url", TypeRef::named(TypeRef::STRING)),
        ("altText", TypeRef::named(TypeRef::STRING)),
        ("isPrimary", TypeRef::named(TypeRef::BOOLEAN)),
        ("position", TypeRef::named(TypeRef::INT)),
        ("variantId", TypeRef::named(TypeRef::ID)),
    ]
    .into_iter()
    .fold(InputObject::new("ProductImageInput"), |o, (n, ty)| {
        o.field(InputValue::new(n, ty))
    });
    let mutation = mutation
        .field(add_image())
        .field(remove_image())
        .field(tags_mutation("addProductTags", true))
        .field(tags_mutation("removeProductTags", false));
    (
        query,
        mutation,
        vec![image_input.into(), add_image_payload().into()],
    )
}
