"""Token size and issuance time against the number of memberships.

A gateway machine holds `gateway` in the tenant `fleet` and `reader` in each
of N device tenants under it; a token scoped to `fleet` carries an
`authorization` entry per device (within the server's byte budget). For each
N in the steps, the script grows the fleet to N devices through the admin
API, then asks for a fleet-scoped token sequentially and reports the token's
size, its `authorization` claim's size, whether it says it was truncated,
and the median and p90 issuance latency seen by the client (loopback, one
Python client: the same overhead for every step).

    LATCHKEY_URL=http://127.0.0.1:8080 LATCHKEY_ADMIN_KEY=lk_test_admin_… \\
        python3 bench/fleet.py [steps, default 10,100,1000,3000] [requests per step, default 200]

Prints one JSON line per step, then a Markdown table.
"""

import base64
import json
import os
import statistics
import sys
import time

import requests

URL = os.environ.get("LATCHKEY_URL", "http://127.0.0.1:8080")
ADMIN = os.environ["LATCHKEY_ADMIN_KEY"]
STEPS = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "10,100,1000,3000").split(",")]
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
S = requests.Session()
H = {"Authorization": f"Bearer {ADMIN}"}


def admin(method, path, body=None, expect=(200, 201)):
    r = S.request(method, f"{URL}{path}", json=body, headers=H, timeout=30)
    if r.status_code not in expect:
        sys.exit(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.text else None


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


admin("PUT", "/v1/roles/gateway", {"permissions": ["fleet:route"]})
admin("PUT", "/v1/roles/reader", {"permissions": ["telemetry:read"]})
admin("POST", "/v1/tenants", {"id": "fleet", "name": "Fleet"})
gateway = admin("POST", "/v1/users", {"name": "gateway"})["id"]
admin("PUT", f"/v1/tenants/fleet/users/{gateway}/roles", {"roles": ["gateway"]})
secret = admin("POST", f"/v1/users/{gateway}/secrets", {})["secret"]

rows = []
devices = 0
for n in STEPS:
    while devices < n:
        tid = f"dev-{devices:05d}"
        admin("POST", "/v1/tenants", {"id": tid, "name": tid, "parentId": "fleet"})
        admin("PUT", f"/v1/tenants/{tid}/users/{gateway}/roles", {"roles": ["reader"]})
        devices += 1
    form = {"grant_type": "client_credentials", "tenant_id": "fleet"}
    # Warm-up: the first token after the writes reloads the caches.
    for _ in range(5):
        S.post(f"{URL}/oauth/token", data=form, auth=(gateway, secret), timeout=30)
    latencies = []
    token = None
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        r = S.post(f"{URL}/oauth/token", data=form, auth=(gateway, secret), timeout=30)
        latencies.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            sys.exit(f"token at N={n}: {r.status_code} {r.text}")
        token = r.json()["access_token"]
    claims = claims_of(token)
    latencies.sort()
    row = {
        "memberships": n,
        "token_bytes": len(token),
        "authorization_bytes": len(json.dumps(claims["authorization"], separators=(",", ":"))),
        "entries": len(claims["authorization"]),
        "truncated": claims.get("authorizationTruncated", False),
        "median_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(latencies[int(len(latencies) * 0.9) - 1], 3),
    }
    print(json.dumps(row), flush=True)
    rows.append(row)

print()
print("| memberships | token | `authorization` | entries | truncated | median | p90 |")
print("|---:|---:|---:|---:|:---:|---:|---:|")
for r in rows:
    print(
        f"| {r['memberships']:,} | {r['token_bytes'] / 1000:.1f} KB | "
        f"{r['authorization_bytes'] / 1000:.1f} KB | {r['entries']:,} | "
        f"{'yes' if r['truncated'] else 'no'} | {r['median_ms']:.2f} ms | {r['p90_ms']:.2f} ms |"
    )
