#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each), starting
# from the committed seed corpus (copied, so the repository stays clean),
# with the target's libFuzzer dictionary (fuzz/dict/<target>.dict) if any.
# A crash, a panic or a failed assertion stops with a non-zero exit and
# leaves the reproducer in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [seconds-per-target]
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer=address); the project's
# one toolchain is stable, so RUSTC_BOOTSTRAP=1 enables them for this build
# only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$here/.."
for target in ${FUZZ_TARGETS:-credential_parse jwt_parse jwt_claims token_form saml_response}; do
  mkdir -p "$work/$target"
  cp "$here/corpus/$target/"* "$work/$target/"
  dict=()
  if [ -f "$here/dict/$target.dict" ]; then
    dict=("-dict=$here/dict/$target.dict")
  fi
  echo "fuzz: $target for ${seconds}s"
  set +e
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$work/$target" -- \
    ${dict[@]+"${dict[@]}"} -max_total_time="$seconds" -print_final_stats=1 \
    >"$work/$target.log" 2>&1
  status=$?
  set -e
  grep -E '^(Done|stat::number_of_executed_units)' "$work/$target.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/$target.log"
    echo "fuzz: $target FAILED (exit $status); reproducer in fuzz/artifacts/$target/"
    exit "$status"
  fi
done
