# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a restore session: a JSON document, a Markdown page and a summary table.

The report only depends on the session document and the session's PodVolumeRestores and
DataDownloads, so re-running it without changes produces the same bytes (and the files are
left alone). The rules were first written as Jinja templates of the report role; the output is
kept identical to what they rendered (same keys, values, Markdown text).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import tempfile

from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import plan as plans
from ansible_collections.velero.data_restore.plugins.module_utils import pod_volume_restore as pvrs_mod
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils.errors import DataRestoreError, MissingApiError

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644
SUMMARY_ROW = "%-40s %-10s %-20s %-12s %18s %8s"
IN_PLACE_NOTE = ("In-place restore: Kopia overwrites the backed-up files but never deletes files created after the backup; "
                 "those files are still in the volumes. Use replace mode for an exact copy of the backup.")
RETAIN_NOTE = ("The original PVs are kept (reclaim policy Retain): roll back with playbooks/rollback.yml, "
               "free them with playbooks/cleanup.yml (confirm=true).")

# "Not there" as opposed to a null value: a key that is absent falls back to its default, a key
# holding null keeps it (as the templates' ``default()`` without ``true`` did).
_MISSING = object()


def _dig(obj, *path):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _get(obj, *path, **kwargs):
    value = _dig(obj, *path)
    return kwargs.get("default") if value is _MISSING else value


def _parse(stamp):
    return datetime.datetime.strptime(stamp, TIMESTAMP_FORMAT)


def _seconds(start, end):
    return int((_parse(end) - _parse(start)).total_seconds())


def file_names(session):
    """Base names of the JSON and Markdown reports of a session."""
    return {"json": "data-restore-%s.json" % session, "markdown": "data-restore-%s.md" % session}


def needed_kinds(session_doc):
    """The kinds to list: DataDownloads only if a plan volume restores via one, PVRs likewise."""
    via = [v.get("restore_via") for v in (_get(session_doc, "plan") or {}).get("volumes") or []]
    return [kind for kind, name in ((k.POD_VOLUME_RESTORE, "pod_volume_restore"), (k.DATA_DOWNLOAD, "data_download"))
            if name in via]


def _find_object(vol, pvrs, dds):
    """The PVR/DataDownload of a plan volume: by volume-key annotation, else a DataDownload by target PVC."""
    found = None
    for obj in list(pvrs) + list(dds):
        annotations = _get(obj, "metadata", "annotations") or {}
        if pvrs_mod.ANNOTATION_VOLUME_KEY in annotations and annotations[pvrs_mod.ANNOTATION_VOLUME_KEY] == vol.get("key"):
            found = obj
    if found is not None:
        return found
    want = _get(vol, "new_pvc", "name", default="") if vol.get("new_pvc") else ""
    for obj in dds:
        if (_get(obj, "spec", "targetVolume", "pvc", default="") == want
                and _get(obj, "spec", "targetVolume", "namespace", default="") == _get(vol, "target_namespace")):
            found = obj
    return found


def _volume(vol, doc, pvrs, dds):
    rec = _get(doc, "volumes", vol.get("key"), default={})
    obj = _find_object(vol, pvrs, dds)
    status = _get(obj, "status", default={}) if obj is not None else {}
    started = _get(status, "startTimestamp")
    completed = _get(status, "completionTimestamp")
    has_progress = _dig(status, "progress") is not _MISSING
    new_pvc = vol.get("new_pvc")
    return {
        "key": vol.get("key"),
        "source": "%s/%s" % (vol.get("source_namespace"), vol.get("source_pvc")),
        "target_namespace": vol.get("target_namespace"),
        "target_pvc": vol.get("target_pvc"),
        "new_pvc": _get(new_pvc, "name") if new_pvc else None,
        "method": vol.get("method"),
        "restore_via": vol.get("restore_via"),
        "volume_mode": _get(vol, "volume_mode", default="Filesystem"),
        "storage_class": _get(new_pvc, "storage_class") if new_pvc else _get(vol, "storage_class"),
        "snapshot_id": vol.get("snapshot_id"),
        "snapshot_size": vol.get("snapshot_size"),
        "object": "%s/%s" % (obj.get("kind"), _get(obj, "metadata", "name")) if obj is not None else None,
        "phase": _get(status, "phase", default=_get(rec, "phase", default="NotStarted")),
        # The object gone (canceled by the rescue, or cleaned up): how far it got, as the journal kept it.
        "bytes_done": _get(status, "progress", "bytesDone", default=0) if has_progress else (
            _get(rec, "bytes_done", default=0) if obj is None else 0),
        "total_bytes": _get(status, "progress", "totalBytes", default=0) if has_progress else (
            _get(rec, "total_bytes", default=0) if obj is None else 0),
        "started": started,
        "completed": completed,
        "duration_seconds": _seconds(started, completed) if started and completed else None,
        "swap": _get(rec, "swap"),
    }


