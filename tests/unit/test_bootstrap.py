"""Bootstrap inputs, the shared apt sources template and the source check (no lab needed)."""
from __future__ import annotations

import functools
import http.server
import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import jinja2
import pytest

from archive_dr import paths
from archive_dr.paths import ROOT

CHECK = ROOT / "roles" / "apt_source" / "files" / "check_source.sh"
TEMPLATE = ROOT / "roles" / "apt_source" / "templates" / "sources.list.j2"


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lab_vars(lab_keys):
    inventory_vars = _module(ROOT / "bootstrap" / "inventory_vars.py", "bootstrap_inventory_vars")
    return inventory_vars.load(paths.LAB_INVENTORY, ["miyun-store", "miyun-fw", "geo-archive"])


def test_inventory_vars_resolve_templates_and_role_defaults(lab_vars, lab_keys):
    store = lab_vars["miyun-store"]
    assert store["ansible_host"] == "198.18.0.21"
    assert store["baseline_hostname"] == "miyun-store"            # role default, templated
    assert store["baseline_admin_user"] == "dradmin"              # roles/baseline/defaults
    assert store["baseline_admin_ssh_keys"] == [lab_keys]              # lookup() in the inventory
    assert "python3" in store["apt_source_bootstrap_packages"]
    assert all("{{" not in str(value) for value in store.values())


def test_inventory_vars_unknown_host_is_refused(lab_keys):
    inventory_vars = _module(ROOT / "bootstrap" / "inventory_vars.py", "bootstrap_inventory_vars2")
    proc = subprocess.run([sys.executable, str(ROOT / "bootstrap" / "inventory_vars.py"), "no-such-host"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "host 'no-such-host' is not in the inventory" in proc.stderr
    assert inventory_vars.BOOTSTRAP_VARS["baseline_admin_user"] == "baseline"


VALUES = {
    "apt_source_uri": "http://198.18.1.12:8080/depot",
    "apt_source_suites": ["bookworm", "bookworm-updates"],
    "apt_source_components": ["main"],
    "apt_source_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n",
    "apt_source_keyring": "/etc/apt/keyrings/archive-dr-depot.asc",
}


def test_sources_template_is_the_same_for_pyinfra_and_ansible():
    """pyinfra renders without trim_blocks, Ansible with: the file must be identical."""
    text = TEMPLATE.read_text()
    pyinfra_env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    ansible_env = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True, undefined=jinja2.StrictUndefined)
    a = pyinfra_env.from_string(text).render(VALUES)
    b = ansible_env.from_string(text).render(VALUES)
    assert a == b
    lines = a.splitlines()
    assert lines[1:] == [
        "deb [signed-by=/etc/apt/keyrings/archive-dr-depot.asc] http://198.18.1.12:8080/depot bookworm main",
        "deb [signed-by=/etc/apt/keyrings/archive-dr-depot.asc] http://198.18.1.12:8080/depot bookworm-updates main",
    ]
    assert a.endswith("main\n") and "\n\n" not in a


def test_sources_template_without_key_uses_debian_keyring():
    values = dict(VALUES, apt_source_key="", apt_source_suites=["bookworm"])
    out = jinja2.Environment(keep_trailing_newline=True).from_string(TEMPLATE.read_text()).render(values)
    assert "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg" in out


@pytest.fixture()
def repo_server(tmp_path):
    (tmp_path / "depot" / "dists" / "bookworm").mkdir(parents=True)
    (tmp_path / "depot" / "dists" / "bookworm" / "InRelease").write_text("signed\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, server.server_address[1]
    server.shutdown()


def _check(uri: str, suite: str = "bookworm", timeout: int = 3) -> str:
    return subprocess.run(["bash", str(CHECK), uri, suite, str(timeout)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_check_source_http_ok_and_missing_suite(repo_server):
    _, port = repo_server
    assert _check(f"http://127.0.0.1:{port}/depot") == f"OK http://127.0.0.1:{port}/depot"
    assert "404" in _check(f"http://127.0.0.1:{port}/depot", suite="trixie")


def test_check_source_no_listener_is_unreachable(repo_server):
    _, port = repo_server
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    out = _check(f"http://127.0.0.1:{free}/depot", timeout=2)
    assert out.startswith("UNREACHABLE ") and f"127.0.0.1:{free}" in out


def test_check_source_file_uri(repo_server):
    root, _ = repo_server
    assert _check(f"file:{root}/depot").startswith("OK ")
    assert _check(f"file:{root}/missing").startswith("UNREACHABLE ")
    assert _check("ftp://example.invalid/debian").startswith("UNREACHABLE ")
