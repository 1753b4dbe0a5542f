#!/usr/bin/python
"""Ansible module: plan and apply a vendor firewall change over netmiko (SSH)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: vendor_firewall
short_description: Site-to-site IPsec and replication-flow policy on a vendor firewall, via netmiko
description:
  - Renders the intended configuration from C(templates/firewall/<platform>/main.j2),
    connects over SSH with netmiko, saves the running configuration to the controller
    (timestamped), computes only the missing or different lines in the device's own
    syntax and order, and in check mode returns them as the diff and pushes nothing.
  - Otherwise pushes them in dependency order (objects before the rules and bindings that
    reference them; deletions of rules and bindings before the objects), stopping at the
    first line the device rejects; saves (platform's own save) or, on a candidate-configuration
    platform (Junos), commits with C(commit confirmed N); reads the running configuration back
    and compares every managed section with the intended one (a missing or an extra line is a
    failure, e.g. an old port left next to the new one), including the declared security profiles.
    Only then does it confirm the commit. On any failure it restores the saved configuration
    (dependency-ordered; Junos rollback 1 / rollback 0), compares the result with the backup and reports.
  - Appends one JSON line per run to I(change_log): who, when, device, diff, outcome.
  - "Variable model: platform (gateway_platform), local_site (site_name), sites (dr_sites:
    {site: {lan, wan}}), site_hosts (dr_site_hosts: {name: LAN address}), flows (dr_flows:
    [{name, src, dst, port, proto}]), wan_interface, ipsec {auth: psk|cert, cert: {pki_domain,
    local_id, peer_id}}, psk. See docs/vendor-change.md."
options:
  platform: {type: str, required: true, description: "huawei | hp_comware | hillstone_stoneos | juniper_junos (netmiko device_type)"}
  device: {type: str, required: true, description: Inventory name of the device (for file names and the log).}
  host: {type: str, required: true}
  port: {type: int, default: 22}
  username: {type: str, required: true}
  password: {type: str, required: true, no_log: true}
  local_site: {type: str, required: true}
  sites: {type: dict, required: true}
  site_hosts: {type: dict, required: true}
  flows: {type: list, elements: dict, required: true}
  wan_interface: {type: str, required: true}
  ipsec: {type: dict, default: {}}
  psk: {type: str, no_log: true}
  template_dir: {type: path, required: true}
  backup_dir: {type: path, default: ~/.archive-dr/firewall/backups}
  change_log: {type: path, default: ~/.archive-dr/firewall/changes.jsonl}
  changed_by: {type: str, description: Who asks for the change; defaults to the controller user.}
  timeout: {type: int, default: 30, description: SSH connect and per-read timeout in seconds.}
  security_profiles:
    type: dict
    required: true
    description:
      - "The attack-protection (IPS) and antivirus profiles every tunnel permit carries: {ips: name, av: name}
        (vendor_fw_security_profiles). They must exist on the device (site profiles); the read-back checks
        every permit rule of ours carries both."
  confirm_minutes:
    type: int
    default: 5
    description:
      - Platforms with a candidate configuration (juniper_junos) commit with C(commit confirmed N); the
        module confirms only after the read-back passes, otherwise the device rolls back by itself after N minutes.
author: archive-dr
"""

import datetime
import fcntl
import getpass
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import vendor_firewall as vf

try:
    from netmiko import ConnectHandler
    from netmiko.exceptions import ConfigInvalidException
    HAS_NETMIKO = True
except ImportError:  # pragma: no cover
    HAS_NETMIKO = False


