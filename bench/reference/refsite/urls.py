import json

from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView
from rest_framework import exceptions
from rest_framework.routers import SimpleRouter

from catalogue.auth import JWTAuthentication
from catalogue.schema import schema
from catalogue.views import ProductViewSet


class AuthenticatedGraphQLView(GraphQLView):
    """GraphQL over the same bearer tokens as the REST API: 401 without a valid one."""

    def dispatch(self, request, *args, **kwargs):
        auth = JWTAuthentication()
        try:
            result = auth.authenticate(request)
        except exceptions.APIException as e:
            return self.refuse(e.status_code, e.detail, auth.authenticate_header(request))
        if result is None:
            return self.refuse(
                401, "Authentication credentials were not provided.",
                auth.authenticate_header(request),
            )
        request.user = result[0]
        return super().dispatch(request, *args, **kwargs)

    @staticmethod
    def refuse(status, detail, challenge):
        response = HttpResponse(
            json.dumps({"detail": str(detail)}), status=status, content_type="application/json"
        )
        if status == 401:
            response["WWW-Authenticate"] = challenge
        return response


router = SimpleRouter()
router.register("api/v1/product/products", ProductViewSet, basename="product")

urlpatterns = [
    path("", include(router.urls)),
    re_path(r"^graphql/product/?$", csrf_exempt(AuthenticatedGraphQLView.as_view(schema=schema))),
]
