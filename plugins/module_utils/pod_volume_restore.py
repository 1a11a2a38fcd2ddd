# -*- coding: utf-8 -*-
# Copyright: (c) 2026, velero.data_restore contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PodVolumeRestores of a session: one per planned volume, into the session's helper pods.

Every field and label is one the node-agent reads (velero-contract.md §1.4, §2, §4, §7):
Velero namespace (§7.1), ``uploaderType: kopia`` (§7.2), ``velero.io/pod-uid`` (§7.4),
ownerReferences[0] = the session, which names the done file (§7.5), ``repoIdentifier: ""``
(§7.7), no ``status`` on create and merge-patched ``spec.cancel`` (§7.13), names ≤ 63 (§7.14),
original ``sourceNamespace`` and local BSL (§7.15), ``snapshotSize`` always: a CRD older than v1.18 prunes it
(§7.18), which is harmless - it only sizes the optional cache volume - so no CRD read is spent on it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import time

from ansible_collections.velero.data_restore.plugins.module_utils import helper_pod
from ansible_collections.velero.data_restore.plugins.module_utils import kube as k
from ansible_collections.velero.data_restore.plugins.module_utils import names
from ansible_collections.velero.data_restore.plugins.module_utils import session as sessions
from ansible_collections.velero.data_restore.plugins.module_utils import velero_api as va
from ansible_collections.velero.data_restore.plugins.module_utils.errors import (
    DataRestoreError,
    PreflightError,
    WaitTimeout,
)
from ansible_collections.velero.data_restore.plugins.module_utils.waiting import WaitState, wait_for

ROLE = "pvr"
ANNOTATION_VOLUME_KEY = names.PREFIX + "volume-key"
FAILED_PHASES = (va.PHASE_FAILED, va.PHASE_CANCELED)
NOT_STARTED_PHASES = ("", va.PHASE_NEW, va.PHASE_ACCEPTED, va.PHASE_PREPARED)
# Deleting a PVR or DataDownload that is not final cancels it first; Velero forces a cancel its exposer did not
# finish at the first reconcile after cancelDelayOthers (5 min): the periodic one, every preparingMonitorFrequency
# (1 min, data_upload_controller.go), so up to 6 min. Every wait for such a cancel allows that, plus 30 s.
CANCEL_TIMEOUT = 390
UPLOADER_SETTING_KEYS = ("WriteSparseFiles", "ParallelFilesDownload")


def pvr_name(session, namespace, pvc):
    """Stable name ≤ 63: the node-agent names its hosting pod after it (contract §7.14)."""
    return names.stable_name(session, namespace, pvc, distinct=True)


def volume_key(rec):
    ns, pvc = helper_pod.receiving_claim(rec)
    return rec.get("key") or "%s/%s" % (rec.get("target_namespace") or ns, rec.get("target_pvc") or pvc)


# The node-agent writes the done file .velero/<session uid> into a volume when a PodVolumeRestore of the session
# completes its data path (v1.18.1 restore_micro_service.go writeCompletionMark), and a non-root restore-wait cannot
# remove it (cmd/velero-restore-helper removeFolder): every later restore-wait of the session exits at once there.
DONE_FILE_RULE = (
    "restore-wait exits at once when each volume of its pod holds the done file .velero/<session uid>, which the "
    "node-agent writes when a PodVolumeRestore of this session completes its data path, and which a non-root "
    "restore-wait (Velero's default) cannot remove")
# Why a restore-wait exited with 0 before its PodVolumeRestores ran, and the way out.
DONE_FILE_ADVICE = (
    DONE_FILE_RULE + ": this session restored those volumes before, although its PodVolumeRestore did not end "
    "Completed (its status update was lost, or it was canceled after the data was written), and they may have "
    "been written to since. Restore them again under a new session name (a new session UID).")


def refuse_other_snapshot(obj, rec, key, session_name):
    """An object of the session (same stable name) restores another snapshot into the volume: taking it for this
    record would report another backup's data as restored."""
    current = (obj.get("spec") or {}).get("snapshotID")
    if current and current != rec["snapshot_id"]:
        kind = obj.get("kind") or "PodVolumeRestore"
        if kind == "PodVolumeRestore":
            # No new PodVolumeRestore of this session would ever be taken (DONE_FILE_RULE).
            again = "use a new session name to restore this one too (%s)" % DONE_FILE_RULE
        else:
            again = "to restore it under this session, delete the session's DataDownloads first (state=absent)"
        raise PreflightError(
            "%s %s/%s of session %s restores snapshot %s into volume %s, and this run asks for snapshot %s (another "
            "backup?). Nothing was changed. To restore another backup, use a new session name; %s."
            % (kind, obj["metadata"].get("namespace"), obj["metadata"]["name"], session_name, current, key,
               rec["snapshot_id"], again), volume=key)


