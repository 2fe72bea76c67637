"""Who owns an MLflow run, and runs whose owner died.

A training run records at its start the process that owns it (pid, host, the process's start
time, the kernel boot and the pid namespace, as MLflow tags). A run left RUNNING by a process
that no longer exists is marked FAILED by :func:`mark_dead_runs` when ``train`` or ``reproduce``
starts; runs owned from another host or another pid namespace are left alone (their process
cannot be checked from here).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from saca_lab import tracking

#: Tags naming the process that owns a run (see :func:`owner_tags`).
PID_TAG, HOST_TAG, PROCESS_START_TAG = "saca.pid", "saca.host", "saca.process_start"
#: The kernel boot and pid namespace of the owner: a pid means something only within both.
BOOT_TAG, PIDNS_TAG = "saca.boot_id", "saca.pid_ns"
#: Tag set on a run marked FAILED because its process was found dead.
DIED_TAG = "saca.died"


def _process_start(pid: int) -> str:
    """The start time of a process in clock ticks since boot (Linux), or "" where unknown.

    With the pid it tells a live owner from an unrelated process that reused its pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def owner_tags() -> dict[str, str]:
    """Tags that name this process as the owner of a run."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), PROCESS_START_TAG: _process_start(pid),
            BOOT_TAG: _boot_id(), PIDNS_TAG: _pid_namespace()}


def owner_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process a run's tags name still runs: None when it cannot be told (no owner
    tags, or another host)."""
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if not pid or not pid.isdigit() or host != socket.gethostname():
        return None
    boot, ns = tags.get(BOOT_TAG), tags.get(PIDNS_TAG)
    if boot and _boot_id() and boot != _boot_id():
        return False  # this host has rebooted since: every process of that boot is gone
    if ns and _pid_namespace() and ns != _pid_namespace():
        return None  # a container sharing the host name and kernel: its pids are not ours
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    started = tags.get(PROCESS_START_TAG)
    return not started or _process_start(int(pid)) in ("", started)


def experiment_ids(client) -> list[str]:
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def search_runs(client, experiment_ids: list[str], query: str) -> list:
    runs, token = [], None
    while experiment_ids:
        page = client.search_runs(experiment_ids, query, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time DESC"])
        runs += list(page)
        token = page.token
        if not token:
            break
    return runs


def mark_failed(client, run, why: str) -> None:
    client.set_tag(run.info.run_id, DIED_TAG, why)
    client.set_terminated(run.info.run_id, "FAILED")


def mark_dead_runs(client=None, *, quiet: bool = False) -> list[str]:
    """Mark FAILED every RUNNING run of the store whose owning process is gone from this host.

    Returns
    -------
    list of str
        The run ids marked.
    """
    from saca_lab.training.lightning_io import RESUME_EPOCH_TAG, RESUME_TAG  # loads torch: lazily

    client = client or tracking.client()
    marked = []
    for run in search_runs(client, experiment_ids(client), "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if owner_alive(tags) is False:
            why = f"process {tags[PID_TAG]} on {tags[HOST_TAG]} died"
            mark_failed(client, run, why)
            marked.append(run.info.run_id)
            if not quiet:
                resumable = (" (resumable from epoch " + tags[RESUME_EPOCH_TAG] + ")"
                             if RESUME_TAG in tags else "")
                print(f"run {run.info.run_id} was RUNNING but its {why}: marked FAILED{resumable}",
                      file=sys.stderr)
    return marked
