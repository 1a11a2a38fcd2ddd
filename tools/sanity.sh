#!/usr/bin/env bash
# Run ansible-test sanity on a private copy of the collection.
# ansible-test needs the collection as a real directory at .../ansible_collections/velero/data_restore
# (it resolves symlinks) next to the kubernetes.core it imports from; a fresh copy per run keeps
# concurrent runs apart and tests exactly the files git would ship.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv_py="$repo/.venv/bin/python"
root=$(mktemp -d "$repo/tests/output/sanity.XXXXXX")
trap 'rm -rf "$root"' EXIT
dest="$root/ansible_collections/velero/data_restore"
mkdir -p "$dest" "$root/ansible_collections/kubernetes"
cd "$repo"
git ls-files -co --exclude-standard -z | grep -zv '^tests/output/' | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue  # deleted in the work tree, not yet committed
  cp --parents -P "$f" "$dest/"
done
core=$("$venv_py" -c 'import ansible_collections.kubernetes.core as c; print(list(c.__path__)[0])')
ln -s "$core" "$root/ansible_collections/kubernetes/core"
cd "$dest"
git init -q && git add -A
"$repo/.venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
