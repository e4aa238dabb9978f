#!/usr/bin/env python3
"""A small Net Queue peer, written from the seed's description (stdlib only), for compatibility tests.

    netqueue_peer.py client HOST PORT [--status TEXT] [--count N] [--timeout S] [--put ITEM ...]
        Connects (CONN, waits for CONN, sends STATUS if given). With --put, sends the items in one
        ENQUEUE and closes with DISCONN. With --count, prints N items (one per line) and closes.
    netqueue_peer.py server HOST PORT
        Binds, prints "ready PORT", then serves; commands on stdin, one per line:
          put ITEM...      dispatch each item to one client (choose_dispatch: round robin over
                           clients whose STATUS is not "producer" and does not say full=1)
          clients          print "clients N" and each client's last STATUS
          get N            print N items that clients enqueued to the server ("item X" lines)
          quit             close: DISCONN to every client, then exit
        Every command is answered with a line ending in "ok" (or "full", "empty").

The frame: 4-byte big-endian signed length (of type + data), 2-byte big-endian signed type, data.
This peer counts bytes in the length. It knows only types 1-6, as the original program did, and
closes a connection that sends anything else.
"""
import select
import socket
import struct
import sys
import time

CONN, DISCONN, STATUS, PING, PONG, ENQUEUE = 1, 2, 3, 4, 5, 6


class Empty(Exception):
    pass


class Full(Exception):
    pass


def create_msg(msg_type, data=b""):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return struct.pack(">ih", 2 + len(data), msg_type) + data


