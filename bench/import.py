#!/usr/bin/env python3
"""Import benchmark (issue 15): POST /v1/import of N users with memberships
and N API keys, on SQLite or PostgreSQL, against the release binary.

  bench/import.py [--users 100000] [--keys 100000] [--database-url URL]
                  [--bin target/release/latchkey] [--out bench/results/import-<store>.json]
                  [--max-seconds 60]

It writes the NDJSON file to a temp dir (records streamed to disk: tenants,
a role, users with an externalId, one membership each, API keys as plain
legacy values in three formats), starts a fresh server, uploads the file in
chunks (the server streams it; nothing holds it whole), and measures:
  - the wall time of the import, and of a second run (everything unchanged);
  - the server's peak resident memory (VmHWM) before and after, to show it
    stays flat;
  - that a sample of the imported keys verifies.
Exits non-zero when the import takes longer than --max-seconds or reports
errors. Standard library only.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadbench import http, make_credential, proc_status  # noqa: E402

TENANTS = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key_value(i):
    # Three formats an in-house system might have used.
    if i % 3 == 0:
        return f"sk_live_{secrets.token_hex(16)}"
    if i % 3 == 1:
        import uuid

        return str(uuid.uuid4())
    return secrets.token_hex(24)


def write_file(path, users, keys):
    sample = []
    with open(path, "w") as f:
        # Children before parents, on purpose.
        for t in range(TENANTS - 1, -1, -1):
            parent = {"parentId": f"t{t // 10}"} if t >= 10 else {}
            f.write(json.dumps({"type": "tenant", "id": f"t{t}", "name": f"Tenant {t}", **parent}) + "\n")
        f.write(json.dumps({"type": "role", "name": "device", "permissions": ["telemetry:write"]}) + "\n")
        for i in range(users):
            f.write(json.dumps({"type": "user", "externalId": f"dev-{i}", "name": f"Device {i}"}) + "\n")
            f.write(json.dumps({"type": "membership", "tenantId": f"t{i % TENANTS}",
                                "user": {"externalId": f"dev-{i}"}, "roles": ["device"]}) + "\n")
        for i in range(keys):
            value = key_value(i)
            if i % (max(keys // 20, 1)) == 0:
                sample.append(value)
            f.write(json.dumps({"type": "api_key", "user": {"externalId": f"dev-{i % users}"},
                                "tenantId": f"t{(i % users) % TENANTS}", "key": value}) + "\n")
    return sample


def upload(url, admin, path):
    size = os.path.getsize(path)

    def chunks():
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    return
                yield b

    req = urllib.request.Request(
        url + "/v1/import", data=chunks(), method="POST",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/x-ndjson",
                 "Content-Length": str(size)})
    start = time.monotonic()
    with urllib.request.urlopen(req, timeout=3600) as r:
        body = json.loads(r.read())
    return time.monotonic() - start, body


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--database-url")
    p.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "latchkey"))
    p.add_argument("--out")
    p.add_argument("--max-seconds", type=float)
    a = p.parse_args()
    store = "postgres" if a.database_url else "sqlite"
    max_seconds = a.max_seconds or (120 if a.database_url else 60)
    tmp = tempfile.mkdtemp(prefix="lk-import-bench-")
    path = os.path.join(tmp, "import.ndjson")
    t0 = time.monotonic()
    sample = write_file(path, a.users, a.keys)
    records = TENANTS + 1 + 2 * a.users + a.keys
    print(f"wrote {records} records ({os.path.getsize(path) / 1e6:.1f} MB) in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    port = free_port()
    admin = make_credential("test", "admin")
    env = dict(os.environ, LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY=admin, RUST_LOG="warn",
               LATCHKEY_DATA_DIR=os.path.join(tmp, "data"), LATCHKEY_LISTEN=f"127.0.0.1:{port}",
               LATCHKEY_ISSUER=f"http://127.0.0.1:{port}")
    if a.database_url:
        env["LATCHKEY_DATABASE_URL"] = a.database_url
    server = subprocess.Popen([a.bin, "serve"], env=env, stderr=open(os.path.join(tmp, "server.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                http("GET", url + "/readyz")
                break
            except Exception:
                time.sleep(0.1)
        before = proc_status(server.pid)
        took, summary = upload(url, admin, path)
        after = proc_status(server.pid)
        print(f"import: {took:.1f} s, {summary['created']} created, {summary['errorCount']} errors", file=sys.stderr)
        again, summary2 = upload(url, admin, path)
        after2 = proc_status(server.pid)
        print(f"rerun: {again:.1f} s, {summary2['unchanged']} unchanged, {summary2['created']} created", file=sys.stderr)
        verified = 0
        for value in sample:
            r = http("POST", url + "/v1/api-keys/verify", json_body={"key": value},
                     headers={"Authorization": f"Bearer {admin}"})
            verified += bool(r.get("valid"))
        result = {
            "store": store, "users": a.users, "memberships": a.users, "apiKeys": a.keys,
            "records": records, "fileBytes": os.path.getsize(path),
            "importSeconds": round(took, 2), "recordsPerSecond": round(records / took),
            "rerunSeconds": round(again, 2),
            "created": summary["created"], "errors": summary["errorCount"],
            "rerunUnchanged": summary2["unchanged"], "rerunCreated": summary2["created"],
            "rssBeforeBytes": before["VmRSS"], "peakRssAfterImportBytes": after["VmHWM"],
            "peakRssAfterRerunBytes": after2["VmHWM"],
            "sampleVerified": f"{verified}/{len(sample)}", "targetSeconds": max_seconds,
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=1))
        out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"import-{store}.json")
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        ok = (summary["errorCount"] == 0 and summary["created"] == records and took <= max_seconds
              and summary2["unchanged"] == records and verified == len(sample))
        if not ok:
            print("FAILED: see the result above", file=sys.stderr)
            sys.exit(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
