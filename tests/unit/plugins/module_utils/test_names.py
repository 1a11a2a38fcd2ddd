import pytest

from ansible_collections.velero.data_restore.plugins.module_utils import names


def test_stable_name_is_deterministic_and_short():
    a = names.stable_name("restore", "s" * 40, "namespace-with-a-long-name", "data-claim-0")
    b = names.stable_name("restore", "s" * 40, "namespace-with-a-long-name", "data-claim-0")
    assert a == b
    assert len(a) <= 63 and names.is_dns1123_label(a)


def test_long_names_sharing_a_prefix_differ():
    a = names.stable_name("x" * 70, "one")
    b = names.stable_name("x" * 70, "two")
    assert a != b and len(a) == len(b) == 63


@pytest.mark.parametrize("raw,expected", [("Data_Claim", "data-claim"), ("--a..b--", "a-b"), ("***", "x")])
def test_sanitize(raw, expected):
    assert names.sanitize(raw) == expected


def test_short_names_are_kept():
    assert names.stable_name("pvr", "shop", "data") == "pvr-shop-data"


def test_derived_session_name_fits_and_is_valid():
    name = names.derive_session_name("nightly-" + "9" * 60, "production-shop", "in_place")
    assert names.validate_session_name(name) is None
    assert len(names.session_object_name(name)) <= 63


def test_session_selector_matches_labels():
    assert names.session_selector("s1") == "app.kubernetes.io/managed-by=velero.data_restore,data-restore.ansible/session=s1"


def test_claims_differing_only_by_dot_and_dash_get_different_object_names():
    from ansible_collections.velero.data_restore.plugins.module_utils import data_download as dd
    from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore as pvrs

    for make in (pvrs.pvr_name, dd.dd_name, dd.consumer_name):
        dotted, dashed = make("nightly", "shop", "db.data"), make("nightly", "shop", "db-data")
        assert dotted != dashed and names.is_dns1123_label(dotted) and len(dotted) <= 63
        assert dashed.endswith("db-data")  # a name that needs no sanitizing keeps its readable form
    assert pvrs.pvr_name("nightly", "shop", "db.data") == pvrs.pvr_name("nightly", "shop", "db.data")

    # only the characters sanitizing replaces add a hash: names of claims like data--0 stay as they were
    assert pvrs.pvr_name("nightly", "shop", "data--0") == "nightly-shop-data-0"
