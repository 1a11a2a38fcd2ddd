#!/usr/bin/env bash
# Run every molecule scenario (molecule/*/molecule.yml), MOLECULE_JOBS at a time (default 3; the scenarios use
# separate namespaces and sessions on the shared test cluster). Logs: tests/output/molecule/<scenario>.log.
set -u
cd "$(dirname "$0")/.."
jobs=${MOLECULE_JOBS:-3}
out=tests/output/molecule
mkdir -p "$out"
started=$(date +%s)
results=$(mktemp)
ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename | \
  xargs -P "$jobs" -I{} bash -c '
    start=$(date +%s)
    if molecule test -s {} > "'"$out"'/{}.log" 2>&1; then
      echo "PASS {} ($(( $(date +%s) - start ))s)"
    else
      echo "FAIL {} ($(( $(date +%s) - start ))s), log: '"$out"'/{}.log"; tail -40 "'"$out"'/{}.log"; exit 1
    fi' | tee "$results"
rc=${PIPESTATUS[3]}  # the xargs that runs the scenarios (123 when one failed)
passed=$(grep -c "^PASS " "$results")
failed=$(grep -c "^FAIL " "$results")
scenarios=$(ls molecule/*/molecule.yml | wc -l)
rm -f "$results"
echo "molecule: all scenarios in $(( $(date +%s) - started ))s"
echo "molecule: $passed passed, $failed failed"
# Fail on any failed scenario, and on one that reported nothing (killed, or the pipeline broke).
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -ne "$scenarios" ]; then
  exit 1
fi
