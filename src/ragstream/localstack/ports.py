"""Port checks: fail before starting anything, with a message that says what to do."""

from __future__ import annotations

import contextlib
import socket

from ragstream.localstack.errors import StackError

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    # SO_REUSEADDR as the servers set it, so a socket in TIME_WAIT from the
    # previous run does not count as "in use" but a listener does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(port: int, hint: str) -> None:
    if not port_is_free(port):
        raise StackError(f"port {port} is in use: {hint}")


def free_ports(count: int, host: str = HOST) -> list[int]:
    """Distinct ports the kernel considers free right now (sockets held open
    together, so no two are the same)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = HOST) -> int:
    """A port the kernel considers free right now."""
    return free_ports(1, host)[0]


def free_port_pair(host: str = HOST, tries: int = 50) -> int:
    """A port whose next port is free too (Kafka's controller takes it)."""
    for _ in range(tries):
        [port] = free_ports(1, host)
        if port < 65535 and port_is_free(port + 1, host):
            return port
    raise StackError("found no two free consecutive ports")


def accepts_connections(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
