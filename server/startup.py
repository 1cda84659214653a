"""The cyclic garbage collector, paused while a command starts up.

Start-up builds a heap that lives as long as the process: the imported modules (the MCP SDK's
hundreds of pydantic models) and, for `serve`, every tool with its schemas (over a million objects
for GitHub's spec). The collector's generational passes traverse that heap again and again while
it grows and find nothing to free; that is about a fifth of a cold start. So `toolkiln` pauses it
on entry, and start-up ends when the command begins, unless the command keeps the pause
(`Command.keeps_collector_paused`): then it ends when the command says so (`serve`, once its tools
are built and the first tools/list is answered, the last large allocation of its start-up) or
returns (`tools`, `call`, `inspect`). `serve` freezes what it built by then out of later
collections: it is never garbage, and collections while serving then only look at what serving
allocates.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["end_startup", "end_startup_by", "pause_collector"]

_paused = False
_lock = threading.Lock()


def pause_collector() -> None:
    """Pause the collector for start-up, unless the embedding program already runs without it."""
    global _paused
    with _lock:
        if gc.isenabled():
            gc.disable()
            _paused = True


def end_startup(*, freeze: bool = False) -> None:
    """Resume the collector if `pause_collector` paused it; with `freeze`, exempt today's heap.

    Freezing is for long-running servers only: a frozen object that later becomes part of a
    garbage cycle is never collected, which a server's start-up heap never does.
    """
    global _paused
    with _lock:
        if not _paused:
            return
        _paused = False
        if freeze:
            gc.freeze()
        gc.enable()


def end_startup_by(deadline_s: float) -> threading.Timer:
    """End start-up (freezing its heap) `deadline_s` from now at the latest, on a timer thread.

    For a server whose start-up normally ends with its first answered tools/list: one that no
    client lists must not run on without the collector.
    """
    timer = threading.Timer(deadline_s, end_startup, kwargs={"freeze": True})
    timer.name = "startup-deadline"
    timer.daemon = True
    timer.start()
    return timer
