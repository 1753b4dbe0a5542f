"""Run one simulated device in the foreground: python -m tests.fwsim huawei [seconds].

Prints `port N` and serves on 127.0.0.1 until the time is up or Ctrl+C. For manual
runs of playbooks/firewall-change.yml against inventory/fwsim (-e vendor_fw_port=N).
"""

import sys
import time

from .sim import FirewallSim

platform = sys.argv[1] if len(sys.argv) > 1 else "huawei"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
with FirewallSim(platform) as sim:
    print(f"port {sim.port}", flush=True)
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        pass
    print(sim.running_text())
