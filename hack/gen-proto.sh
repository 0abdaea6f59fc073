#!/usr/bin/env bash
# Regenerate the checked-in Python code of antrea_core/apis/*.proto (needs grpcio-tools).
# Usage: bash hack/gen-proto.sh [OUT_DIR]   (OUT_DIR defaults to the source tree; the
# staleness test passes a temp dir and compares).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${1:-.}"
mkdir -p "$OUT/antrea_core/apis"
# Paths are relative to the repo root so the generated imports read
# "from antrea_core.apis import cni_pb2".
"$PY" -m grpc_tools.protoc -I . \
  --python_out="$OUT" --grpc_python_out="$OUT" \
  antrea_core/apis/cni.proto antrea_core/apis/controlplane.proto
"$PY" -m grpc_tools.protoc -I . --python_out="$OUT" --grpc_python_out="$OUT" antrea_core/apis/agentquery.proto