def check_record(rec):
    """Refuse what a node-agent would drop or fail, with the contract's reason."""
    key = rec.get("key") or "%s/%s" % helper_pod.receiving_claim(rec)
    missing = [f for f in ("snapshot_id", "source_namespace", "backup_storage_location") if not rec.get(f)]
    if missing:
        raise PreflightError("Volume %s: the plan record lacks %s; build it with velero.data_restore.restore_plan."
                             % (key, ", ".join(missing)), volume=key)
    method = rec.get("method") or "fs"
    uploader = rec.get("uploader_type")
    if method == "fs" and va.pod_volume_uploader(uploader) != va.UPLOADER_KOPIA:
        raise PreflightError(
            "Volume %s was backed up with uploader %r (empty means restic); this collection restores only "
            "PodVolumeRestores with uploaderType kopia. Velero v1.17 and v1.18 restore restic snapshots only through "
            "their legacy restic controller (which needs the BackupRepository's restic identifier and is not driven "
            "here), and later versions not at all (velero-contract.md §1.4, §7.2). Restore it with a Velero Restore "
            "on v1.18 or older, or take a new kopia backup." % (key, uploader), volume=key)
    if method == "data_mover" and (rec.get("data_mover") or "") not in va.BUILTIN_DATA_MOVERS:
        raise PreflightError(
            "Volume %s was moved by data mover %r; only Velero's built-in data mover (\"\" or velero) writes kopia "
            "snapshots a PodVolumeRestore can read (velero-contract.md §7.12, §8)." % (key, rec.get("data_mover")),
            volume=key)
    if rec.get("volume_mode") == "Block":
        raise PreflightError(
            "Volume %s is Block mode; a PodVolumeRestore restores Filesystem volumes only (velero-contract.md §2, "
            "§8). Restore it with velero.data_restore.data_download into a new Block PVC." % key, volume=key)
    return key


def find_helper_pod(pods, namespace, pvc):
    """The helper pod entry that mounts namespace/pvc, or None."""
    for pod in pods or []:
        if pod.get("namespace") == namespace and pvc in (pod.get("volumes") or {}):
            return pod
    return None


def match_helper_pod(pods, namespace, pvc):
    """(pod entry, pod volume name) of the helper pod that mounts namespace/pvc."""
    pod = find_helper_pod(pods, namespace, pvc)
    if pod is not None:
        return pod, pod["volumes"][pvc]
    raise PreflightError(
        "No helper pod mounts PVC %s/%s; create it with velero.data_restore.restore_helper_pod (same session "
        "and volumes) and pass its pods result." % (namespace, pvc), pvc="%s/%s" % (namespace, pvc))


def build_pvr(rec, pod, volume, sess, velero_namespace, uploader_settings=None):
    """The PodVolumeRestore body (never a status)."""
    ns, pvc = helper_pod.receiving_claim(rec)
    labels = names.session_labels(sess.name, ROLE)
    labels[va.LABEL_POD_UID] = pod["uid"]
    spec = {
        "pod": {"kind": "Pod", "namespace": pod["namespace"], "name": pod["name"], "uid": pod["uid"]},
        "volume": volume,
        "backupStorageLocation": rec["backup_storage_location"],
        "repoIdentifier": "",
        "uploaderType": va.UPLOADER_KOPIA,
        "snapshotID": rec["snapshot_id"],
        "sourceNamespace": rec["source_namespace"],
    }
    if rec.get("snapshot_size"):
        spec["snapshotSize"] = int(rec["snapshot_size"])
    if uploader_settings:
        spec["uploaderSettings"] = va.data_path_settings(uploader_settings)
    return {
        "apiVersion": k.POD_VOLUME_RESTORE.api_version,
        "kind": k.POD_VOLUME_RESTORE.kind,
        "metadata": {
            "name": pvr_name(sess.name, ns, pvc),
            "namespace": velero_namespace,
            "labels": labels,
            "annotations": {ANNOTATION_VOLUME_KEY: volume_key(rec)},
            "ownerReferences": [sess.owner_reference()],
        },
        "spec": spec,
    }


def restore_wait_exited(state):
    """Whether helper_pod.restore_wait_state ``state`` says restore-wait has exited (with 0 or not)."""
    return state == "completed" or state.startswith("terminated:")


