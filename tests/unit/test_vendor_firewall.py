"""Unit tests for module_utils/vendor_firewall.py: model validation, render, parse, plan."""

import shutil
from pathlib import Path

import pytest

import vendor_firewall as vf  # module_utils/ is on the test path (pyproject.toml)

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)

TEMPLATES = ROOT / "templates" / "firewall"
SITES = {"geo": {"lan": "192.0.2.0/24", "wan": "203.0.113.1"},
         "miyun": {"lan": "198.51.100.0/24", "wan": "203.0.113.2"}}
HOSTS = {"geo-archive": "192.0.2.10", "geo-backup": "192.0.2.11", "miyun-store": "198.51.100.10"}
FLOWS = [{"name": "pg-replication", "src": "miyun-store", "dst": "geo-archive", "port": 5432, "proto": "tcp"},
         {"name": "pgbackrest-pull", "src": "miyun-store", "dst": "geo-backup", "port": 8432, "proto": "tcp"}]
PSK = "unit-test-psk-0123456789"
WAN_IF = {"huawei": "GigabitEthernet1/0/1", "hp_comware": "GigabitEthernet1/0/1",
          "hillstone_stoneos": "ethernet0/1"}


PROFILES = {"ips": "site-ips", "av": "site-av"}
WAN_IF["juniper_junos"] = "ge-0/0/1.0"


def model(platform="huawei", **over):
    kw = dict(platform=platform, local_site="geo", sites=SITES, site_hosts=HOSTS, flows=FLOWS,
              wan_interface=WAN_IF.get(platform, "x"), ipsec={"auth": "psk", "psk": PSK}, profiles=PROFILES)
    kw.update(over)
    return vf.build_model(**kw)


# ----------------------------------------------------------------- validation

@pytest.mark.parametrize("over, msg", [
    ({"platform": "cisco_asa"}, "unknown platform 'cisco_asa'"),
    ({"platform": "linux"}, "site_gateway role"),
    ({"sites": {"geo": SITES["geo"], "miyun": {"lan": "192.0.2.128/25", "wan": "203.0.113.2"}}},
     "site subnets overlap: geo 192.0.2.0/24 and miyun 192.0.2.128/25"),
    ({"flows": FLOWS + [{"name": "x", "src": "miyun-ghost", "dst": "geo-archive", "port": 1, "proto": "tcp"}]},
     "src 'miyun-ghost' is not a known host"),
    ({"ipsec": {"auth": "psk"}}, "no pre-shared key"),
    ({"ipsec": {"auth": "cert", "cert": {"pki_domain": "dr"}}}, "lacks local_id, peer_id"),
    ({"flows": [{"name": "same-site", "src": "geo-backup", "dst": "geo-archive", "port": 1, "proto": "tcp"}]},
     "does not cross the tunnel"),
    ({"flows": []}, "flows is empty"),
    ({"flows": [dict(FLOWS[0], port=70000)]}, "out of range"),
    ({"site_hosts": dict(HOSTS, stray="10.9.9.9")}, "is in no site LAN"),
    ({"profiles": {"ips": "site-ips"}}, "security profiles not declared: av"),
    ({"profiles": {"ips": "a", "av": "b", "url": "c"}}, "unknown kind(s) url"),
    ({"profiles": {"ips": "a b", "av": "b"}}, "is not a plain name"),
])
def test_bad_input_is_refused(over, msg):
    with pytest.raises(vf.VendorFirewallError, match=None) as e:
        model(**over)
    assert msg in str(e.value)


def test_flow_direction_and_hosts_used():
    m = model()
    assert [f["direction"] for f in m.flows] == ["inbound", "inbound"]
    assert [h["name"] for h in m.hosts] == ["geo-archive", "geo-backup", "miyun-store"]
    assert (m.peer_site, m.peer_wan) == ("miyun", "203.0.113.2")
    m2 = model(local_site="miyun")
    assert [f["direction"] for f in m2.flows] == ["outbound", "outbound"]


# ----------------------------------------------------------------- render

@pytest.mark.parametrize("platform", sorted(set(vf.PLATFORMS) - {"juniper_junos"}))
def test_render_has_every_required_section(platform):
    m = model(platform)
    tree = vf.intended(m, str(TEMPLATES))
    heads = [c.text for c in tree.children]
    pol = next(c for c in tree.children if c.text in ("security-policy", "security-policy ip", "policy-global"))
    # one permit per flow, then the two tunnel denies, in that order
    assert len(pol.children) == len(FLOWS) + 2
    last = pol.children[-2]
    assert any(k.text.startswith("action") and ("deny" in k.text or "drop" in k.text) for k in last.children)
    assert sum("192.0.2.10" in line for line in tree.lines(1)) == 1, heads  # host object once
    assert PSK in vf.render(m, str(TEMPLATES))


