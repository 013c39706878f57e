"""The one line a bad file gives (``UserError``, exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from probe.errors import UserError


def one_line(load: Callable[[Path], object], path: Path, text: str) -> str:
    """Write ``text`` to ``path``, load it, and return the single problem line it gives."""
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        load(path)
    (line,) = exc.value.problems
    assert "\n" not in line and exc.value.exit_status == 2
    return line
