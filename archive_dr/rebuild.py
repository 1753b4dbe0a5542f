"""`archive-dr rebuild HOST`: bring a dead DR-site host back from bare metal, offline."""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jinja2

from archive_dr import paths, runner
from archive_dr.errors import InventoryError
from archive_dr.inventory import Inventory, role_defaults
from archive_dr.ssh import TARGET_VARS, SshTarget, ssh_run

DR_GROUP = "site_miyun"
SERVING_UNITS = ("postgresql@*", "archive-dr-replica-*", "strongswan*", "archive-dr-tunnel-*", "archive-dr-depot*")
EXIT_REFUSED, EXIT_DEPOT, EXIT_FAILED = 2, 3, 1
HOST_VARS = [*TARGET_VARS, "inventory_hostname", "group_names", "site_name",
             "storage_pools", "lan_address", "sites", "baseline_admin_ssh_keys", "baseline_ntp_servers",
             "os_install_defaults", "os_install_hosts", "lab_mgmt_subnet", "apt_source_uri", "wan_interface",
             "lab_wan_rate", "site_gateway_wan_rate"]


class RebuildError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def host_vars(inventory: list[Path], names: list[str]) -> dict[str, dict]:
    """{host: HOST_VARS templated}, over the defaults of the roles that own them (baseline, apt_source)."""
    try:
        inv = Inventory(inventory)
        defaults = role_defaults("baseline", "apt_source")
        return {name: inv.host_vars(name, HOST_VARS, defaults=defaults) for name in names}
    except InventoryError as exc:
        raise RebuildError(str(exc), EXIT_REFUSED) from None


def ssh(values: dict, command: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return ssh_run(SshTarget.from_vars(values.get("inventory_hostname", ""), values), command, timeout=timeout)


def probe(values: dict) -> dict:
    """What is on the host now: reachable, python3, serving units."""
    patterns = " ".join(f"'{p}'" for p in SERVING_UNITS)
    proc = ssh(values, "command -v python3 >/dev/null && echo python=yes || echo python=no; "
                       f"systemctl list-units --no-legend --plain --state=active {patterns} 2>/dev/null "
                       "| awk '{print \"unit=\" $1}'")
    if proc.returncode != 0:
        return {"reachable": False, "python": False, "serving": []}
    lines = proc.stdout.split()
    return {"reachable": True, "python": "python=yes" in lines,
            "serving": sorted(line[5:] for line in lines if line.startswith("unit="))}


def pool_disks(values: dict) -> list[str]:
    return sorted({disk for pool in values.get("storage_pools") or [] for disk in pool.get("disks") or []})


def detect_case(values: dict) -> tuple[str, dict]:
    """disks-survived (a filesystem on any pool disk), blank, or no-data-disks."""
    disks = pool_disks(values)
    if not disks:
        return "no-data-disks", {}
    script = "; ".join(f"printf '%s=%s\\n' {d} \"$(blkid -p -o value -s TYPE {d} 2>/dev/null)\"" for d in disks)
    proc = ssh(values, script)
    if proc.returncode != 0:
        raise RebuildError(f"cannot read the data disks of {values['inventory_hostname']}: "
                           f"{(proc.stderr or proc.stdout).strip() or 'ssh failed'}")
    found = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return ("disks-survived" if any(found.values()) else "blank"), found


def wan_counter(values_by_host: dict, gateway: str) -> int | None:
    gw = values_by_host.get(gateway)
    if not gw or not gw.get("wan_interface"):
        return None
    proc = ssh(gw, f"cat /sys/class/net/{gw['wan_interface']}/statistics/tx_bytes")
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None


def rate_bits(text: str | None) -> int | None:
    match = re.match(r"^(\d+)(kbit|mbit|gbit)$", str(text or ""))
    if not match:
        return None
    return int(match.group(1)) * {"kbit": 10**3, "mbit": 10**6, "gbit": 10**9}[match.group(2)]


def _stream(cmd: list[str], env: dict, log, on_line=None) -> int:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=paths.ROOT)
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.write(line)
        sys.stdout.flush()
        log.write(line)
        if on_line:
            on_line(line)
    return proc.wait()


