"""The one way archive-dr and its tests run Ansible: ansible-runner, answers read from its events.

``run_playbook`` runs a playbook against an inventory (an ordered list of sources, see
archive_dr.paths) and returns a ``PlaybookResult``: the status and rc, per-host stats from the
``playbook_on_stats`` event, and the results of tasks looked up by name (the ``res`` of their
``runner_on_ok`` events). Nothing reads ansible-playbook's text output; the text is kept only as
the log a person reads.

Artifacts (events, stdout) go to ``.lab/runner/artifacts/<time>-<playbook>/``; ansible-runner keeps
the newest ``KEEP_ARTIFACTS`` runs and removes older ones.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

from archive_dr import paths
from archive_dr.errors import ArchiveDrError

KEEP_ARTIFACTS = 50
STATS_KEYS = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped",
              "rescued": "rescued", "ignored": "ignored"}


@dataclasses.dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


class RunnerError(ArchiveDrError):
    """A run's answer is not there: no such task result, or Ansible did not run."""


class PlaybookFailed(RunnerError):
    """A playbook failed; ``outcome`` is one line (the task that failed and why), ``result`` the whole run."""

    def __init__(self, result: "PlaybookResult"):
        self.result = result
        self.outcome = f"{result.playbook} failed ({result.status}, rc={result.rc}): {result.outcome() or 'see the log'}"
        super().__init__(f"{self.outcome}\n{result.stdout[-3000:]}")


