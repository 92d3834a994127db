"""The heading path a section sits under, e.g. ``Install > Linux``."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HEADING_CHARS = 200
_SEPARATOR = " > "


@dataclass
class HeadingPath:
    _levels: list[tuple[int, str]] = field(default_factory=list)

    def enter(self, level: int, title: str) -> None:
        while self._levels and self._levels[-1][0] >= level:
            self._levels.pop()
        title = " ".join(title.split())
        if title:
            self._levels.append((level, title))

    @property
    def current(self) -> str | None:
        titles = [title for _, title in self._levels]
        # The innermost heading says most about the text: drop outer ones first.
        while len(titles) > 1 and len(_SEPARATOR.join(titles)) > MAX_HEADING_CHARS:
            titles.pop(0)
        if not titles:
            return None
        path = _SEPARATOR.join(titles)
        if len(path) > MAX_HEADING_CHARS:
            path = path[: MAX_HEADING_CHARS - 1].rstrip() + "…"
        return path
