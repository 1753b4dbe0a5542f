"""Bad tunnel input fails in the first task, before any gateway changes (lab, --check for safety).

    .venv/bin/pytest -m lab tests/lab/test_tunnel_validation.py -v
"""
from __future__ import annotations

import json

import pytest

from tests.lab.labkit import failure_text, play_recap

FLOWS = [{"name": "pg-stream", "src": "miyun-store", "dst": "geo-archive", "port": 5432, "proto": "tcp"}]


@pytest.mark.parametrize("extra,message", [
    ({"dr_sites": {"geo": {"lan": "198.18.0.0/16", "wan": "198.18.3.1"},
                   "miyun": {"lan": "198.18.2.0/24", "wan": "198.18.3.2"}}}, "site subnets overlap"),
    ({"dr_flows": FLOWS + [{"name": "ghost", "src": "miyun-ghost", "dst": "geo-archive", "port": 22,
                            "proto": "tcp"}]}, "src 'miyun-ghost' is not a known host"),
    ({"site_gateway_cert_key": ""}, "private key for site"),
    ({"site_gateway_cert": ""}, "certificate for site"),
    ({"gateway_ipsec_auth": "psk", "gateway_ipsec_psk": ""}, "no pre-shared key"),
    ({"site_gateway_initiator": True}, "Exactly one of"),
])
def test_bad_input_fails_before_any_change(extra, message):
    r, recap = play_recap("tunnel.yml", "--check", "-e", json.dumps(extra), timeout=300)
    assert not r.ok
    assert message in failure_text(r), r.stdout[-3000:]
    # It failed in validation: no task after it ran.
    assert "Install gateway packages" not in r.tasks_started()
    assert recap and all(stats["changed"] == 0 for stats in recap.values()), recap