# (enter, leave, configuration prompt, exec prompt) for the apply-immediately platforms
CONFIG_MODE = {
    "huawei": ("system-view", "return", r"\]\s*$", r">\s*$"),
    "hp_comware": ("system-view", "return", r"\]\s*$", r">\s*$"),
    "hillstone_stoneos": ("configure", "end", r"\(config\)#\s*$", r"[^)]#\s*$"),
}


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Device:
    """A netmiko session that can be re-opened (after a drop mid-push)."""

    def __init__(self, params, platform: vf.Platform):
        self.params, self.platform, self.conn = params, platform, None

    def open(self):
        p = self.params
        self.close()
        self.conn = ConnectHandler(
            device_type=self.platform.name, host=p["host"], port=p["port"],
            username=p["username"], password=p["password"],
            conn_timeout=p["timeout"], auth_timeout=p["timeout"], banner_timeout=p["timeout"],
        )
        return self

    def alive(self):
        try:
            return self.conn is not None and self.conn.is_alive()
        except Exception:
            return False

    def ensure(self):
        if not self.alive():
            self.open()
        else:
            try:
                if self.conn.check_config_mode():
                    self.conn.exit_config_mode()
            except Exception:
                self.open()

    def close(self):
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception:
                pass
        self.conn = None

    def show_running(self) -> str:
        """One complete running-config display; a desynchronised read is retried."""
        for _attempt in range(3):
            out = self.conn.send_command(self.platform.show_cmd, read_timeout=self.params["timeout"] * 2)
            text = vf.clean_display(out, self.platform)
            if text is not None:
                return text
            time.sleep(1.5)
            self.conn.clear_buffer()
        raise RuntimeError(f"`{self.platform.show_cmd}` did not return one complete configuration "
                           f"(3 attempts); last output ended with {out[-80:]!r}")

    def push(self, cmds: list[str], stop_on_error: bool) -> str:
        kw = {"read_timeout": self.params["timeout"]}
        if self.platform.candidate:
            kw["exit_config_mode"] = False     # the candidate is committed (or discarded) explicitly
        # Echo verification per line for every platform (netmiko turns it off for Comware by
        # default): without it a rejected section header lets the following lines land in the
        # wrong view, and a `quit` too many logs the session out. With it, netmiko stops at the
        # first rejected line (error_pattern).
        saved_verify = self.conn.global_cmd_verify
        self.conn.global_cmd_verify = None
        if stop_on_error:
            kw["error_pattern"] = self.platform.error_re
        # Enter and leave the configuration view ourselves, waiting for the prompt: netmiko's
        # Huawei/Comware check_config_mode() has no prompt pattern and waits 2 s per call.
        mode = CONFIG_MODE.get(self.platform.name)
        try:
            if mode:
                out = self.conn.send_command(mode[0], expect_string=mode[2], read_timeout=self.params["timeout"])
                kw.update(enter_config_mode=False, exit_config_mode=False)
            out = self.conn.send_config_set(cmds, **kw)
            if mode:
                out += self.conn.send_command(mode[1], expect_string=mode[3], read_timeout=self.params["timeout"])
        finally:
            self.conn.global_cmd_verify = saved_verify
        errors = re.findall(self.platform.error_re, out, flags=re.M)
        if stop_on_error and errors:
            raise ConfigInvalidException(f"device rejected a line: {errors[0].strip()}")
        return out

    def save(self) -> str:
        pl = self.platform
        return self.conn.save_config(cmd=pl.save_cmd, confirm=pl.save_confirm,
                                     confirm_response=pl.save_response)

    # candidate-configuration platforms (Junos) ------------------------------------------
    def config_cmd(self, cmd: str, expect: str = r"#\s*$") -> str:
        if not self.conn.check_config_mode():
            self.conn.config_mode()
        return self.conn.send_command(cmd, expect_string=expect, read_timeout=self.params["timeout"] * 2,
                                      strip_prompt=False, strip_command=False)

    def compare(self) -> str:
        return self.config_cmd("show | compare")

    def commit(self, confirm_minutes: int | None) -> str:
        if confirm_minutes:
            return self.conn.commit(confirm=True, confirm_delay=confirm_minutes,
                                    read_timeout=self.params["timeout"] * 2)
        return self.conn.commit(read_timeout=self.params["timeout"] * 2)

    def discard(self) -> str:
        """Throw away uncommitted candidate changes (rollback 0)."""
        out = self.config_cmd("rollback 0")
        self.conn.exit_config_mode()
        return out

    def rollback_committed(self) -> str:
        """Undo the last (confirmed-pending) commit now: rollback 1, commit."""
        out = self.config_cmd("rollback 1")
        out += self.commit(None)
        self.conn.exit_config_mode()
        return out