def untaken(obj):
    """A PodVolumeRestore no node-agent has taken yet."""
    return va.phase_of(obj) in ("", va.PHASE_NEW)


def refuse_finished_restore_wait(pod, namespace):
    """The node-agent takes a PodVolumeRestore only while its pod's restore-wait init container runs
    (pod_volume_restore_controller.go shouldProcess / isInitContainerRunning): one created for a helper pod whose
    restore-wait has exited would stay New for good."""
    state = pod.get("restore_wait") or ""
    if not restore_wait_exited(state):
        return
    if state == "completed":
        raise PreflightError(
            "The restore-wait init container of helper pod %s/%s has already exited (completed), and Velero's "
            "node-agent only takes a PodVolumeRestore while it runs, so this one would never start. %s"
            % (namespace, pod.get("name"), DONE_FILE_ADVICE), pod=pod.get("name"))
    raise PreflightError(
        "The restore-wait init container of helper pod %s/%s has already exited (%s), and Velero's node-agent only "
        "takes a PodVolumeRestore while it runs, so this one would never start. Delete the session's helper pods "
        "(velero.data_restore.restore_helper_pod state=absent) and re-run: new ones are created."
        % (namespace, pod.get("name"), state), pod=pod.get("name"))


# A node-agent takes a PodVolumeRestore within seconds while its helper pod's restore-wait runs; a longer wait
# looks once, after this many seconds, at the helper pods of those still untaken.
UNTAKEN_LOOK_AFTER = 15


def _wait_looking_at_untaken(kube, velero_ns, session_name, expected, timeout, fail_fast, initial, changed):
    """wait_final; a wait longer than UNTAKEN_LOOK_AFTER that starts with an untaken PodVolumeRestore fails early
    when one is still untaken then and can never be taken (refuse_untaken_behind_exited_restore_wait), and otherwise
    goes on from where it was (a second watch, only for such a wait)."""
    starts_untaken = initial is None or any(untaken(obj) for obj in initial[0] if obj["metadata"]["name"] in expected)
    if timeout <= UNTAKEN_LOOK_AFTER or not starts_untaken:
        return wait_final(kube, velero_ns, session_name, expected, timeout, fail_fast=fail_fast, initial=initial)
    started = time.monotonic()
    try:
        return wait_final(kube, velero_ns, session_name, expected, UNTAKEN_LOOK_AFTER, fail_fast=fail_fast,
                          initial=initial)
    except WaitTimeout as exc:
        _refuse_untaken(kube, session_name, expected, exc, changed)
        remaining = max(0, timeout - (time.monotonic() - started))
        return wait_final(kube, velero_ns, session_name, expected, remaining, fail_fast=fail_fast,
                          initial=(exc.objects, exc.version) if exc.version else None)


def _refuse_untaken(kube, session_name, expected, exc, changed):
    """The volumes as a timed-out wait left them, after refuse_untaken_behind_exited_restore_wait."""
    objects = dict((o["metadata"]["name"], o) for o in exc.objects)
    volumes = [summarize(objects.get(n, {"metadata": {"name": n}}), expected[n]) for n in sorted(expected)]
    refuse_untaken_behind_exited_restore_wait(kube, session_name, [objects.get(n) for n in sorted(expected)],
                                              volumes, exc.pending, changed)
    return volumes


def refuse_untaken_behind_exited_restore_wait(kube, session_name, objects, volumes, pending, changed):
    """A wait (or wait slice) ended with a PodVolumeRestore that no node-agent took: when its helper pod's
    restore-wait has exited, none ever will (isInitContainerRunning), so fail now instead of waiting out the
    timeout. refuse_finished_restore_wait cannot catch it before the create: restore-wait may exit just after the
    helper pod was seen running. Only a wait that ends with an untaken one reads the helper pods (one LIST)."""
    waiting = [obj for obj in objects if obj is not None and untaken(obj)]
    if not waiting:
        return
    pods = dict(((pod["metadata"].get("namespace"), pod["metadata"]["name"]), pod)
                for pod in helper_pod.find_pods(kube, session_name))
    stuck = []
    for obj in waiting:
        ref = (obj.get("spec") or {}).get("pod") or {}
        pod = pods.get((ref.get("namespace"), ref.get("name")))
        state = helper_pod.restore_wait_state(pod) if pod is not None else ""
        if restore_wait_exited(state):
            stuck.append("%s (helper pod %s/%s, restore-wait %s)"
                         % (obj["metadata"]["name"], ref.get("namespace"), ref.get("name"), state))
    if stuck:
        raise DataRestoreError(
            "PodVolumeRestore(s) %s will never start: Velero's node-agent takes a PodVolumeRestore only while the "
            "restore-wait init container of its helper pod runs, and it has exited. %s"
            % (", ".join(stuck), DONE_FILE_ADVICE), volumes=volumes, pending=pending, changed=changed)


