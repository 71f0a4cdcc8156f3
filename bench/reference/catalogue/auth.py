"""Bearer JWT authentication against the auth service's JWK Set (EdDSA). Like
djangorestframework-simplejwt's stateless authentication, it trusts the claims and never reads
the database."""
from functools import cache

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions


@cache
def jwks_client():
    """One client per process: it caches the key set and the keys by `kid`."""
    return jwt.PyJWKClient(settings.JWKS_URL, cache_keys=True)


class TokenUser:
    """The caller as the token describes it."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, claims):
        self.user_id = str(claims["user_id"])
        self.username = claims.get("username", "")
        self.project_id = claims.get("project_id")

    def __str__(self):
        return self.username


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        token = header[1].decode("latin-1")
        try:
            key = jwks_client().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["EdDSA"], options={"require": ["exp", "user_id"]}
            )
        except jwt.PyJWKClientConnectionError as e:
            raise exceptions.APIException("The key set is unavailable.") from e
        except jwt.PyJWTError as e:
            raise exceptions.AuthenticationFailed("Token is invalid or expired.") from e
        if claims.get("token_type") != "access":
            raise exceptions.AuthenticationFailed("Token has wrong type.")
        if not isinstance(claims.get("project_id"), (int, type(None))):
            raise exceptions.AuthenticationFailed("Token has an invalid project.")
        return TokenUser(claims), token

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) when no valid token is given.
        return 'Bearer realm="api"'
