from django.db.models import Prefetch
from django.db.models.functions import Lower
from rest_framework import exceptions, viewsets

from .models import Product, Tag
from .serializers import ProductSerializer


def products_of(user):
    """The live products of the caller's project, newest first, with category and live tags."""
    if user.project_id is None:
        raise exceptions.PermissionDenied("The token names no project.")
    tags = Tag.objects.filter(deleted_at__isnull=True).order_by(Lower("name"))
    return (
        Product.objects.filter(project_id=user.project_id, deleted_at__isnull=True)
        .select_related("category")
        .prefetch_related(Prefetch("tags", queryset=tags))
        .order_by("-created_at", "-id")
    )


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """GET /api/v1/product/products/ (list, page-numbered) and /{id}/ (retrieve)."""

    serializer_class = ProductSerializer

    def get_queryset(self):
        return products_of(self.request.user)
