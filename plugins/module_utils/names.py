# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stable, DNS-1123 object names and the labels/annotations the collection owns."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

MAX_NAME = 63
# Longest session name: "data-restore-" + session must fit 63 characters.
SESSION_PREFIX = "data-restore-"
MAX_SESSION = MAX_NAME - len(SESSION_PREFIX)

PREFIX = "data-restore.ansible/"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "velero.data_restore"
LABEL_SESSION = PREFIX + "session"
LABEL_ROLE = PREFIX + "role"
LABEL_VOLUME = PREFIX + "volume"
ANNOTATION_ORIGINAL = PREFIX + "original"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Characters sanitize() replaces (a "." of a claim name): a name that had them gets a hash with distinct=True.
_NOT_IN_NAMES = re.compile(r"[^a-z0-9-]")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_dns1123_label(value, max_len=MAX_NAME):
    return bool(value) and len(value) <= max_len and bool(_DNS1123_LABEL.match(value))


def is_label_value(value):
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def short_hash(*parts, **kwargs):
    length = kwargs.get("length", 8)
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return digest[:length]


def sanitize(value):
    """Lowercase, DNS-1123-safe characters only, no leading/trailing dashes."""
    value = re.sub(r"[^a-z0-9-]+", "-", str(value).lower())
    return re.sub(r"-+", "-", value).strip("-") or "x"


def stable_name(*parts, **kwargs):
    """A DNS-1123 name from parts, ≤ max_len, the same for the same parts on every run.

    When the plain join is too long, it is cut and suffixed with a hash of all parts, so
    two long names that share a prefix still differ. ``distinct=True``: also when the join has characters that
    sanitizing replaces (claim ``db.data`` would otherwise share ``db-data``'s name); a ``--`` alone keeps the
    name it always had.
    """
    max_len = kwargs.get("max_len", MAX_NAME)
    joined = "-".join(str(p) for p in parts if p not in (None, ""))
    plain = sanitize(joined)
    if len(plain) <= max_len and not (kwargs.get("distinct") and _NOT_IN_NAMES.search(joined)):
        return plain
    suffix = short_hash(*parts)
    head = plain[:max_len - len(suffix) - 1].rstrip("-")
    return "%s-%s" % (head, suffix)


def session_object_name(session):
    return SESSION_PREFIX + session


def validate_session_name(session):
    """None if usable, else the reason it is not."""
    if not is_dns1123_label(session, MAX_SESSION):
        return ("session %r must be a DNS-1123 label (lowercase letters, digits, '-', starting and "
                "ending with an alphanumeric) of at most %d characters" % (session, MAX_SESSION))
    return None


def derive_session_name(backup, namespace, mode, target_namespace=None):
    """The default session name for a restore of `backup` from `namespace` (into `target_namespace` when that is
    another one: two clones of a namespace are two sessions)."""
    into = "to-" + target_namespace if target_namespace and target_namespace != namespace else None
    return stable_name(mode.replace("_", "-"), namespace, into, backup, max_len=MAX_SESSION)


def session_labels(session, role=None):
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_SESSION: session}
    if role:
        labels[LABEL_ROLE] = role
    return labels


def session_selector(session, role=None):
    return ",".join("%s=%s" % kv for kv in sorted(session_labels(session, role).items()))
