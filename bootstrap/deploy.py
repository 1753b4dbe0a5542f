"""Bootstrap: from a host with only sshd and a root key to a host Ansible can manage.

1. check that the package source from the inventory is reachable (changes nothing);
2. apt sources (+ the depot's signing key, + a local copy of the depot if configured);
3. python3, python3-apt, sudo from that source;
4. the hostname;
5. the administrator (baseline_admin_user) with the inventory's SSH keys and sudo.

Files are written byte-for-byte as roles/apt_source and roles/baseline write them,
so the Ansible run that follows reports no change for them. A second bootstrap
changes nothing.
"""
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, python, server

from archive_dr.paths import ROOT

TEMPLATE = ROOT / "roles" / "apt_source" / "templates" / "sources.list.j2"


class BootstrapError(Exception):
    pass


def source_check(v: dict) -> str:
    script = (ROOT / "roles" / "apt_source" / "files" / "check_source.sh").read_text()
    return "bash -c {} check {} {} {}".format(
        shlex.quote(script), shlex.quote(v["apt_source_uri"]), shlex.quote(v["apt_source_suites"][0]),
        int(v["apt_source_check_timeout"]))


def deploy() -> None:
    v = host.data.archive_dr
    local_archive = v.get("apt_source_local_archive") or ""

    # 1. The depot must answer before anything is changed.
    if local_archive:
        if not Path(local_archive).is_file():
            python.raise_exception(
                BootstrapError,
                f"{host.name}: the depot tarball {local_archive} is missing on the controller "
                "(run playbooks/depot.yml first); nothing was changed",
                name="Check the local depot copy")
            return
    else:
        answer = (host.get_fact(Command, command=source_check(v)) or "").strip()
        if not answer.startswith("OK "):
            python.raise_exception(
                BootstrapError,
                f"{host.name}: package source unreachable: {answer or 'no answer'}. "
                "Stopped before changing anything. Is the depot up and the tunnel flow open?",
                name="Check the package source")
            return

    # 2. apt sources.
    changes = []
    if v.get("apt_source_key"):
        changes.append(files.directory(name="apt keyring directory", path=str(Path(v["apt_source_keyring"]).parent),
                                       mode="755", user="root", group="root"))
        changes.append(files.put(name="Depot signing key", src=StringIO(v["apt_source_key"]),
                                 dest=v["apt_source_keyring"], mode="644", user="root", group="root"))
    if local_archive:
        local_dir = v["apt_source_local_dir"]
        tarball = f"{local_dir}.tar"
        copied = files.put(name="Copy the depot onto the host", src=local_archive, dest=tarball,
                           mode="644", user="root", group="root")
        unpacked = host.get_fact(File, path=f"{local_dir}/dists/{v['apt_source_suites'][0]}/InRelease")
        changes.append(server.shell(
            name="Unpack the local depot",
            commands=[f"rm -rf {local_dir}.new && mkdir -p {local_dir}.new && tar -C {local_dir}.new -xf {tarball}"
                      f" && rm -rf {local_dir} && mv {local_dir}.new {local_dir}"],
            _if=lambda: copied.did_change() or not unpacked))
    changes.append(files.template(name="apt sources from the inventory", src=str(TEMPLATE), dest="/etc/apt/sources.list",
                                  mode="644", user="root", group="root", **{k: v[k] for k in (
                                      "apt_source_uri", "apt_source_suites", "apt_source_components",
                                      "apt_source_key", "apt_source_keyring")}))
    lists = host.get_fact(Command, command="ls /var/lib/apt/lists/ 2>/dev/null | grep -c '_Packages' || true")
    apt.update(name="apt update", _if=lambda: any(op.did_change() for op in changes) or lists.strip() == "0")

    # 3. What Ansible needs.
    apt.packages(name="Packages for Ansible", packages=v["apt_source_bootstrap_packages"])

    # 4. Hostname.
    server.hostname(name="Hostname", hostname=v["baseline_hostname"])

    # 5. The administrator, as roles/baseline makes it.
    admin = v["baseline_admin_user"]
    server.user(name=f"Administrator {admin}", user=admin, home=f"/home/{admin}", shell="/bin/bash",
                groups=["sudo"], append=True, password="!", create_home=True)
    server.user_authorized_keys(name=f"SSH keys of {admin}", user=admin, public_keys=v["baseline_admin_ssh_keys"],
                                delete_keys=True, authorized_key_directory=f"/home/{admin}/.ssh")
    files.put(name=f"sudo for {admin}", src=StringIO(f"{admin} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
              dest="/etc/sudoers.d/archive-dr-admin", mode="440", user="root", group="root")


deploy()
