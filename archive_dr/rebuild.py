"""`archive-dr rebuild HOST`: bring a dead DR-site host back from bare metal, offline.

Also registers the secret kind ``gpg_signing`` (the package depot's signing key)
with archive_dr.secrets.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from archive_dr import secrets


def gen_gpg_signing(name: str, existing: dict) -> dict:
    """An ed25519 OpenPGP signing key: ``<name>`` (armored secret key) and ``<name>_pub``."""
    with tempfile.TemporaryDirectory(prefix="archive-dr-gpg-") as home:
        Path(home).chmod(0o700)
        base = ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run(base + ["--quick-gen-key", f"archive-dr package depot ({name}) <depot@archive-dr.invalid>",
                               "ed25519", "sign", "never"], check=True, capture_output=True)
        private = subprocess.run(base + ["--armor", "--export-secret-keys"], check=True, capture_output=True,
                                 text=True).stdout
        public = subprocess.run(base + ["--armor", "--export"], check=True, capture_output=True, text=True).stdout
    return {name: private, f"{name}_pub": public}


secrets.GENERATORS.setdefault("gpg_signing", gen_gpg_signing)
