"""The product service's tables, mapped read-only: the schema is owned by the Rust service's
migrations (services/product/migrations), so none of these models is managed by Django.
The generated `search` tsvector columns are left unmapped."""
from django.db import models


class Row(models.Model):
    """The columns every table of the service has: its project and the audit trail."""

    project_id = models.BigIntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    created_by = models.BigIntegerField(null=True)
    updated_by = models.BigIntegerField(null=True)
    deleted_at = models.DateTimeField(null=True)
    deleted_by = models.BigIntegerField(null=True)

    class Meta:
        abstract = True


class Named(Row):
    """A row with a name and a description in English, Arabic and French."""

    name_en = models.TextField(blank=True)
    name_ar = models.TextField(blank=True)
    name_fr = models.TextField(blank=True)
    description_en = models.TextField(blank=True)
    description_ar = models.TextField(blank=True)
    description_fr = models.TextField(blank=True)

    class Meta:
        abstract = True


class Category(Named):
    slug = models.TextField()
    parent = models.ForeignKey(
        "self", models.DO_NOTHING, null=True, db_column="parent", related_name="children"
    )
    image = models.TextField(null=True)
    featured = models.BooleanField(default=False)
    order = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        managed = False
        db_table = "categories"


class Tag(Row):
    name = models.TextField()
    slug = models.TextField()
    color = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = "tags"


class Product(Named):
    slug = models.TextField()
    sku = models.TextField(null=True)
    status = models.TextField(default="created")
    is_active = models.BooleanField(default=True)
    track_inventory = models.BooleanField(default=True)
    price = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    compare_at_price = models.DecimalField(max_digits=16, decimal_places=4, null=True)
    cost_price = models.DecimalField(max_digits=16, decimal_places=4, null=True)
    category = models.ForeignKey(
        Category, models.DO_NOTHING, null=True, db_column="category", related_name="products"
    )
    brand = models.BigIntegerField(null=True, db_column="brand")
    group_id = models.BigIntegerField(null=True)
    reorder = models.IntegerField(null=True)
    stock_quantity = models.IntegerField(default=0)
    low_stock_threshold = models.IntegerField(null=True)
    weight = models.FloatField(null=True)
    weight_unit = models.TextField(default="kg")
    additional_data = models.JSONField(null=True)
    tags = models.ManyToManyField(Tag, through="ProductTag", related_name="products")

    class Meta:
        managed = False
        db_table = "products"
        # Documentation only: the real index is
        # (project_id, created_at DESC, id DESC) WHERE deleted_at IS NULL.
        indexes = [models.Index(fields=["project_id", "-created_at"], name="products_list_idx")]

    @property
    def name(self):
        """The English name, else the first non-empty translation."""
        return self.name_en or self.name_ar or self.name_fr

    @property
    def stock_status(self):
        if not self.track_inventory:
            return "untracked"
        if self.stock_quantity <= 0:
            return "out_of_stock"
        threshold = 10 if self.low_stock_threshold is None else self.low_stock_threshold
        return "low_stock" if self.stock_quantity <= threshold else "in_stock"


class ProductTag(models.Model):
    """The tag links: a composite primary key, no `id` column."""

    pk = models.CompositePrimaryKey("product_id", "tag_id")
    product = models.ForeignKey(Product, models.DO_NOTHING)
    tag = models.ForeignKey(Tag, models.DO_NOTHING)

    class Meta:
        managed = False
        db_table = "product_tags"
