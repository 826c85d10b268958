"""A TCP proxy on 127.0.0.1 that a test can cut and heal: a network partition between two
processes on loopback, without iptables or any address but 127.0.0.1.

    proxy = Proxy(target_port)          # listens on proxy.port, forwards to target_port
    proxy.cut()                         # nothing passes either way; new connections wait
    proxy.heal()                        # traffic flows again
    proxy.close()

    Proxy(target_port, tap=record)      # record(connection, "in" | "out", data) sees every
                                        # chunk passed: "in" towards the target

A cut holds traffic rather than resetting connections, as a real partition drops packets:
the proxy stops reading, so the senders' data waits in socket buffers and their peers hear
nothing until their own timeouts fire (gRPC keepalives, Kafka request timeouts). A
connection that outlives the cut carries on; one its owner gave up on is closed by it.
"""

import select
import socket
import itertools
import threading
from typing import Callable

from conftest import free_port

_POLL_S = 0.05


class Proxy:
    def __init__(self, target_port: int, tap: Callable[[int, str, bytes], None] | None = None):
        self.target_port = target_port
        self._tap = tap
        self._connections = itertools.count()
        self.port = free_port()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(128)
        self._listener.settimeout(_POLL_S * 4)
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self):
        self._cut.set()

    def heal(self):
        self._cut.clear()

    def close(self):
        self._closed.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass
            self._sockets.clear()

    def _track(self, s: socket.socket):
        with self._lock:
            self._sockets.add(s)

    def _drop(self, *sockets: socket.socket):
        with self._lock:
            for s in sockets:
                self._sockets.discard(s)
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self):
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket):
        # A connection opened during a cut waits for the heal, as a SYN would be retried.
        while self._cut.is_set() and not self._closed.is_set():
            self._closed.wait(_POLL_S)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            self._drop(client)
            return
        self._track(upstream)
        self._pump(client, upstream, next(self._connections))

    def _pump(self, a: socket.socket, b: socket.socket, connection: int):
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                if self._cut.is_set():
                    self._closed.wait(_POLL_S)
                    continue
                readable, _, _ = select.select([a, b], [], [], _POLL_S)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self._tap:
                        self._tap(connection, "in" if s is a else "out", data)
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            self._drop(a, b)