def run_bootstrap(name: str, inventory: list[Path], log) -> tuple[int, dict, list[str]]:
    env = dict(os.environ, ARCHIVE_DR_BOOTSTRAP_HOSTS=name,
               ARCHIVE_DR_INVENTORY=os.pathsep.join(str(source) for source in inventory))
    lines: list[str] = []
    code = _stream([str(Path(sys.executable).parent / "pyinfra"), "-y", "bootstrap/inventory.py", "bootstrap/deploy.py"],
                   env, log, lines.append)
    counts = {}
    for line in lines:
        match = re.match(r"^\s+Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", line)
        if match:
            counts = {k: (0 if v == "-" else int(v)) for k, v in
                      zip(("operations", "changed", "error", "no_change"), match.groups())}
    return code, counts, lines


def play_phases(plays: list[tuple[str, _dt.datetime]], finished: _dt.datetime | None) -> list[dict]:
    """Phases of rebuild-miyun.yml from its plays' start times: a play titled "Phase N: label" starts a phase
    (the plays before the first one are one phase), and a phase lasts until the next one starts."""
    phases: list[dict] = []
    for title, started in plays:
        if title.startswith("Phase ") or not phases:
            label = title.split(":", 1)[-1].strip() if title.startswith("Phase ") else title
            if phases and phases[-1]["label"] == label:
                continue
            phases.append({"phase": title.split(":")[0], "label": label, "_start": started})
    for phase, following in zip(phases, phases[1:] + [None]):
        end = following["_start"] if following else finished
        phase["seconds"] = round((end - phase["_start"]).total_seconds(), 1) if end else None
    for phase in phases:
        phase.pop("_start")
    return phases


def run_playbook(name: str, case: str, inventory: list[Path], log) -> tuple[int, list[dict], dict]:
    """rebuild-miyun.yml through the runner layer, streamed to the terminal and the log; phases timed from its
    plays' start events, the recap from its stats."""
    def to_log(event: dict) -> None:
        if event.get("stdout"):
            log.write(event["stdout"] + "\n")
            log.flush()

    result = runner.run_playbook("rebuild-miyun.yml", inventory, {"rebuild_host": name, "rebuild_case": case},
                                 quiet=False, on_event=to_log)
    recap = {host: {"ok": s.ok, "changed": s.changed, "unreachable": s.unreachable, "failed": s.failed}
             for host, s in result.stats.items()}
    return (0 if result.ok else (result.rc or 1)), play_phases(result.plays(), result.finished_at()), recap


def write_report(report: dict, report_dir: Path) -> tuple[Path, Path]:
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["started"].replace(":", "").replace("-", "")[:15]
    base = report_dir / f"rebuild-{report['host']}-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    lines = [f"# 重建报告 Rebuild report: {report['host']}", "",
             f"- 结果 result: **{report['result']}**",
             f"- 情形 case: `{report['case']}` ({report.get('case_detail') or '-'})",
             f"- 开始 started: {report['started']}",
             f"- 总耗时 command → verified replica: **{report['total_seconds']} s**"]
    wan = report.get("wan")
    if wan and wan.get("bytes") is not None:
        lines.append(f"- WAN 部分 WAN-bound part: {wan['bytes']} bytes ÷ {wan['rate']} = "
                     f"{wan['seconds_at_rate']} s (measured on {wan['gateway']} {wan['direction']})")
    if report.get("message"):
        lines.append(f"- 说明 message: {report['message']}")
    lines += ["", "| 阶段 phase | 耗时 s | changed |", "|---|---:|---:|"]
    for phase in report["phases"]:
        lines.append(f"| {phase['phase']}: {phase['label']} | {phase.get('seconds', '-')} | {phase.get('changed', '-')} |")
    if report.get("recap"):
        lines += ["", "| host | ok | changed | failed |", "|---|---:|---:|---:|"]
        for host, stats in sorted(report["recap"].items()):
            lines.append(f"| {host} | {stats['ok']} | {stats['changed']} | {stats['failed']} |")
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return base.with_suffix(".json"), base.with_suffix(".md")


