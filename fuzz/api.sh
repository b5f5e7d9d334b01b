#!/usr/bin/env bash
# Property-based fuzzing of the whole HTTP API from its own /openapi.json
# with Schemathesis. Starts target/debug/latchkey on a free port with a
# temporary SQLite data dir, fresh admin keys and the brute-force limits
# raised, runs every check on every operation for a bounded number of cases
# per operation, and fails on any failure: a 5xx, a response or status the
# document does not describe, a schema-valid request refused, a
# schema-invalid one accepted, an operation that ignores authentication. The
# server is stopped however the run ends.
#
#   fuzz/api.sh [cases-per-operation]    (default 50, or API_FUZZ_EXAMPLES)
#
# API_FUZZ_SEED=<the seed a run printed> replays that run's generation.
# API_FUZZ_DATABASE_URL=postgres://…/<empty database> runs the server on
# PostgreSQL instead of SQLite.
# Needs Schemathesis (`python3 -m pip install schemathesis==4.32.5`, as
# .ci/run does). What runs and the few checks left out, with the reasons:
# fuzz/schemathesis.toml; request rules the document cannot state:
# fuzz/api_hooks.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
examples=${1:-${API_FUZZ_EXAMPLES:-50}}
# The version .ci/run installs and the settings were written for.
wanted=4.32.5

if ! version=$(python3 -m schemathesis.cli --version 2>/dev/null); then
  echo "api-fuzz: Schemathesis is missing: python3 -m pip install schemathesis==$wanted" >&2
  exit 1
fi
case "$version" in
  *" $wanted") ;;
  *) echo "api-fuzz: warning: $version; the settings were written for $wanted" >&2 ;;
esac

cd "$root"
cargo build --quiet -p latchkey --bin latchkey
bin="${CARGO_TARGET_DIR:-$root/target}/debug/latchkey"

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A well-formed admin key (API.md: `lk_<mode>_admin_`, 43 random base62
# characters, then the CRC-32 of all before as 6 base62 digits). Both modes
# get one, so the server prints no generated key into its log.
admin_key() {
  python3 - "$1" <<'PY'
import secrets, sys, zlib
alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
key = f"lk_{sys.argv[1]}_admin_" + "".join(secrets.choice(alphabet) for _ in range(43))
n, check = zlib.crc32(key.encode()), ""
for _ in range(6):
    n, digit = divmod(n, 62)
    check = alphabet[digit] + check
print(key + check)
PY
}
LATCHKEY_FUZZ_ADMIN_KEY=$(admin_key test)
export LATCHKEY_FUZZ_ADMIN_KEY
live_key=$(admin_key live)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# The fuzzer presents thousands of wrong credentials from one address; with
# the default limits most would be answered 429 (documented, but it would
# keep the credential routes from being tested).
cat >"$work/latchkey.toml" <<'TOML'
max_failures_per_address = 1000000
max_failures_per_client = 1000000
TOML

store=(--data-dir "$work/data")
backend=SQLite
if [ -n "${API_FUZZ_DATABASE_URL:-}" ]; then
  store+=(--database-url "$API_FUZZ_DATABASE_URL")
  backend=PostgreSQL
fi
# A known workspace id: the hooks name it where a request needs a tenant
# that exists.
LATCHKEY_FUZZ_WORKSPACE=fuzz-ws
export LATCHKEY_FUZZ_WORKSPACE
LATCHKEY_WORKSPACE_ID=$LATCHKEY_FUZZ_WORKSPACE \
  LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY=$LATCHKEY_FUZZ_ADMIN_KEY \
  LATCHKEY_BOOTSTRAP_LIVE_ADMIN_KEY=$live_key \
  RUST_LOG=${RUST_LOG:-warn} \
  "$bin" serve --listen "127.0.0.1:$port" --issuer "$base" \
  "${store[@]}" --config "$work/latchkey.toml" >"$work/server.log" 2>&1 &
server=$!

ready=
for _ in $(seq 1 150); do
  if ! kill -0 "$server" 2>/dev/null; then
    break
  fi
  if curl -sf -o /dev/null "$base/readyz"; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "api-fuzz: the server did not become ready; its log:" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi

echo "api-fuzz: $version, $examples cases per operation, against $base on $backend"
started=$SECONDS
set +e
# One worker: Schemathesis' threads have crashed inside Python 3.11's
# parser (a SystemError from ast.parse, no fault of the server), and the
# second core is the server's. It runs in the scratch directory, where it
# keeps its cache. The time bound is far above a normal run (one to four
# minutes on two busy cores) and keeps a hang from eating CI's time.
# The `filter_too_much` health check is off: it says only that drawing a
# case for an operation took many tries (negative cases for a path whose
# only parameter is a shaped id, on some seeds), nothing about the server,
# and it aborted the operation's fuzzing when it fired.
limit=${API_FUZZ_TIMEOUT:-900}
(cd "$work" && SCHEMATHESIS_HOOKS="$here/api_hooks.py" timeout "$limit" python3 -m schemathesis.cli \
  --config-file "$here/schemathesis.toml" --no-color \
  run "$base/openapi.json" \
  --workers 1 --max-examples "$examples" --request-timeout 30 \
  --suppress-health-check filter_too_much \
  ${API_FUZZ_SEED:+--seed "$API_FUZZ_SEED"})
status=$?
set -e
echo "api-fuzz: schemathesis exited $status after $((SECONDS - started)) s"
if [ "$status" -eq 124 ]; then
  echo "api-fuzz: Schemathesis did not finish within $limit s" >&2
fi

# Panics are answered 500 (and so already fail the run), but say so plainly;
# a server that died is a failure whatever Schemathesis saw.
if grep -q "panicked" "$work/server.log"; then
  echo "api-fuzz: the server panicked:" >&2
  grep -A3 "panicked" "$work/server.log" | head -n 40 >&2
  status=1
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "api-fuzz: the server exited during the run; its log:" >&2
  tail -n 40 "$work/server.log" >&2
  status=1
elif [ "$status" -ne 0 ]; then
  # The server logs the cause of a 500 (never a secret); show the last ones.
  grep -E "ERROR|WARN" "$work/server.log" | tail -n 20 >&2 || true
fi
exit "$status"