def check_uploader_settings(settings):
    unknown = sorted(set(settings or {}) - set(UPLOADER_SETTING_KEYS))
    if unknown:
        raise PreflightError("uploader_settings keys %s are unknown to Velero; use %s."
                             % (", ".join(unknown), ", ".join(UPLOADER_SETTING_KEYS)))
    problems = va.data_path_setting_problems(settings, "uploader_settings")
    if problems:
        raise PreflightError(" ".join(problems))


def _parse_time(value):
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None


def summarize(obj, key=None):
    """The per-volume result entry of a PVR (or DataDownload)."""
    status = obj.get("status") or {}
    progress = status.get("progress") or {}
    started, completed = status.get("startTimestamp"), status.get("completionTimestamp")
    duration = None
    if _parse_time(started) and _parse_time(completed):
        duration = int((_parse_time(completed) - _parse_time(started)).total_seconds())
    meta = obj.get("metadata") or {}
    return {
        "key": key or (meta.get("annotations") or {}).get(ANNOTATION_VOLUME_KEY),
        "name": meta.get("name"),
        "phase": status.get("phase") or va.PHASE_NEW,
        "bytes_done": progress.get("bytesDone") or 0,
        "total_bytes": progress.get("totalBytes") or 0,
        "node": status.get("node") or status.get("acceptedByNode"),
        "message": status.get("message") or "",
        "started": started,
        "completed": completed,
        "duration": duration,
    }


def progress_line(entries):
    done = sum(e["bytes_done"] for e in entries)
    total = sum(e["total_bytes"] for e in entries)
    finished = len([e for e in entries if e["phase"] == va.PHASE_COMPLETED])
    return "%d/%d volumes completed, %d/%d bytes" % (finished, len(entries), done, total)


def failure_message(kind_name, failed):
    return "%s failed for %d volume(s): %s" % (kind_name, len(failed), "; ".join(
        "%s (%s) %s: %s" % (e["key"], e["name"], e["phase"], e["message"] or "no message from the node-agent")
        for e in failed))


def wait_final(kube, velero_namespace, session, expected, timeout, kind=k.POD_VOLUME_RESTORE, role=ROLE,
               fail_fast=False, on_progress=None, initial=None, with_version=False):
    """One LIST + WATCH on the session's CRs until every name in ``expected`` ({name: key}) is final.

    Returns the final objects by name (with ``with_version``: and the resourceVersion the wait reached). Raises
    WaitTimeout (pending names + keys) or, with fail_fast, DataRestoreError at the first Failed/Canceled one.
    """
    # The predicate runs after every watch event; each object is summarized once per resourceVersion, so a restore
    # of N volumes costs N dict lookups per event, not N summaries (four timestamp parses each).
    summaries = {}

    def summary(name, obj):
        version = (obj.get("metadata") or {}).get("resourceVersion")
        seen = summaries.get(name)
        if version and seen is not None and seen[0] == version:
            return seen[1]
        entry = summarize(obj, expected[name])
        summaries[name] = (version, entry)
        return entry

    names_sorted = sorted(expected)

    def predicate(objects):
        by_name = dict((o["metadata"]["name"], o) for o in objects)
        entries, pending = [], []
        for name in names_sorted:
            obj = by_name.get(name)
            if obj is None:
                pending.append("%s (%s, gone)" % (expected[name], name))
                continue
            entry = summary(name, obj)
            entries.append(entry)
            if entry["phase"] not in va.DATA_PATH_FINAL_PHASES:
                pending.append("%s (%s, %s, %d/%d bytes)"
                               % (entry["key"], name, entry["phase"], entry["bytes_done"], entry["total_bytes"]))
            elif fail_fast and entry["phase"] in FAILED_PHASES:
                raise DataRestoreError(failure_message(kind.kind, [entry]), volumes=[entry])
        return WaitState(not pending, pending=pending, progress=progress_line(entries))

    objects, version = wait_for(kube, kind, predicate, namespace=velero_namespace,
                                label_selector=names.session_selector(session, role), timeout=timeout,
                                on_progress=on_progress, what="%ss of session %s" % (kind.kind, session),
                                initial=initial, with_version=True)
    by_name = dict((o["metadata"]["name"], o) for o in objects)
    return (by_name, version) if with_version else by_name


