import json

import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from fake_kube import FakeKube


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


class ConnRefused(Exception):
    """Shaped like urllib3's MaxRetryError(reason=NewConnectionError)."""

    def __init__(self):
        super(ConnRefused, self).__init__("Max retries exceeded")
        self.reason = type("NewConnectionError", (Exception,), {})("connection refused")


class ReadReset(Exception):
    """A connection reset after the request was sent (no status)."""


class FakeResource(object):
    def __init__(self, failures):
        self.failures = list(failures)
        self.calls = 0

    def _maybe_fail(self):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def get(self, **kwargs):
        self._maybe_fail()
        return type("R", (), {"to_dict": lambda self: {"metadata": {"name": kwargs.get("name")}}})()

    def create(self, **kwargs):
        self._maybe_fail()
        return type("R", (), {"to_dict": lambda self: kwargs["body"]})()


class FakeDynamic(object):
    """The dynamic client's verbs, which take the resource first (the resources of Kubernetes' own groups are built
    without discovery, and call these)."""

    def __init__(self, resource):
        self.resource = resource

    def __getattr__(self, verb):
        return lambda _resource, **kwargs: getattr(self.resource, verb)(**kwargs)


def make_kube(failures, retry_seconds=30):
    resource = FakeResource(failures)
    clock = {"t": 0.0}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["t"] += seconds

    kube = k.Kube(FakeDynamic(resource), host="https://api.test:6443", retry_seconds=retry_seconds,
                  clock=lambda: clock["t"], sleep=sleep)
    return kube, resource, slept


def test_reads_survive_an_apiserver_restart():
    kube, resource, slept = make_kube([ConnRefused(), ReadReset(), FakeApiException(503, "not ready")])
    assert kube.get(k.PVC, "data", "shop") == {"metadata": {"name": "data"}}
    assert resource.calls == 4 and slept == [0.5, 1.0, 2.0]


def test_writes_retry_only_when_the_server_never_saw_them():
    kube, resource, _slept = make_kube([ConnRefused()])
    assert kube.create(k.CONFIG_MAP, {"metadata": {"name": "x"}}, "velero")["metadata"]["name"] == "x"
    kube, resource, _slept = make_kube([ReadReset()])
    with pytest.raises(ApiError) as err:
        kube.create(k.CONFIG_MAP, {"metadata": {"name": "x"}}, "velero")
    assert resource.calls == 1 and "Cannot reach the Kubernetes API at https://api.test:6443" in err.value.msg


def test_retries_stop_at_the_deadline():
    kube, resource, slept = make_kube([ConnRefused()] * 50, retry_seconds=5)
    with pytest.raises(ApiError):
        kube.get(k.PVC, "data", "shop")
    assert sum(slept) <= 5 and resource.calls == len(slept) + 1


def test_client_errors_are_not_retried():
    kube, resource, _slept = make_kube([FakeApiException(403, "forbidden")])
    with pytest.raises(ForbiddenError):
        kube.get(k.PVC, "data", "shop")
    assert resource.calls == 1


def test_not_found_is_none_without_retry():
    kube, resource, _slept = make_kube([FakeApiException(404, "gone")])
    assert kube.get(k.PVC, "data", "shop") is None and resource.calls == 1


def test_missing_kind_is_reported_at_once():
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    from ansible_collections.velero.data_restore.plugins.module_utils.errors import MissingApiError

    def missing(**_kwargs):
        raise ResourceNotFoundError("no velero.io")

    dynamic = type("D", (), {})()
    dynamic.resources = type("R", (), {"get": lambda _self, **kw: missing(**kw)})()
    kube = k.Kube(dynamic, retry_seconds=30, sleep=lambda s: pytest.fail("must not retry"))
    with pytest.raises(MissingApiError) as err:
        kube.list(k.BACKUP, "velero")
    assert "Velero's CRDs are not installed" in err.value.msg


class RecordingDynamic(object):
    """A dynamic client that records discovery lookups and serves one LIST as raw JSON."""

    def __init__(self, served_groups=("apps.openshift.io/v1",)):
        self.lookups = []
        self.group_checks = []
        dynamic = self

        class Resources(object):
            def get(self, **kwargs):
                dynamic.lookups.append(kwargs)
                return RawResource()

        class ApiClient(object):
            def call_api(self, path, method, **_kwargs):
                dynamic.group_checks.append(path)
                if path.split("/apis/", 1)[1] not in served_groups:
                    raise FakeApiException(404, "not found")

        self.resources = Resources()
        self.client = ApiClient()
        self.paths = []

    def get(self, resource, name=None, namespace=None, **kwargs):
        self.paths.append(resource.path(name=name, namespace=namespace))
        return RawResource().get(**kwargs)