# Ansible still displays the error of a no_log task (an assert's fail_msg) while the event's result is censored
_DISPLAYED_ERROR = re.compile(r"\[ERROR\]: Task failed: (?:Action failed: )?(.*?)(?:\n\S*Origin: |\n\n|$)", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Canceled(KeyboardInterrupt):
    """A playbook canceled by SIGTERM or SIGINT: raised so that no caller goes on as if it had ended
    (a KeyboardInterrupt, so `except Exception` does not swallow it; the CLI exits 130)."""


def _failure_messages(res: dict, displayed: str = "") -> list[str]:
    """A failed task's messages; a loop's failure says only "One or more items failed", so its failed items';
    a censored (no_log) failure, the error Ansible displayed."""
    if res.get("censored"):
        match = _DISPLAYED_ERROR.search(_ANSI.sub("", displayed))
        return [" ".join(match.group(1).split())] if match else []
    failed_items = [item for item in res.get("results") or [] if isinstance(item, dict) and item.get("failed")]
    messages = []
    for result in failed_items or [res]:
        msg = result.get("msg")
        if msg:
            messages.append(" ".join(map(str, msg)) if isinstance(msg, list) else str(msg))
    return messages


@dataclasses.dataclass
class PlaybookResult:
    playbook: str
    status: str                 # successful, failed, timeout, canceled
    rc: int
    events: list[dict]
    stdout: str
    artifact_dir: Path
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0

    @property
    def stats(self) -> dict[str, HostStats]:
        """{host: HostStats} from the playbook_on_stats event (empty when the run never got that far)."""
        data = next((e["event_data"] for e in reversed(self.events) if e.get("event") == "playbook_on_stats"), {})
        hosts = sorted({host for key in STATS_KEYS for host in (data.get(key) or {})})
        return {host: HostStats(**{field: int((data.get(key) or {}).get(host, 0)) for key, field in STATS_KEYS.items()})
                for host in hosts}

    def changed(self) -> dict[str, int]:
        return {host: stats.changed for host, stats in self.stats.items()}

    def _task_events(self, task: str, host: str | None, kinds: tuple[str, ...]) -> list[dict]:
        return [e["event_data"] for e in self.events
                if e.get("event") in kinds and e["event_data"].get("task") == task
                and (host is None or e["event_data"].get("host") == host)]

    def task_results(self, task: str, host: str | None = None) -> list[dict]:
        """The ``res`` of every successful run of the named task (optionally on one host), in order."""
        return [data.get("res") or {} for data in self._task_events(task, host, ("runner_on_ok",))]

    def task_result(self, task: str, host: str | None = None) -> dict:
        """The ``res`` of the named task's one successful run (on ``host``); RunnerError if there is not exactly one."""
        results = self.task_results(task, host)
        if len(results) != 1:
            where = f" on {host}" if host else ""
            raise RunnerError(f"{self.playbook}: task “{task}”{where} returned {len(results)} results, expected one "
                              f"(artifacts: {self.artifact_dir})")
        return results[0]

    def failures(self) -> list[dict]:
        """event_data of the task failures that stopped a host (ignored errors left out) and unreachable hosts."""
        return [dict(e["event_data"], event=e["event"], displayed=e.get("stdout") or "") for e in self.events
                if (e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors"))
                or e.get("event") == "runner_on_unreachable"]

    def tasks_started(self) -> list[str]:
        """Names of the tasks that started, in order (a validation that stops a play starts nothing after it)."""
        return [e["event_data"].get("task") or e["event_data"].get("name") or "" for e in self.events
                if e.get("event") == "playbook_on_task_start"]

    def failure_messages(self) -> list[str]:
        """The message of each failure (an assert's list of messages joined), for a reader or a test."""
        return [message for data in self.failures()
                for message in _failure_messages(data.get("res") or {}, data["displayed"])]

    def plays(self) -> list[tuple[str, dt.datetime]]:
        """(play name, start time) of every play, in order."""
        return [(e["event_data"].get("play") or e["event_data"].get("name") or "", _created(e))
                for e in self.events if e.get("event") == "playbook_on_play_start"]

    def finished_at(self) -> dt.datetime | None:
        return _created(self.events[-1]) if self.events else None

    def outcome(self) -> str:
        """One line: the task that failed and why; else the last message a debug task printed and the counts;
        else each host's counts."""
        failures = self.failures()
        if failures:
            data = failures[0]
            res = data.get("res") or {}
            stderr = str(res.get("stderr") or "").strip().splitlines()
            why = " ".join(_failure_messages(res, data["displayed"])) or (stderr[-1] if stderr else "") or f"rc={res.get('rc')}"
            kind = "unreachable" if data["event"] == "runner_on_unreachable" else "failed"
            return _one_line(f"task “{data.get('task', '?')}” {kind} on {data.get('host', '?')}: {why}")
        if self.status == "timeout":
            return f"timed out ({self.playbook})"
        stats = self.stats
        messages = [str((e["event_data"].get("res") or {}).get("msg")) for e in self.events
                    if e.get("event") == "runner_on_ok" and e["event_data"].get("task_action", "").endswith("debug")
                    and (e["event_data"].get("res") or {}).get("msg") not in (None, "")]
        if messages:
            counts = f"{len(stats)} host{'' if len(stats) == 1 else 's'}, {sum(s.changed for s in stats.values())} changed"
            said = messages[-1].strip().splitlines()[0]      # a message's first line says what happened
            return _one_line(f"{_one_line(said, 160)} ({counts})" if stats else said)
        return _one_line("; ".join(f"{host}: {s.ok} ok, {s.changed} changed"
                                   + (f", {s.unreachable} unreachable" if s.unreachable else "")
                                   + (f", {s.failed} failed" if s.failed else "") for host, s in stats.items()))

    def check(self) -> "PlaybookResult":
        """The result itself when the playbook succeeded; PlaybookFailed otherwise."""
        if not self.ok:
            raise PlaybookFailed(self)
        return self


def _created(event: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(event["created"]) if event.get("created") else dt.datetime.now()


def _one_line(text, limit: int = 240) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def playbook_path(playbook: str | Path) -> Path:
    """A playbook by name (playbooks/<name>) or path."""
    path = Path(playbook)
    if not path.is_absolute():
        path = paths.PLAYBOOKS / path if (paths.PLAYBOOKS / path).exists() else paths.ROOT / path
    if not path.exists():
        raise RunnerError(f"playbook {playbook} not found")
    return path


def env() -> dict[str, str]:
    """What every Ansible run gets: this project's ansible.cfg, no colour (the text is a log), podman's
    config, and this interpreter's ansible-playbook first on PATH (the CLI may run without the venv active)."""
    bindir = str(Path(sys.executable).parent)
    # ansible-runner sets its own callback_plugins path; the audit trail's plugin is added back here.
    return {"ANSIBLE_CONFIG": str(paths.ANSIBLE_CFG), "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CALLBACK_PLUGINS": str(paths.ROOT / "callback_plugins"),
            "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(paths.CONTAINERS_CONF)),
            "PATH": os.pathsep.join([bindir, os.environ.get("PATH", os.defpath)])}


def _run(label: str, inventory: Iterable[Path | str] | None, quiet: bool, on_event: Callable[[dict], None] | None,
         timeout: float | None, data_dir: Path, **kwargs) -> PlaybookResult:
    import tempfile

    import ansible_runner

    artifacts = Path(data_dir) / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    ident = "%s-%s-%s" % (time.strftime("%Y%m%dT%H%M%S"), Path(label).stem.replace(" ", "_"), uuid.uuid4().hex[:6])

    def keep(event: dict) -> bool:
        if on_event is not None:
            on_event(event)
        return True

    sources = None if inventory is None else [
        str(Path(source).resolve()) if Path(source).exists() else str(source) for source in inventory]
    # ansible-runner writes the run's extra vars and environment into <private_data_dir>/env/, where a
    # later run would read them again: each run gets its own, and only the artifacts stay.
    with tempfile.TemporaryDirectory(prefix="archive-dr-runner-") as private:
        run = ansible_runner.run(
            private_data_dir=private, artifact_dir=str(artifacts), ident=ident, project_dir=str(paths.ROOT),
            inventory=sources, envvars=env(), quiet=quiet, event_handler=keep, rotate_artifacts=KEEP_ARTIFACTS,
            timeout=int(timeout) if timeout else None, **kwargs)
    if run.status == "canceled":
        # ansible-runner turns SIGTERM/SIGINT into a cancel of the running playbook and returns; the
        # program that started it must stop too, not go on to its next phase
        raise Canceled(f"{label}: canceled by a signal (artifacts: {run.config.artifact_dir})")
    artifact_dir = Path(run.config.artifact_dir)
    stdout = (artifact_dir / "stdout").read_text(errors="replace") if (artifact_dir / "stdout").exists() else ""
    command = shlex.join(run.config.command) if getattr(run.config, "command", None) else label
    return PlaybookResult(playbook=label, status=run.status, rc=run.rc if run.rc is not None else -1,
                          events=list(run.events), stdout=stdout, artifact_dir=artifact_dir, command=command)


def run_playbook(playbook: str | Path, inventory: Iterable[Path | str] | None,
                 extra_vars: dict | None = None, limit: str | None = None, tags: str | None = None,
                 check: bool = False, diff: bool = False, timeout: float | None = None, quiet: bool = True,
                 on_event: Callable[[dict], None] | None = None, args: Iterable[str] = (),
                 data_dir: Path = paths.RUNNER_DIR) -> PlaybookResult:
    """Run a playbook; never raises for a failed play (see PlaybookResult.check).

    ``inventory``: the ordered sources (None: what ``args`` or ansible.cfg say). ``quiet=False`` streams
    Ansible's text output to stdout as it comes; ``on_event`` sees every event as it comes. ``args`` are
    further ansible-playbook options (``archive-dr inspect`` passes the operator's)."""
    path = playbook_path(playbook)
    cmdline = [*(["--check"] if check else []), *(["--diff"] if diff else []), *args]
    return _run(path.name, inventory, quiet, on_event, timeout, data_dir,
                playbook=str(path), extravars=dict(extra_vars) if extra_vars else None, limit=limit, tags=tags,
                cmdline=shlex.join(cmdline) if cmdline else None)


def run_module(module: str, module_args: str | dict, host_pattern: str, inventory: Iterable[Path | str] | None,
               become: bool = False, timeout: float | None = None, extra_vars: dict | None = None,
               quiet: bool = True, data_dir: Path = paths.RUNNER_DIR) -> PlaybookResult:
    """One module on the hosts of a pattern (``ansible HOSTS -m MODULE -a ARGS``); results by host through
    ``task_result(module, host)`` (ad-hoc tasks are named after their module)."""
    import json

    args_text = module_args if isinstance(module_args, str) else json.dumps(module_args)
    return _run(f"{module}@{host_pattern}", inventory, quiet, None, timeout, data_dir,
                module=module, module_args=args_text, host_pattern=host_pattern,
                extravars=dict(extra_vars) if extra_vars else None,
                cmdline="--become" if become else None)