def run(kube, params, check_mode=False):
    """What module pod_volume_restore does; returns its result dict."""
    velero_ns, session_name = params["velero_namespace"], params["session"]
    sessions.check_name(session_name)
    if params["state"] == "absent":
        return cancel(kube, velero_ns, session_name, params.get("volumes"), wait=params["wait"],
                      timeout=params["wait_timeout"], check_mode=check_mode, keep_final=params.get("keep_final"))
    records = [r for r in params.get("volumes") or []
               if (r.get("restore_via") or "pod_volume_restore") == "pod_volume_restore"]
    if not records:
        raise PreflightError("No volume records with restore_via pod_volume_restore in volumes.")
    check_uploader_settings(params.get("uploader_settings"))
    # One LIST of the session's PVRs decides what to create; the wait starts from it (no second LIST). A later wait
    # slice starts from where the one before it stopped (resume) and lists nothing.
    resumed = resume_state(params.get("resume"), session_name)
    if resumed is not None:
        items, list_version = resumed
    else:
        items, list_version = kube.list(k.POD_VOLUME_RESTORE, namespace=velero_ns,
                                        label_selector=names.session_selector(session_name, ROLE))
    existing = dict((o["metadata"]["name"], o) for o in items)
    pods = params.get("pods")
    plan, expected = [], {}
    for rec in records:
        key = check_record(rec)
        ns, pvc = helper_pod.receiving_claim(rec)
        name = pvr_name(session_name, ns, pvc)
        expected[name] = key
        current = existing.get(name)
        if current is not None and not current["metadata"].get("deletionTimestamp"):
            refuse_other_snapshot(current, rec, key, session_name)
            phase = va.phase_of(current)
            if phase in FAILED_PHASES and params.get("retry_failed"):
                plan.append(("recreate", rec, key, name, current))
                continue
            plan.append(("reuse", rec, key, name, current))
            continue
        if current is not None:  # being deleted: wait for it to go, then create anew
            plan.append(("recreate", rec, key, name, current))
            continue
        plan.append(("create", rec, key, name, None))
    bodies = {}
    sess = None
    running = [i for i, (a, _rec, _key, _name, cur) in enumerate(plan)
               if a == "reuse" and va.phase_of(cur) not in va.DATA_PATH_FINAL_PHASES]
    if not pods and (running or any(a != "reuse" for a, _rec, _key, _name, _cur in plan)):
        pods = [helper_pod.describe_pod(p) for p in helper_pod.find_pods(kube, session_name)]
    for i in running:
        _action, rec, key, name, current = plan[i]
        replaced = _replaced_helper_pod(current, pods, *helper_pod.receiving_claim(rec))
        if replaced is not None:
            plan[i] = (_recreate_or_refuse(current, *replaced), rec, key, name, current)
    if any(a != "reuse" for a, _rec, _key, _name, _cur in plan):  # the session is only needed to create
        sess = sessions.load(kube, velero_ns, session_name)
        if sess is None and not check_mode:
            sessions.require(kube, velero_ns, session_name)
    for action, rec, key, name, current in plan:
        if action == "reuse":
            continue
        if sess is None:
            bodies[name] = None
            continue
        ns, pvc = helper_pod.receiving_claim(rec)
        pod, volume = match_helper_pod(pods, ns, pvc)
        refuse_finished_restore_wait(pod, ns)
        if not pod.get("uid"):
            if not check_mode:
                raise PreflightError("Helper pod %s/%s has no UID yet; create it first (velero.data_restore."
                                     "restore_helper_pod)." % (ns, pod["name"]))
            pod = dict(pod, uid="<helper pod uid>")  # check mode: the helper pod would be created by the task before
        bodies[name] = build_pvr(rec, pod, volume, sess, velero_ns, params.get("uploader_settings"))
    changed = any(a != "reuse" for a, _rec, _key, _name, _cur in plan)
    diff = dict(before={}, after={"podvolumerestores": [b for b in bodies.values() if b]})
    if check_mode:
        volumes = [dict(summarize(c or bodies.get(n) or {"metadata": {"name": n}}, key), action=a)
                   for a, _rec, key, n, c in plan]
        # done as the real run would say it: nothing to create and every PodVolumeRestore final already; a failed
        # one it keeps (no retry_failed) fails the task, as it will.
        done = not changed and all(v["phase"] in va.DATA_PATH_FINAL_PHASES for v in volumes)
        result = dict(changed=changed, done=done, volumes=volumes, diff=diff, progress=progress_line(volumes))
        _fail_on_failed(result, [v for v in volumes if v["action"] == "reuse"], params)
        return result
    if changed:
        # Record before mutate: the session knows every PVR before it exists (one update for all).
        def record(doc):
            for action, rec, key, name, current in plan:
                if action != "reuse":
                    doc["volumes"].setdefault(key, {}).update(
                        {"restore_via": "pod_volume_restore", "pod_volume_restore": name,
                         "phase": va.PHASE_NEW, "helper_pod": bodies[name]["spec"]["pod"]["name"]})
        sessions.update(kube, velero_ns, session_name, record, event="creating PodVolumeRestores")
    recreate = [c for a, _rec, _key, _n, c in plan if a == "recreate"]
    if recreate:
        cancel_objects(kube, velero_ns, session_name, recreate, timeout=params["wait_timeout"],
                       pod_label=va.LABEL_PVR_POD)
    created = kube.create_many(k.POD_VOLUME_RESTORE, [bodies[n] for a, _rec, _key, n, _cur in plan if a != "reuse"],
                               velero_ns, label=names.LABEL_SESSION)
    result = dict(changed=changed, diff=diff)
    if not params["wait"]:
        by_name = dict(existing)
        by_name.update((o["metadata"]["name"], o) for o in created)
        volumes = [summarize(by_name.get(n, {"metadata": {"name": n}}), expected[n]) for n in sorted(expected)]
        result.update(done=all(v["phase"] in va.DATA_PATH_FINAL_PHASES for v in volumes), volumes=volumes,
                      progress=progress_line(volumes))
        _fail_on_failed(result, volumes, params)
        return result
    try:
        final = _wait_looking_at_untaken(kube, velero_ns, session_name, expected, params["wait_timeout"],
                                         params.get("fail_fast"), None if recreate else (items + created, list_version),
                                         result["changed"])
    except WaitTimeout as exc:
        volumes = _refuse_untaken(kube, session_name, expected, exc, result["changed"])
        if params.get("fail_on_timeout", True):
            raise WaitTimeout(
                "Timed out after %ss waiting for PodVolumeRestores of session %s; still pending: %s. Progress: %s. "
                "A PodVolumeRestore that stays New is not seen by any node-agent: check that its helper pod runs "
                "restore-wait on a node with a node-agent and that the PVR's velero.io/pod-uid label equals the "
                "helper pod's UID; look at the node-agent logs on that node."
                % (params["wait_timeout"], session_name, ", ".join(exc.pending), progress_line(volumes)),
                pending=exc.pending, volumes=volumes, changed=result["changed"])
        result.update(done=False, volumes=volumes, pending=exc.pending, progress=progress_line(volumes),
                      resume=resume_value(exc.objects, exc.version))
        return result
    volumes = [summarize(final[n], expected[n]) for n in sorted(expected)]
    # session_state goes into the same journal write, unless a volume failed (then the task fails, state stays).
    failed = any(v["phase"] in FAILED_PHASES for v in volumes)
    moved = record_final(kube, velero_ns, session_name, volumes, state=None if failed else params.get("session_state"))
    result.update(done=True, volumes=volumes, progress=progress_line(volumes), changed=result["changed"] or moved)
    _fail_on_failed(result, volumes, params)
    return result


