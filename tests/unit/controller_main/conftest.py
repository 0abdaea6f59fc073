"""Reuse the in-process API server fixtures of tests/unit/k8s."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).parents[1] / "k8s" / "conftest.py"
_spec = importlib.util.spec_from_file_location("k8s_apiserver_fixtures", _PATH)
assert _spec and _spec.loader
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("k8s_apiserver_fixtures", _fixtures)
_spec.loader.exec_module(_fixtures)

apiserver = _fixtures.apiserver
raw = _fixtures.raw
start_apiserver = _fixtures.start_apiserver
k8s_pki = _fixtures.k8s_pki
k8s_tokens = _fixtures.k8s_tokens
harness = _fixtures.harness
node_kubeconfig = _fixtures.node_kubeconfig
