#!/usr/bin/env bash
# Quick start, part 1: install everything, bring up a 2-node lab networked by
# antrea-agent (CNI=bridge for the plain bridge plugin), deploy the demo pods
# and print their connectivity matrix; with antrea, then apply a NetworkPolicy and
# print the matrix it leaves, then an Egress and the source IP the outside sees from
# each pod. Re-running replaces the previous demo lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install.sh
.venv/bin/antrea-lab down >/dev/null 2>&1 || true
exec .venv/bin/antrea-lab up --nodes "${NODES:-2}" --cni "${CNI:-antrea}" --demo
