#!/usr/bin/env bash
# Run ansible-test sanity on a private copy of the collection.
# ansible-test needs the collection as a real directory at .../ansible_collections/velero/data_restore
# (it resolves symlinks) next to the kubernetes.core it imports from; a fresh copy per run keeps
# concurrent runs apart and tests exactly the files git would ship.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv_py="$repo/.venv/bin/python"
# ansible-test only warns and skips its shellcheck test when the program is missing: refuse instead.
command -v shellcheck >/dev/null || {
  echo "sanity.sh: shellcheck not found - install it (Debian: apt-get install shellcheck; .ci/run does)" >&2; exit 1; }
mkdir -p "$repo/tests/output"
root=$(mktemp -d "$repo/tests/output/sanity.XXXXXX")
trap 'rm -rf "$root"' EXIT
dest="$root/ansible_collections/velero/data_restore"
mkdir -p "$dest" "$root/ansible_collections/kubernetes"
cd "$repo"
# ansible-test downloads a pip bootstrap script named after the pip it pins, and there is no internet here: put the
# offline one (tools/ansible_test_get_pip.py) where it looks first. The version is read from the installed
# ansible-test, at run time (a fresh clone has no venv before `make setup`).
pip_version=$("$venv_py" - <<'PY'
import os, re, ansible_test
source = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
) || { echo "sanity.sh: cannot find the pip version ansible-test pins (ansible_test/_internal/python_requirements.py)" >&2; exit 1; }
mkdir -p "$HOME/.ansible/test/cache"
cp tools/ansible_test_get_pip.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
git ls-files -co --exclude-standard -z | grep -zv '^tests/output/' | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue  # deleted in the work tree, not yet committed
  cp --parents -P "$f" "$dest/"
done
core=$("$venv_py" -c 'import ansible_collections.kubernetes.core as c; print(list(c.__path__)[0])')
ln -s "$core" "$root/ansible_collections/kubernetes/core"
cd "$dest"
git init -q && git add -A
"$repo/.venv/bin/ansible-test" sanity --local --python 3.11 --color no "$@"
