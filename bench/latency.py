"""Sequential latency of the hot paths: token issuance with a client secret
vs private_key_jwt, one remote API-key verification, one introspection.

Against a running Latchkey (release build), sequentially, from one Python
client on the same machine. Both loops pay the same client overhead; the
private_key_jwt loop also signs an Ed25519 assertion per request (timed
separately and reported), and the server verifies it and records its jti.

    LATCHKEY_URL=http://127.0.0.1:8080 LATCHKEY_ADMIN_KEY=lk_test_admin_… \
        python3 bench/latency.py [N]
"""

import os
import statistics
import sys
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.utils import base64url_encode

URL = os.environ.get("LATCHKEY_URL", "http://127.0.0.1:8080")
ADMIN = os.environ["LATCHKEY_ADMIN_KEY"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
S = requests.Session()
H = {"Authorization": f"Bearer {ADMIN}"}

user = S.post(f"{URL}/v1/users", json={"name": "bench-signer"}, headers=H).json()["id"]
secret = S.post(f"{URL}/v1/users/{user}/secrets", json={}, headers=H).json()["secret"]
private = Ed25519PrivateKey.generate()
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

x = base64url_encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
kid = S.post(
    f"{URL}/v1/users/{user}/keys",
    json={"jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}},
    headers=H,
).json()["kid"]
token_url = f"{URL}/oauth/token"


def timed(fn):
    out = []
    for _ in range(N):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def with_secret():
    r = S.post(token_url, data={"grant_type": "client_credentials"}, auth=(user, secret))
    assert r.status_code == 200, r.text


sign_ms = []


def with_assertion():
    t0 = time.perf_counter()
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": user, "sub": user, "aud": token_url, "iat": now, "exp": now + 60,
         "jti": uuid.uuid4().hex},
        private,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    sign_ms.append((time.perf_counter() - t0) * 1000)
    r = S.post(token_url, data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    })
    assert r.status_code == 200, r.text


def report(name, xs):
    xs = sorted(xs)
    p99 = xs[int(len(xs) * 0.99) - 1]
    print(f"{name:>24}: median {statistics.median(xs):.3f} ms  p99 {p99:.3f} ms  (n={len(xs)})")


for _ in range(50):  # warm-up: caches, connections
    with_secret()
    with_assertion()
sign_ms.clear()
a = timed(with_secret)
b = timed(with_assertion)
a2 = timed(with_secret)
b2 = timed(with_assertion)
key = S.post(f"{URL}/v1/api-keys", json={"userId": user}, headers=H).json()["key"]
access = S.post(token_url, data={"grant_type": "client_credentials"}, auth=(user, secret)).json()["access_token"]


def verify_key():
    r = S.post(f"{URL}/v1/api-keys/verify", headers={**H, "X-Api-Key": key})
    assert r.status_code == 200 and r.json()["valid"], r.text


def introspect():
    r = S.post(f"{URL}/oauth/introspect", data={"token": access}, auth=(user, secret))
    assert r.status_code == 200 and r.json()["active"], r.text


for _ in range(50):
    verify_key()
    introspect()
c = timed(verify_key)
d = timed(introspect)
report("client_secret_basic", a + a2)
report("private_key_jwt (total)", b + b2)
report("client-side signing", sign_ms)
report("api-key verify", c)
report("introspect (JWT)", d)
