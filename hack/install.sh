#!/usr/bin/env bash
# Installs everything Antrea-in-Python needs on Debian 12, as root. Re-running is harmless.
#   OS packages (apt), a virtualenv in .venv, the core and every plugin in editable mode.
#   --test also installs what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=(
  openvswitch-switch iproute2 iptables ipset conntrack ethtool kmod nftables
  containernetworking-plugins iperf3 tcpdump procps python3-venv ca-certificates
  # IPsec: charon, its VICI plugin (swanctl), kernel-libipsec (extra plugins: no kernel
  # ESP here), openssl for AES-NI/GCM in the userspace ESP (standard plugins).
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo ">> apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a system-wide OVS; the lab runs its own per node and does
# not need it. Leave it as the admin has it.
# Likewise strongSwan's postinst may start a system charon (/run/charon.*, only where
# systemd runs): ours run per node netns with a private /run and never talk to it.

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo ">> creating .venv"
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v '^WARNING: Location' || true

extras=""
((want_test)) && extras="[test]"
plugins=(plugins/*/)
echo ">> pip install -e .${extras} ${plugins[*]}"
args=(-e ".${extras}")
for p in "${plugins[@]}"; do args+=(-e "$p"); done
.venv/bin/pip install -q --no-build-isolation "${args[@]}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import antrea_core, antrea_lab" \
  || { echo "install failed: antrea_core/antrea_lab do not import" >&2; exit 1; }
echo ">> installed: $(.venv/bin/antrea-lab --version 2>/dev/null || echo antrea-lab)"
