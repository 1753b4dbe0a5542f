"""The `archive-dr` command."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from archive_dr import lab, paths, runner
from archive_dr.errors import ArchiveDrError, LabError

INVENTORY_HELP = ("an inventory source; repeat for a layered inventory, later sources override earlier ones "
                  "(default: inventory/production then inventory/lab, or $%s, sources separated by '%s')"
                  % (paths.LAB_INVENTORY_ENV, os.pathsep))


def _inventory(values) -> list[Path]:
    return paths.sources(values, paths.default_lab_inventory())


def _spec(args) -> lab.LabSpec:
    overrides = {
        "lab_wan_rate": getattr(args, "wan_rate", None),
        "lab_disk_size": getattr(args, "disk_size", None),
        "lab_mgmt_subnet": getattr(args, "mgmt_subnet", None),
        "lab_wan_subnet": getattr(args, "wan_subnet", None),
    }
    return lab.load_spec(_inventory(args.inventory), Path(args.state_dir), overrides)


def cmd_lab_up(args) -> int:
    spec = _spec(args)
    only = args.hosts.split(",") if args.hosts else None
    if only:
        for name in only:
            spec.host(name)
    lab.up(spec, ssh_key=args.ssh_key, only=only)
    return 0


def cmd_lab_down(args) -> int:
    lab.down(_spec(args))
    return 0


def cmd_lab_status(args) -> int:
    print(lab.format_table(lab.status(_spec(args))))
    return 0


def cmd_lab_keys(args) -> int:
    from archive_dr import secrets

    spec = _spec(args)
    lab.ensure_ssh_key(spec, None)
    lab.write_apt_facts(spec)
    added = secrets.ensure(spec.inventory)
    print(f"lab keys: SSH key {spec.state_dir / 'ssh' / 'id_ed25519'}, {len(added)} secrets generated")
    return 0


def cmd_lab_images(args) -> int:
    tags = lab.build_images(Path(args.state_dir).parent / ".cache" / "images")
    print("\n".join(f"{kind}: {tag}" for kind, tag in tags.items()))
    return 0


def cmd_lab_destroy(args) -> int:
    lab.destroy(_spec(args), args.host, keep_disks=args.keep_disks)
    return 0


def cmd_lab_seed(args) -> int:
    if args.items < 1:
        raise LabError(f"--items must be at least 1, got {args.items}")
    extra = {"lab_seed_items": args.items, "lab_seed_seed": args.seed}
    if args.total_size:
        extra["lab_seed_total_size"] = args.total_size
    result = runner.run_playbook("lab-seed.yml", _inventory(args.inventory), extra, quiet=False)
    if not result.ok:
        print(f"archive-dr lab seed: {result.outcome()}", file=sys.stderr)
    return 0 if result.ok else 1


def cmd_lab_smoke(args) -> int:
    rows, healthy = lab.smoke(_spec(args))
    print(lab.format_table(rows))
    print("smoke: " + ("all hosts up, no failed units" if healthy else "PROBLEMS (see above)"))
    return 0 if healthy else 1


def cmd_secrets(args) -> int:
    from archive_dr import secrets

    added = secrets.ensure(_inventory(args.secrets_inventory))
    print(f"secrets: {len(added)} generated" + (f" ({', '.join(added)})" if added else ", all present"))
    return 0


# ------------------------------------------------------------- rebuild (issue 7)

def cmd_rebuild(args) -> int:
    from archive_dr import rebuild

    inventory = _inventory(args.rebuild_inventory)
    try:
        if args.install_media:
            for path in rebuild.render_install_media(args.host, inventory, Path(args.install_media)):
                print(path)
            return 0
        report = rebuild.rebuild(args.host, inventory, force=args.force,
                                 report_dir=Path(args.report_dir) if args.report_dir else None)
    except rebuild.RebuildError as exc:
        print(f"archive-dr rebuild: {exc}", file=sys.stderr)
        return exc.code
    print(f"archive-dr rebuild: {args.host}: {report['result']} in {report['total_seconds']} s "
          f"({report['case']}); report: {report['files'][1]}")
    return 0


def add_rebuild_parser(verbs) -> None:
    parser = verbs.add_parser("rebuild", help="rebuild a dead DR-site host from bare metal, offline")
    parser.add_argument("host", help="inventory host in site_miyun")
    parser.add_argument("--force", action="store_true", help="rebuild even if the host is alive and serving")
    parser.add_argument("--rebuild-inventory", action="append", help=INVENTORY_HELP)
    parser.add_argument("--report-dir", help="where reports go (default: reports/)")
    parser.add_argument("--install-media", metavar="DIR",
                        help="only render the PXE (dnsmasq, GRUB, pxelinux) and preseed files into DIR")
    parser.set_defaults(func=cmd_rebuild)


# ------------------------------------------------------------- release (issue 14)

def cmd_release(args) -> int:
    extra = {"replica_release_job": args.job, "replica_release_reason": args.reason,
             "replica_release_by": args.by or os.environ.get("SUDO_USER") or getpass.getuser()}
    result = runner.run_playbook("release.yml", _inventory(args.inventory), extra, quiet=False)
    if not result.ok:
        print(f"archive-dr release: {result.outcome()}", file=sys.stderr)
    return 0 if result.ok else 1


def add_release_parser(verbs) -> None:
    parser = verbs.add_parser("release", help="accept a pull (the file tree or a repository) held in quarantine at miyun "
                                              "(docs/dr-history.md)")
    parser.add_argument("job", choices=["files", "pgbackrest", "restic"], help="the pull job")
    parser.add_argument("--reason", required=True, help="why the held copy may become history (logged)")
    parser.add_argument("--by", help="who releases (default: the controller user)")
    parser.set_defaults(func=cmd_release)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="archive-dr", description=__doc__)
    parser.add_argument("--inventory", action="append", help=INVENTORY_HELP)
    parser.add_argument("--state-dir", default=os.environ.get("ARCHIVE_DR_LAB_STATE", str(paths.LAB_STATE_DIR)),
                        help="where the lab keeps its keys, disks and state (default: .lab)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    lab_parser = verbs.add_parser("lab", help="the two-site lab on this machine")
    lab_verbs = lab_parser.add_subparsers(dest="lab_verb", required=True)
    up = lab_verbs.add_parser("up", help="build images if missing and start the lab")
    up.add_argument("--hosts", help="comma-separated subset of hosts to start")
    up.add_argument("--ssh-key", help="existing private key to install instead of generating one")
    up.add_argument("--wan-rate", help="WAN rate limit, e.g. 100mbit")
    up.add_argument("--disk-size", help="size of each lab disk, e.g. 2G")
    up.add_argument("--mgmt-subnet", help="management network range")
    up.add_argument("--wan-subnet", help="WAN range")
    up.set_defaults(func=cmd_lab_up)
    lab_verbs.add_parser("down", help="remove everything lab up made").set_defaults(func=cmd_lab_down)
    lab_verbs.add_parser("status", help="hosts, addresses, state, disks").set_defaults(func=cmd_lab_status)
    lab_verbs.add_parser("keys", help="what the lab inventory reads (SSH key, apt sources, vault secrets), no hosts").set_defaults(
        func=cmd_lab_keys)
    lab_verbs.add_parser("images", help="build the bare and host images if missing").set_defaults(func=cmd_lab_images)
    destroy = lab_verbs.add_parser("destroy", help="replace a host by a fresh bare one (hardware loss)")
    destroy.add_argument("host")
    destroy.add_argument("--keep-disks", action="store_true", help="reattach the host's old disks")
    destroy.set_defaults(func=cmd_lab_destroy)
    seed = lab_verbs.add_parser("seed", help="generate the lab archive (PDFs + metadata) on the archive host")
    seed.add_argument("--items", type=int, default=100, help="number of archive items (default 100)")
    seed.add_argument("--seed", default="1", help="generator seed (same seed, same archive)")
    seed.add_argument("--total-size", help="total size to scale to, e.g. 300M")
    seed.set_defaults(func=cmd_lab_seed)
    lab_verbs.add_parser("smoke", help="what runs where, failed units").set_defaults(func=cmd_lab_smoke)
    secrets_parser = verbs.add_parser("secrets", help="generate missing secrets into the inventory's vault")
    secrets_parser.add_argument("secrets_inventory", nargs="*", metavar="SOURCE",
                                help="inventory sources in order; the vault goes into the last one's "
                                     "group_vars/all/vault.yml (default: the lab inventory)")
    secrets_parser.set_defaults(func=cmd_secrets)
    add_rebuild_parser(verbs)
    add_release_parser(verbs)
    _add_dr_verbs(verbs)
    return parser


# ---------------------------------------------------------------- drill, inspection, evidence, verify, offline
# Thin pass-through verbs: the argument parsing lives in the modules that do the work.
def _add_dr_verbs(verbs) -> None:
    def passthrough(target):
        def run(args) -> int:
            import importlib

            module, func = target.split(":")
            return getattr(importlib.import_module(module), func)(args.dr_args)
        return run

    for name, target, help_ in (
            ("drill", "archive_dr.drill:main", "DR drill: disaster at geo, recovery at miyun, failback; RTO/RPO report"),
            ("inspect", "archive_dr.drill:inspect_main", "monthly inspection (playbooks/inspect.yml), report under reports/"),
            ("evidence", "archive_dr.evidence:main", "usage report for a period: drills, inspections, indicators"),
            ("verify", "archive_dr.verify:main", "four-property check (四性检测) of a file store against its metadata"),
            ("offline", "archive_dr.offline:main", "offline Blu-ray volume sets: build, verify, repair, due, recheck")):
        p = verbs.add_parser(name, help=help_, add_help=False, prefix_chars="\0")
        p.add_argument("dr_args", nargs=argparse.REMAINDER)
        p.set_defaults(func=passthrough(target))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ArchiveDrError as exc:
        print(f"archive-dr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
