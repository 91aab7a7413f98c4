#!/usr/bin/env bash
# Idempotent fresh-machine setup for drlb (Debian 12, as root).
#  - installs the Debian packages the build and the tests use;
#  - reserves 2 MiB hugepages and mounts hugetlbfs on /dev/hugepages.
# If hugepages cannot be had, it says so; the tests then run DPDK with --no-huge
# (see scripts/eal-mem.sh), which works for every vdev drlb uses, only slower.
set -euo pipefail

PKGS=(dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config build-essential
      iproute2 ethtool tcpdump curl iputils-ping python3 procps psmisc libpcap-dev
      systemd lua5.3 valgrind apache2-utils exabgp bird2)

need=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Hugepages: 1024 x 2 MiB. Harmless if already reserved; never lowers a larger pool.
HP=${DRLB_HUGEPAGES:-1024}
if [ -w /proc/sys/vm/nr_hugepages ]; then
  cur=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$cur" -lt "$HP" ]; then echo "$HP" > /proc/sys/vm/nr_hugepages 2>/dev/null || true; fi
fi
if ! mountpoint -q /dev/hugepages 2>/dev/null; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
free_hp=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if mountpoint -q /dev/hugepages && [ "${free_hp:-0}" -ge 256 ]; then
  echo "setup: hugepages ok (${free_hp} x 2 MiB free on /dev/hugepages)"
else
  echo "setup: hugepages unavailable (free=${free_hp:-0}); DPDK runs will use --no-huge"
fi
