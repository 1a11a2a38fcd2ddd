import pytest

from ansible_collections.velero.data_restore.plugins.filter.hook_problems import hook_problems

VALID = [{"name": "flush", "command": ["sh", "-c", "sync"], "pod_selector": "app=db", "on_error": "continue",
          "timeout": 5},
         {"name": "notify", "tasks": "/dr/notify.yml"},
         {"command": "sync", "pod": "db-0", "timeout": "30"}]


@pytest.mark.parametrize("hooks", [VALID, VALID[0], [], "", None])
def test_valid_hooks_have_no_problems(hooks):
    assert hook_problems(hooks, variable="pre_restore_hooks") == []


@pytest.mark.parametrize("hook,message", [
    ({"name": "x", "command": "sync"}, "pre_restore_hooks[0] (x): give pod"),
    ({"command": "sync", "pod": "a", "tasks": "/t.yml"}, "either tasks (a task file) or command, not both"),
    ({"name": "y"}, "either tasks (a task file) or command, not both and not neither"),
    ({"command": "sync", "pod": "a", "on_error": "Fail"}, "on_error must be fail or continue (lowercase); got 'Fail'"),
    ({"command": "sync", "pod": "a", "timeout": "soon"}, "timeout must be a whole number of seconds"),
    ({"command": "sync", "pod": "a", "timeout": 0}, "timeout must be a whole number of seconds"),
    ({"command": [], "pod": "a"}, "command must be a non-empty string or list of strings"),
    ({"command": "sync", "pod": "a", "onError": "fail"}, "unknown keys onError"),
    ({"tasks": ""}, "tasks must be the path of a task file"),
    ("sync", "pre_restore_hooks[0] must be a dict"),
])
def test_each_problem_names_the_hook_and_the_fix(hook, message):
    problems = hook_problems([VALID[1], hook], variable="pre_restore_hooks")
    assert any(message.replace("[0]", "[1]") in p for p in problems), problems


def test_not_a_list():
    assert hook_problems("sync; sync", variable="post_restore_hooks") == [
        "post_restore_hooks must be a list of hooks (dicts); got 'sync; sync'."]