def rebuild(name: str, inventory: list[Path], force: bool = False, report_dir: Path | None = None) -> dict:
    report_dir = report_dir or paths.REPORTS
    started_wall = _dt.datetime.now(_dt.timezone.utc)
    started = time.monotonic()
    all_vars = host_vars(inventory, [name])
    values = all_vars[name]
    groups = values.get("group_names") or []
    if DR_GROUP not in groups:
        raise RebuildError(f"refused: {name} is not a DR-site host (groups: {', '.join(groups) or 'none'}); "
                           f"archive-dr rebuild only rebuilds hosts in {DR_GROUP}", EXIT_REFUSED)
    state = probe(values)
    if state["serving"] and not force:
        raise RebuildError(f"refused: {name} is alive and serving ({', '.join(state['serving'])}); "
                           "a rebuild would interrupt it. Use --force to rebuild it anyway.", EXIT_REFUSED)
    if not state["reachable"]:
        raise RebuildError(f"{name} does not answer SSH at {values['ansible_host']} as "
                           f"{values.get('ansible_user') or 'root'}: install the OS first "
                           "(docs/rebuild-miyun.md, PXE/preseed) and check root's key", EXIT_FAILED)
    case, detail = detect_case(values)
    gateway = (values.get("sites") or {}).get("geo", {}).get("gateway_host")
    peer = host_vars(inventory, [gateway]) if gateway else {}
    report = {"host": name, "case": case, "case_detail": ", ".join(f"{k}: {v or 'blank'}" for k, v in detail.items()),
              "forced": force, "started": started_wall.isoformat(timespec="seconds"), "phases": [],
              "before": state, "result": "running"}
    print(f"archive-dr rebuild: {name}: case {case}" + (f" ({report['case_detail']})" if detail else ""), flush=True)
    wan_before = wan_counter(peer, gateway) if peer else None
    report_dir.mkdir(parents=True, exist_ok=True)
    log_path = report_dir / f"rebuild-{name}.log"
    with log_path.open("w") as log:
        t0 = time.monotonic()
        code, counts, lines = run_bootstrap(name, inventory, log)
        report["phases"].append({"phase": "Bootstrap", "label": "pyinfra: depot check, apt, python3, admin",
                                 "seconds": round(time.monotonic() - t0, 1), "changed": counts.get("changed"),
                                 "operations": counts.get("operations")})
        if code != 0:
            reason = next((line.strip() for line in lines if "package source unreachable" in line
                           or "depot tarball" in line), None)
            report["result"] = "stopped: depot unreachable" if reason else "failed: bootstrap"
            report["message"] = reason or "the bootstrap failed (see the log)"
            report["total_seconds"] = round(time.monotonic() - started, 1)
            write_report(report, report_dir)
            raise RebuildError(f"stopped: {reason}" if reason else f"bootstrap of {name} failed (log: {log_path})",
                               EXIT_DEPOT if reason else EXIT_FAILED)
        code, phases, recap = run_playbook(name, case, inventory, log)
        report["phases"] += phases
        report["recap"] = recap
    report["total_seconds"] = round(time.monotonic() - started, 1)
    wan_after = wan_counter(peer, gateway) if peer else None
    if wan_before is not None and wan_after is not None:
        rate_text = (peer[gateway].get("site_gateway_wan_rate") or peer[gateway].get("lab_wan_rate") or "")
        bits = rate_bits(rate_text)
        sent = wan_after - wan_before
        report["wan"] = {"gateway": gateway, "direction": "WAN tx towards miyun", "bytes": sent, "rate": rate_text,
                         "seconds_at_rate": round(sent * 8 / bits, 1) if bits else None}
    report["result"] = "verified" if code == 0 else "failed"
    report["changed_total"] = sum(p.get("changed") or 0 for p in report["phases"][:1]) + sum(
        s["changed"] for s in recap.values())
    json_path, md_path = write_report(report, report_dir)
    report["files"] = [str(json_path), str(md_path), str(log_path)]
    if code != 0:
        raise RebuildError(f"rebuild of {name} failed in the playbook (log: {log_path}, report: {md_path})")
    return report


