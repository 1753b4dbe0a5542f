"""`archive-dr lab up` names every missing prerequisite in one line and creates nothing."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from archive_dr import cli, prereqs

REAL_WHICH = shutil.which


@pytest.fixture
def no_processes(monkeypatch):
    """Fails the test if anything is run (podman or any other command)."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("args"))
        raise AssertionError(f"ran {calls[-1]!r} although prerequisites are missing")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    return calls


def without(monkeypatch, *gone: str) -> None:
    """This machine, minus the named commands."""
    def which(cmd, mode=None, path=None):
        if cmd in gone:
            return None
        return f"/usr/bin/{cmd}"
    monkeypatch.setattr(shutil, "which", which)


def test_lab_up_names_every_missing_prerequisite_in_one_line(monkeypatch, tmp_path, capsys, no_processes):
    without(monkeypatch, "iptables", "debootstrap", "netavark")
    code = cli.main(["--state-dir", str(tmp_path / "state"), "lab", "up"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == ("archive-dr: error: missing prerequisites: netavark (package netavark, podman's network backend), "
                   "iptables (package iptables, netavark needs it), debootstrap (package debootstrap)"
                   " — run scripts/install-deps.sh\n")
    assert no_processes == []
    assert not (tmp_path / "state").exists()


def test_lab_images_checks_what_building_images_needs(monkeypatch, tmp_path, capsys, no_processes):
    without(monkeypatch, "podman", "nft")   # nft is for lab up, not for building images
    code = cli.main(["--state-dir", str(tmp_path / "state"), "lab", "images"])
    assert code == 2
    assert capsys.readouterr().err == ("archive-dr: error: missing prerequisites: podman (package podman)"
                                       " — run scripts/install-deps.sh\n")
    assert no_processes == []
    assert not (tmp_path / ".cache").exists()


def test_nothing_missing_nothing_said(monkeypatch):
    without(monkeypatch)
    assert prereqs.missing() == []
    prereqs.require()


def test_podman_helpers_are_looked_up_where_podman_looks(monkeypatch):
    asked = {}

    def which(cmd, mode=None, path=None):
        asked[cmd] = path
        return None
    monkeypatch.setattr(shutil, "which", which)
    assert prereqs.missing() == list(prereqs.PREREQUISITES)
    assert asked["netavark"] == prereqs.PODMAN_HELPER_DIRS
    assert "/usr/sbin" in asked["iptables"].split(":")   # lab up runs as root; a user's PATH may lack sbin


def test_this_machine_has_the_lab_prerequisites():
    """On a machine after scripts/install-deps.sh (this one): nothing missing."""
    assert shutil.which is REAL_WHICH
    assert prereqs.missing() == [], prereqs.message(prereqs.missing())
