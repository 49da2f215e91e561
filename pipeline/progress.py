"""Progress bars (tqdm) for every long step, one style: ETA, at most one redraw a second, and
nothing at all when stderr is not a terminal (logs stay clean) or when the caller is quiet."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, **kw: Any):
    """A tqdm bar; ``enabled=False`` (``-q``) or no terminal: a bar that draws nothing."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        mininterval=1.0,
        dynamic_ncols=True,
        disable=None if enabled else True,  # None: off without a TTY
        **kw,
    )
