"""Worker start: take the socket, confine the process, and only then import the module's code."""

from __future__ import annotations

import json
import os
import socket
import sys

# Relative: the package is top-level inside the worker and `modules.sdk.…` to the type checker.
from .. import _channel, registered  # noqa: TID252
from . import confine, serve

__all__ = ["main"]


def main() -> int:
    config = json.loads(sys.argv[1])
    chan = _channel.Channel(socket.socket(fileno=config["channel_fd"]))
    _channel.install(chan)
    module_root = config["module"]
    read_fds = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in ("/usr", module_root, config["sdk"])]
    write_fds = [os.open(config["scratch"], os.O_RDONLY | os.O_DIRECTORY)] if config.get("scratch") else []
    try:
        abi = confine.apply(config["limits"], read_fds, write_fds)
    except OSError as exc:
        chan.send({"op": "failed", "stage": "confine", "error": f"sandbox setup failed: {exc}"})
        return 2
    for fd in (*read_fds, *write_fds):
        os.close(fd)
    confine.block_imports()
    os.chdir(module_root)
    sys.path.insert(0, module_root)
    try:
        serve.load_entry(module_root, config["entry"])
        tools = [definition.describe() for definition in registered().values()]
        chan.send({"op": "ready", "tools": tools, "landlock_abi": abi})
    except BaseException as exc:  # a module raising SystemExit at import is a load failure too
        chan.send({"op": "failed", "stage": "import", "error": serve.describe_error(exc, module_root)["message"]})
        return 1
    serve.serve(chan, module_root, config["limits"])
    return 0
