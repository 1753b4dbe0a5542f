"""baseline's nftables_dropin entry point (roles/baseline/filter_plugins/baseline_nftables.py):
drop-in files from the openings roles publish as data, and when the loaded ruleset has them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
_spec = importlib.util.spec_from_file_location(
    "baseline_nftables", ROOT / "roles" / "baseline" / "filter_plugins" / "baseline_nftables.py")
bn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bn)

ARCHIVE = {"name": "archive-system", "order": 50, "comment": "PostgreSQL for replication and verification clients.",
           "allow": [{"sources": ["198.18.2.21/32", "198.18.1.12"], "ports": [5432], "interface": "lan0"}]}


def test_allow_entries_become_input_rules_of_the_base_table():
    (f,) = bn.dropin_files([ARCHIVE])
    assert f["path"] == "/etc/nftables.d/50-archive-system.nft"
    assert f["content"] == (
        "# Managed by archive-dr (archive-system): PostgreSQL for replication and verification clients.\n"
        'add rule inet baseline input iifname "lan0" ip saddr 198.18.2.21/32 tcp dport 5432 accept\n'
        'add rule inet baseline input iifname "lan0" ip saddr 198.18.1.12 tcp dport 5432 accept\n')
    # as `nft list ruleset` prints them: a one-address network without /32
    assert f["listed"] == ['iifname "lan0" ip saddr 198.18.2.21 tcp dport 5432 accept',
                           'iifname "lan0" ip saddr 198.18.1.12 tcp dport 5432 accept']


def test_several_ports_are_one_set_and_no_interface_means_any():
    (f,) = bn.dropin_files([{"name": "archive-dr-replica", "order": 70,
                             "allow": [{"sources": ["198.18.2.21"], "ports": ["22", 5432], "proto": "tcp"}]}])
    assert f["content"].splitlines()[1] == "add rule inet baseline input ip saddr 198.18.2.21 tcp dport { 22, 5432 } accept"
    assert f["content"].splitlines()[0] == "# Managed by archive-dr (archive-dr-replica)."


def test_no_source_writes_a_file_without_rules():
    (f,) = bn.dropin_files([{"name": "depot", "allow": [{"sources": [], "ports": [8080]}]}])
    assert f["path"] == "/etc/nftables.d/50-depot.nft" and f["listed"] == []
    assert f["content"].count("\n") == 1


def test_a_whole_ruleset_is_written_after_the_header_and_known_by_its_table():
    (f,) = bn.dropin_files([{"name": "site-gateway", "table": "site_gateway",
                             "content": "table inet site_gateway {\n}\n"}])
    assert f["content"].endswith("\ntable inet site_gateway {\n}\n") and f["table"] == "site_gateway"
    assert bn.dropins_missing([f], "table inet baseline {\n}\n") == ["site-gateway"]
    assert bn.dropins_missing([f], "table inet site_gateway {\n}\n") == []


def test_missing_rules_are_found_in_the_loaded_ruleset():
    files = bn.dropin_files([ARCHIVE, {"name": "old", "state": "absent"}])
    loaded = ('table inet baseline {\n\tchain input {\n'
              '\t\tiifname "lan0" ip saddr 198.18.2.21 tcp dport 5432 accept\n\t}\n}\n')
    assert bn.dropins_missing(files, loaded) == ["archive-system"]
    loaded = loaded.replace("\t}\n}", '\t\tiifname "lan0" ip saddr 198.18.1.12 tcp dport 5432 accept\n\t}\n}')
    assert bn.dropins_missing(files, loaded) == []
    assert [f["state"] for f in files] == ["present", "absent"]


@pytest.mark.parametrize("dropins, message", [
    ([{"name": "../etc/x", "allow": [{"sources": [], "ports": [1]}]}], "is not a plain file name"),
    ([{"name": "a", "allow": [{"sources": ["198.18.300.1"], "ports": [1]}]}], "is not an address or network"),
    ([{"name": "a", "allow": [{"sources": ["10.0.0.1"], "ports": [0]}]}], "is not between 1 and 65535"),
    ([{"name": "a", "allow": [{"sources": ["10.0.0.1"], "ports": [22], "proto": "icmp"}]}], "must be tcp or udp"),
    ([{"name": "a", "allow": [{"sources": ["10.0.0.1"], "ports": [22], "interface": 'lan0" accept'}]}],
     "is not an interface name"),
    ([{"name": "a"}], "give either allow entries or content, not neither"),
    ([{"name": "a", "content": "x", "table": "t", "allow": [{"sources": [], "ports": [1]}]}], "not both"),
    ([{"name": "a", "content": "table inet a {}"}], "content needs table"),
    ([{"name": "a", "allow": [{"sources": [], "ports": [1]}]}] * 2, "declared twice"),
    ([{"name": "a", "order": 100, "allow": [{"sources": [], "ports": [1]}]}], "from 0 to 99"),
])
def test_bad_drop_ins_are_refused_before_any_file_is_written(dropins, message):
    with pytest.raises(bn.DropinError, match=message):
        bn.dropin_files(dropins)