def _workloads(doc):
    out = []
    for record in doc.get("undo") or []:
        if record.get("action") != "scale":
            continue
        target = record.get("target") or {}
        out.append({"kind": target.get("kind"), "namespace": target.get("namespace"), "name": target.get("name"),
                    "original": record.get("original"), "stopped": True,
                    "started": record.get("status") == "reverted", "status": record.get("status")})
    return out


def _phases(history):
    states = [h for h in history if re.match("^state ", h.get("event") or "")]
    phases = []
    for index, entry in enumerate(states):
        next_at = states[index + 1]["at"] if index + 1 < len(states) else None
        phases.append({"state": entry["event"][6:], "at": entry.get("at"),
                       "seconds": _seconds(entry["at"], next_at) if next_at else None})
    return phases


def _notes(doc, plan):
    notes = list(plan.get("notes") or [])
    if doc.get("mode") == "replace":
        # The note of the swap mode in effect: a re-run may swap with another mode than the run that made the plan.
        right, wrong = plans.NOTE_REPLACE_RETAIN, plans.NOTE_REPLACE_TEMPLATE_KEEPS_CLAIMS
        if _swap_mode(doc, plan) == "template":
            right, wrong = wrong, right
        notes = [right if note == wrong else note for note in notes]
    if doc.get("mode") == "in_place" and not [n for n in notes if re.search("created after the backup", n)]:
        notes.append(IN_PLACE_NOTE)
    if (doc.get("mode") == "replace" and doc.get("state") in ("completed", "swapped") and _swap_mode(doc, plan) == "rebind"
            and not [n for n in notes if re.search("Retain", n)]):
        notes.append(RETAIN_NOTE)
    return notes


def _swap_mode(doc, plan):
    """How the claims were swapped: the journal's swap records, else the plan's mode (rebind by default). Only a
    rebind retains the original PVs; a template swap leaves the original claims as they were."""
    recorded = sessions.recorded_swap_modes(doc)
    if recorded:
        return "rebind" if "rebind" in recorded else sorted(recorded)[0]
    return plan.get("swap_mode") or "rebind"


def build_report(session_doc, pvrs, dds, warnings=None):
    """The JSON report (a dict) of a session document and its PodVolumeRestores and DataDownloads."""
    doc = session_doc
    plan = doc.get("plan") or {}
    pvrs, dds = list(pvrs or []), list(dds or [])
    volumes = [_volume(vol, doc, pvrs, dds) for vol in plan.get("volumes") or []]
    history = doc.get("history") or []
    backup = doc.get("backup")
    return {
        "session": doc.get("session"),
        "mode": doc.get("mode"),
        "state": doc.get("state"),
        "error": _get(doc, "error"),
        "backup": {
            "name": _get(backup, "name"),
            "phase": _get(backup, "phase"),
            "started": _get(backup, "started", default=_get(backup, "start_timestamp")),
            "completed": _get(backup, "completed", default=_get(backup, "completion_timestamp")),
        } if backup else None,
        "created": doc.get("created"),
        "finished": history[-1].get("at") if history else None,
        "duration_seconds": _seconds(doc.get("created"), history[-1]["at"]) if history else None,
        "volumes": volumes,
        # restored = what completed volumes hold (a failed or canceled one's partial bytes are not a restore)
        "total_bytes": sum(v["bytes_done"] for v in volumes if v["phase"] == "Completed"),
        "workloads": _workloads(doc),
        "hooks": doc.get("hooks") or [],
        "phases": _phases(history),
        "warnings": list(plan.get("warnings") or []) + list(warnings or []),
        "notes": _notes(doc, plan),
    }


