//! `/graphql/product`: the product resources through the kernel's GraphQL adapter (contract
//! product.md §6). Products spell `name`/`description` as `title`/`content` here (both served).

use kernel::resource_graphql::{GraphqlResource, HasMany};

use crate::{catalogue, merch, products, variants};

const TRANSLATED: &[(&str, &str)] = &[];

pub static PRODUCT: GraphqlResource = GraphqlResource {
    resource: &products::PRODUCT,
    type_name: "Product",
    single: "product",
    plural: "products",
    renames: &[("name", "title"), ("description", "content")],
    has_many: &[HasMany {
        field: "variants",
        target: &VARIANT,
        foreign_key: "product",
    }],
};

pub static VARIANT: GraphqlResource = GraphqlResource {
    resource: &variants::VARIANT,
    type_name: "Variant",
    single: "variant",
    plural: "variants",
    renames: TRANSLATED,
    has_many: &[],
};

macro_rules! simple {
    ($name:ident, $resource:expr, $type:literal, $single:literal, $plural:literal) => {
        pub static $name: GraphqlResource = GraphqlResource {
            resource: &$resource,
            type_name: $type,
            single: $single,
            plural: $plural,
            renames: TRANSLATED,
            has_many: &[],
        };
    };
}

simple!(
    CATEGORY,
    catalogue::CATEGORY,
    "Category",
    "category",
    "categories"
);
simple!(TAG, catalogue::TAG, "Tag", "tag", "tags");
simple!(BRAND, catalogue::BRAND, "Brand", "brand", "brands");
simple!(
    COLLECTION,
    catalogue::COLLECTION,
    "Collection",
    "collection",
    "collections"
);
simple!(
    SCHEMA,
    variants::SCHEMA,
    "VariantSchema",
    "variantSchema",
    "variantSchemas"
);
simple!(BARCODE, variants::BARCODE, "Barcode", "barcode", "barcodes");
simple!(
    SHIPPING,
    variants::SHIPPING,
    "Shipping",
    "shipping",
    "shippings"
);
simple!(
    DISCOUNT,
    merch::DISCOUNT,
    "Discount",
    "discount",
    "discounts"
);
simple!(
    PRODUCT_DISCOUNT,
    merch::PRODUCT_DISCOUNT,
    "ProductDiscount",
    "productDiscount",
    "productDiscounts"
);
simple!(
    PRODUCT_COLLECTION,
    merch::PRODUCT_COLLECTION,
    "ProductCollection",
    "productCollection",
    "productCollections"
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
];
