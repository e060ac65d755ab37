#!/usr/bin/env bash
# Installs the Debian packages ftap needs to build, test and demo.
# etcd-server and etcd-client: the etcd arbiter suite (scripts/etcd-test.sh) runs a real 3-member cluster.
# Idempotent and quiet when everything is present. Needs root.
set -euo pipefail
PKGS=(libnl-3-dev libnl-route-3-dev libpcap-dev pkg-config iproute2 iputils-ping ethtool tcpdump tshark iperf3 socat python3 procps gcc nftables hping3 etcd-server etcd-client
      redis-server redis-sentinel redis-tools)  # the last three: the kv suite (clients, and Sentinel for comparison)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing packages: ${missing[*]}; run as root (or sudo) to install them" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "deps.sh: swift is not on PATH (ftap needs Swift 6)" >&2; exit 1; }
