import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.velero.data_restore.plugins.filter.session_name import session_name
from ansible_collections.velero.data_restore.plugins.module_utils import names


def test_a_given_name_is_only_lowercased_and_trimmed():
    assert session_name(" PROD ", "in_place", "shop", "nightly") == "prod"
    # not mapped onto a valid name: two different names must not become one session; the modules refuse it
    assert session_name("Shop_DR", "in_place", "shop", "nightly") == "shop_dr"
    assert names.validate_session_name("shop_dr")


def test_the_default_name_follows_mode_namespace_and_backup():
    assert session_name("", "in_place", "shop", "nightly-1") == "in-place-shop-nightly-1"
    assert session_name(None, "replace", "shop", "latest") == "replace-shop-latest"


def test_long_default_names_of_different_backups_differ():
    first = session_name("", "in_place", "production-ecommerce-platform", "daily-backup-20261124010000")
    second = session_name("", "in_place", "production-ecommerce-platform", "daily-backup-20261125010000")
    assert first != second
    for name in (first, second):
        assert names.validate_session_name(name) is None and len(name) <= names.MAX_SESSION


def test_without_a_namespace_the_preflight_reports_it():
    assert session_name("", "in_place", "", "nightly") == ""
    with pytest.raises(AnsibleFilterError, match="backup"):
        session_name("", "in_place", "shop", "")


def test_a_restore_into_another_namespace_gets_its_own_default_name():
    assert session_name("", "replace", "shop", "nightly-1", target="shop-test") == "replace-shop-to-shop-test-nightly-1"
    assert session_name("", "replace", "shop", "nightly-1", target="shop") == "replace-shop-nightly-1"
    assert session_name("", "replace", "shop", "nightly-1", target="shop-a") != session_name(
        "", "replace", "shop", "nightly-1", target="shop-b")
