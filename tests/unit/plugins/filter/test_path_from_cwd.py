import pytest

from ansible_collections.velero.data_restore.plugins.filter.path_from_cwd import path_from_cwd


def test_a_relative_path_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert path_from_cwd("prod.kubeconfig") == str(tmp_path / "prod.kubeconfig")
    assert path_from_cwd("./reports/../reports/shop") == str(tmp_path / "reports" / "shop")
    assert path_from_cwd(".") == str(tmp_path)


@pytest.mark.parametrize("given, expected", [("/etc/dr/prod.kubeconfig", "/etc/dr/prod.kubeconfig"),
                                             ("~/.kube/config", "~/.kube/config"), ("", ""), (None, "")])
def test_absolute_home_and_blank_paths_are_kept(tmp_path, monkeypatch, given, expected):
    monkeypatch.chdir(tmp_path)
    assert path_from_cwd(given) == expected