class RawResource(object):
    def get(self, serialize=True, **kwargs):
        assert serialize is False, "lists are decoded from the raw JSON"
        body = {"metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "a"}}]}
        return type("Resp", (), {"data": json.dumps(body).encode()})()


def test_kubernetes_own_kinds_need_no_discovery_and_velero_kinds_no_pre_check():
    """A fresh AWX job has no discovery cache: each group looked up would cost a request."""
    dynamic = RecordingDynamic()
    kube = k.Kube(dynamic, retry_seconds=0)
    for kind in (k.CONFIG_MAP, k.PV, k.DEPLOYMENT, k.CRON_JOB, k.CSI_NODE):
        kube.list(kind, "shop")
    kube.resource(k.BACKUP)
    assert dynamic.paths == ["/api/v1/namespaces/shop/configmaps", "/api/v1/persistentvolumes",
                             "/apis/apps/v1/namespaces/shop/deployments", "/apis/batch/v1/namespaces/shop/cronjobs",
                             "/apis/storage.k8s.io/v1/csinodes"]
    assert dynamic.lookups == [dict(api_version="velero.io/v1", kind="Backup")]  # absent Velero: a named error
    assert dynamic.group_checks == []  # built-in groups are not pre-checked


def test_an_optional_group_is_checked_with_one_get_before_discovery():
    dynamic = RecordingDynamic(served_groups=())
    kube = k.Kube(dynamic, retry_seconds=0)
    assert not kube.has_api(k.ARGO_APPLICATION)
    assert dynamic.group_checks == ["/apis/argoproj.io/v1alpha1"] and dynamic.lookups == []
    served = RecordingDynamic(served_groups=("apps.openshift.io/v1",))
    assert k.Kube(served, retry_seconds=0).has_api(k.DEPLOYMENT_CONFIG)
    assert served.lookups == [dict(api_version="apps.openshift.io/v1", kind="DeploymentConfig")]


def test_parallel_reads_discover_a_kind_once():
    import time

    dynamic = RecordingDynamic()
    slow_get = dynamic.resources.get

    def get(**kwargs):
        time.sleep(0.05)  # every thread arrives while the first lookup is still on its way
        return slow_get(**kwargs)

    dynamic.resources.get = get
    kube = k.Kube(dynamic, retry_seconds=0)
    k.run_parallel([lambda: kube.has_api(k.DATA_UPLOAD) for _thread in range(4)], workers=4)
    assert dynamic.lookups == [dict(api_version="velero.io/v2alpha1", kind="DataUpload")]


def test_lists_are_decoded_from_raw_json_with_kind_and_version():
    kube = k.Kube(RecordingDynamic(), retry_seconds=0)
    items, version = kube.list(k.CONFIG_MAP, "velero")
    assert version == "7" and items == [{"metadata": {"name": "a"}, "kind": "ConfigMap", "apiVersion": "v1"}]


def watch_recording_kube(asked, param):
    """A Kube whose dynamic client's watch() records params[param] in ``asked`` and yields nothing."""
    dynamic = RecordingDynamic()

    def watch(_resource, **params):
        asked.append(params[param])
        return iter(())

    dynamic.watch = watch
    return k.Kube(dynamic, retry_seconds=0)


def test_watch_timeout_is_rounded_up_so_a_slice_needs_one_watch():
    """A 14.3 s remainder asked as a 14 s watch would end 0.3 s early and cost a second watch request."""
    asked = []
    kube = watch_recording_kube(asked, "timeout")
    assert list(kube.watch(k.POD, namespace="shop", timeout_seconds=14.3)) == []
    assert list(kube.watch(k.POD, namespace="shop", timeout_seconds=0.2)) == []
    assert asked == [15, 1]


# ----------------------------------------------------------------------------- create_or_take
def _pvr(name, session):
    return {"metadata": {"name": name, "namespace": "velero", "labels": {"data-restore.ansible/session": session}},
            "spec": {}}


def _fake_with(existing):
    fake = FakeKube()
    for obj in existing:
        fake.add(k.POD_VOLUME_RESTORE, obj)
    return fake


def test_create_or_take_takes_what_another_run_of_the_session_created():
    fake = _fake_with([_pvr("pvr-a", "s1")])
    taken = k.create_or_take(fake, k.POD_VOLUME_RESTORE, _pvr("pvr-a", "s1"), "velero",
                             label="data-restore.ansible/session")
    assert taken["metadata"]["name"] == "pvr-a" and fake.count("get") == 1


@pytest.mark.parametrize("existing_session,label", [("other", "data-restore.ansible/session"),
                                                    ("s1", None)], ids=["other-session", "no-label"])
def test_create_or_take_refuses_someone_elses_object(existing_session, label):
    fake = _fake_with([_pvr("pvr-a", existing_session)])
    with pytest.raises(ConflictError):
        k.create_or_take(fake, k.POD_VOLUME_RESTORE, _pvr("pvr-a", "s1"), "velero", label=label)


def test_create_many_with_label_takes_over_only_the_conflicting_ones():
    fake = _fake_with([_pvr("pvr-b", "s1")])
    made = fake.create_many(k.POD_VOLUME_RESTORE, [_pvr(n, "s1") for n in ("pvr-a", "pvr-b", "pvr-c")], "velero",
                            label="data-restore.ansible/session")
    assert [o["metadata"]["name"] for o in made] == ["pvr-a", "pvr-b", "pvr-c"]
    assert fake.count("create") == 3 and fake.count("get") == 1


class TimeoutRecordingResource(object):
    """Records the kwargs of every call; answers like the dynamic client."""

    def __init__(self):
        self.kwargs = {}

    def _answer(self, verb, kwargs, body=None):
        self.kwargs[verb] = kwargs
        return type("R", (), {"to_dict": lambda _self: body or {"metadata": {"name": "a"}},
                              "data": json.dumps({"metadata": {}, "items": []}).encode()})()

    def get(self, **kwargs):
        return self._answer("list" if kwargs.get("serialize") is False else "get", kwargs)

    def create(self, **kwargs):
        return self._answer("create", kwargs, kwargs["body"])

    def patch(self, **kwargs):
        return self._answer("patch", kwargs)

    def replace(self, **kwargs):
        return self._answer("replace", kwargs)

    def delete(self, **kwargs):
        return self._answer("delete", kwargs)


def test_every_request_has_a_client_side_timeout():
    """Without one, a frozen apiserver (or a connection dropped without a reset) blocks the module for ever."""
    resource = TimeoutRecordingResource()
    kube = k.Kube(FakeDynamic(resource), retry_seconds=0)
    kube.get(k.POD, "a", "shop")
    kube.list(k.POD, "shop")
    kube.create(k.POD, {"metadata": {"name": "a"}}, "shop")
    kube.patch(k.POD, "a", {"metadata": {}}, "shop")
    kube.replace(k.POD, {"metadata": {"name": "a", "resourceVersion": "1"}}, "shop")
    kube.delete(k.POD, "a", "shop")
    assert sorted(resource.kwargs) == ["create", "delete", "get", "list", "patch", "replace"]
    for verb, kwargs in resource.kwargs.items():
        assert kwargs.get("_request_timeout") == k.REQUEST_TIMEOUT, verb


def test_a_watch_reads_with_a_timeout_longer_than_its_own():
    asked = []
    kube = watch_recording_kube(asked, "watcher")
    assert list(kube.watch(k.POD, namespace="shop", timeout_seconds=20)) == []
    calls = []

    class Response(object):
        def stream(self, *args, **kwargs):
            return iter(())

        def close(self):
            pass

        def release_conn(self):
            pass

    def func(*args, **kwargs):
        calls.append(kwargs)
        return Response()

    list(asked[0].stream(func, timeout_seconds=20))
    assert calls and calls[0]["_request_timeout"] == (k.REQUEST_TIMEOUT[0], 20 + k.WATCH_READ_SLACK)
    assert calls[0]["watch"] is True


@pytest.mark.parametrize("served_groups", [(), ("keda.sh/v1alpha1",)])
def test_kinds_of_one_optional_group_share_its_check(served_groups):
    """KEDA's ScaledObject and ScaledJob: one GET of keda.sh/v1alpha1 per module run, served or not."""
    dynamic = RecordingDynamic(served_groups=served_groups)
    kube = k.Kube(dynamic, retry_seconds=0)
    assert kube.has_api(k.KEDA_SCALED_OBJECT) == kube.has_api(k.KEDA_SCALED_JOB) == bool(served_groups)
    assert dynamic.group_checks == ["/apis/keda.sh/v1alpha1"]
