"""velero_api: Velero names, GetValidName, CRD field-support detection."""

import hashlib
import os

import pytest
import yaml

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as v
from ansible_collections.velero.data_restore.plugins.module_utils.errors import ForbiddenError, MissingApiError
from fake_kube import FakeKube

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
CRDS = os.environ.get("VELERO_CRDS_DIR") or os.path.join(os.path.dirname(REPO), "shared", "velero", "crds")


def load_crd(plural):
    path = os.path.join(CRDS, "velero.io_%s.yaml" % plural)
    if not os.path.exists(path):
        pytest.skip("Velero CRDs not found at %s" % CRDS)
    with open(path) as handle:
        return yaml.safe_load(handle)


def test_get_valid_name_short_is_unchanged():
    assert v.get_valid_name("nightly-20261124") == "nightly-20261124"
    assert v.get_valid_name("a" * 63) == "a" * 63


def test_get_valid_name_long_is_truncated_and_hashed():
    name = "b" * 70
    expected = name[:57] + hashlib.sha256(name.encode()).hexdigest()[:6]
    got = v.get_valid_name(name)
    assert got == expected and len(got) == 63


def test_backup_selector_uses_valid_name():
    long = "x" * 64
    assert v.backup_selector("short") == "velero.io/backup-name=short"
    assert v.backup_selector(long) == "velero.io/backup-name=%s" % v.get_valid_name(long)


def test_require_velero_names_missing_kinds():
    fake = FakeKube(missing_kinds=[k.BACKUP, k.POD_VOLUME_BACKUP])
    with pytest.raises(MissingApiError) as err:
        v.require_velero(fake)
    assert "Backup (velero.io/v1)" in err.value.msg and "PodVolumeBackup" in err.value.msg
    assert "Install Velero" in err.value.msg
    v.require_velero(FakeKube())


def test_field_support_from_installed_v118_crds():
    fake = FakeKube()
    fake.add(k.CRD, load_crd("podvolumerestores"))
    fake.add(k.CRD, load_crd("datadownloads"))
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.snapshotSize") is True
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.cancel") is True
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.restoreType") is False
    assert v.field_supported(fake, k.DATA_DOWNLOAD, "spec.targetVolume.pv") is True


def test_field_support_old_crd_lacks_snapshot_size_and_cancel():
    crd = load_crd("podvolumerestores")
    spec_props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    spec_props.pop("snapshotSize")
    spec_props.pop("cancel")
    fake = FakeKube()
    fake.add(k.CRD, crd)
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.snapshotSize") is False
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.cancel") is False
    # cached: one GET for both questions
    assert fake.count("get") == 1


def test_field_support_unknown_when_crds_unreadable():
    fake = FakeKube()
    fake.fail_next["get"] = ForbiddenError("Forbidden", status=403)
    assert v.field_supported(fake, k.POD_VOLUME_RESTORE, "spec.snapshotSize") is None


def test_missing_crd_is_missing_api():
    with pytest.raises(MissingApiError) as err:
        v.field_supported(FakeKube(), k.DATA_DOWNLOAD, "spec.snapshotSize")
    assert "datadownloads.velero.io" in err.value.msg


def test_preserve_unknown_fields_counts_as_supported():
    schema = {"properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    assert v.schema_has_field(schema, "spec.anything")
