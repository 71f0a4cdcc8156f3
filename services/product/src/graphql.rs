//! `/graphql/product`: the product resources through the kernel's GraphQL adapter (contract
//! product.md §6). Products spell `name`/`description` as `title`/`content` here (both served).
//! Relations are typed and loaded per page: a product's `category`, `brand`, `schema`,
//! `shipping`, `tags`, `variants` and `images`; a variant's `product`; a category's `parent` and
//! `children`.

use kernel::resource_graphql::{BelongsTo, GraphqlResource, HasMany};

use crate::{catalogue, images, merch, products, variants};

const NONE: &[(&str, &str)] = &[];

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
    belongs_to: &[
        BelongsTo::one("category", &CATEGORY),
        BelongsTo::one("brand", &BRAND),
        BelongsTo::one("schema", &SCHEMA),
        BelongsTo::one("shipping", &SHIPPING),
        BelongsTo::many("tags", "tag_ids", &TAG),
    ],
    roots: true,
};

pub static VARIANT: GraphqlResource = GraphqlResource {
    resource: &variants::VARIANT,
    type_name: "Variant",
    single: "variant",
    plural: "variants",
    renames: NONE,
    has_many: &[],
    belongs_to: &[BelongsTo::one("product", &PRODUCT)],
    roots: true,
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
    roots: true,
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
    roots: false,
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
            roots: true,
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