def _write_backup(params, text):
    d = os.path.expanduser(params["backup_dir"])
    os.makedirs(d, mode=0o700, exist_ok=True)
    stamp = _now().strftime("%Y%m%dT%H%M%S.%fZ")
    path = os.path.join(d, f"{params['device']}_{stamp}.cfg")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text.replace("\r", ""))
        if not text.endswith("\n"):
            f.write("\n")
    return path


def _log(params, record):
    path = os.path.expanduser(params["change_log"])
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run(module):
    p = module.params
    who = p["changed_by"] or os.environ.get("SUDO_USER") or getpass.getuser()
    record = {"time": _now().isoformat(timespec="seconds"), "user": who, "device": p["device"],
              "host": f"{p['host']}:{p['port']}", "platform": p["platform"],
              "check_mode": module.check_mode}
    result = {"changed": False, "device": p["device"]}

    # 1. everything that can be wrong with the input fails here, before connecting
    try:
        ipsec = dict(p["ipsec"] or {})
        if p["psk"]:
            ipsec["psk"] = p["psk"]
        model = vf.build_model(p["platform"], p["local_site"], p["sites"], p["site_hosts"],
                               p["flows"], p["wan_interface"], ipsec, p["security_profiles"])
        want = vf.intended(model, p["template_dir"])
    except vf.VendorFirewallError as e:
        module.fail_json(msg=f"vendor_firewall: {e}", stage="validate", **result)
    if not HAS_NETMIKO:
        module.fail_json(msg="netmiko is not installed in the controller's Python", stage="validate")
    plat = model.platform

    dev = Device(p, plat)
    try:
        dev.open()
        before_text = dev.show_running()
    except Exception as e:
        dev.close()
        record.update(outcome="failed-connect", error=str(e))
        _log(p, record)
        module.fail_json(msg=f"cannot read the running configuration of {p['device']}: {e}",
                         stage="connect", **result)
    backup_tree = vf.parse(before_text, plat)
    if not backup_tree.children:
        dev.close()
        module.fail_json(msg=f"{p['device']}: `{plat.show_cmd}` returned no configuration; refusing to plan",
                         stage="backup", **result)
    backup = _write_backup(p, before_text)
    steps = vf.plan_change(backup_tree, want, plat)
    diff_text = vf.show(steps, plat)
    result.update(backup=backup, diff={"prepared": diff_text}, changed_lines=vf.changed_lines(steps),
                  commands=[ln for ln in diff_text.splitlines()])
    record.update(backup=backup, diff=diff_text, changed_lines=result["changed_lines"])

    if not steps:
        dev.close()
        record["outcome"] = "unchanged"
        _log(p, record)
        module.exit_json(outcome="unchanged", **result)
    if module.check_mode:
        dev.close()
        record["outcome"] = "check"
        _log(p, record)
        result["changed"] = True
        module.exit_json(outcome="check", **result)

    cmds = vf.commands(steps, plat)
    save_attempted = False
    committed = False
    stage = "push"
    try:
        dev.push(cmds, stop_on_error=True)
        if plat.candidate:
            stage = "commit"
            result["device_compare"] = dev.compare()
            dev.commit(p["confirm_minutes"])      # the device rolls back by itself unless confirmed
            committed = True
            dev.conn.exit_config_mode()
        else:
            stage = "save"
            save_attempted = True
            dev.save()
        stage = "verify"
        after = vf.parse(dev.show_running(), plat)
        problems = vf.verify(after, want, plat, model)
        if problems:
            raise RuntimeError("read-back differs from the intended configuration:\n  " + "\n  ".join(problems))
        if committed:
            stage = "confirm"
            dev.commit(None)
            dev.conn.exit_config_mode()
    except Exception as e:  # noqa: BLE001 - every failure leads to the same restore
        error = f"{stage} failed: {type(e).__name__}: {e}"
        rb = restore(dev, plat, backup_tree, save_attempted, committed)
        dev.close()
        outcome = "failed-restored" if rb["restored"] else "failed-restore-incomplete"
        record.update(outcome=outcome, error=error, rollback=rb)
        _log(p, record)
        module.fail_json(msg=f"{p['device']}: {error}; {'running configuration restored from ' + backup if rb['restored'] else 'RESTORE INCOMPLETE, see rollback'}",
                         outcome=outcome, stage=stage, rollback=rb, **result)
    dev.close()
    record["outcome"] = "changed"
    record["pushed_lines"] = len(cmds)
    _log(p, record)
    result["changed"] = True
    module.exit_json(outcome="changed", pushed_lines=len(cmds), **result)