def render_json(report):
    """The JSON file: what ``to_nice_json(sort_keys=true)`` followed by a newline wrote."""
    return json.dumps(report, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def _text(value):
    """A value as ``{{ value }}`` prints it: null prints nothing."""
    return "" if value is None else "%s" % (value,)


def _or_dash(value):
    return "-" if value is None else "%s" % (value,)


def _hook_line(hook):
    where = (" in %s/%s" % (hook.get("pod"), hook.get("container"))) if "pod" in hook else ""
    rc = (" rc=%s" % (hook["rc"],)) if hook.get("rc") is not None else ""
    message = (" - %s" % (hook["message"],)) if hook.get("message") else ""
    return "- %s **%s** `%s` (%s%s): %s%s%s" % (
        _text(hook.get("at")), _text(hook.get("phase")), _text(hook.get("name")), _text(hook.get("type", "")),
        where, _text(hook.get("result")), rc, message)


def _swap_text(swap):
    if not swap:
        return "-"
    return "%s %s, old PV %s" % (swap.get("mode"), swap.get("state"), swap.get("old_pv", "-"))


def render_markdown(report):
    """The Markdown report."""
    r = report
    backup = r.get("backup")
    lines = [
        "# Data-only restore report: session `%s`" % _text(r["session"]),
        "",
        "| | |",
        "|---|---|",
        "| Mode | %s |" % ("%s" % (r["mode"],)).replace("_", "-"),
        "| State | **%s**%s |" % (_text(r["state"]), (" - %s" % r["error"]) if r.get("error") else ""),
        "| Backup | `%s` (%s) |" % ((_text(backup["name"]), _text(backup.get("phase", "?"))) if backup else ("?", "?")),
        "| Started | %s |" % _text(r["created"]),
        "| Last change | %s |" % _text(r["finished"]),
        "| Duration | %s s |" % _text(r["duration_seconds"]),
        "| Bytes restored | %s |" % _text(r["total_bytes"]),
        "",
        "## Volumes",
        "",
        "| Volume | From | Method | Via | New PVC | Phase | Bytes | Duration (s) | Swap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in r["volumes"]:
        lines.append("| `%s` | `%s` | %s | %s | %s | %s | %s / %s | %s | %s |" % (
            _text(v["key"]), _text(v["source"]), _text(v["method"]), _text(v["restore_via"]), v["new_pvc"] or "-",
            _text(v["phase"]), _text(v["bytes_done"]), _text(v["total_bytes"]), _or_dash(v["duration_seconds"]),
            _swap_text(v["swap"])))
    lines += ["", "## Workloads", "", "| Workload | Original | Stopped | Started again |", "|---|---|---|---|"]
    for w in r["workloads"]:
        lines.append("| %s `%s/%s` | %s | yes | %s |" % (
            _text(w["kind"]), _text(w["namespace"]), _text(w["name"]), json.dumps(w["original"]),
            "yes" if w["started"] else "no (%s)" % (w["status"],)))
    if not r["workloads"]:
        lines.append("| (none stopped) | | | |")
    lines += ["", "## Hooks", ""]
    lines += [_hook_line(h) for h in r["hooks"]] or ["- none"]
    lines += ["", "## Timeline", "", "| State | At | Seconds |", "|---|---|---|"]
    for p in r["phases"]:
        lines.append("| %s | %s | %s |" % (_text(p["state"]), _text(p["at"]), _or_dash(p["seconds"])))
    lines += ["", "## Warnings", ""]
    lines += ["- %s" % _text(w) for w in r["warnings"]] or ["- none"]
    lines += ["", "## Notes", ""]
    lines += ["- %s" % _text(n) for n in r["notes"]] or ["- none"]
    return "\n".join(lines) + "\n"


def render_summary(report, files=None):
    """The summary table, one string per line; ``files`` ({json, markdown}) adds the "Reports:" line."""
    r = report
    backup = r.get("backup")
    lines = [
        "Session %s (%s): %s%s; backup %s; %s bytes" % (
            _text(r["session"]), _text(r["mode"]), _text(r["state"]), (" - %s" % r["error"]) if r.get("error") else "",
            _text(backup["name"]) if backup else "?", _text(r["total_bytes"])),
        SUMMARY_ROW % ("VOLUME", "METHOD", "VIA", "PHASE", "BYTES", "SECONDS"),
    ]
    for v in r["volumes"]:
        lines.append(SUMMARY_ROW % (v["key"], v["method"], v["restore_via"], v["phase"],
                                    "%s/%s" % (v["bytes_done"], v["total_bytes"]), _or_dash(v["duration_seconds"])))
    lines.append("Workloads: %s; hooks: %d; warnings: %d" % (
        ", ".join("%s" % (w["name"],) for w in r["workloads"]) or "none stopped", len(r["hooks"]), len(r["warnings"])))
    lines += ["NOTE: %s" % _text(n) for n in r["notes"]]
    if files:
        lines.append("Reports: %s %s" % (files["markdown"], files["json"]))
    return "\n".join(lines).strip().split("\n")


def collect(kube, velero_namespace, session):
    """The session document and its PodVolumeRestores and DataDownloads (one list per needed kind)."""
    sess = sessions.require(kube, velero_namespace, session)
    selector = "%s=%s" % (names.LABEL_SESSION, session)
    found = {k.POD_VOLUME_RESTORE: [], k.DATA_DOWNLOAD: []}
    for kind in needed_kinds(sess.doc):
        try:
            found[kind] = kube.list(kind, namespace=velero_namespace, label_selector=selector)[0]
        except MissingApiError:  # the CRD is not installed: nothing of that kind to report
            found[kind] = []
    return sess.doc, found[k.POD_VOLUME_RESTORE], found[k.DATA_DOWNLOAD]


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def _mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None


def _write_atomic(path, content):
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8"))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_files(contents, check_mode=False):
    """Write {path: text} where the content or mode differs; returns (changed, diffs).

    Creates the directories (mode 0755). A file with the same content is not touched.
    """
    changed, diffs = False, []
    for path in sorted(contents):
        text = contents[path]
        before = _read(path)
        if before == text and _mode(path) == FILE_MODE:
            continue
        changed = True
        if before != text:
            diffs.append({"before": before or "", "after": text, "before_header": path, "after_header": path})
        if check_mode:
            continue
        directory = os.path.dirname(path)
        try:
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, DIRECTORY_MODE)
                os.chmod(directory, DIRECTORY_MODE)
            if before == text:
                os.chmod(path, FILE_MODE)
            else:
                _write_atomic(path, text)
        except (IOError, OSError) as exc:
            raise DataRestoreError("Cannot write the report %s: %s. Choose a writable directory (report_dir)."
                                   % (path, exc), path=path)
    return changed, diffs


def run_report(kube, velero_namespace, session, directory, warnings=None, write=True, check_mode=False,
               session_state=None):
    """Read the session and its Velero objects, build the report and write both files.

    ``session_state``: move the session to it first (the report then shows it). Returns the module result:
    changed, report, files, summary and the diffs of the files.
    """
    moved = False
    if session_state:
        _sess, moved = sessions.set_state(kube, velero_namespace, session, session_state, check_mode=check_mode)
    doc, pvrs, dds = collect(kube, velero_namespace, session)
    if moved and check_mode:  # the report the real run writes: the session in the state it moves to
        doc = sessions.with_state(doc, session_state)
    report = build_report(doc, pvrs, dds, warnings)
    files = dict((fmt, os.path.join(directory, base)) for fmt, base in file_names(session).items())
    changed, diffs = moved, []
    if write:
        written, diffs = write_files({files["json"]: render_json(report), files["markdown"]: render_markdown(report)},
                                     check_mode=check_mode)
        changed = changed or written
    return {"changed": changed, "report": report, "files": files, "summary": render_summary(report, files),
            "diff": diffs}
