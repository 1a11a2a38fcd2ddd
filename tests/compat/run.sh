#!/usr/bin/env bash
# The oldest supported stack (README "Support matrix"): ansible-core 2.16, kubernetes.core 5.0.0 and the oldest
# kubernetes Python client requirements.txt allows, in a venv of their own (.venv-compat). Runs the unit tests,
# ansible-doc of every module, five playbook-level integration tests (in place and replace as a least-privilege
# ServiceAccount, a replace mixing PodVolumeRestores and DataDownloads, a failure and its rescue, a preflight refusal)
# and the molecule scenario that rolls a replace back, against the running test cluster (make cluster-up).
#
#   tests/compat/run.sh            # from make test (target compat)
#   COMPAT_ONLY_SETUP=1 tests/compat/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

ansible_core=2.16.19      # the last 2.16 release
collection_bundle=11.0.0  # the ansible package that ships kubernetes.core 5.0.0 (its MANIFEST is checked below)
kubernetes_core=5.0.0
# The oldest kubernetes client requirements.txt allows; the test tools as requirements-dev.txt pins them.
kubernetes_client=$(sed -n 's/^kubernetes>=\([0-9.]*\).*/\1/p' requirements.txt)
test_tools=$(grep -E '^(PyYAML|jsonpatch|pytest|molecule)==' requirements-dev.txt)
if [ -z "$kubernetes_client" ] || [ "$(echo "$test_tools" | wc -l)" -ne 4 ]; then
  echo "compat: cannot read the kubernetes minimum or the test tool pins from requirements*.txt" >&2; exit 1
fi

venv=$repo/.venv-compat
py=$venv/bin/python
stamp=$venv/.installed-$ansible_core-$kubernetes_core-$kubernetes_client-$(echo "$test_tools" | md5sum | cut -c1-8)

if [ ! -e "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$py" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086 # one requirement per word
  "$py" -m pip install -q "ansible-core==$ansible_core" "kubernetes==$kubernetes_client" $test_tools
  # kubernetes.core as released, from the ansible package that ships it (no Galaxy here), into site-packages as
  # that package installs it: ansible finds it there (ANSIBLE_COLLECTIONS_SCAN_SYS_PATH), as in the main venv.
  # ansible.posix too, for the tests only: their json stdout callback lives there.
  bundle=$(mktemp -d)
  "$py" -m pip download -q --no-deps "ansible==$collection_bundle" -d "$bundle"
  "$py" - "$bundle"/ansible-"$collection_bundle"-*.whl "$kubernetes_core" <<'PY'
import json, sys, sysconfig, zipfile
wheel, want = sys.argv[1:]
dest = sysconfig.get_paths()["purelib"]
with zipfile.ZipFile(wheel) as z:
    core = "ansible_collections/kubernetes/core/"
    version = json.loads(z.read(core + "MANIFEST.json"))["collection_info"]["version"]
    if version != want:
        sys.exit("the ansible package ships kubernetes.core %s, not %s" % (version, want))
    z.extractall(dest, [n for n in z.namelist() if n.startswith((core, "ansible_collections/ansible/posix/"))])
PY
  rm -rf "$bundle"
  touch "$stamp"
fi
# As the Makefile: this collection from collections/ (make setup links it), kubernetes.core from site-packages.
[ -e collections/ansible_collections/velero/data_restore ] || { echo "compat: run make setup first" >&2; exit 1; }
export ANSIBLE_COLLECTIONS_PATH=$repo/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true
export PATH=$venv/bin:$PATH

"$venv/bin/ansible" --version | sed -n 1p
"$py" -c 'import kubernetes; print("kubernetes (Python client)", kubernetes.__version__)'
"$venv/bin/ansible-galaxy" collection list 2>/dev/null | grep -E '^(kubernetes\.core|ansible\.posix) '
[ "$(command -v ansible-playbook)" = "$venv/bin/ansible-playbook" ] || { echo "compat: ansible-playbook is not the compat one" >&2; exit 1; }
[ -n "${COMPAT_ONLY_SETUP:-}" ] && exit 0

for module in plugins/modules/*.py; do
  "$venv/bin/ansible-doc" "velero.data_restore.$(basename "$module" .py)" > /dev/null
done
for filter in plugins/filter/*.py; do
  "$venv/bin/ansible-doc" -t filter "velero.data_restore.$(basename "$filter" .py)" > /dev/null
done
echo "compat: ansible-doc renders every module and filter"

"$py" -m pytest -q tests/unit
"$py" -m pytest -q -m integration \
  "tests/integration/rbac/test_rbac.py::test_playbook_flow_as_service_account" \
  tests/integration/playbooks/test_mixed_backup.py \
  "tests/integration/faults/test_faults.py::test_node_agent_missing_snapshot" \
  "tests/integration/bad_input/test_bad_input.py::test_playbook_unknown_backup_fails_in_preflight"
mkdir -p tests/output
"$venv/bin/molecule" test -s replace_rebind > tests/output/compat-molecule-replace_rebind.log 2>&1 \
  || { tail -60 tests/output/compat-molecule-replace_rebind.log; echo "compat: molecule replace_rebind failed"; exit 1; }
echo "compat: molecule replace_rebind passed (log: tests/output/compat-molecule-replace_rebind.log)"
