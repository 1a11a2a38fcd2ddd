"""Run a module's main() end to end through AnsibleModule, with FakeKube behind module.run_module."""

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.velero.data_restore.plugins.module_utils import module as module_utils


@pytest.fixture
def module_main(monkeypatch, capsys):
    """module_main(main) -> run(kube, args, check=False, diff=False) -> the module's result dict."""

    def bind(main):
        def run(kube, args, check=False, diff=False):
            args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
            monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
            if hasattr(basic, "_ANSIBLE_PROFILE"):  # ansible-core >= 2.19 decodes the arguments with a profile
                monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
            monkeypatch.setattr(module_utils, "get_kube", lambda params: kube)
            with pytest.raises(SystemExit):
                main()
            return json.loads(capsys.readouterr().out)

        return run

    return bind
