"""The audit trail in the lab (docs/audit-trail.md): the runs that converged the lab reached the append-only
ledger at miyun, its chain verifies there and against the controller's receipts, `archive-dr evidence`'s
section lists them, an entry altered at miyun is reported, and no vault value is in either ledger."""
from __future__ import annotations

import datetime as dt
import json

import yaml

from archive_dr import audit, paths
from archive_dr.inventory import Inventory
from tests.lab import labkit

MIYUN = "miyun-store"
LEDGER = "/srv/dr/audit/ledger.jsonl"
VERIFY = "runuser -u audit-append -- /usr/local/lib/archive-dr/audit_append.py --ledger %s --verify" % LEDGER


def _today():
    return dt.datetime.now(dt.timezone.utc).date()


# the runs that converge the lab: `make lab` runs site.yml, Molecule's two-site scenario converge.yml (site.yml imported)
CONVERGE_PLAYBOOKS = ("site.yml", "converge.yml")


def _miyun_entries():
    return [json.loads(line) for line in labkit.sh(MIYUN, "cat %s" % LEDGER).stdout.splitlines()]


def test_converging_runs_reached_the_ledger_at_miyun_and_it_verifies():
    labkit.sh(MIYUN, VERIFY)
    entries = _miyun_entries()
    assert entries, "no entry in miyun's ledger"
    converges = [e for e in entries if any(p.endswith(CONVERGE_PLAYBOOKS) for p in e["record"].get("playbooks", []))
                 and e["record"].get("hosts_changed")]
    assert converges, "no converging run that changed a host reached miyun"
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


def test_evidence_lists_the_runs_and_checks_the_receipts(tmp_path):
    section = audit.section(_today() - dt.timedelta(days=7), _today(), work_dir=tmp_path,
                            inventory=paths.default_lab_inventory())
    assert section["verified"], section["problems"]
    assert section["source"] == "miyun"
    miyun = next(st for st in section["ledgers"] if st["name"] == "miyun")
    assert miyun["receipts_checked"] >= 1      # the controller's receipts were compared with miyun's chain
    assert section["runs"] >= 1 and any(name in r["playbook"] for r in section["rows"] for name in CONVERGE_PLAYBOOKS)


def test_an_entry_altered_at_miyun_is_reported(tmp_path):
    labkit.sh(MIYUN, "cp -p %s %s.pristine" % (LEDGER, LEDGER))
    try:
        labkit.sh(MIYUN, "sed -i '1s/\"operator\"/\"0perator\"/' %s" % LEDGER)
        assert labkit.try_sh(MIYUN, VERIFY).returncode != 0
        section = audit.section(_today() - dt.timedelta(days=7), _today(), work_dir=tmp_path,
                                inventory=paths.default_lab_inventory())
        assert not section["verified"]
        assert any(p.startswith("miyun: seq 1") and "altered" in p for p in section["problems"]), section["problems"]
    finally:
        labkit.sh(MIYUN, "mv %s.pristine %s" % (LEDGER, LEDGER))
    labkit.sh(MIYUN, VERIFY)


def test_no_vault_value_in_either_ledger():
    vault_file = paths.LAB_INVENTORY[-1] / "group_vars" / "all" / "vault.yml"
    inventory = Inventory(paths.default_lab_inventory())
    secrets = inventory.host_vars(MIYUN, sorted(yaml.safe_load(_decrypted(vault_file)) or {}))
    values = [v for v in secrets.values() if isinstance(v, str) and len(v) >= 8]
    assert values, "no vault value to look for"
    texts = {"miyun": labkit.sh(MIYUN, "cat %s" % LEDGER).stdout,
             "controller": audit.config()["ledger"].read_text(encoding="utf-8")}
    for where, text in texts.items():
        # every line of a value (keys and certificates are multi-line), PEM armour lines aside (they are
        # the same in every key and certificate)
        leaked = [v[:4] + "..." for v in values
                  if any(line in text for line in v.splitlines() if len(line) >= 8 and not line.startswith("-----"))]
        assert not leaked, "%s ledger holds vault values: %s" % (where, leaked)


def _decrypted(path) -> str:
    from archive_dr.inventory import vault_password
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(vault_password().encode())
    return VaultLib([("default", secret)]).decrypt(path.read_bytes()).decode()