def restore(dev: Device, plat, backup_tree, save_attempted: bool, committed: bool = False) -> dict:
    """Bring the running config back to the backup; save again only if we saved.

    Dependency-ordered plan, stopping at the first line the device refuses (a refused
    delete means an ordering mistake: continuing would leave it half-done). Junos:
    discard the candidate (rollback 0) or undo the unconfirmed commit (rollback 1)."""
    rb = {"restored": False, "restore_lines": 0}
    try:
        dev.ensure()
        if plat.candidate:
            if dev.conn.check_config_mode() or not committed:
                dev.discard()
                rb["method"] = "rollback 0 (candidate discarded)"
            if committed:
                now = vf.parse(dev.show_running(), plat)
                if vf.canonical(now, plat) != vf.canonical(backup_tree, plat):
                    dev.rollback_committed()
                    rb["method"] = "rollback 1 + commit"
        now = vf.parse(dev.show_running(), plat)
        steps = vf.plan_restore(now, backup_tree, plat)
        rb["restore_lines"] = vf.changed_lines(steps)
        rb["restore_diff"] = vf.show(steps, plat)
        if steps:
            dev.push(vf.commands(steps, plat), stop_on_error=True)
            if plat.candidate:
                dev.commit(None)
                dev.conn.exit_config_mode()
        final = vf.parse(dev.show_running(), plat)
        rb["restored"] = vf.canonical(final, plat) == vf.canonical(backup_tree, plat)
        if not rb["restored"]:
            rb["still_different"] = vf.show(vf.plan_restore(final, backup_tree, plat), plat)
        if save_attempted and rb["restored"]:
            dev.save()
            rb["saved"] = True
    except Exception as e:  # noqa: BLE001
        rb["error"] = f"{type(e).__name__}: {e}"
    return rb


def main():
    module = AnsibleModule(
        argument_spec=dict(
            platform=dict(type="str", required=True),
            device=dict(type="str", required=True),
            host=dict(type="str", required=True),
            port=dict(type="int", default=22),
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
            local_site=dict(type="str", required=True),
            sites=dict(type="dict", required=True),
            site_hosts=dict(type="dict", required=True),
            flows=dict(type="list", elements="dict", required=True),
            wan_interface=dict(type="str", required=True),
            ipsec=dict(type="dict", default={}),
            psk=dict(type="str", no_log=True),
            template_dir=dict(type="path", required=True),
            backup_dir=dict(type="path", default="~/.archive-dr/firewall/backups"),
            change_log=dict(type="path", default="~/.archive-dr/firewall/changes.jsonl"),
            changed_by=dict(type="str"),
            timeout=dict(type="int", default=30),
            security_profiles=dict(type="dict", required=True),
            confirm_minutes=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
