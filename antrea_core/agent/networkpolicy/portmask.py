"""Port ranges as OpenFlow (value, mask) matches.

OVS matches a transport port with a bit mask, not a range, so ``port..endPort`` becomes
the smallest set of aligned power-of-two blocks covering it (the same decomposition
Antrea uses): 1000-1999 is 7 matches, a single port is one exact match, 0-65535 one
fully wildcarded match (we emit no port match at all for that).
"""

from __future__ import annotations

PORT_BITS = 16
FULL_MASK = (1 << PORT_BITS) - 1


def port_masks(start: int, end: int | None = None) -> list[tuple[int, int]]:
    """[(value, mask), ...] covering exactly ports start..end (inclusive).

    A mask of 0xffff is an exact port.
    """
    if end is None:
        end = start
    if not (0 <= start <= end <= FULL_MASK):
        raise ValueError(f"bad port range {start}-{end}")
    blocks: list[tuple[int, int]] = []
    while start <= end:
        # Largest block aligned on `start` that still fits in the range.
        size = start & -start if start else 1 << PORT_BITS
        while start + size - 1 > end:
            size >>= 1
        blocks.append((start, FULL_MASK ^ (size - 1)))
        start += size
    return blocks


def covered_ports(blocks: list[tuple[int, int]]) -> set[int]:
    """Every port a list of (value, mask) matches (for checks and tests)."""
    ports: set[int] = set()
    for value, mask in blocks:
        free = FULL_MASK ^ mask
        ports.update(value | bits for bits in range(free + 1) if bits & mask == 0)
    return ports
