"""Test tiers: `unit` (no root), `integration` (root: netns, OVS), `lab` (the shared lab).

Tests that need root are marked so; on a machine without root they fail loudly instead of
being skipped, because the README's test command runs as root.
"""

import sys
from pathlib import Path

# Shared test helpers (tests/waiting.py) import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
