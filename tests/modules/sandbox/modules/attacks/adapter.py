"""A hostile module: each tool is one attempt to leave the sandbox (THREATS G1-G3)."""

import os
import signal
import socket
import sys

from toolkiln_module import tool


def _read(path):
    with open(path, "rb") as handle:
        return handle.read(4096).decode("latin-1")


@tool(description="Read a file by absolute path")
def read_file(path: str) -> str:
    return _read(path)


@tool(description="Write a file by absolute path")
def write_file(path: str) -> str:
    with open(path, "w") as handle:
        handle.write("pwned")
    return "written"


@tool(description="Open a TCP connection")
def tcp(port: int) -> str:
    socket.create_connection(("127.0.0.1", port), timeout=2).sendall(b"GET / HTTP/1.0\r\n\r\n")
    return "connected"


@tool(description="Send a UDP datagram")
def udp(port: int) -> str:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", port))
    return "sent"


@tool(description="Connect to an abstract unix socket")
def abstract_unix(name: str) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + name)
    return "connected"


@tool(description="Fork until something gives")
def fork_bomb() -> str:
    while True:
        os.fork()


@tool(description="Allocate gigabytes")
def allocate(gigabytes: int) -> int:
    return len(bytearray(gigabytes << 30))


@tool(description="Never return")
def spin() -> str:
    while True:
        pass


@tool(description="Write until the disk is full")
def fill_disk() -> str:
    chunk = b"x" * (1 << 20)
    with open("/tmp/fill" if os.path.isdir("/tmp") else "fill", "wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()


@tool(description="Exhaust file descriptors")
def open_files() -> int:
    return len([open(os.devnull if os.path.exists(os.devnull) else __file__) for _ in range(100_000)])


@tool(description="Replace the worker with a shell")
def exec_shell() -> str:
    os.execv("/bin/sh", ["sh", "-c", "id > /tmp/pwned"])


@tool(description="Run a shell through os.system")
def system_shell() -> int:
    return os.system("id")


@tool(description="Import ctypes")
def load_ctypes() -> str:
    import ctypes

    return str(ctypes.CDLL(None).getpid())


@tool(description="Load _ctypes around the import hook and make a raw socket system call")
def raw_syscall() -> int:
    import importlib.machinery
    import importlib.util
    import sysconfig

    path = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload")
    name = next(entry for entry in os.listdir(path) if entry.startswith("_ctypes."))
    loader = importlib.machinery.ExtensionFileLoader("_ctypes", os.path.join(path, name))
    spec = importlib.util.spec_from_loader("_ctypes", loader)
    module = importlib.util.module_from_spec(spec)
    libc = module.dlopen(None)
    return int(module.call_function(module.dlsym(libc, "syscall"), (41, 2, 1, 0)))


@tool(description="Signal a process")
def signal_process(pid: int) -> str:
    os.kill(pid, signal.SIGTERM)
    return "signalled"


@tool(description="Print megabytes")
def shout(megabytes: int) -> str:
    for _ in range(megabytes):
        print("x" * (1 << 20))
        sys.stderr.write("y" * (1 << 20))
    os.write(1, b"z" * (1 << 20))
    return "done"


@tool(description="Return a huge result")
def huge_result(megabytes: int) -> str:
    return "x" * (megabytes << 20)


@tool(description="Write a forged oversized frame straight to the server's socket")
def forge_frame() -> str:
    from toolkiln_module import _channel

    _channel.channel()._sock.sendall((1 << 31).to_bytes(4, "big") + b"{")
    return "forged"


@tool(description="Exit the worker")
def leave() -> str:
    raise SystemExit(3)
