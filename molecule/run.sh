#!/usr/bin/env bash
# Run every molecule scenario (molecule/*/molecule.yml), MOLECULE_JOBS at a time (default 3; the scenarios use
# separate namespaces and sessions on the shared test cluster). Logs: tests/output/molecule/<scenario>.log.
set -u
cd "$(dirname "$0")/.." || exit 1
jobs=${MOLECULE_JOBS:-3}
out=tests/output/molecule
mkdir -p "$out"
started=$(date +%s)
results=$(mktemp)
scenario_names=()
for scenario_file in molecule/*/molecule.yml; do
  scenario_dir=${scenario_file%/molecule.yml}
  scenario_names+=("${scenario_dir#molecule/}")
done
# The scenario runner gets the log directory as its first argument; {} is the scenario's name.
# shellcheck disable=SC2016 # $1, $start: expanded by the inner bash, not here
printf '%s\n' "${scenario_names[@]}" | \
  xargs -P "$jobs" -I{} bash -c '
    start=$(date +%s)
    if molecule test -s {} > "$1/{}.log" 2>&1; then
      echo "PASS {} ($(( $(date +%s) - start ))s)"
    else
      echo "FAIL {} ($(( $(date +%s) - start ))s), log: $1/{}.log"; tail -40 "$1/{}.log"; exit 1
    fi' _ "$out" | tee "$results"
rc=${PIPESTATUS[1]}  # the xargs that runs the scenarios (123 when one failed)
passed=$(grep -c "^PASS " "$results")
failed=$(grep -c "^FAIL " "$results")
scenarios=${#scenario_names[@]}
rm -f "$results"
echo "molecule: all scenarios in $(( $(date +%s) - started ))s"
echo "molecule: $passed passed, $failed failed"
# Fail on any failed scenario, and on one that reported nothing (killed, or the pipeline broke).
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -ne "$scenarios" ]; then
  exit 1
fi
