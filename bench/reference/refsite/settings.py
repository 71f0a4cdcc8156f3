"""Settings of the reference product API: production-like (no debug, persistent connections),
configured from the environment (REF_DATABASE_URL, REF_JWKS_URL)."""
import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = os.environ.get("REF_SECRET_KEY", "reference-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "graphene_django",
    "catalogue",
]

# A token-authenticated API: no sessions, CSRF or templates.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "refsite.urls"
WSGI_APPLICATION = "refsite.wsgi.application"


def database_from_url(url):
    """postgres://user[:password]@host[:port]/dbname as a DATABASES entry."""
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": None,  # one connection per worker, kept for its lifetime
    }


DATABASES = {
    "default": database_from_url(
        os.environ.get("REF_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zv_product_db")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The JWK Set of the auth service that signs the tokens (EdDSA).
JWKS_URL = os.environ.get("REF_JWKS_URL", "http://127.0.0.1:8000/.well-known/jwks.json")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["catalogue.auth.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "catalogue.pagination.Pagination",
    "PAGE_SIZE": 20,
}

# Server errors go to stderr (gunicorn's log); 4xx answers are not logged.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["console"], "level": "ERROR"}},
}
