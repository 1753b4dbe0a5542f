"""SSH firewall device simulator used by the vendor_firewall tests (see sim.py)."""

from .sim import PROFILES, FirewallSim

__all__ = ["PROFILES", "FirewallSim"]
