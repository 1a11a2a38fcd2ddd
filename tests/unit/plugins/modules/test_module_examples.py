"""Every task in a module's EXAMPLES, and every task of the roles and playbooks that calls a module of this
collection, passes that module's own argument spec (names, types, choices, and the required/mutually-exclusive
rules): the examples users copy, and the roles' calls, cannot drift from the options."""

import glob
import importlib
import os
import pkgutil

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.velero.data_restore.plugins import modules as modules_package
from ansible_collections.velero.data_restore.plugins.module_utils import module as module_utils

PREFIX = "velero.data_restore."
REPO = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
TASK_FILES = sorted(glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml"))
                    + glob.glob(os.path.join(REPO, "playbooks", "*.yml"))
                    + glob.glob(os.path.join(REPO, "playbooks", "tasks", "*.yml")))
MODULE_NAMES = sorted(info.name for info in pkgutil.iter_modules(modules_package.__path__))
# Stand-ins for a Jinja2 expression ("{{ plan.volumes }}"), which Ansible templates before it validates.
# Errors about options not given (which a templated module_defaults may give).
REQUIREMENT_ERRORS = ("missing required arguments", "one of the following is required", "missing parameter(s) required by")
TEMPLATED_STAND_INS = {"bool": True, "int": 1, "float": 1.0, "dict": {}, "list": []}


class _Captured(Exception):
    pass


def _spec_of(module):
    """The argument spec and the rules (required_one_of, ...) the module's main() passes to run_module."""
    captured = {}

    def capture(argument_spec, runner, takes_over=False, runner_sets_state=False, **module_kwargs):
        captured.update(spec=module_utils.build_argument_spec(argument_spec), rules=module_kwargs)
        raise _Captured()

    original = module.run_module
    module.run_module = capture
    try:
        module.main()
    except _Captured:
        pass
    finally:
        module.run_module = original
    rules = dict((key, value) for key, value in captured["rules"].items() if key != "supports_check_mode")
    return captured["spec"], rules


def _untemplated(params, spec):
    """params with each Jinja2 expression replaced by a value of the option's type (its first choice, if any)."""
    result = {}
    for key, value in params.items():
        option = spec.get(key) or next((o for o in spec.values() if key in o.get("aliases", ())), None)
        if option is None:
            result[key] = value  # unknown: left for the validator to name
        elif isinstance(value, str) and "{{" in value:
            result[key] = option["choices"][0] if option.get("choices") else \
                TEMPLATED_STAND_INS.get(option.get("type", "str"), value)
        elif isinstance(value, dict) and option.get("options"):
            result[key] = _untemplated(value, option["options"])
        elif isinstance(value, list) and option.get("options"):
            result[key] = [_untemplated(item, option["options"]) if isinstance(item, dict) else item
                           for item in value]
        else:
            result[key] = value
    return result


def _example_tasks(module_name, module):
    tasks = yaml.safe_load(module.EXAMPLES)
    assert isinstance(tasks, list) and tasks, "%s: EXAMPLES holds no task list" % module_name
    calls = []
    for task in tasks:
        names = [key for key in task if key in (PREFIX + module_name, module_name)]
        if names:  # other tasks show what to do with the result (debug, assert)
            calls.append((task.get("name"), task[names[0]] or {}))
    assert calls, "%s: no example calls the module by its name" % module_name
    return calls


def _module(module_name):
    return importlib.import_module(modules_package.__name__ + "." + module_name)


def _problems(module_name, calls):
    spec, rules = _spec_of(_module(module_name))
    validator = ArgumentSpecValidator(spec, **rules)
    problems = []
    for name, params in calls:
        result = validator.validate(_untemplated(params, spec))
        problems.extend("%s: %s" % (name, message) for message in result.error_messages)
    return problems


def _tasks_in(node, defaults=()):
    """(task, module_defaults in force) for every task of a playbook or task file, plays and blocks opened."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks_in(item, defaults)
    elif isinstance(node, dict):
        if "module_defaults" in node:
            defaults = defaults + (node["module_defaults"],)
        nested = [node[key] for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
                  if isinstance(node.get(key), list)]
        if not nested:
            yield node, defaults
        for child in nested:
            yield from _tasks_in(child, defaults)


def _with_defaults(module_name, params, defaults):
    """params over the module_defaults that apply; None when one of them is a template (unknown until run time)."""
    merged = {}
    for layer in defaults:
        if not isinstance(layer, dict):
            return None
        for key, values in layer.items():
            if key in (PREFIX + module_name, module_name, "group/velero.data_restore.velero", "group/velero"):
                if not isinstance(values, dict):
                    return None
                merged.update(values)
    merged.update(params)
    return merged


def _absent_if_omitted(params):
    """A value that may be Ansible's ``omit`` is left out: the module may well get no such option."""
    return dict((key, value) for key, value in params.items() if not (isinstance(value, str) and "omit" in value))


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_every_example_passes_the_modules_argument_spec(module_name):
    problems = _problems(module_name, _example_tasks(module_name, _module(module_name)))
    assert not problems, "%s EXAMPLES:\n%s" % (module_name, "\n".join(problems))


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda path: os.path.relpath(path, REPO))
def test_every_module_call_of_the_roles_and_playbooks_passes_the_modules_argument_spec(path):
    with open(path) as handle:
        content = yaml.safe_load(handle)
    # A role's other task files are included from its main.yml, maybe under module_defaults of the includer.
    included = os.path.basename(path) != "main.yml" and os.sep + "roles" + os.sep in os.path.abspath(path)
    problems = []
    for task, defaults in _tasks_in(content):
        for key, params in task.items():
            if not (key.startswith(PREFIX) and key[len(PREFIX):] in MODULE_NAMES and isinstance(params, dict)):
                continue
            module_name = key[len(PREFIX):]
            params = _absent_if_omitted(params)
            merged = _with_defaults(module_name, params, defaults)
            found = _problems(module_name, [(task.get("name"), merged if merged is not None else params)])
            if merged is None or included:  # module_defaults unknown here may supply any option
                found = [problem for problem in found if not any(rule in problem for rule in REQUIREMENT_ERRORS)]
            problems.extend(found)
    assert not problems, "\n".join(problems)


def test_a_wrong_example_is_caught():
    """The check itself: an unknown option, a wrong choice and a missing required option are each named."""
    module = importlib.import_module(modules_package.__name__ + ".workload_scale")
    spec, rules = _spec_of(module)
    validator = ArgumentSpecValidator(spec, **rules)
    messages = validator.validate(_untemplated({"namespace": "shop", "pvcs": "{{ claims }}", "replicas": 0,
                                                "state": "paused"}, spec)).error_messages
    assert any("replicas" in message for message in messages), messages
    assert any("paused" in message for message in messages), messages
    assert validator.validate({"state": "started"}).error_messages  # neither workloads nor pvcs
