#!/usr/bin/env python3
"""A client of the module server's line protocol, written from issue 5's description (stdlib only),
for compatibility tests. Every message, both ways, is quote_plus(json.dumps(obj)) + "\\n"; every reply
is {"response": value, "error": bool, "traceback": text}.

    module_client.py HOST PORT ping
    module_client.py HOST PORT help
    module_client.py HOST PORT get_modules [PREFIX]
    module_client.py HOST PORT reload [NAME]
    module_client.py HOST PORT hello NAME_JSON
    module_client.py HOST PORT com MODULE FN [ARG_JSON ...]          (keep_alive false)
    module_client.py HOST PORT session MODULE CALLS_JSON            (a list of [fn, [args], keep_alive])
    module_client.py HOST PORT raw HEX [MODULE]                      (after an optional hello, send raw bytes)
    module_client.py HOST PORT partial MODULE                        (half a message, then silence)
    module_client.py HOST PORT flood SIZE                            (SIZE bytes without a newline)

Each prints one JSON object on stdout: {"replies": [envelope, ...], "closed": bool, "seconds": float},
where closed says whether the server closed the connection after the last reply.
"""
import json
import socket
import sys
import time
import urllib.parse


class Client:
    """The original client's API: ping, help, get_modules, reload, com (one connection each)."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.sock = None
        self.buffer = b""

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.buffer = b""

    def send(self, obj):
        self.send_raw((urllib.parse.quote_plus(json.dumps(obj)) + "\n").encode("utf-8"))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        """One reply envelope, or None when the server closed the connection first."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(urllib.parse.unquote_plus(line.decode("utf-8")))

    def closed(self):
        """True when the server closes the connection within 3 s (with nothing more to read)."""
        self.sock.settimeout(3)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()

    def hello(self, name):
        self.connect()
        self.send({"name": name})
        return self.recv()

    def ping(self):
        return self.hello("_ping")

    def help(self):
        return self.hello("_help")

    def get_modules(self, prefix=""):
        return self.hello("_get_modules." + prefix)

    def reload(self, module=""):
        return self.hello("_reload_" + urllib.parse.quote_plus(module))

    def call(self, function, args, keep_alive):
        self.send({"function": function, "args": list(args), "keep_alive": keep_alive})
        return self.recv()


def main(argv):
    host, port, command, rest = argv[1], int(argv[2]), argv[3], argv[4:]
    client = Client(host, port)
    started = time.time()
    replies = []
    if command == "ping":
        replies.append(client.ping())
    elif command == "help":
        replies.append(client.help())
    elif command == "get_modules":
        replies.append(client.get_modules(rest[0] if rest else ""))
    elif command == "reload":
        replies.append(client.reload(rest[0] if rest else ""))
    elif command == "hello":
        replies.append(client.hello(json.loads(rest[0])))
    elif command == "com":
        replies.append(client.hello(rest[0]))
        if replies[-1] is not None and replies[-1]["response"] == "ack":
            replies.append(client.call(rest[1], [json.loads(a) for a in rest[2:]], False))
    elif command == "session":
        replies.append(client.hello(rest[0]))
        for function, args, keep_alive in json.loads(rest[1]):
            if function is None:
                client.send({"function": None, "args": [], "keep_alive": False})
                break
            reply = client.call(function, args, keep_alive)
            replies.append(reply)
            if reply is None:
                break
    elif command == "raw":
        client.connect()
        if len(rest) > 1:
            client.send({"name": rest[1]})
            replies.append(client.recv())
        client.send_raw(bytes.fromhex(rest[0]))
        replies.append(client.recv())
    elif command == "partial":
        replies.append(client.hello(rest[0]))
        message = urllib.parse.quote_plus(json.dumps({"function": "f", "args": [], "keep_alive": True}))
        client.send_raw(message[: len(message) // 2].encode())
        replies.append(client.recv())
    elif command == "flood":
        client.connect()
        chunk = b"a" * 65536
        try:
            for _ in range(int(rest[0]) // len(chunk) + 1):
                client.send_raw(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            replies.append(client.recv())
        except ConnectionResetError:
            replies.append(None)
    else:
        raise SystemExit("unknown command " + command)
    try:
        closed = client.closed()
    except OSError:
        closed = True
    client.close()
    print(json.dumps({"replies": replies, "closed": closed, "seconds": time.time() - started}))


if __name__ == "__main__":
    main(sys.argv)