class Conn:
    """One socket with a receive buffer that yields whole frames."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def send(self, msg_type, data=b""):
        self.sock.sendall(create_msg(msg_type, data))

    def read_frames(self):
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return []
        self.buf += chunk
        frames = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack(">i", self.buf[:4])
            if length < 2 or length > 16 * 1024 * 1024:
                self.closed = True
                return frames
            if len(self.buf) < 4 + length:
                break
            (msg_type,) = struct.unpack(">h", self.buf[4:6])
            frames.append((msg_type, self.buf[6 : 4 + length]))
            self.buf = self.buf[4 + length :]
        return frames


class Client:
    def __init__(self, status=None):
        self.status = status
        self.local_queue = []
        self.conn = None

    def get_status(self):
        return self.status

    def handle_sv_status(self, data):
        pass

    def handle_sv_enqueue(self, data):
        self.local_queue.extend(data.split("\n"))

    def connect(self, addr, port):
        sock = socket.create_connection((addr, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = Conn(sock)
        self.conn.send(CONN)
        deadline = time.time() + 5
        connected = False
        while not connected and time.time() < deadline:
            for msg_type, data in self._read(deadline - time.time()):
                if msg_type == CONN and not connected:
                    connected = True
                    status = self.get_status()
                    if status is not None:
                        self.conn.send(STATUS, status)
                else:
                    self._handle(msg_type, data)
        if not connected:
            raise RuntimeError("no CONN from the server")

    def _read(self, timeout):
        ready, _, _ = select.select([self.conn.sock], [], [], max(0, timeout) if timeout is not None else None)
        return self.conn.read_frames() if ready else []

    def _handle(self, msg_type, data):
        if msg_type == PING:
            self.conn.send(PONG)
        elif msg_type == STATUS:
            self.handle_sv_status(data.decode("utf-8"))
        elif msg_type == ENQUEUE:
            self.handle_sv_enqueue(data.decode("utf-8"))
        elif msg_type == DISCONN:
            self.conn.closed = True

    def poll(self, block=False, timeout=None):
        frames = self._read(timeout if block else 0)
        for msg_type, data in frames:
            self._handle(msg_type, data)

    def get(self, block=True, timeout=None):
        deadline = None if timeout is None else time.time() + timeout
        while not self.local_queue:
            if not block or self.conn.closed or (deadline is not None and time.time() >= deadline):
                raise Empty()
            self.poll(True, None if deadline is None else deadline - time.time())
        return self.local_queue.pop(0)

    def put(self, msg):
        self.conn.send(ENQUEUE, msg)

    def close(self, signal_disconn=True):
        if signal_disconn and not self.conn.closed:
            self.conn.send(DISCONN)
        self.conn.sock.close()


class ClientConn:
    def __init__(self, sock):
        self.conn = Conn(sock)
        self.status = ""
        self.connected = False


class Server:
    def __init__(self):
        self.clients = []
        self.local_queue = []
        self.next = 0

    def bind(self, addr, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        return self.sock.getsockname()[1]

    def choose_dispatch(self):
        ready = [c for c in self.clients if c.connected and "producer" not in c.status and "full=1" not in c.status]
        if not ready:
            return None
        self.next = (self.next + 1) % len(ready)
        return ready[self.next]

    def handle_cl_status(self, client, data):
        client.status = data

    def handle_cl_enqueue(self, client, data):
        self.local_queue.extend(data.split("\n"))

    def accept(self):
        sock, _ = self.sock.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients.append(ClientConn(sock))

    def serve_client(self, client):
        for msg_type, data in client.conn.read_frames():
            if msg_type == CONN:
                client.connected = True
                client.conn.send(CONN)
            elif msg_type == PING:
                client.conn.send(PONG)
            elif msg_type == STATUS:
                self.handle_cl_status(client, data.decode("utf-8"))
            elif msg_type == ENQUEUE:
                self.handle_cl_enqueue(client, data.decode("utf-8"))
            elif msg_type == DISCONN:
                client.conn.closed = True
            elif msg_type == PONG:
                pass
            else:
                client.conn.closed = True
        if client.conn.closed:
            client.conn.sock.close()
            self.clients.remove(client)

    def poll(self, timeout):
        socks = [self.sock] + [c.conn.sock for c in self.clients]
        ready, _, _ = select.select(socks, [], [], timeout)
        for sock in ready:
            if sock is self.sock:
                self.accept()
            else:
                for client in list(self.clients):
                    if client.conn.sock is sock:
                        self.serve_client(client)

    def put(self, msg, block=True, timeout=5):
        deadline = time.time() + timeout
        while True:
            client = self.choose_dispatch()
            if client is not None:
                client.conn.send(ENQUEUE, msg)
                return
            if not block or time.time() >= deadline:
                raise Full()
            self.poll(0.05)

    def close(self):
        for client in self.clients:
            try:
                client.conn.send(DISCONN)
                client.conn.sock.close()
            except OSError:
                pass
        self.sock.close()


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_client(args):
    host, port = args[0], int(args[1])
    status, count, timeout, items = None, 0, 10.0, []
    i = 2
    while i < len(args):
        if args[i] == "--status":
            status, i = args[i + 1], i + 2
        elif args[i] == "--count":
            count, i = int(args[i + 1]), i + 2
        elif args[i] == "--timeout":
            timeout, i = float(args[i + 1]), i + 2
        elif args[i] == "--put":
            items, i = args[i + 1 :], len(args)
        else:
            raise SystemExit("unknown argument " + args[i])
    client = Client(status)
    client.connect(host, port)
    if items:
        client.put("\n".join(items))
    for _ in range(count):
        try:
            say(client.get(True, timeout))
        except Empty:
            client.close()
            raise SystemExit(3)
    client.close()


def run_server(args):
    server = Server()
    port = server.bind(args[0], int(args[1]))
    say("ready %d" % port)
    stdin_buf = ""
    while True:
        socks = [server.sock, sys.stdin] + [c.conn.sock for c in server.clients]
        ready, _, _ = select.select(socks, [], [], 1.0)
        for sock in ready:
            if sock is sys.stdin:
                chunk = sys.stdin.readline()
                if not chunk:
                    server.close()
                    return
                stdin_buf = chunk.strip()
                words = stdin_buf.split(" ")
                if words[0] == "put":
                    try:
                        for item in words[1:]:
                            server.put(item)
                        say("put ok")
                    except Full:
                        say("put full")
                elif words[0] == "clients":
                    say("clients %d" % len([c for c in server.clients if c.connected]))
                    for c in server.clients:
                        say("status " + c.status)
                    say("clients ok")
                elif words[0] == "get":
                    deadline = time.time() + 10
                    while len(server.local_queue) < int(words[1]) and time.time() < deadline:
                        server.poll(0.05)
                    if len(server.local_queue) < int(words[1]):
                        say("get empty")
                    else:
                        for _ in range(int(words[1])):
                            say("item " + server.local_queue.pop(0))
                        say("get ok")
                elif words[0] == "quit":
                    server.close()
                    say("quit ok")
                    return
            elif sock is server.sock:
                server.accept()
            else:
                for client in list(server.clients):
                    if client.conn.sock is sock:
                        server.serve_client(client)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        run_client(sys.argv[2:])
    else:
        run_server(sys.argv[2:])