def test_cert_auth_renders_no_psk():
    m = model("huawei", ipsec={"auth": "cert", "cert": {"pki_domain": "dr", "local_id": "geo-fw.dr",
                                                        "peer_id": "miyun-fw.dr"}})
    text = vf.render(m, str(TEMPLATES))
    assert "pki realm dr" in text and "pre-shared-key" not in text


def test_template_missing_a_section_is_refused(tmp_path):
    shutil.copytree(TEMPLATES, tmp_path / "t")
    (tmp_path / "t" / "huawei" / "policy.j2").write_text("")
    with pytest.raises(vf.VendorFirewallError, match=r"renders no section for: \^security-policy\$"):
        vf.intended(model(), str(tmp_path / "t"))
    (tmp_path / "t" / "huawei" / "main.j2").write_text("{# nothing #}\n")
    with pytest.raises(vf.VendorFirewallError, match="rendered an empty configuration"):
        vf.intended(model(), str(tmp_path / "t"))


# ----------------------------------------------------------------- parse

HUAWEI_RUNNING = """\
!Software Version V500R005C20SPC300
#
 sysname USG-GEO
 clock timezone Beijing add 08:00:00
#
ike peer dr-miyun
 undo version 1
 ike-proposal 10
 pre-shared-key %^%#AbCdEf%^%#
 remote-address 203.0.113.9
#
security-policy
 rule name site-mgmt
  action permit
 rule name dr-tunnel-deny
  action deny
#
return
"""


def test_parse_vrp_root_leaves_after_separator():
    t = vf.parse(HUAWEI_RUNNING, vf.PLATFORMS["huawei"])
    assert [c.text for c in t.children] == ["sysname USG-GEO", "clock timezone Beijing add 08:00:00",
                                            "ike peer dr-miyun", "security-policy"]
    assert [c.text for c in t.children[3].children] == ["rule name site-mgmt", "rule name dr-tunnel-deny"]
    assert t.children[3].children[1].children[0].text == "action deny"


def test_parse_stoneos_exit_blocks():
    text = ('Building configuration..\r\nRunning configuration:\r\n!\r\nconfig-version 5.5.0R9\r\n!\r\n'
            'hostname "SG"\r\npolicy-global\r\n  rule id 1\r\n    action permit\r\n  exit\r\nexit\r\n'
            'address "a"\r\n  ip 192.0.2.0/24\r\nexit\r\nend\r\n')
    t = vf.parse(text, vf.PLATFORMS["hillstone_stoneos"])
    assert vf.canonical(t, vf.PLATFORMS["hillstone_stoneos"]).splitlines() == [
        'hostname "SG"', "policy-global", "  rule id 1", "    action permit", 'address "a"', "  ip 192.0.2.0/24"]


# ----------------------------------------------------------------- plan

HW = vf.PLATFORMS["huawei"]


def tree(text, plat=HW):
    return vf.parse(text, plat)


def test_plan_only_missing_or_different_lines_with_navigation():
    want = tree("#\nike peer dr-miyun\n undo version 1\n ike-proposal 10\n pre-shared-key cipher plain-psk\n"
                " remote-address 203.0.113.2\n#\n")
    steps = vf.plan_change(tree(HUAWEI_RUNNING), want, HW)
    # the PSK is displayed encrypted: compared by presence, so not pushed
    assert vf.commands(steps, HW) == ["ike peer dr-miyun", " remote-address 203.0.113.2", " quit"]
    assert vf.changed_lines(steps) == 1   # single-valued: the new address replaces the old one
    assert vf.plan_change(tree(HUAWEI_RUNNING), tree(HUAWEI_RUNNING), HW) == []


def test_plan_inserts_new_permit_before_the_final_deny():
    want = tree("#\nsecurity-policy\n rule name site-mgmt\n  action permit\n rule name dr-pg\n  action permit\n"
                " rule name dr-tunnel-deny\n  action deny\n#\n")
    cmds = vf.commands(vf.plan_change(tree(HUAWEI_RUNNING), want, HW), HW)
    assert cmds == ["security-policy", " undo rule name dr-tunnel-deny",
                    " rule name dr-pg", "  action permit", "  quit",
                    " rule name dr-tunnel-deny", "  action deny", "  quit", " quit",
                    "undo ike peer dr-miyun"]   # a dr- object no longer declared goes, after the rules


