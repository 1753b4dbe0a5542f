#!/usr/bin/env python3
"""Build the package depot: a signed apt repository with every package the roles install.

Runs on the controller, needs no root and does not touch the controller's own apt
state: apt runs against a private root (own sources, lists, cache and an empty dpkg
status), so the download is the full dependency closure of the wanted packages,
recommends included (the roles install with apt's defaults).

    depot_build.py packages --roles-dir roles --extra a,b --lists lab/packages-host.txt
    depot_build.py build --work DIR --repo DIR --sources FILE --packages FILE \
        --suite bookworm --key-file KEY.asc [--arch amd64]

`build` prints one JSON line: {"changed": bool, "packages": n, "bytes": n, ...}.
It is idempotent: when the wanted list, the upstream indexes' package versions and
the signing key are the same as for the last build, nothing is rewritten.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

try:
    import jinja2
except ImportError:  # pragma: no cover - jinja2 comes with Ansible
    jinja2 = None

PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
APT_MODULES = {"apt", "ansible.builtin.apt"}


# ------------------------------------------------------------ wanted list

def _render(value, context: dict):
    if isinstance(value, str) and "{{" in value:
        if jinja2 is None:
            return None
        try:
            return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(value).render(context)
        except jinja2.exceptions.UndefinedError:
            return None
    return value


def _names(value, context: dict) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        rendered = _render(item, context)
        if isinstance(rendered, str) and PACKAGE_RE.match(rendered.strip()):
            names.append(rendered.strip())
    return names


def _walk_tasks(tasks, context: dict, found: set[str]) -> None:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            _walk_tasks(task.get(key), context, found)
        for module in APT_MODULES & set(task):
            args = task[module] if isinstance(task[module], dict) else {}
            if args.get("state", "present") in ("present", "latest", "fixed") and "name" in args:
                found.update(_names(args["name"], context))


def role_packages(roles_dir: Path) -> dict[str, list[str]]:
    """Packages each role installs: its `*_packages` lists and literal apt task names."""
    result = {}
    for role in sorted(p for p in roles_dir.iterdir() if (p / "tasks").is_dir()):
        context: dict = {}
        for part in ("defaults", "vars"):
            path = role / part / "main.yml"
            if path.exists():
                context.update(yaml.safe_load(path.read_text()) or {})
        found: set[str] = set()
        for key, value in context.items():
            if key.endswith("_packages") and isinstance(value, list):
                found.update(_names(value, context))
        for path in sorted((role / "tasks").glob("*.yml")):
            _walk_tasks(yaml.safe_load(path.read_text()), context, found)
        if found:
            result[role.name] = sorted(found)
    return result


def list_file(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


def wanted(roles_dir: Path, lists: list[Path], extra: list[str]) -> list[str]:
    names = {name for pkgs in role_packages(roles_dir).values() for name in pkgs}
    for path in lists:
        names.update(list_file(path))
    names.update(e for e in extra if e)
    bad = sorted(n for n in names if not PACKAGE_RE.match(n))
    if bad:
        raise SystemExit(f"depot: malformed package names: {', '.join(bad)}")
    return sorted(names)


# ------------------------------------------------------------------ build

def _apt_opts(work: Path, sources: Path, arch: str) -> list[str]:
    state, cache = work / "state", work / "cache"
    for path in (state / "lists" / "partial", cache / "archives" / "partial", work / "etc" / "preferences.d",
                 work / "etc" / "apt.conf.d"):
        path.mkdir(parents=True, exist_ok=True)
    status = state / "status"
    if not status.exists():
        status.write_text("")
    return ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=-",
            "-o", f"Dir::Etc::Parts={work / 'etc' / 'apt.conf.d'}",
            "-o", f"Dir::Etc::PreferencesParts={work / 'etc' / 'preferences.d'}",
            "-o", f"Dir::State={state}", "-o", f"Dir::State::status={status}",
            "-o", f"Dir::Cache={cache}", "-o", f"APT::Architecture={arch}",
            "-o", "APT::Architectures::=" + arch, "-o", "Debug::NoLocking=1"] + (
            # The private root belongs to root: apt's sandbox user (_apt) may not write there.
            ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else [])


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"depot: {' '.join(cmd[:3])} failed:\n" + "\n".join(tail))
    return proc


def _gpg(home: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return _run(["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback", *args],
                **kwargs)


def _fingerprint(home: Path) -> str:
    out = _gpg(home, "--with-colons", "--list-secret-keys").stdout
    fprs = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
    if not fprs:
        raise SystemExit("depot: the signing key file holds no secret key")
    return fprs[0]


def build(work: Path, repo: Path, sources: Path, packages_file: Path, suite: str, key_file: Path,
          arch: str, tarball: Path | None) -> dict:
    opts = _apt_opts(work, sources, arch)
    _run(["apt-get", *opts, "-q", "update"])
    names = list_file(packages_file)
    # Resolve the closure first (names and versions), to decide whether anything changed.
    sim = _run(["apt-get", *opts, "-s", "-q", "install", *names]).stdout
    closure = sorted([name, version] for name, version in re.findall(r"^Inst (\S+) \((\S+) ", sim, re.M))
    if not closure:
        raise SystemExit("depot: apt resolved no packages (empty list or unreachable upstream?)")
    key_digest = hashlib.sha256(key_file.read_bytes()).hexdigest()
    stamp_data = {"suite": suite, "arch": arch, "closure": closure, "key": key_digest, "pool": 2,
                  "sources": sources.read_text()}
    stamp = repo / ".depot-stamp.json"
    if stamp.exists() and json.loads(stamp.read_text()) == stamp_data and (repo / "dists" / suite / "InRelease").exists() \
            and (tarball is None or tarball.exists()):
        size = sum(p.stat().st_size for p in (repo / "pool").rglob("*.deb"))
        return {"changed": False, "packages": len(closure), "bytes": size, "repo": str(repo)}

    _run(["apt-get", *opts, "-q", "-y", "--download-only", "install", *names])
    archives = work / "cache" / "archives"
    wanted_files = set()
    pool = repo / "pool" / "main"
    pool.mkdir(parents=True, exist_ok=True)
    for deb in archives.glob("*.deb"):
        wanted_files.add(deb.name)
        target = pool / deb.name
        if not target.exists() or target.stat().st_size != deb.stat().st_size:
            shutil.copy2(deb, target)
    # Only the current closure stays in the pool and in the download cache.
    # apt names a file with an epoch NAME_EPOCH%3aVERSION_ARCH.deb (libllvm14_1%3a14.0.6-12_amd64.deb).
    current = {f"{n}_{v.replace(':', '%3a')}_" for n, v in closure}
    for deb in list(pool.glob("*.deb")):
        if deb.name not in wanted_files or not any(deb.name.startswith(p) for p in current):
            deb.unlink()
    for deb in list(archives.glob("*.deb")):
        if not any(deb.name.startswith(p) for p in current):
            deb.unlink()

    dist = repo / "dists" / suite
    bindir = dist / "main" / f"binary-{arch}"
    bindir.mkdir(parents=True, exist_ok=True)
    packages = _run(["apt-ftparchive", "packages", "pool"], cwd=repo).stdout
    (bindir / "Packages").write_text(packages)
    with gzip.GzipFile(bindir / "Packages.gz", "wb", mtime=0) as handle:
        handle.write(packages.encode())
    for name in ("Release", "InRelease", "Release.gpg"):
        (dist / name).unlink(missing_ok=True)
    release = _run(["apt-ftparchive",
                    "-o", "APT::FTPArchive::Release::Origin=archive-dr",
                    "-o", "APT::FTPArchive::Release::Label=archive-dr depot",
                    "-o", f"APT::FTPArchive::Release::Suite={suite}",
                    "-o", f"APT::FTPArchive::Release::Codename={suite}",
                    "-o", f"APT::FTPArchive::Release::Architectures={arch}",
                    "-o", "APT::FTPArchive::Release::Components=main",
                    "release", str(dist)]).stdout
    (dist / "Release").write_text(release)
    with tempfile.TemporaryDirectory(prefix="depot-gpg-") as home:
        home_path = Path(home)
        home_path.chmod(0o700)
        _gpg(home_path, "--import", str(key_file))
        fpr = _fingerprint(home_path)
        _gpg(home_path, "--yes", "--local-user", fpr, "--digest-algo", "SHA512", "--clearsign",
             "--output", str(dist / "InRelease"), str(dist / "Release"))
        _gpg(home_path, "--yes", "--local-user", fpr, "--digest-algo", "SHA512", "--armor", "--detach-sign",
             "--output", str(dist / "Release.gpg"), str(dist / "Release"))
        public = _gpg(home_path, "--armor", "--export", fpr).stdout
    (repo / "archive-dr-depot.asc").write_text(public)
    if tarball is not None:
        write_tarball(repo, tarball)
    stamp.write_text(json.dumps(stamp_data, indent=1) + "\n")
    size = sum(p.stat().st_size for p in (repo / "pool").rglob("*.deb"))
    return {"changed": True, "packages": len(closure), "bytes": size, "repo": str(repo), "fingerprint": fpr}


def write_tarball(repo: Path, tarball: Path) -> None:
    """A byte-stable tar of the repository (sorted, fixed owners and times)."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(p for p in repo.rglob("*") if p.name != ".depot-stamp.json"):
            tar.add(path, arcname=str(path.relative_to(repo)), recursive=False, filter=clean)
    partial.replace(tarball)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    pk = verbs.add_parser("packages", help="print the wanted package list")
    pk.add_argument("--roles-dir", type=Path, required=True)
    pk.add_argument("--lists", type=Path, nargs="*", default=[])
    pk.add_argument("--extra", default="")
    bd = verbs.add_parser("build", help="download the closure, index and sign")
    bd.add_argument("--work", type=Path, required=True)
    bd.add_argument("--repo", type=Path, required=True)
    bd.add_argument("--sources", type=Path, required=True)
    bd.add_argument("--packages", type=Path, required=True)
    bd.add_argument("--suite", default="bookworm")
    bd.add_argument("--arch", default="amd64")
    bd.add_argument("--key-file", type=Path, required=True)
    bd.add_argument("--tarball", type=Path)
    args = parser.parse_args(argv)
    if args.verb == "packages":
        print("\n".join(wanted(args.roles_dir, args.lists, args.extra.split(","))))
        return 0
    result = build(args.work, args.repo, args.sources, args.packages, args.suite, args.key_file, args.arch,
                   args.tarball)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