# What a later slice reads of a PodVolumeRestore's metadata (the rest stays out of the task result).
RESUME_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "deletionTimestamp")


def resume_value(objects, version):
    """What a wait that timed out hands to the next run (option resume): the objects it ended with (spec, status
    and the metadata in RESUME_METADATA) and the resourceVersion its watch had reached; None without one."""
    if not version:
        return None
    kept = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        kept.append(dict(copy.deepcopy(obj), metadata=dict((key, copy.deepcopy(meta[key]))
                                                           for key in RESUME_METADATA if key in meta)))
    return {"resource_version": version, "objects": kept}


def resume_state(resume, session_name, kind=k.POD_VOLUME_RESTORE, role=ROLE):
    """(items, resourceVersion) from option resume, or None when it is not given. Refuses what resume_value did
    not make for this session (a resume from another session would hide that session's real state)."""
    if not resume:
        return None
    version, objects = resume.get("resource_version"), resume.get("objects")
    if not isinstance(version, str) or not version or not isinstance(objects, list):
        raise PreflightError("resume must be the resume value an earlier run of this module returned "
                             "(resource_version and objects); omit it to list the %ss again." % kind.kind)
    wanted = names.session_labels(session_name, role)
    for obj in objects:
        meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
        labels = meta.get("labels") or {}
        if not meta.get("name") or any(labels.get(key) != value for key, value in wanted.items()):
            raise PreflightError("resume holds an object that is not a %s of session %s; pass the resume value of "
                                 "the previous run with the same session, or omit it." % (kind.kind, session_name))
    return copy.deepcopy(objects), version