# ------------------------------------------------------- OS install media

def _netmask(values: dict, defaults: dict) -> str:
    if defaults.get("netmask"):
        return defaults["netmask"]
    if values.get("lab_mgmt_subnet"):
        return str(ipaddress.IPv4Network(values["lab_mgmt_subnet"]).netmask)
    raise RebuildError("set os_install_defaults.netmask (the management network's netmask)", EXIT_REFUSED)


def install_context(name: str, values: dict) -> dict:
    defaults = dict(values.get("os_install_defaults") or {})
    per_host = (values.get("os_install_hosts") or {}).get(name)
    if not per_host:
        raise RebuildError(f"os_install_hosts has no entry for {name} (mac, disk)", EXIT_REFUSED)
    os_install = {**defaults, **per_host}
    os_install.setdefault("nameservers", [])
    os_install["address"] = values["ansible_host"]
    os_install["netmask"] = _netmask(values, defaults)
    os_install["root_ssh_keys"] = values.get("baseline_admin_ssh_keys") or []
    os_install["ntp_servers"] = values.get("baseline_ntp_servers") or []
    bad = [k for k, v in os_install.items() if "CHANGE_ME" in json.dumps(v)]
    if bad:
        raise RebuildError(f"{name}: set these os_install values (still CHANGE_ME): {', '.join(sorted(bad))}",
                           EXIT_REFUSED)
    if not os_install["root_ssh_keys"]:
        raise RebuildError(f"{name}: baseline_admin_ssh_keys is empty: the installed host would be unreachable",
                           EXIT_REFUSED)
    server = f"{os_install['pxe_server']}:{os_install['http_port']}"
    os_install.setdefault("mirror_host", server)
    os_install["preseed_url"] = f"http://{server}/preseed/{name}.cfg"
    gateway = os_install.get("gateway") or ""
    os_install["kernel_args"] = " ".join([
        "auto=true", "priority=critical", f"url={os_install['preseed_url']}",
        f"hostname={name}", f"domain={os_install['domain']}", "interface=auto",
        "netcfg/disable_autoconfig=true", f"netcfg/get_ipaddress={os_install['address']}",
        f"netcfg/get_netmask={os_install['netmask']}", f"netcfg/get_gateway={gateway}",
        f"netcfg/get_nameservers={' '.join(os_install['nameservers'])}", "netcfg/confirm_static=true",
        *([] if gateway else ["netcfg/no_default_route=true"]), "---", "quiet"])
    return {"inventory_hostname": name, "os_install": os_install}


def render_install_media(name: str, inventory: list[Path], out: Path) -> list[Path]:
    values = host_vars(inventory, [name])[name]
    if DR_GROUP not in (values.get("group_names") or []):
        raise RebuildError(f"refused: {name} is not a DR-site host ({DR_GROUP})", EXIT_REFUSED)
    context = install_context(name, values)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(paths.ROOT / "templates")), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    targets = {
        "preseed/debian-bookworm.preseed.j2": out / "http" / "preseed" / f"{name}.cfg",
        "pxe/dnsmasq.conf.j2": out / "dnsmasq.conf",
        "pxe/grub.cfg.j2": out / "tftp" / "debian-installer" / "amd64" / "grub" / "grub.cfg",
        "pxe/pxelinux.cfg.j2": out / "tftp" / "pxelinux.cfg" / "default",
    }
    context["os_install"] = dict(context["os_install"], tftp_root=str((out / "tftp").resolve()))
    written = []
    for template, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.get_template(template).render(context))
        written.append(target)
    return written
