#!/usr/bin/env python3
"""Load benchmark driver for Latchkey (issue 5): throughput against the
node-oidc-provider peer, and resident memory per cached API key.

Run it through bench/run.sh, which builds the release binary, starts the
servers on free ports and stops them on exit. The subcommands are:

  gen-key MODE TYPE        print a well-formed credential (bootstrap admin key)
  throughput ...           A B A B runs with wrk, writes a JSON fragment
  memory-seed ...          creates the API keys through the admin API
  memory-measure ...       verifies them once each in steps, reads VmRSS
  report ...               merges the fragments, writes latest.json, prints
                           the summary table

Standard library only (Python 3.8+). wrk does the load; this script only
provisions, starts wrk, checks every run and does the arithmetic.
"""

import argparse
import base64
import json
import os
import platform
import re
import resource
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_DIR = os.path.join(HERE, "wrk")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Targets of issue 5. The script reports them; it fails only on broken runs.
TARGET_ISSUANCE_RATIO = 5.0  # Latchkey issuance / peer issuance
TARGET_VERIFY_RATIO = 0.70  # verify / healthz throughput
TARGET_ISSUANCE_P99_MS = 5.0
TARGET_VERIFY_P99_MS = 2.0


class BenchError(Exception):
    """A run that cannot be trusted: errors, non-200s, refusals."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Credentials in the documented format (README "Concepts", API.md
# "Credentials"): lk_<mode>_<type>_<43 random base62><6 base62 CRC-32>.


def checksum(prefix_and_body: str) -> str:
    n = zlib.crc32(prefix_and_body.encode())
    out = []
    for _ in range(6):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def make_credential(mode: str, kind: str) -> str:
    s = f"lk_{mode}_{kind}_" + "".join(secrets.choice(BASE62) for _ in range(43))
    return s + checksum(s)


# --------------------------------------------------------------------------
# HTTP (provisioning only; the load is wrk's).


def http(method, url, *, json_body=None, form=None, headers=None, expect=(200,)):
    data = None
    hdrs = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    if status not in expect:
        raise BenchError(f"{method} {url} -> {status}: {body[:300]!r}")
    ctype_json = body[:1] in (b"{", b"[")
    return json.loads(body) if ctype_json else body.decode()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------
# /proc readings.


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize"):
                out[k] = int(v.split()[0]) * 1024  # kB -> bytes
    return out


def cpu_seconds(pid):
    """utime + stime of a process, seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def loadavg():
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return [float(a), float(b), float(c)]


