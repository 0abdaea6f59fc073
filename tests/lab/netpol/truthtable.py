"""A from x to table of booleans, rendered as upstream's netpol truth tables:
'.' connected, 'X' blocked, '-' not probed (a pod to itself is never compared: traffic
over the pod's loopback does not reach the CNI)."""

from __future__ import annotations

from collections.abc import Sequence


class TruthTable:
    def __init__(self, pods: Sequence[str], default: bool | None = None) -> None:
        self.pods = list(pods)
        self.values: dict[str, dict[str, bool | None]] = {
            src: {dst: default for dst in self.pods} for src in self.pods}

    def set(self, src: str, dst: str, value: bool | None) -> None:
        if src not in self.values or dst not in self.values[src]:
            raise KeyError(f"{src} -> {dst}: not a pod of this table")
        self.values[src][dst] = value

    def get(self, src: str, dst: str) -> bool | None:
        return self.values[src][dst]

    def cells(self) -> list[tuple[str, str]]:
        """Every compared (src, dst) pair: all pairs except a pod to itself."""
        return [(s, d) for s in self.pods for d in self.pods if s != d]

    def render(self, mark: dict[bool | None, str] | None = None) -> str:
        mark = mark or {True: ".", False: "X", None: "-"}
        width = max(len(p) for p in self.pods)
        lines = [" " * width + "  " + " ".join(p.rjust(width) for p in self.pods)]
        for src in self.pods:
            row = " ".join(
                ("-" if src == dst else mark[self.values[src][dst]]).rjust(width)
                for dst in self.pods)
            lines.append(f"{src.ljust(width)}  {row}")
        return "\n".join(lines)
