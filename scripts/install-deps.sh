#!/bin/sh
# Installs what a fresh Debian 12 machine lacks for the lab and the tests.
# Idempotent: installs only missing packages.
set -eu
packages="podman runc netavark aardvark-dns iptables debootstrap uidmap iproute2 nftables tcpdump
          openssh-client xorriso par2 qpdf chromium fonts-noto-cjk rsync postgresql-client
          apt-utils dnsmasq-base debconf gnupg
          util-linux mount e2fsprogs parted xfsprogs btrfs-progs zstd openssl
          gpg gpgv gpgconf gpg-agent fontconfig systemd python3-minimal python3-venv acl"
missing=""
for pkg in $packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# promtool (the alert-rule tests) from Debian's prometheus package, unpacked, not installed:
# the controller must not run a Prometheus server of its own.
promtool=.cache/prometheus/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  if ! (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
  fi
  mkdir -p .cache/prometheus
  dpkg-deb -x "$tmp"/prometheus_*.deb .cache/prometheus
  rm -rf "$tmp"
  echo "unpacked $promtool"
fi
