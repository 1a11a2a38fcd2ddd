import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import client
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError


def test_auth_spec_is_kubernetes_core_with_awx_env_fallbacks():
    spec = client.auth_arg_spec()
    for key in ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert",
                "client_key", "proxy", "impersonate_user", "impersonate_groups"):
        assert key in spec
    assert "verify_ssl" in spec["validate_certs"].get("aliases", [])
    assert "ssl_ca_cert" in spec["ca_cert"].get("aliases", [])


def test_missing_kubernetes_library_message(monkeypatch):
    monkeypatch.setattr(client, "HAS_KUBERNETES", False)
    msg = client.missing_dependency_message()
    assert "pip install 'kubernetes>=" in msg


def test_bad_kubeconfig_is_an_actionable_error(tmp_path, monkeypatch):
    for var in ("K8S_AUTH_HOST", "K8S_AUTH_KUBECONFIG", "KUBECONFIG", "K8S_AUTH_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    params = dict((key, None) for key in client.auth_arg_spec())
    params["kubeconfig"] = str(tmp_path / "missing-kubeconfig")
    with pytest.raises(DataRestoreError) as err:
        client.get_kube(params)
    assert "kubeconfig" in err.value.msg.lower()


def test_env_host_and_token_are_used_like_awx(monkeypatch):
    monkeypatch.setenv("VELERO_DATA_RESTORE_API_RETRY_SECONDS", "1")
    monkeypatch.setenv("K8S_AUTH_HOST", "https://127.0.0.1:1")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "secret-token")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    params = dict((key, None) for key in client.auth_arg_spec())
    with pytest.raises(DataRestoreError) as err:  # discovery contacts the env's host
        client.get_kube(params)
    assert "127.0.0.1" in err.value.msg and "reachable" in err.value.msg
    assert "secret-token" not in err.value.msg
