"""The GraphQL flat list, shaped like the Rust service's `/graphql/product`:
products(limit, offset) { totalCount edges { … } }."""
from decimal import ROUND_HALF_UP, Decimal

import graphene
from graphene_django import DjangoObjectType

from .models import Category, Product, Tag
from .views import products_of


def money(value):
    """Like the REST serializer: 2 decimals, half up."""
    return None if value is None else str(value.quantize(Decimal("0.01"), ROUND_HALF_UP))


class TagType(DjangoObjectType):
    class Meta:
        model = Tag
        name = "Tag"
        fields = ("id", "name", "slug", "color")


class CategoryType(DjangoObjectType):
    name = graphene.String(required=True)

    class Meta:
        model = Category
        name = "Category"
        fields = ("id", "slug")

    def resolve_name(category, info):
        return category.name_en


class ProductType(DjangoObjectType):
    name = graphene.String(required=True)
    title = graphene.String(required=True)
    price = graphene.String(required=True)
    final_price = graphene.String(required=True)
    compare_at_price = graphene.String()
    stock_status = graphene.String(required=True)
    category = graphene.Field(CategoryType)
    tags = graphene.List(graphene.NonNull(TagType), required=True)

    class Meta:
        model = Product
        name = "Product"
        fields = (
            "id", "slug", "sku", "status", "is_active", "track_inventory", "stock_quantity",
            "brand", "weight", "weight_unit", "created_at", "updated_at",
        )

    def resolve_title(product, info):
        return product.name

    def resolve_price(product, info):
        return money(product.price)

    def resolve_final_price(product, info):
        return money(product.price)

    def resolve_compare_at_price(product, info):
        return money(product.compare_at_price)

    def resolve_category(product, info):
        category = product.category
        return None if category is None or category.deleted_at is not None else category

    def resolve_tags(product, info):
        return product.tags.all()  # prefetched by products_of


class ProductPage(graphene.ObjectType):
    total_count = graphene.Int(required=True)
    edges = graphene.List(graphene.NonNull(ProductType), required=True)


class Query(graphene.ObjectType):
    products = graphene.Field(
        ProductPage,
        limit=graphene.Int(default_value=20),
        offset=graphene.Int(default_value=0),
    )

    def resolve_products(root, info, limit, offset):
        queryset = products_of(info.context.user)
        limit, offset = max(0, min(limit, 100)), max(0, offset)
        return ProductPage(
            total_count=queryset.count(), edges=list(queryset[offset : offset + limit])
        )


schema = graphene.Schema(query=Query)