def test_restore_plan_is_exact():
    backup = tree(HUAWEI_RUNNING)
    now = tree(HUAWEI_RUNNING.replace(" rule name dr-tunnel-deny\n  action deny\n",
                                      " rule name dr-pg\n  action permit\n")
               .replace("remote-address 203.0.113.9", "remote-address 203.0.113.2"))
    cmds = vf.commands(vf.plan_restore(now, backup, HW), HW)
    assert cmds == ["ike peer dr-miyun", " remote-address 203.0.113.9",
                    " quit", "security-policy", " undo rule name dr-pg",
                    " rule name dr-tunnel-deny", "  action deny", "  quit", " quit"]


def test_comware_rule_negation_uses_rule_id():
    cw = vf.PLATFORMS["hp_comware"]
    assert vf.negation("rule 1000 name dr-tunnel-deny", cw) == "undo rule 1000"
    assert vf.negation("undo version 1", HW) == "version 1"
    assert vf.negation('rule id 1000', vf.PLATFORMS["hillstone_stoneos"]) == "no rule id 1000"


def test_show_masks_secrets():
    want = tree("#\nike peer p\n pre-shared-key cipher Very-Secret-Key-123\n#\n")
    out = vf.show(vf.plan_change(vf.Node(""), want, HW), HW)
    assert "Very-Secret" not in out and "+  pre-shared-key ******" in out


@pytest.mark.parametrize("platform", sorted(vf.PLATFORMS))
def test_full_render_against_itself_is_idempotent(platform):
    m = model(platform)
    want = vf.intended(m, str(TEMPLATES))
    steps = vf.plan_change(vf.Node(""), want, m.platform)
    assert vf.changed_lines(steps) == len(want.lines(1))
    assert vf.plan_change(want, want, m.platform) == []


def test_agrees_with_hier_config_on_added_lines():
    """Cross-check on Huawei (hier_config 3.7.1 has a VRP driver): same lines to add.

    Restricted to the unordered sections: hier_config has no notion of a final deny.
    """
    from hier_config import Platform, WorkflowRemediation, get_hconfig

    m = model("huawei", ipsec={"auth": "cert", "cert": {"pki_domain": "dr", "local_id": "a", "peer_id": "b"}})
    text = vf.render(m, str(TEMPLATES)).split("#\nsecurity-policy")[0]
    running = "\n".join(line for line in text.splitlines()
                        if "dr-h-geo-backup" not in line and "192.0.2.11" not in line and "esp encryption" not in line
                        and "remote-address" not in line) + "\n"
    ours = vf.plan_change(tree(running), tree(text), HW)
    ours_added = [t for d, op, t in ours if op == "+"]
    rem = WorkflowRemediation(get_hconfig(Platform.HUAWEI_VRP, running.replace("#\n", "")),
                              get_hconfig(Platform.HUAWEI_VRP, text.replace("#\n", ""))).remediation_config
    theirs = [c.text for c in rem.all_children_sorted() if not c.text.startswith("undo ")]
    # hier_config lists the section header as context for changed sections; we do too, as '='
    theirs_added = [t for t in theirs if t not in {x for _d, op, x in ours if op == "="}]
    assert ours_added == ["ip address-set dr-h-geo-backup type object", "address 0 192.0.2.11 mask 32",
                          "remote-address 203.0.113.2", "esp encryption-algorithm aes-256"]
    assert sorted(ours_added) == sorted(theirs_added)


def test_undeclared_dr_rule_is_removed_site_rules_stay():
    running = HUAWEI_RUNNING.replace(" rule name dr-tunnel-deny\n", " rule name dr-old-flow\n  action permit\n"
                                     " rule name dr-tunnel-deny\n")
    want = tree("#\nsecurity-policy\n rule name dr-tunnel-deny\n  action deny\n#\n")
    cmds = vf.commands(vf.plan_change(tree(running), want, HW), HW)
    assert cmds == ["security-policy", " undo rule name dr-old-flow", " quit",   # site-mgmt untouched
                    "undo ike peer dr-miyun"]
    hs = vf.PLATFORMS["hillstone_stoneos"]
    run_hs = ('hostname "SG"\npolicy-global\n  rule id 1\n    name "site-mgmt"\n  exit\n'
              '  rule id 40\n    name "dr-gone"\n  exit\nexit\nend\n')
    assert vf.commands(vf.plan_change(tree(run_hs, hs), tree("policy-global\nexit\n", hs), hs), hs) == [
        "policy-global", "  no rule id 40", "  exit"]


# ----------------------------------------------------------------- issue 17: real-device semantics