def _fail_on_failed(result, volumes, params):
    failed = [v for v in volumes if v["phase"] in FAILED_PHASES]
    if failed:
        raise DataRestoreError(
            "%s. Fix the cause, then re-run with retry_failed=true to create them again." % failure_message(
                "PodVolumeRestore", failed), volumes=volumes, changed=result["changed"])


def record_final(kube, velero_ns, session_name, volumes, state=None):
    """Keep each volume's final phase and progress in the journal, and move the session to ``state`` in the same
    write. Returns whether that moved the session (a change the module reports)."""
    moved = {}

    def apply(doc):
        moved["state"] = bool(state) and doc.get("state") != state  # the document before this write (each attempt)
        for v in volumes:
            if v["key"]:
                doc["volumes"].setdefault(v["key"], {}).update(
                    {"phase": v["phase"], "bytes_done": v["bytes_done"], "total_bytes": v["total_bytes"],
                     "message": v["message"], "completed": v["completed"]})
    sessions.update(kube, velero_ns, session_name, apply, state=state)
    return moved.get("state", False)


def record_canceled(kube, velero_ns, session_name, items):
    """Before unfinished CRs are canceled and deleted, keep in the journal how far each got: the report (and a
    re-run) then says Canceled at so many bytes - for an in-place volume, how much of it may already hold backup
    data - instead of the phase recorded at creation."""
    unfinished = [summarize(obj) for obj in items if va.phase_of(obj) not in va.DATA_PATH_FINAL_PHASES]
    unfinished = [entry for entry in unfinished if entry["key"]]
    if not unfinished or sessions.load(kube, velero_ns, session_name) is None:
        return
    for entry in unfinished:
        entry["message"] = ("canceled in phase %s after %d of %d bytes were written%s" % (
            entry["phase"], entry["bytes_done"], entry["total_bytes"],
            (": " + entry["message"]) if entry["message"] else ""))
        entry["phase"] = va.PHASE_CANCELED
    record_final(kube, velero_ns, session_name, unfinished)


def record_kept_final(kube, velero_ns, session_name, items):
    """Journal the final phase and progress of CRs that a cancel keeps (keep_final)."""
    entries = [entry for entry in (summarize(obj) for obj in items) if entry["key"]]
    if entries and sessions.load(kube, velero_ns, session_name) is not None:
        record_final(kube, velero_ns, session_name, entries)


def _replaced_helper_pod(current, pods, namespace, pvc):
    """(current helper pod of namespace/pvc, the pod UID ``current`` targets) when ``current`` (a PVR not final)
    targets another pod UID than that pod's, else None.

    Until a node-agent accepts it, the velero.io/pod-uid label is what counts: pod events re-trigger a New PVR only
    through it (findPVRForTargetPod, contract §2), so a missing label counts as another UID. Once accepted, the pod
    it was accepted for (spec.pod.uid) counts."""
    labels_uid = (current["metadata"].get("labels") or {}).get(va.LABEL_POD_UID)
    if untaken(current):
        uid = labels_uid
    else:
        uid = (current["spec"].get("pod") or {}).get("uid") or labels_uid
        if not uid:
            return None
    pod = find_helper_pod(pods, namespace, pvc)
    return (pod, uid) if pod is not None and pod.get("uid") and pod["uid"] != uid else None


def _recreate_or_refuse(current, pod, uid):
    """A PVR whose data path has not started (New, Accepted, Prepared) and whose helper pod was replaced is safe to
    recreate, nothing was written yet (left alone it never finishes: see _replaced_helper_pod; a prepared one
    exposes the old pod's volume directory). It happens when a run stopped after its helper pods were deleted (a
    node drain, a cleanup by hand, a rescue cut short). A running one is the user's call."""
    if va.phase_of(current) in NOT_STARTED_PHASES and not current["spec"].get("cancel"):
        return "recreate"
    raise DataRestoreError(
        "PodVolumeRestore %s (phase %s) targets helper pod UID %s, but helper pod %s/%s now has UID %s; it can never "
        "complete. Cancel it with state=absent (or retry_failed after it failed) and re-run."
        % (current["metadata"]["name"], va.phase_of(current), uid, pod["namespace"], pod["name"], pod["uid"]))


