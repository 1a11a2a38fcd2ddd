import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)


class FakeApiException(Exception):
    def __init__(self, status, message):
        super(FakeApiException, self).__init__(message)
        self.status = status
        self.body = '{"message": "%s"}' % message


def test_forbidden_names_the_missing_permission():
    err = k._translate(FakeApiException(403, "nope"), "create", k.POD_VOLUME_RESTORE, "x", "velero", None)
    assert isinstance(err, ForbiddenError)
    assert "verb=create resource=podvolumerestores apiGroup=velero.io namespace=velero" in err.msg
    assert "docs/rbac.yml" in err.msg


def test_core_group_is_shown_as_empty_string():
    err = k._translate(FakeApiException(403, "nope"), "list", k.POD, None, "shop", None)
    assert 'apiGroup=""' in err.msg and "pods in namespace shop" in err.msg


@pytest.mark.parametrize("status,cls", [(404, NotFoundError), (409, ConflictError), (422, ApiError)])
def test_status_mapping(status, cls):
    assert isinstance(k._translate(FakeApiException(status, "m"), "get", k.PVC, "d", "n", None), cls)


def test_unreachable_cluster_message_names_the_host():
    err = k._translate(OSError("connection refused"), "list", k.BACKUP, None, "velero", "https://10.0.0.1:6443")
    assert err.status is None
    assert "Cannot reach the Kubernetes API at https://10.0.0.1:6443" in err.msg


def test_missing_velero_api_hint():
    assert "Velero's CRDs are not installed" in k._missing_api_hint(k.BACKUP)


def test_describe():
    assert k.describe(k.PVC, "data", "shop") == "PersistentVolumeClaim shop/data"
    assert k.describe(k.PV, "pv-1") == "PersistentVolume pv-1"
