"""Interop check with libraries Latchkey did not write.

Discovers the issuer from its RFC 8414 metadata (at the path RFC 8414 §3.1
derives from the issuer URL: test mode's issuer is `{server}/test`), gets a token with Authlib's
OAuth 2.0 client (client_credentials, client_secret_basic), and verifies it
against jwks_uri with PyJWT, checking issuer and audience, then introspects
it with Authlib (RFC 7662). Prints the verified claims as JSON. Configured by ISSUER, CLIENT_ID, CLIENT_SECRET and
AUDIENCE.
"""

import json
import os
import sys

import jwt
import requests
from urllib.parse import urlsplit
from authlib.integrations.requests_client import OAuth2Session

issuer = os.environ["ISSUER"]
audience = os.environ["AUDIENCE"]

def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between host and path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"


meta = requests.get(metadata_url(issuer), timeout=10).json()
assert meta["issuer"] == issuer, meta

session = OAuth2Session(
    client_id=os.environ["CLIENT_ID"],
    client_secret=os.environ["CLIENT_SECRET"],
    token_endpoint_auth_method="client_secret_basic",
    scope="telemetry:read",
)
token = session.fetch_token(
    meta["token_endpoint"], grant_type="client_credentials", audience=audience
)
access_token = token["access_token"]

jwks = jwt.PyJWKClient(meta["jwks_uri"])
signing_key = jwks.get_signing_key_from_jwt(access_token)
header = jwt.get_unverified_header(access_token)
if header.get("typ") != "at+jwt":
    sys.exit(f"unexpected typ {header.get('typ')!r}")
claims = jwt.decode(
    access_token,
    signing_key.key,
    algorithms=[signing_key.algorithm_name],
    issuer=meta["issuer"],
    audience=audience,
)

# Introspection (RFC 7662) read by the same standard client.
introspection = session.introspect_token(
    meta["introspection_endpoint"], token=access_token
).json()
if introspection.get("active") is not True or introspection.get("sub") != claims["sub"]:
    sys.exit(f"unexpected introspection answer {introspection!r}")
claims["introspected_active"] = introspection["active"]
print(json.dumps(claims))
