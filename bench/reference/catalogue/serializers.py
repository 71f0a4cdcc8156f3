from decimal import ROUND_HALF_UP

from rest_framework import serializers

from .models import Product


def money(**kwargs):
    """A money amount as a string with 2 decimals, half up like PostgreSQL's round()."""
    return serializers.DecimalField(
        max_digits=16, decimal_places=2, rounding=ROUND_HALF_UP, read_only=True, **kwargs
    )


class ProductSerializer(serializers.ModelSerializer):
    name = serializers.CharField(read_only=True)
    category = serializers.SerializerMethodField()
    # The prefetched live tags (views.products_of), by name.
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    price = money()
    compare_at_price = money()
    cost_price = money()
    final_price = money(source="price")  # no discounts in the reference
    stock_status = serializers.CharField(read_only=True)

    class Meta:
        model = Product
        fields = [
            "id", "project_id", "name", "name_en", "name_ar", "name_fr",
            "description_en", "description_ar", "description_fr", "slug", "sku", "status",
            "is_active", "track_inventory", "price", "compare_at_price", "cost_price",
            "final_price", "category", "brand", "group_id", "reorder", "stock_quantity",
            "low_stock_threshold", "stock_status", "weight", "weight_unit", "additional_data",
            "tags", "created_at", "updated_at", "created_by", "updated_by", "deleted_at",
            "deleted_by",
        ]

    def get_category(self, product):
        """`{id, name, slug}` of the live category (select_related), or null."""
        category = product.category
        if category is None or category.deleted_at is not None:
            return None
        return {"id": category.id, "name": category.name_en, "slug": category.slug}