def test_restore_deletes_rules_and_bindings_before_the_objects_they_reference():
    m = model()
    want = vf.intended(m, str(TEMPLATES))
    backup = tree(HUAWEI_RUNNING.replace(" rule name dr-tunnel-deny\n  action deny\n", ""))
    cmds = [c.strip() for c in vf.commands(vf.plan_restore(want, backup, HW), HW)]
    pos = {c: i for i, c in enumerate(cmds)}
    assert pos["undo rule name dr-pg-replication"] < pos["undo ip address-set dr-h-geo-archive type object"]
    assert pos["undo ipsec policy dr-map"] < pos["undo ipsec policy dr-map 10 isakmp"] if "undo ipsec policy dr-map" in pos else True
    assert pos["undo ipsec policy dr-map 10 isakmp"] < pos["undo ipsec proposal dr-esp"] < pos["undo ike proposal 10"]
    assert pos["undo ipsec policy dr-map 10 isakmp"] < pos["undo acl number 3900"]
    # and a create puts the objects first
    cmds = [c.strip() for c in vf.commands(vf.plan_change(vf.Node(""), want, HW), HW)]
    assert cmds.index("ip address-set dr-h-geo-archive type object") < cmds.index("security-policy")
    assert cmds.index("ike peer dr-miyun") < cmds.index("ipsec policy dr-map 10 isakmp")


def test_changed_port_removes_the_old_line():
    m = model()
    running = vf.intended(m, str(TEMPLATES))
    want = vf.intended(model(flows=[dict(FLOWS[0], port=5433), FLOWS[1]]), str(TEMPLATES))
    cmds = [c.strip() for c in vf.commands(vf.plan_change(running, want, HW), HW)]
    assert "service protocol tcp destination-port 5433" in cmds
    assert "undo service protocol tcp destination-port 5432" in cmds
    # the new port goes in before the old one leaves (never a rule without a service = any)
    assert cmds.index("service protocol tcp destination-port 5433") < cmds.index("undo service protocol tcp destination-port 5432")


def test_read_back_fails_on_an_extra_line_and_on_a_missing_profile():
    m = model()
    want = vf.intended(m, str(TEMPLATES))
    assert vf.verify(want, want, HW, m) == []
    text = vf.canonical(want, HW).replace("  service protocol tcp destination-port 5432\n",
                                          "  service protocol tcp destination-port 5432\n  service protocol tcp destination-port 22\n")
    assert any("dr-pg-replication" in p and "differs" in p for p in vf.verify(tree("#\n" + text), want, HW, m))
    text = vf.canonical(want, HW).replace("  profile ips site-ips\n", "", 1)
    probs = vf.verify(tree(text), want, HW, m)
    assert any("no ips profile" in p for p in probs), probs
    extra = tree(vf.canonical(want, HW) + "ip address-set dr-h-stale type object\n address 0 192.0.2.99 mask 32\n")
    assert "extra section: ip address-set dr-h-stale type object" in vf.verify(extra, want, HW, m)


def test_single_valued_kept_next_to_new_is_removed_on_restore():
    backup = tree("#\nike peer dr-miyun\n remote-address 203.0.113.2\n#\n")
    both = tree("#\nike peer dr-miyun\n remote-address 203.0.113.2\n remote-address 203.0.113.9\n#\n")
    assert vf.commands(vf.plan_restore(both, backup, HW), HW) == ["ike peer dr-miyun", " undo remote-address 203.0.113.9", " quit"]


@pytest.mark.parametrize("platform", sorted(vf.PLATFORMS))
def test_every_permit_carries_both_profiles(platform):
    m = model(platform)
    tree_ = vf.intended(m, str(TEMPLATES))
    assert vf.profile_problems(tree_, m) == []
    text = vf.render(m, str(TEMPLATES))
    assert "site-ips" in text and "site-av" in text


def test_junos_flat_plan_and_secret():
    m = model("juniper_junos")
    want = vf.intended(m, str(TEMPLATES))
    jp = m.platform
    seed = tree("set system host-name SRX\nset security address-book global address dr-h-stale 192.0.2.99/32\n"
                "set security policies from-zone trust to-zone untrust policy site-mgmt then permit\n", jp)
    steps = vf.plan_change(seed, want, jp)
    cmds = vf.commands(steps, jp)
    assert cmds[0] == "delete security address-book global address dr-h-stale 192.0.2.99/32"
    assert not any("site-mgmt" in c for c in cmds)          # the site's own policy is not ours
    assert PSK not in vf.show(steps, jp) and "pre-shared-key ******" in vf.show(steps, jp)
    assert vf.plan_change(want, want, jp) == [] and vf.verify(want, want, jp, m) == []
