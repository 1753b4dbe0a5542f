"""The lab's two images: bare (debootstrap, what a fresh OS install gives) and host (bare + Python and the roles'
packages), cached by a hash of what goes into them."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from archive_dr import paths, prereqs
from archive_dr.errors import LabError
from archive_dr.lab.machine import SUITE, apt_mirror, podman, run

LAB_FILES = paths.ROOT / "lab"


def _progress(label: str, proc: subprocess.Popen) -> int:
    start = time.monotonic()
    last = 0.0
    for line in proc.stdout:  # type: ignore[union-attr]
        now = time.monotonic()
        line = line.strip()
        if line and now - last > 2:
            print(f"  [{label} {now - start:5.0f}s] {line[:100]}", flush=True)
            last = now
    code = proc.wait()
    print(f"  [{label}] done in {time.monotonic() - start:.0f}s", flush=True)
    return code

def _packages(name: str) -> list[str]:
    lines = (LAB_FILES / f"packages-{name}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

def image_tags() -> dict[str, str]:
    mirror = apt_mirror()
    bare_hash = hashlib.sha256(json.dumps([SUITE, mirror, _packages("bare")]).encode()).hexdigest()[:12]
    host_input = [bare_hash, _packages("host"), (LAB_FILES / "Containerfile.host").read_text()]
    host_hash = hashlib.sha256(json.dumps(host_input).encode()).hexdigest()[:12]
    return {"bare": f"localhost/archive-dr-bare:{bare_hash}", "host": f"localhost/archive-dr-host:{host_hash}"}

def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0

def build_images(cache_dir: Path) -> dict[str, str]:
    prereqs.require(prereqs.IMAGES, LabError)
    tags = image_tags()
    mirror = apt_mirror()
    if not image_exists(tags["bare"]):
        if shutil.which("debootstrap") is None:
            raise LabError("debootstrap is not installed (make lab installs it)")
        rootfs = cache_dir / "bare-rootfs"
        if rootfs.exists():
            shutil.rmtree(rootfs)
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"building image {tags['bare']} (debootstrap {SUITE} from {mirror})", flush=True)
        proc = subprocess.Popen(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(_packages("bare")),
             SUITE, str(rootfs), mirror], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if _progress("debootstrap", proc) != 0:
            raise LabError("debootstrap failed (see output above)")
        # A fresh install: sshd on, networkd for the lab's cabling, no machine-id baked in.
        (rootfs / "etc/machine-id").write_text("")
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n")
        # Host keys are made at first boot, as an installer makes them per machine.
        (rootfs / "etc/systemd/system/ssh-hostkeys.service").write_text(
            "[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n"
            "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
            "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
        run(["chroot", str(rootfs), "systemctl", "enable", "systemd-networkd", "ssh", "ssh-hostkeys"])
        run(["chroot", str(rootfs), "sh", "-c", "rm -f /etc/ssh/ssh_host_*"])
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", "import", "--change", 'CMD ["/sbin/init"]', "-", tags["bare"]], stdin=tar.stdout)
        tar.wait()
        shutil.rmtree(rootfs)
    if not image_exists(tags["host"]):
        print(f"building image {tags['host']} (bare + python3 and role packages)", flush=True)
        env = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))
        proc = subprocess.Popen(
            ["podman", "build", "--network=host", "-f", str(LAB_FILES / "Containerfile.host"),
             "--build-arg", f"BARE_IMAGE={tags['bare']}",
             "--build-arg", "HOST_PACKAGES=" + " ".join(_packages("host")),
             "-t", tags["host"], str(LAB_FILES)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if _progress("podman build", proc) != 0:
            raise LabError("building the host image failed (see output above)")
    for kind, tag in tags.items():
        # A stable name for Molecule scenarios; the hashed tag stays the cache key.
        podman("tag", tag, f"localhost/archive-dr-{kind}:latest")
    return tags
