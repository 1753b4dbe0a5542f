"""Issue 2: the lab itself, the baseline, idempotence and isolation."""
from __future__ import annotations


import pytest

LAB_HOSTS = ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"]

def test_ansible_reaches_every_host_over_ssh(ansible):
    result = ansible.module("all", "ansible.builtin.ping", timeout=120)
    assert result.ok, result.stdout
    assert sorted(result.stats) == sorted(LAB_HOSTS)
    assert all(result.task_result("ansible.builtin.ping", host)["ping"] == "pong" for host in LAB_HOSTS)


def test_site_check_diff_reports_no_change(ansible):
    result, stats = ansible.playbook("site.yml", "--check", "--diff")
    assert result.ok, result.stdout[-4000:]
    assert sorted(stats) == sorted(LAB_HOSTS)
    assert all((s["changed"], s["unreachable"], s["failed"]) == (0, 0, 0) for s in stats.values()), stats


@pytest.mark.parametrize("source,target", [("geo-archive", "198.18.0.12"), ("miyun-store", "198.18.0.11"),
                                           ("geo-fw", "198.18.0.23")])
def test_hosts_cannot_reach_each_other_over_management(podman_exec, source, target):
    proc = podman_exec(source, f"timeout 4 bash -c 'echo > /dev/tcp/{target}/22' && echo OPEN || echo CLOSED")
    assert proc.stdout.strip().endswith("CLOSED"), proc.stdout + proc.stderr


def test_sites_do_not_reach_each_other_outside_declared_flows(podman_exec):
    # ICMP is never a declared replication flow: without or with the tunnel it must not pass.
    proc = podman_exec("geo-archive", "ping -c 2 -W 1 198.18.2.21 >/dev/null && echo PASS || echo BLOCKED")
    assert proc.stdout.strip() == "BLOCKED"
    proc = podman_exec("miyun-store", "ping -c 2 -W 1 198.18.1.12 >/dev/null && echo PASS || echo BLOCKED")
    assert proc.stdout.strip() == "BLOCKED"


def test_same_site_lan_works(podman_exec):
    proc = podman_exec("geo-archive", "ping -c 1 -W 2 198.18.1.12 >/dev/null && echo PASS || echo BLOCKED")
    assert proc.stdout.strip() == "PASS"


def test_baseline_hardening(podman_exec):
    for host in LAB_HOSTS:
        proc = podman_exec(host, "sshd -T | grep -E '^(passwordauthentication|permitrootlogin|kbdinteractiveauthentication) '"
                                 "; test -d /var/log/journal && echo journal-persistent"
                                 "; id -nG dradmin; nft list chain inet baseline input | grep -c 'policy drop'")
        out = proc.stdout
        assert "passwordauthentication no" in out, (host, out)
        assert "permitrootlogin without-password" in out or "permitrootlogin prohibit-password" in out, (host, out)
        assert "journal-persistent" in out and "sudo" in out, (host, out)
        assert out.strip().endswith("1"), (host, out)


def test_time_is_synchronised_within_each_site(podman_exec):
    for host in ["geo-archive", "geo-backup", "miyun-store"]:
        proc = podman_exec(host, "for i in $(seq 30); do chronyc -n sources | grep -q '^\\^\\*' && exit 0; sleep 1; done; "
                                 "chronyc -n sources; exit 1")
        assert proc.returncode == 0, (host, proc.stdout)
