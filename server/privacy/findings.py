"""The result of a scan, safe to print."""

from __future__ import annotations

from collections.abc import Mapping


class Findings:
    """What a scan found: kinds and counts, never the values.

    Nothing printable here holds matched text, so a Findings may be logged, put in a
    header or an error message as it is.
    """

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self._counts: dict[str, int] = dict(sorted((counts or {}).items()))

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def __bool__(self) -> bool:
        return bool(self._counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Findings) and other._counts == self._counts

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{kind}={n}" for kind, n in self._counts.items())
        return f"Findings({inner})"
