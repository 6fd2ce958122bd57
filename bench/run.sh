#!/usr/bin/env bash
# Reproduce lanlink's benchmarks on this machine (issue 5; docs/benchmarks.md):
#   sudo bench/run.sh            # full run: 7 data planes × 3 WAN scenarios × 3 rounds
#   sudo bench/run.sh --quick    # one round of 3 s tests
# Everything runs in throwaway network namespaces; missing tools are
# installed from Debian packages. Extra flags go to `go run ./bench`
# (see `go run ./bench -h`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
	echo "bench/run.sh: needs root (network namespaces, TUN devices): sudo $0 $*" >&2
	exit 1
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (figures are only comparable within one run)" >&2
exec go run ./bench "$@"