def cancel(kube, velero_ns, session_name, records=None, wait=True, timeout=300, check_mode=False,
           kind=k.POD_VOLUME_RESTORE, role=ROLE, keep_final=False):
    """Cancel (merge-patch spec.cancel=true, contract §7.13) and delete the session's CRs.

    ``records`` limits it to those volumes (by stable name); all of the session's otherwise. ``keep_final`` leaves
    the ones in a final phase alone.
    """
    items = kube.list(kind, namespace=velero_ns, label_selector=names.session_selector(session_name, role))[0]
    if records:
        wanted = set(pvr_name(session_name, *helper_pod.receiving_claim(r)) for r in records)
        items = [o for o in items if o["metadata"]["name"] in wanted]
    if keep_final:
        final = [o for o in items if va.phase_of(o) in va.DATA_PATH_FINAL_PHASES]
        items = [o for o in items if va.phase_of(o) not in va.DATA_PATH_FINAL_PHASES]
        if final and not check_mode:
            # A wait that ended early (a timeout, another failure) did not journal them: the rescue reads from the
            # journal which in-place volumes stopped part-way (a Failed one among them).
            record_kept_final(kube, velero_ns, session_name, final)
    canceled, deleted = cancel_objects(kube, velero_ns, session_name, items, wait=wait, timeout=timeout,
                                       check_mode=check_mode, kind=kind, role=role)
    return dict(changed=bool(items), canceled=canceled, deleted=deleted, volumes=[],
                diff=dict(before={kind.plural: sorted(deleted)}, after={kind.plural: []}))


def cancel_objects(kube, velero_ns, session_name, items, wait=True, timeout=300, check_mode=False,
                   kind=k.POD_VOLUME_RESTORE, role=ROLE, pod_label=None):
    """Cancel the ones not final, delete all of ``items`` (CRs of the session), and wait until they are gone - at
    least CANCEL_TIMEOUT when one is not final. Returns (canceled names, deleted names).

    ``pod_label``: for CRs created again under the same name, also wait until their data path pods (that label,
    the CR's name) are gone. The node-agent names that pod after the CR and deletes it without waiting
    (kube.DeletePodIfAny); a new CR exposed while the old pod terminates fails with AlreadyExists."""
    canceled, deleted = [], []
    cancel_field = None  # read from the CRD only when something needs a cancel
    if not check_mode:
        record_canceled(kube, velero_ns, session_name, items)
    for obj in items:
        name = obj["metadata"]["name"]
        deleted.append(name)
        if check_mode:
            continue
        if va.phase_of(obj) not in va.DATA_PATH_FINAL_PHASES and not (obj.get("spec") or {}).get("cancel"):
            if cancel_field is None:
                cancel_field = va.field_supported(kube, kind, "spec.cancel") is not False
            if cancel_field:
                kube.patch(kind, name, {"spec": {"cancel": True}}, velero_ns)
                canceled.append(name)
        if not obj["metadata"].get("deletionTimestamp"):
            kube.delete(kind, name, velero_ns)
    if wait and items and not check_mode:
        if any(va.phase_of(obj) not in va.DATA_PATH_FINAL_PHASES for obj in items):
            timeout = max(timeout, CANCEL_TIMEOUT)
        gone = set(deleted)

        def all_gone(objs):
            left = [o for o in objs if o["metadata"]["name"] in gone]
            return WaitState(not left, pending=["%s (%s)" % (o["metadata"]["name"], va.phase_of(o) or "New") for o in left])

        wait_for(kube, kind, all_gone, namespace=velero_ns, label_selector=names.session_selector(session_name, role),
                 timeout=timeout, what="%ss of session %s to be canceled and deleted (the node-agent removes its "
                                       "finalizer once they are final)" % (kind.kind, session_name))
        if pod_label:
            wait_for(kube, k.POD, lambda pods: WaitState(not pods, pending=[p["metadata"]["name"] for p in pods]),
                     namespace=velero_ns, label_selector="%s in (%s)" % (pod_label, ",".join(sorted(deleted))),
                     timeout=timeout, what="the node-agent's data path pods of %s to be deleted (a new %s of the "
                                           "same name needs the name)" % (", ".join(sorted(deleted)), kind.kind))
    return canceled, deleted
