from __future__ import annotations

# The modules under modules/ are sandboxed code; their own tests run inside a worker, never here.
collect_ignore_glob = ["modules/*"]
