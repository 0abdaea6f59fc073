"""What a case expects: per (protocol, port), a truth table that starts from the case's
default (usually "everything connects") and applies explicit expectations in order,
later ones overriding earlier ones, as upstream's Reachability does. The expectations
are written by hand per case; nothing here evaluates policies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netpol.model import ALL_COMBOS, Combo
from netpol.truthtable import TruthTable


def _matches(pattern: str, key: str) -> bool:
    """'*' any pod, 'x/*' any pod of x, '*/a' pod a of any namespace, 'x/a' one pod."""
    if pattern == "*":
        return True
    ns, _, pod = pattern.partition("/")
    kns, _, kpod = key.partition("/")
    if not pod:
        raise ValueError(f"bad peer pattern {pattern!r}: want '*', 'ns/*', '*/pod', 'ns/pod'")
    return ns in ("*", kns) and pod in ("*", kpod)


@dataclass
class Mismatch:
    combo: Combo
    src: str
    dst: str
    expected: bool
    observed: bool | None
    error: str | None = None


class Reachability:
    def __init__(self, pods: Sequence[str], default: bool = True,
                 combos: Iterable[Combo] = ALL_COMBOS) -> None:
        self.pods = list(pods)
        self.combos = list(combos)
        self.expected = {combo: TruthTable(self.pods, default) for combo in self.combos}

    def expect(self, src: str = "*", dst: str = "*", *, ok: bool,
               proto: str | None = None, port: int | None = None) -> Reachability:
        """Set every src -> dst cell matching the patterns, for the matching combos."""
        hit = False
        for combo, table in self.expected.items():
            if proto not in (None, combo[0]) or port not in (None, combo[1]):
                continue
            for s in self.pods:
                for d in self.pods:
                    if _matches(src, s) and _matches(dst, d):
                        table.set(s, d, ok)
                        hit = True
        if not hit:
            raise ValueError(f"expectation {src} -> {dst} {proto}/{port} matches no cell")
        return self

    def mismatches(self, observed: dict[Combo, TruthTable],
                   errors: dict[tuple[Combo, str, str], str] | None = None) -> list[Mismatch]:
        errors = errors or {}
        out: list[Mismatch] = []
        for combo, table in self.expected.items():
            seen = observed.get(combo)
            for src, dst in table.cells():
                want = table.get(src, dst)
                got = seen.get(src, dst) if seen is not None and src in seen.values else None
                if got != want:
                    out.append(Mismatch(combo, src, dst, bool(want), got,
                                        errors.get((combo, src, dst))))
        return out

    def report(self, observed: dict[Combo, TruthTable],
               errors: dict[tuple[Combo, str, str], str] | None = None) -> str:
        """For each combo that differs: expected, observed and the comparison table
        ('.' agrees, 'X' differs), then the differing cells one per line."""
        wrong = self.mismatches(observed, errors)
        if not wrong:
            return "all cells match"
        parts: list[str] = []
        for combo in self.combos:
            cells = [m for m in wrong if m.combo == combo]
            if not cells:
                continue
            seen = observed.get(combo) or TruthTable(self.pods)
            comparison = TruthTable(self.pods, True)
            for m in cells:
                comparison.set(m.src, m.dst, False)
            title = f"{combo[0].upper()}/{combo[1]}: {len(cells)} cell(s) differ"
            parts.append("\n".join([
                title, "expected:", self.expected[combo].render(),
                "observed:", seen.render(),
                "comparison ('X' = differs):", comparison.render()]))
        lines = [f"  {m.combo[0]}/{m.combo[1]} {m.src} -> {m.dst}: expected "
                 f"{'connected' if m.expected else 'blocked'}, observed "
                 f"{_describe(m.observed)}{f' ({m.error})' if m.error else ''}"
                 for m in wrong]
        limit = 16
        more = [f"  … and {len(lines) - limit} more"] if len(lines) > limit else []
        return "\n\n".join(parts) + "\n\ndiffering cells:\n" + "\n".join(lines[:limit] + more)


def _describe(value: bool | None) -> str:
    return {True: "connected", False: "blocked", None: "not probed"}[value]
