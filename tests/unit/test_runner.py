"""The runner layer on a local play: stats and task results from events, failures in one line, artifacts rotated."""
from __future__ import annotations

import pytest

from archive_dr import runner

PLAY = """
- name: Local play
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Measure
      ansible.builtin.command: "echo '{\\"db\\": 1.5, \\"files\\": null}'"
      changed_when: true
    - name: Refuse
      ansible.builtin.fail:
        msg: "refused: {{ why }}"
      when: why | default('') != ''
    - name: Check each path
      ansible.builtin.assert:
        that: item != 'bad'
        fail_msg: "{{ item }} is inside the data pool"
        quiet: true
      loop: "{{ paths | default([]) }}"
    - name: Check the secret
      ansible.builtin.assert:
        that: secret | length > 0
        fail_msg: "Missing vault passphrase: run the secrets verb"
        quiet: true
      when: secret is defined
      no_log: true
"""


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "local.yml"
    path.write_text(PLAY)
    return path


def test_answers_come_from_events(playbook, tmp_path):
    result = runner.run_playbook(playbook, ["localhost,"], data_dir=tmp_path / "runner")
    assert result.ok and result.status == "successful" and result.rc == 0
    assert result.stats == {"localhost": runner.HostStats(ok=1, changed=1, skipped=3)}
    assert result.task_result("Measure", "localhost")["stdout"] == '{"db": 1.5, "files": null}'
    assert result.tasks_started() == ["Measure", "Refuse", "Check each path", "Check the secret"]
    assert [name for name, _ in result.plays()] == ["Local play"]


def test_a_failure_is_one_line_and_check_raises(playbook, tmp_path):
    result = runner.run_playbook(playbook, ["localhost,"], {"why": "no depot"}, data_dir=tmp_path / "runner")
    assert not result.ok and result.stats["localhost"].failed == 1
    assert result.outcome() == "task “Refuse” failed on localhost: refused: no depot"
    assert result.failure_messages() == ["refused: no depot"]
    with pytest.raises(runner.PlaybookFailed, match="refused: no depot"):
        result.check()


def test_a_loop_failure_gives_its_failed_items_reasons(playbook, tmp_path):
    result = runner.run_playbook(playbook, ["localhost,"], {"paths": ["good", "bad"]}, data_dir=tmp_path / "runner")
    assert result.failure_messages() == ["bad is inside the data pool"]
    assert result.outcome() == "task “Check each path” failed on localhost: bad is inside the data pool"


def test_a_censored_failure_gives_the_error_ansible_displayed(playbook, tmp_path):
    result = runner.run_playbook(playbook, ["localhost,"], {"secret": ""}, data_dir=tmp_path / "runner")
    assert result.failure_messages() == ["Missing vault passphrase: run the secrets verb"]


def test_check_mode_changes_nothing_and_artifacts_rotate(playbook, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "KEEP_ARTIFACTS", 2)
    for _ in range(3):
        result = runner.run_playbook(playbook, ["localhost,"], check=True, diff=True, data_dir=tmp_path / "runner")
    assert result.stats["localhost"].changed == 0           # command is skipped in check mode
    assert len(list((tmp_path / "runner" / "artifacts").iterdir())) == 2
    assert result.artifact_dir.exists() and (result.artifact_dir / "job_events").is_dir()


def test_a_signal_cancels_the_playbook_and_stops_the_caller(tmp_path):
    """ansible-runner turns SIGTERM into a cancel and returns: the caller must not go on to its next phase."""
    import signal
    import subprocess
    import sys
    import time

    play = tmp_path / "slow.yml"
    play.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.command: sleep 60\n")
    script = ("from pathlib import Path\nfrom archive_dr import runner\n"
              "runner.run_playbook(%r, ['localhost,'], data_dir=Path(%r))\nprint('went on')\n"
              % (str(play), str(tmp_path / "runner")))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(runner.paths.ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "runner").glob("artifacts/*/job_events/*.json")):
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "went on" not in out
    assert "runner.Canceled: slow.yml: canceled by a signal" in err, err[-2000:]