def busy_cpu_seconds():
    """CPU seconds spent busy by the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------
# wrk runs.


class Wrk:
    def __init__(self, args, raw_dir):
        self.bin = args.wrk
        self.connections = args.connections
        self.threads = args.threads
        self.duration = args.duration
        self.raw_dir = raw_dir
        self.counter = 0

    def run(self, name, url, env, server_pid, duration=None):
        """One wrk --latency run; returns the parsed figures or raises."""
        duration = duration or self.duration
        self.counter += 1
        cmd = [
            self.bin, "--latency", "-t", str(self.threads), "-c", str(self.connections),
            "-d", f"{duration}s", "--timeout", "5s",
            "-s", os.path.join(WRK_DIR, "request.lua"), url,
        ]
        full_env = dict(os.environ)
        full_env.update(env)
        load_before = loadavg()
        cpu0 = cpu_seconds(server_pid)
        wrk_cpu0 = children_cpu()
        busy0 = busy_cpu_seconds()
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
        wall = time.monotonic() - t0
        server_cpu = cpu_seconds(server_pid) - cpu0
        wrk_cpu = children_cpu() - wrk_cpu0
        busy = busy_cpu_seconds() - busy0
        load_after = loadavg()
        raw = os.path.join(self.raw_dir, f"{self.counter:02d}-{name}.txt")
        with open(raw, "w") as f:
            f.write(" ".join(cmd) + "\n\n" + p.stdout + "\n" + p.stderr)
        if p.returncode != 0:
            raise BenchError(f"{name}: wrk exited {p.returncode}: {p.stderr.strip()[:300]}")
        m = re.search(r"^WRK_JSON (\{.*\})$", p.stdout, re.M)
        if not m:
            raise BenchError(f"{name}: no WRK_JSON line in wrk output (see {raw})")
        j = json.loads(m.group(1))
        text_rps = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
        e = j["errors"]
        problems = []
        if j["requests"] == 0:
            problems.append("no requests completed")
        if j["non200"] or e["status"] or (non2xx and int(non2xx.group(1))):
            problems.append(f"{j['non200']} non-200 responses")
        if j["bad_body"]:
            problems.append(f"{j['bad_body']} 200s without {env.get('WRK_EXPECT')!r}")
        sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
        if sock:
            problems.append(f"socket errors {e}")
        if problems:
            raise BenchError(
                f"{name}: {'; '.join(problems)}; first bad answer: {j['sample']!r} (raw output: {raw})"
            )
        lat = j["latency_us"]
        result = {
            "case": name,
            "requests": j["requests"],
            "seconds": j["duration_us"] / 1e6,
            "rps": j["requests"] / (j["duration_us"] / 1e6),
            "rps_wrk_text": float(text_rps.group(1)) if text_rps else None,
            "p50_ms": lat["p50"] / 1000,
            "p90_ms": lat["p90"] / 1000,
            "p99_ms": lat["p99"] / 1000,
            "p999_ms": lat["p999"] / 1000,
            "max_ms": lat["max"] / 1000,
            "mean_ms": lat["mean"] / 1000,
            "server_cores": server_cpu / wall,
            "wrk_cores": wrk_cpu / wall,
            # Cores kept busy by everything else on the machine (other
            # builds, the kernel's network stack is mostly in the first two).
            "other_cores": max(0.0, (busy - server_cpu - wrk_cpu) / wall),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "raw": os.path.relpath(raw, HERE),
        }
        log(
            f"{name:<22} {result['rps']:>10.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
            f"p99 {result['p99_ms']:.2f} ms  server {result['server_cores']:.2f} cores  "
            f"wrk {result['wrk_cores']:.2f}  other {result['other_cores']:.2f} cores  "
            f"load {load_after[0]:.2f}"
        )
        return result


# --------------------------------------------------------------------------
# Throughput.


def provision(url, admin):
    """A machine user with a global role, a client secret, an API key and an
    access token (for introspection)."""
    bearer = {"Authorization": f"Bearer {admin}"}
    ws = http("GET", f"{url}/v1/workspace", headers=bearer)["id"]
    user = http("POST", f"{url}/v1/users", json_body={"name": "bench-machine"},
                headers=bearer, expect=(201,))["id"]
    # One global role, so the token carries a non-empty authorization claim.
    http("PUT", f"{url}/v1/roles/reader", json_body={"permissions": ["bench:read"]},
         headers=bearer, expect=(200, 201))
    http("PUT", f"{url}/v1/tenants/{ws}/users/{user}/roles", json_body={"roles": ["reader"]},
         headers=bearer, expect=(200, 201))
    secret = http("POST", f"{url}/v1/users/{user}/secrets", json_body={},
                  headers=bearer, expect=(201,))["secret"]
    key = http("POST", f"{url}/v1/api-keys", json_body={"userId": user},
               headers=bearer, expect=(201,))["key"]
    token = http("POST", f"{url}/oauth/token", form={"grant_type": "client_credentials"},
                 headers={"Authorization": basic(user, secret)})["access_token"]
    # Every credential works before any load is put on it.
    v = http("POST", f"{url}/v1/api-keys/verify", headers={**bearer, "X-Api-Key": key})
    if not v.get("valid"):
        raise BenchError(f"fresh API key does not verify: {v}")
    i = http("POST", f"{url}/oauth/introspect", form={"token": token},
             headers={"Authorization": basic(user, secret)})
    if not i.get("active"):
        raise BenchError(f"fresh token is not active: {i}")
    return {"workspace": ws, "user": user, "secret": secret, "key": key, "token": token}


TARGET_EXCHANGE_RATIO = 0.5  # exchange / client-credentials issuance (no more than 2x the cost)
WORKLOAD_ISSUER = "https://bench-cluster.example"


def provision_workload(url, admin, p):
    """A trusted issuer with a static JWKS (so no network is involved) whose
    rule maps one subject to the bench machine, and a subject token of it
    valid for an hour: a Kubernetes service-account token, in shape and
    algorithm (RS256).
    Needs PyJWT with cryptography (`pip install 'pyjwt[crypto]'`)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    bearer = {"Authorization": f"Bearer {admin}"}
    # RS256, as Kubernetes and GitHub Actions sign their tokens.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64(n):
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    jwk = {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": "bench-1", "alg": "RS256", "use": "sig"}
    issuer = http("GET", f"{url}/v1/workspace", headers=bearer)["issuer"]
    http("PUT", f"{url}/v1/trusted-issuers/bench", headers=bearer, expect=(200, 201), json_body={
        "issuer": WORKLOAD_ISSUER, "jwks": {"keys": [jwk]}, "audiences": [issuer],
        "rules": [{"when": {"sub": "system:serviceaccount:bench:*",
                            "kubernetes.io.namespace": "bench"},
                   "userId": p["user"]}],
    })
    now = int(time.time())
    token = jwt.encode({
        "iss": WORKLOAD_ISSUER, "aud": [issuer], "sub": "system:serviceaccount:bench:loader",
        "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {"namespace": "bench", "serviceaccount": {"name": "loader"}},
    }, key, algorithm="RS256", headers={"kid": "bench-1"})
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": token, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
    answer = http("POST", f"{url}/oauth/token", form=form)
    if "access_token" not in answer:
        raise BenchError(f"the workload token is not exchanged: {answer}")
    return urllib.parse.urlencode(form)


def summarize(runs):
    return {
        "runs": len(runs),
        "rps_median": statistics.median(r["rps"] for r in runs),
        "p50_ms_median": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
        "p99_ms_max": max(r["p99_ms"] for r in runs),
        "server_cores_median": statistics.median(r["server_cores"] for r in runs),
        "wrk_cores_median": statistics.median(r["wrk_cores"] for r in runs),
        "other_cores_median": statistics.median(r["other_cores"] for r in runs),
        "rps_all": [round(r["rps"], 1) for r in runs],
        "p99_ms_all": [round(r["p99_ms"], 3) for r in runs],
    }


def cmd_throughput(args):
    raw_dir = os.path.join(args.results, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    wrk = Wrk(args, raw_dir)
    lk, peer = args.latchkey.rstrip("/"), args.peer.rstrip("/")
    log(f"provisioning {lk}")
    p = provision(lk, args.admin)
    exchange_body = provision_workload(lk, args.admin, p)
    form = "application/x-www-form-urlencoded"
    cases = {
        "latchkey-token": (f"{lk}/oauth/token", args.latchkey_pid, {
            "WRK_METHOD": "POST", "WRK_BODY": "grant_type=client_credentials",
            "WRK_CTYPE": form, "WRK_AUTH": basic(p["user"], p["secret"]),
            "WRK_EXPECT": '"access_token"'}),
        "latchkey-exchange": (f"{lk}/oauth/token", args.latchkey_pid, {
            "WRK_METHOD": "POST", "WRK_BODY": exchange_body,
            "WRK_CTYPE": form, "WRK_EXPECT": '"access_token"'}),
        "peer-token": (f"{peer}/token", args.peer_pid, {
            "WRK_METHOD": "POST", "WRK_BODY": "grant_type=client_credentials",
            "WRK_CTYPE": form, "WRK_AUTH": basic(args.peer_client, args.peer_secret),
            "WRK_EXPECT": '"access_token"'}),
        "latchkey-healthz": (f"{lk}/healthz", args.latchkey_pid, {
            "WRK_METHOD": "GET", "WRK_EXPECT": '"ok"'}),
        "latchkey-verify": (f"{lk}/v1/api-keys/verify", args.latchkey_pid, {
            "WRK_METHOD": "POST", "WRK_AUTH": f"Bearer {args.admin}",
            "WRK_API_KEY": p["key"], "WRK_EXPECT": '"valid":true'}),
        "latchkey-introspect": (f"{lk}/oauth/introspect", args.latchkey_pid, {
            "WRK_METHOD": "POST", "WRK_BODY": f"token={p['token']}", "WRK_CTYPE": form,
            "WRK_AUTH": basic(p["user"], p["secret"]), "WRK_EXPECT": '"active":true'}),
    }
    # The peer answers its first requests slowly (JIT); Latchkey fills its
    # caches. Neither warm-up run is reported.
    for name, (url, pid, env) in cases.items():
        if args.warmup > 0:
            wrk.run(f"warmup-{name}", url, env, pid, duration=args.warmup)
    runs = {name: [] for name in cases}
    groups = [
        ["latchkey-token", "latchkey-exchange", "peer-token"],
        ["latchkey-healthz", "latchkey-verify", "latchkey-introspect"],
    ]
    for group in groups:
        for rnd in range(args.rounds):
            for name in group:
                url, pid, env = cases[name]
                runs[name].append(wrk.run(f"{name}-r{rnd + 1}", url, env, pid))
    out = {
        "config": {
            "duration_s": args.duration, "rounds": args.rounds, "warmup_s": args.warmup,
            "connections": args.connections, "threads": args.threads,
            "order": "A B A B: per group, each round runs every case once, in this order",
            "groups": groups,
        },
        "runs": runs,
        "summary": {name: summarize(rs) for name, rs in runs.items()},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


# --------------------------------------------------------------------------
# Logins (issue 13): a single password login's latency, and token issuance
# under a flood of wrong passwords.

TARGET_FLOOD_RATIO = 0.80  # issuance under the flood / issuance unloaded
TARGET_LOGIN_P50_MS = 100.0
LOGIN_PASSWORD = "bench-plum-kettle-orbit-9"


def start_login(url, identifier):
    r = http("POST", f"{url}/auth/logins", json_body={"identifier": identifier}, expect=(201,))
    return r["id"], r["secret"]


def password_login(url, identifier, password):
    lid, secret = start_login(url, identifier)
    r = http("POST", f"{url}/auth/logins/{lid}/password", json_body={"password": password},
             headers={"Authorization": f"Bearer {secret}"})
    if not r.get("complete") or "session" not in r:
        raise BenchError(f"a password login did not complete: {r}")


def login_latencies(url, identifier, count, gap):
    out = []
    for _ in range(count):
        t0 = time.monotonic()
        password_login(url, identifier, LOGIN_PASSWORD)
        out.append((time.monotonic() - t0) * 1000)
        if gap:
            time.sleep(gap)
    out.sort()
    pick = lambda q: out[min(len(out) - 1, round((len(out) - 1) * q))]
    return {"n": count, "gap_s": gap, "p50_ms": pick(0.5), "p90_ms": pick(0.9),
            "p99_ms": pick(0.99), "max_ms": out[-1]}


def flood_start(args, url, logins_file, duration):
    cmd = [args.wrk, "-t", "1", "-c", str(args.flood_connections), "-d", f"{duration}s",
           "--timeout", f"{duration + 5}s", "-s", os.path.join(WRK_DIR, "login-flood.lua"), url]
    env = dict(os.environ, FLOOD_LOGINS=logins_file)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def flood_finish(proc):
    out, err = proc.communicate()
    m = re.search(r"^FLOOD_JSON (\{.*\})$", out, re.M)
    if not m:
        raise BenchError(f"no FLOOD_JSON from the flood: {out[-300:]} {err[-300:]}")
    j = json.loads(m.group(1))
    if j["other"] or j["s429"]:
        raise BenchError(f"the flood was answered otherwise than 401/403: {j}")
    return j


def cmd_login_flood(args):
    raw_dir = os.path.join(args.results, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    wrk = Wrk(args, raw_dir)
    lk = args.latchkey.rstrip("/")
    bearer = {"Authorization": f"Bearer {args.admin}"}
    p = provision(lk, args.admin)
    identifier = "bench-login@example.com"
    user = http("POST", f"{lk}/v1/users", json_body={"name": "bench-login", "email": identifier},
                headers=bearer, expect=(201,))["id"]
    http("PUT", f"{lk}/v1/users/{user}/password", json_body={"password": LOGIN_PASSWORD},
         headers=bearer, expect=(204,))
    password_login(lk, identifier, LOGIN_PASSWORD)
    log("single password logins, one at a time with a pause between them")
    single = login_latencies(lk, identifier, args.logins, 0.5)
    log(f"single login: p50 {single['p50_ms']:.1f} ms  p90 {single['p90_ms']:.1f} ms  "
        f"p99 {single['p99_ms']:.1f} ms")
    back_to_back = login_latencies(lk, identifier, args.logins, 0)
    log(f"back-to-back logins: p50 {back_to_back['p50_ms']:.1f} ms  p99 {back_to_back['p99_ms']:.1f} ms")
    # Logins for the flood: each takes ten wrong passwords before it dies,
    # so there are more than the flood can use.
    logins_file = os.path.join(raw_dir, "flood-logins.txt")
    with open(logins_file, "w") as f:
        for _ in range(args.flood_logins):
            lid, secret = start_login(lk, identifier)
            f.write(f"{lid} {secret}\n")
    form = "application/x-www-form-urlencoded"
    token_env = {"WRK_METHOD": "POST", "WRK_BODY": "grant_type=client_credentials",
                 "WRK_CTYPE": form, "WRK_AUTH": basic(p["user"], p["secret"]),
                 "WRK_EXPECT": '"access_token"'}
    url = f"{lk}/oauth/token"
    if args.warmup > 0:
        wrk.run("warmup-token", url, token_env, args.latchkey_pid, duration=args.warmup)
    unloaded, flooded, floods = [], [], []
    for rnd in range(args.rounds):
        unloaded.append(wrk.run(f"token-unloaded-r{rnd + 1}", url, token_env, args.latchkey_pid))
        flood = flood_start(args, lk, logins_file, args.duration + 4)
        time.sleep(2)  # the flood's connections are open and queued
        flooded.append(wrk.run(f"token-under-flood-r{rnd + 1}", url, token_env, args.latchkey_pid))
        floods.append(flood_finish(flood))
        time.sleep(1)
    base = statistics.median(r["rps"] for r in unloaded)
    under = statistics.median(r["rps"] for r in flooded)
    ratio = under / base
    checks = sum(f["s401"] + f["s403"] for f in floods)
    seconds = sum(f["duration_us"] for f in floods) / 1e6
    out = {
        "single_login": single,
        "back_to_back_login": back_to_back,
        "issuance_unloaded": summarize(unloaded),
        "issuance_under_flood": summarize(flooded),
        "flood": {"connections": args.flood_connections, "runs": floods,
                  "answers_per_second": checks / seconds},
        "flood_ratio": ratio,
        "targets": {"flood_ratio": TARGET_FLOOD_RATIO, "login_p50_ms": TARGET_LOGIN_P50_MS},
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nLogins ({lk})")
    print(f"  single password login       p50 {single['p50_ms']:.1f} ms  p99 {single['p99_ms']:.1f} ms"
          f"   target p50 < {TARGET_LOGIN_P50_MS:.0f} ms: {'met' if single['p50_ms'] < TARGET_LOGIN_P50_MS else 'MISSED'}")
    print(f"  back-to-back logins         p50 {back_to_back['p50_ms']:.1f} ms  p99 {back_to_back['p99_ms']:.1f} ms")
    print(f"  issuance unloaded           {base:.0f} req/s")
    print(f"  issuance under {args.flood_connections} wrong-password connections  {under:.0f} req/s"
          f"  = {ratio:.0%}   target >= {TARGET_FLOOD_RATIO:.0%}: {'met' if ratio >= TARGET_FLOOD_RATIO else 'MISSED'}")
    print(f"  flood answered              {checks / seconds:.1f} wrong passwords/s (Argon2id on its CPU budget)")


# --------------------------------------------------------------------------
# Memory.


def line_count(path):
    if not os.path.exists(path):
        return 0
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += b.count(b"\n")


def wrk_until(cmd, env, ready, what, timeout):
    """Runs wrk in the background until ready() says the work is done, then
    stops it. Raises after timeout seconds."""
    full_env = dict(os.environ)
    full_env.update(env)
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    last_log = t0
    try:
        while True:
            done, progress = ready()
            if done:
                break
            if proc.poll() is not None:
                raise BenchError(f"{what}: wrk ended early: {proc.stdout.read()[-500:]}")
            now = time.monotonic()
            if now - t0 > timeout:
                raise BenchError(f"{what}: not done after {timeout} s ({progress})")
            if now - last_log >= 15:
                log(f"  {what}: {progress}")
                last_log = now
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            # SIGTERM, not SIGINT: run.sh starts this driver in the
            # background, where SIGINT is ignored, and wrk inherits that.
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return time.monotonic() - t0


def seed_keys(args, url, user, count, out_prefix):
    """Creates `count` API keys through POST /v1/api-keys, 64 connections."""
    files = [f"{out_prefix}.{t}.txt" for t in range(args.threads)]
    for f in files + [f"{out_prefix}.{t}.errors" for t in range(args.threads)]:
        if os.path.exists(f):
            os.remove(f)
    cmd = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", "24h",
           "--timeout", "30s", "-s", os.path.join(WRK_DIR, "seed-keys.lua"), url]
    env = {"SEED_USER": user, "SEED_ADMIN": args.admin, "SEED_OUT": out_prefix,
           "SEED_TOTAL": str(count), "SEED_THREADS": str(args.threads)}

    def ready():
        errs = [f"{out_prefix}.{t}.errors" for t in range(args.threads)]
        for e in errs:
            if os.path.exists(e):
                with open(e) as fh:
                    raise BenchError(f"creating keys failed: {fh.readline().strip()}")
        # Each key line has the same length: estimate from sizes while
        # running, count exactly when the estimate says done.
        size = sum(os.path.getsize(f) for f in files if os.path.exists(f))
        if size >= count * 62:
            n = sum(line_count(f) for f in files)
            return n >= count, f"{n}/{count} keys"
        return False, f"~{size // 62}/{count} keys"

    secs = wrk_until(cmd, env, ready, "seed", args.timeout)
    keys = []
    for f in files:
        with open(f) as fh:
            keys.extend(line.strip() for line in fh if line.strip())
    if len(keys) < count:
        raise BenchError(f"seeded {len(keys)} keys, wanted {count}")
    # A few creates may still have been in flight (see seed-keys.lua): they
    # are stored but not used, so exactly `count` keys get verified/cached.
    return keys[:count], secs


def verify_each(args, url, keys_file, count):
    """Verifies every key in keys_file once (so each is cached)."""
    for t in range(args.threads):
        d = f"{keys_file}.done.{t}"
        if os.path.exists(d):
            os.remove(d)
    cmd = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", "24h",
           "--timeout", "30s", "-s", os.path.join(WRK_DIR, "verify-each.lua"), url]
    env = {"KEYS_FILE": keys_file, "VERIFY_ADMIN": args.admin,
           "VERIFY_THREADS": str(args.threads)}
    done_files = [f"{keys_file}.done.{t}" for t in range(args.threads)]

    def ready():
        have = [d for d in done_files if os.path.exists(d)]
        return len(have) == len(done_files), f"{len(have)}/{len(done_files)} threads done"

    def ready_then_drain():
        done, progress = ready()
        if done:
            time.sleep(1)  # let the last wrapped-around requests answer
        return done, progress

    secs = wrk_until(cmd, env, ready_then_drain, "verify", args.timeout)
    ok = bad = 0
    for d in done_files:
        with open(d) as fh:
            a, b = fh.read().split()
            ok, bad = ok + int(a), bad + int(b)
    if bad or ok < count:
        raise BenchError(f"verify-each: {ok} valid, {bad} not valid, of {count} keys")
    return secs


def settled_rss(pid, settle):
    time.sleep(settle)
    return proc_status(pid)


def db_key_count(data_dir):
    """Rows in api_keys, read-only (best effort: the schema may change)."""
    try:
        db = sqlite3.connect(f"file:{os.path.join(data_dir, 'latchkey.db')}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        log(f"  (could not count keys in the database: {e})")
        return None


def metric_sum(url, name, label_filter=""):
    """Sum of a Prometheus counter's series (None if the server has none)."""
    text = http("GET", f"{url}/metrics")
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def metric_delta(before, after):
    return None if before is None or after is None else after - before


def steps_of(spec):
    return sorted(set(int(n) for n in spec.split(",") if n.strip() and int(n) > 0))


def cmd_memory_seed(args):
    """Creates max(steps) keys through POST /v1/api-keys into a server whose
    API-key cache is empty. Creating a key invalidates the key cache with a
    scan of the whole map, so creates slow down with every cached key
    (measured: ~2,500/s with none cached, ~280/s with 100k cached); seeding
    everything first keeps 1M keys to minutes. The server is then restarted
    (bench/run.sh), so none of the seeding's allocations stay in the
    process that is measured."""
    url = args.latchkey.rstrip("/")
    os.makedirs(args.work, exist_ok=True)
    bearer = {"Authorization": f"Bearer {args.admin}"}
    user = http("POST", f"{url}/v1/users", json_body={"name": "bench-keys"},
                headers=bearer, expect=(201,))["id"]
    n = max(steps_of(args.keys))
    log(f"memory: creating {n} API keys through POST /v1/api-keys "
        f"({args.connections} connections)")
    keys, secs = seed_keys(args, url, user, n, os.path.join(args.work, "seed"))
    with open(os.path.join(args.work, "keys.txt"), "w") as f:
        f.write("\n".join(keys) + "\n")
    out = {"keys": n, "seconds": secs, "keys_per_s": n / secs,
           "keys_in_db": db_key_count(args.data_dir)}
    log(f"memory: {n} keys in {secs:.1f} s ({n / secs:.0f}/s); {out['keys_in_db']} rows in api_keys")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


def cmd_memory_measure(args):
    """On a freshly started server over the seeded store: VmRSS before any
    key is cached, then after verifying the first N keys once, per step."""
    url = args.latchkey.rstrip("/")
    with open(args.seed) as f:
        seed = json.load(f)
    with open(os.path.join(args.work, "keys.txt")) as f:
        keys = [line.strip() for line in f if line.strip()]
    steps = steps_of(args.keys)
    # Let start-up settle, and load what every verification needs anyway
    # (admin key, principal, tenant tree) so the baseline is not 0 keys'
    # worth of lazy state.
    http("GET", f"{url}/healthz")
    out = {"config": {"steps": steps, "connections": args.connections,
                      "threads": args.threads, "settle_s": args.settle},
           "seed": seed, "baseline": settled_rss(args.pid, args.settle), "steps": []}
    log(f"memory: restarted server, {seed['keys_in_db']} keys stored, none cached: "
        f"VmRSS {out['baseline']['VmRSS'] / 2**20:.1f} MiB")
    have = 0
    for n in steps:
        if n > len(keys):
            raise BenchError(f"step {n} > {len(keys)} seeded keys")
        part = os.path.join(args.work, f"verify-{n}.txt")
        with open(part, "w") as f:
            f.write("\n".join(keys[have:n]) + "\n")
        log(f"memory: verifying keys {have + 1}..{n} once each")
        misses0 = metric_sum(url, "latchkey_cache_lookups_total", 'outcome="miss"')
        valid0 = metric_sum(url, "latchkey_api_key_verifications_total", 'result="valid"')
        verify_secs = verify_each(args, url, part, n - have)
        misses = metric_delta(misses0, metric_sum(url, "latchkey_cache_lookups_total", 'outcome="miss"'))
        valid = metric_delta(valid0, metric_sum(url, "latchkey_api_key_verifications_total", 'result="valid"'))
        if valid is not None and valid < n - have:
            raise BenchError(f"the server counted {valid:.0f} valid verifications, wanted {n - have}")
        rss = settled_rss(args.pid, args.settle)
        step = {
            "keys_cached": n, "keys_stored": seed["keys_in_db"],
            "verify_seconds": verify_secs, "verify_keys_per_s": (n - have) / verify_secs,
            "cache_misses_during_verify": misses, "valid_verifications": valid, **rss,
        }
        out["steps"].append(step)
        have = n
        log(f"memory: {n} keys cached: VmRSS {rss['VmRSS'] / 2**20:.1f} MiB "
            f"(peak {rss['VmHWM'] / 2**20:.1f} MiB); {valid} valid verifications, "
            f"{misses} cache misses, {step['verify_keys_per_s']:.0f} verifications/s")
    for a, b in zip(out["steps"], out["steps"][1:]):
        b["bytes_per_key_since_previous_step"] = (
            (b["VmRSS"] - a["VmRSS"]) / (b["keys_cached"] - a["keys_cached"]))
    if len(out["steps"]) >= 2:
        a, b = out["steps"][0], out["steps"][-1]
        out["bytes_per_key"] = (b["VmRSS"] - a["VmRSS"]) / (b["keys_cached"] - a["keys_cached"])
        out["bytes_per_key_between"] = [a["keys_cached"], b["keys_cached"]]
        log(f"memory: {out['bytes_per_key']:.0f} bytes per key "
            f"(VmRSS at {b['keys_cached']} − at {a['keys_cached']} cached keys)")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


# --------------------------------------------------------------------------
# Report.


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - machine info is best effort
        return ""


def machine_info(repo):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "wrk": sh("wrk -v 2>&1 | head -1"),
        "node": sh("node --version"),
        "rustc": sh(f"cd {repo} && rustc --version"),
        "python": platform.python_version(),
        "commit": sh(f"git -C {repo} rev-parse HEAD"),
        # The last commit that changed the server (bench/ commits do not).
        "server_commit": sh(f"git -C {repo} log -1 --format=%H -- crates Cargo.toml Cargo.lock"),
        "commit_subject": sh(f"git -C {repo} log -1 --format=%s"),
        "dirty": bool(sh(f"git -C {repo} status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock")),
    }


def fmt_ratio(value, target, higher_better=True):
    ok = value >= target if higher_better else value < target
    if ok:
        return "met"
    if higher_better:
        return f"MISSED by {(target - value) / target * 100:.1f}% (needs {target / value:.3f}x)"
    return f"MISSED by {value - target:.2f} ms ({value / target:.1f}x the target)"


def cmd_report(args):
    with open(args.throughput) as f:
        tp = json.load(f)
    mem = None
    if args.memory and os.path.exists(args.memory):
        with open(args.memory) as f:
            mem = json.load(f)
    s = tp["summary"]
    for name, rs in tp["runs"].items():
        # Throughput per core the server actually got: on a shared 2-core
        # machine the servers do not get the same CPU, this puts them on a
        # par (node is one thread; Latchkey uses what wrk and others leave).
        s[name]["rps_per_server_core_median"] = statistics.median(
            r["rps"] / r["server_cores"] for r in rs if r["server_cores"] > 0)
    ratios = {
        "issuance_latchkey_over_peer": s["latchkey-token"]["rps_median"] / s["peer-token"]["rps_median"],
        "verify_over_healthz": s["latchkey-verify"]["rps_median"] / s["latchkey-healthz"]["rps_median"],
        "introspect_over_healthz": s["latchkey-introspect"]["rps_median"] / s["latchkey-healthz"]["rps_median"],
    }
    if "latchkey-exchange" in s:
        ratios["exchange_over_issuance"] = (
            s["latchkey-exchange"]["rps_median"] / s["latchkey-token"]["rps_median"])
    ratios["issuance_per_server_core_latchkey_over_peer"] = (
        s["latchkey-token"]["rps_per_server_core_median"] / s["peer-token"]["rps_per_server_core_median"])
    # The verify/healthz ratio per round too (same round, back to back).
    per_round = [v["rps"] / h["rps"] for v, h in zip(tp["runs"]["latchkey-verify"], tp["runs"]["latchkey-healthz"])]
    ratios["verify_over_healthz_per_round"] = [round(r, 3) for r in per_round]
    per_round_iss = [a["rps"] / b["rps"] for a, b in zip(tp["runs"]["latchkey-token"], tp["runs"]["peer-token"])]
    ratios["issuance_latchkey_over_peer_per_round"] = [round(r, 2) for r in per_round_iss]
    targets = {
        "issuance_ratio": {"target": f">= {TARGET_ISSUANCE_RATIO}x",
                           "value": ratios["issuance_latchkey_over_peer"],
                           "verdict": fmt_ratio(ratios["issuance_latchkey_over_peer"], TARGET_ISSUANCE_RATIO)},
        "verify_over_healthz": {"target": f">= {TARGET_VERIFY_RATIO:.0%}",
                                "value": ratios["verify_over_healthz"],
                                "verdict": fmt_ratio(ratios["verify_over_healthz"], TARGET_VERIFY_RATIO)},
        "issuance_p99_ms": {"target": f"< {TARGET_ISSUANCE_P99_MS} ms",
                            "value": s["latchkey-token"]["p99_ms_median"],
                            "verdict": fmt_ratio(s["latchkey-token"]["p99_ms_median"], TARGET_ISSUANCE_P99_MS, False)},
        "verify_p99_ms": {"target": f"< {TARGET_VERIFY_P99_MS} ms",
                          "value": s["latchkey-verify"]["p99_ms_median"],
                          "verdict": fmt_ratio(s["latchkey-verify"]["p99_ms_median"], TARGET_VERIFY_P99_MS, False)},
    }
    if "exchange_over_issuance" in ratios:
        targets["exchange_over_issuance"] = {
            "target": f">= {TARGET_EXCHANGE_RATIO:.0%}",
            "value": ratios["exchange_over_issuance"],
            "verdict": fmt_ratio(ratios["exchange_over_issuance"], TARGET_EXCHANGE_RATIO)}
    loads = [r["loadavg_after"][0] for rs in tp["runs"].values() for r in rs]
    others = [r["other_cores"] for rs in tp["runs"].values() for r in rs]
    result = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(args.repo),
        "loadavg_1min_during_runs": {"min": min(loads), "median": statistics.median(loads),
                                     "max": max(loads)},
        "loadavg_before_start": json.loads(args.load_before) if args.load_before else None,
        "other_cores_during_runs": {"median": statistics.median(others), "max": max(others)},
        "throughput": tp,
        "ratios": ratios,
        "targets": targets,
        "memory": mem,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    m = result["machine"]
    c = tp["config"]
    print()
    print(f"Latchkey load benchmark — commit {m['commit'][:12]}, server code as of "
          f"{m['server_commit'][:12]}{' (+uncommitted changes)' if m['dirty'] else ''}")
    print(f"{m['nproc']} cores ({m['cpu']}), {m['memory']}; {m['wrk']}; node {m['node']}; {m['rustc']}")
    print(f"wrk -t{c['threads']} -c{c['connections']} -d{c['duration_s']}s, {c['rounds']} rounds A B A B, "
          f"medians; load average (1 min) during runs {result['loadavg_1min_during_runs']['min']:.2f}–"
          f"{result['loadavg_1min_during_runs']['max']:.2f}")
    print()
    oc = result["other_cores_during_runs"]
    if oc["median"] > 0.2:
        print(f"WARNING: other processes kept {oc['median']:.2f} cores busy (median, max {oc['max']:.2f}) "
              f"during the runs: the figures are skewed; rerun on a quiet machine")
    print()
    print(f"{'case':<22}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server':>8}{'wrk':>6}{'other':>7}"
          f"{'req/s/core':>12}   req/s per run")
    for name in ["latchkey-token", "latchkey-exchange", "peer-token", "latchkey-healthz", "latchkey-verify",
                 "latchkey-introspect"]:
        if name not in s:
            continue
        x = s[name]
        print(f"{name:<22}{x['rps_median']:>10.0f}{x['p50_ms_median']:>9.2f}{x['p99_ms_median']:>9.2f}"
              f"{x['server_cores_median']:>8.2f}{x['wrk_cores_median']:>6.2f}{x['other_cores_median']:>7.2f}"
              f"{x['rps_per_server_core_median']:>12.0f}"
              f"   {', '.join(f'{v:.0f}' for v in x['rps_all'])}")
    print("(server/wrk/other: cores busy during the run, median; other = the rest of the machine;"
          " req/s/core = req/s per core the server used)")
    print()
    for k, t in targets.items():
        v = t["value"]
        shown = f"{v:.2f}x" if k == "issuance_ratio" else (
            f"{v:.0%}" if k in ("verify_over_healthz", "exchange_over_issuance") else f"{v:.2f} ms")
        print(f"{k:<22}{shown:>10}   target {t['target']:<10} {t['verdict']}")
    print(f"{'introspect_over_healthz':<22}{ratios['introspect_over_healthz']:>10.0%}   (no target)")
    print(f"{'issuance_per_core':<22}{ratios['issuance_per_server_core_latchkey_over_peer']:>9.2f}x   "
          f"(Latchkey/peer req/s per server core; no target)")
    if mem:
        print()
        sd = mem["seed"]
        print(f"memory: {sd['keys']} keys created through the API at {sd['keys_per_s']:.0f}/s; "
              f"server restarted: VmRSS {mem['baseline']['VmRSS'] / 2**20:.1f} MiB with none cached")
        for st in mem["steps"]:
            print(f"  {st['keys_cached']:>9} keys cached: VmRSS {st['VmRSS'] / 2**20:8.1f} MiB "
                  f"(peak {st['VmHWM'] / 2**20:.1f} MiB)"
                  + (f"; {st['bytes_per_key_since_previous_step']:.0f} B/key since the previous step"
                     if "bytes_per_key_since_previous_step" in st else ""))
        if "bytes_per_key" in mem:
            a, b = mem["bytes_per_key_between"]
            print(f"  bytes per cached key (RSS at {b} − at {a}) / {b - a}: {mem['bytes_per_key']:.0f}")
    print()
    print(f"written: {os.path.relpath(args.out)}")


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("gen-key")
    g.add_argument("mode", choices=["test", "live"])
    g.add_argument("kind", choices=["admin", "key", "secret"])

    def wrk_args(p):
        p.add_argument("--wrk", default="wrk")
        p.add_argument("--connections", type=int, default=64)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--admin", required=True)
        p.add_argument("--latchkey", required=True)

    t = sub.add_parser("throughput")
    wrk_args(t)
    t.add_argument("--latchkey-pid", type=int, required=True)
    t.add_argument("--peer", required=True)
    t.add_argument("--peer-pid", type=int, required=True)
    t.add_argument("--peer-client", default="bench-machine")
    t.add_argument("--peer-secret", default="bench-secret-0123456789abcdef0123456789abcdef")
    t.add_argument("--duration", type=int, default=10)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--results", required=True)
    t.add_argument("--out", required=True)

    for name in ("memory-seed", "memory-measure"):
        m = sub.add_parser(name)
        wrk_args(m)
        m.add_argument("--work", required=True)
        m.add_argument("--keys", default="10000,100000")
        m.add_argument("--timeout", type=int, default=3600)
        m.add_argument("--out", required=True)
        if name == "memory-seed":
            m.add_argument("--data-dir", required=True)
        else:
            m.add_argument("--pid", type=int, required=True)
            m.add_argument("--seed", required=True)
            m.add_argument("--settle", type=float, default=5.0)

    lf = sub.add_parser("login-flood")
    wrk_args(lf)
    lf.add_argument("--latchkey-pid", type=int, required=True)
    lf.add_argument("--duration", type=int, default=10)
    lf.add_argument("--rounds", type=int, default=3)
    lf.add_argument("--warmup", type=int, default=3)
    lf.add_argument("--logins", type=int, default=40, help="logins timed, each way")
    lf.add_argument("--flood-connections", type=int, default=200)
    lf.add_argument("--flood-logins", type=int, default=2000)
    lf.add_argument("--results", required=True)
    lf.add_argument("--out", required=True)

    r = sub.add_parser("report")
    r.add_argument("--throughput", required=True)
    r.add_argument("--memory")
    r.add_argument("--repo", required=True)
    r.add_argument("--load-before")
    r.add_argument("--out", required=True)

    args = ap.parse_args()

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.cmd == "gen-key":
            print(make_credential(args.mode, args.kind))
        elif args.cmd == "throughput":
            cmd_throughput(args)
        elif args.cmd == "login-flood":
            cmd_login_flood(args)
        elif args.cmd == "memory-seed":
            cmd_memory_seed(args)
        elif args.cmd == "memory-measure":
            cmd_memory_measure(args)
        elif args.cmd == "report":
            cmd_report(args)
    except BenchError as e:
        print(f"\nBENCHMARK FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
