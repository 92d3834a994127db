"""Text from the server made safe for a terminal: a document's content (and
so an answer quoting it) could carry escape sequences that rewrite the
screen or the window title."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and C1 controls (ESC and CSI among them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    return _CONTROL.sub("", text)
