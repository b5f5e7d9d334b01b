"""A test token must never pass in production, checked with PyJWT alone.

A receiving service configured the standard way (the issuer's RFC 8414
metadata, its jwks_uri through PyJWKClient, PyJWT checking signature, `iss`
and `aud`; no Latchkey-specific claim such as `mode`) must refuse a token of
the other mode, both by key (the other mode's kid is not in its JWKS) and by
issuer (even checked with the right key, `iss` names the other issuer). And
each token must pass its own mode's service, so the refusals are not the
script failing at everything.

Configured by SERVER (the server's base URL, which is live mode's issuer),
TEST_TOKEN, LIVE_TOKEN and AUDIENCE. Prints one JSON object: for each
(service mode, token mode) pair, "accepted" or the reason PyJWT refused.
"""

import json
import os
from urllib.parse import urlsplit

import jwt
import requests

SERVER = os.environ["SERVER"].rstrip("/")
AUDIENCE = os.environ["AUDIENCE"]
TOKENS = {"test": os.environ["TEST_TOKEN"], "live": os.environ["LIVE_TOKEN"]}
ISSUERS = {"live": SERVER, "test": f"{SERVER}/test"}


def metadata_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between host and path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"


class Service:
    """A receiving service of one mode, set up from that issuer's metadata."""

    def __init__(self, issuer: str):
        self.meta = requests.get(metadata_url(issuer), timeout=10).json()
        assert self.meta["issuer"] == issuer, self.meta
        self.jwks = jwt.PyJWKClient(self.meta["jwks_uri"], cache_keys=False)

    def verify(self, token: str) -> str:
        """The standard check: key by kid from the JWKS, then signature,
        exp, iss and aud."""
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientError as e:
            return f"refused by key: {e}"
        return self.decode(token, key)

    def decode(self, token: str, key) -> str:
        try:
            jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                issuer=self.meta["issuer"],
                audience=AUDIENCE,
            )
        except jwt.InvalidIssuerError as e:
            return f"refused by iss: {e}"
        except jwt.PyJWTError as e:
            return f"refused: {type(e).__name__}: {e}"
        return "accepted"


services = {mode: Service(issuer) for mode, issuer in ISSUERS.items()}
out = {}
for service_mode, service in services.items():
    for token_mode, token in TOKENS.items():
        out[f"{service_mode} service, {token_mode} token"] = service.verify(token)
        # The issuer check on its own: the token's signature checked with its
        # own mode's key, its claims checked by this service.
        own_key = services[token_mode].jwks.get_signing_key_from_jwt(token)
        out[f"{service_mode} service, {token_mode} token, right key"] = service.decode(
            token, own_key
        )
print(json.dumps(out))
