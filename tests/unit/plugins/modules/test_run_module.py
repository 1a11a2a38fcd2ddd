"""module.run_module end to end through AnsibleModule: what a failed run reports."""

from ansible_collections.velero.data_restore.plugins.module_utils import module as module_utils
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError
from fake_kube import FakeKube


def _main_failing_with(error):
    def runner(module, kube):
        raise error
    return lambda: module_utils.run_module(dict(session=dict(type="str", required=True)), runner)


def test_a_failed_run_reports_what_it_changed_before_it_failed(module_main):
    """PodVolumeRestores created, then one failed: ansible shows the task failed AND changed (it was always
    changed=false before 2026-12-06)."""
    run = module_main(_main_failing_with(DataRestoreError("PodVolumeRestore velero/s1-shop-data Failed", changed=True,
                                                          volumes=[{"key": "shop/data"}])))
    result = run(FakeKube(), {"session": "s1"})
    assert result["failed"] is True and result["changed"] is True, result
    assert result["msg"] == "PodVolumeRestore velero/s1-shop-data Failed" and result["volumes"] == [{"key": "shop/data"}]


def test_a_run_refused_before_any_change_reports_no_change(module_main):
    run = module_main(_main_failing_with(DataRestoreError("Session s1 not found")))
    result = run(FakeKube(), {"session": "s1"})
    assert result["failed"] is True and result["changed"] is False, result
