#!/usr/bin/env bash
# A/B of two Latchkey binaries, for a change that must not cost speed:
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [rounds]
#
# Each binary in turn (A B A B …, `rounds` times, default 2) serves on core 0
# (taskset) while wrk drives it from core 1, so the two do not share a core
# and a busy machine moves both alike. Cases: healthz (the framework's
# ceiling), POST /v1/api-keys/verify and client-credentials issuance; each is
# warmed 2 s, then measured 3 × 5 s. Prints req/s per run; a case that got
# any non-2xx answer says NON2XX. Needs wrk, curl, jq, python3, taskset.
set -euo pipefail
old=$1; new=$2; rounds=${3:-2}
port=${AB_PORT:-18190}
admin=$(python3 -c "
import zlib
B='0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
s='lk_test_admin_'+'A'*43
c=zlib.crc32(s.encode()); out=''
for _ in range(6): out=B[c%62]+out; c//=62
print(s+out)")

one() { # binary -> one line of req/s per case
  local bin=$1 d u pid uid key sec
  d=$(mktemp -d); u=http://127.0.0.1:$port
  LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY=$admin RUST_LOG=warn \
    taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" --data-dir "$d/data" >"$d/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "$u/healthz" >/dev/null && break; sleep 0.1; done
  local json=(-H "Authorization: Bearer $admin" -H 'content-type: application/json')
  uid=$(curl -sf "${json[@]}" -d '{"name":"ab"}' "$u/v1/users" | jq -r .id)
  key=$(curl -sf "${json[@]}" -d "{\"userId\":\"$uid\"}" "$u/v1/api-keys" | jq -r .key)
  sec=$(curl -sf "${json[@]}" -d '{}' "$u/v1/users/$uid/secrets" | jq -r .secret)
  printf 'wrk.method = "GET"\n' >"$d/healthz.lua"
  printf 'wrk.method = "POST"\nwrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["X-Api-Key"] = "%s"\n' \
    "$admin" "$key" >"$d/verify.lua"
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\nwrk.body = "grant_type=client_credentials&client_id=%s&client_secret=%s"\n' \
    "$uid" "$sec" >"$d/token.lua"
  local line=""
  for case in healthz:/healthz verify:/v1/api-keys/verify token:/oauth/token; do
    local name=${case%%:*} path=${case#*:} runs=""
    taskset -c 1 wrk -t1 -c32 -d2s -s "$d/$name.lua" "$u$path" >/dev/null
    for _ in 1 2 3; do
      runs="$runs $(taskset -c 1 wrk -t1 -c32 -d5s -s "$d/$name.lua" "$u$path" |
        awk '/Non-2xx/{printf "NON2XX "} /Requests\/sec/{printf "%d", $2}')"
    done
    line="$line  $name:$runs"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
  echo "$line"
}

for r in $(seq "$rounds"); do
  echo "A (old) round $r: $(one "$old")"
  echo "B (new) round $r: $(one "$new")"
done
