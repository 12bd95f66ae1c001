#!/usr/bin/env python3
"""Python's socketserver echo servers: the references libsockserver ports.

    py_echo.py threading|forking|udp ADDRESS

threading  socketserver.ThreadingTCPServer (ThreadingUnixStreamServer for a
           path): a thread per connection
forking    socketserver.ForkingTCPServer (ForkingUnixStreamServer): a child
           per connection
udp        socketserver.ThreadingUDPServer: a thread per datagram

Written as the socketserver documentation writes them, with two settings
raised so that the benchmark's 1,000 concurrent connections are all served:
request_queue_size (listen backlog, 5 by default; Python 3.15 makes it
SOMAXCONN) and, for forking, max_children (40 by default; the library's
forking server in bench/ gets the same 4096). The handlers set TCP_NODELAY,
as every server of the benchmark does. ADDRESS is HOST:PORT, [V6]:PORT or a
Unix socket path; port 0 picks a free port. The first line on stdout is
"listening on ADDRESS" with the real address.
"""
import resource
import signal
import socket
import socketserver
import sys

BUFSZ = 16384   # as every echo server of bench/
BACKLOG = 4096  # 1,000 connections arrive at once
NOFILE = 4096


class StreamEcho(socketserver.BaseRequestHandler):
    def setup(self):
        if self.request.family in (socket.AF_INET, socket.AF_INET6):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        recv, sendall = self.request.recv, self.request.sendall
        while True:
            data = recv(BUFSZ)
            if not data:
                return
            sendall(data)


class DatagramEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


def server_class(model, family):
    """The socketserver class for a model and an address family."""
    unix = family == socket.AF_UNIX
    if model == "threading":
        base = (socketserver.ThreadingUnixStreamServer if unix
                else socketserver.ThreadingTCPServer)
    elif model == "forking":
        base = (socketserver.ForkingUnixStreamServer if unix
                else socketserver.ForkingTCPServer)
    else:
        base = (socketserver.ThreadingUnixDatagramServer if unix
                else socketserver.ThreadingUDPServer)

    class Server(base):
        request_queue_size = BACKLOG
        max_children = 4096
        daemon_threads = True
        block_on_close = False  # SIGTERM stops at once, clients or not
        address_family = family
    return Server


def parse_address(text):
    """(family, address) from HOST:PORT, [V6]:PORT or a path."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    if text.startswith(("/", ".")):
        return socket.AF_UNIX, text
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host, int(port))


def format_address(family, address):
    if family == socket.AF_UNIX:
        return address
    if family == socket.AF_INET6:
        return "[%s]:%d" % address[:2]
    return "%s:%d" % address


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("threading", "forking", "udp"):
        print("usage: py_echo.py threading|forking|udp ADDRESS",
              file=sys.stderr)
        return 2
    raise_nofile()
    # SIGTERM ends serve_forever through SystemExit, so the server closes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    family, address = parse_address(argv[2])
    handler = DatagramEcho if argv[1] == "udp" else StreamEcho
    with server_class(argv[1], family)(address, handler) as server:
        print("listening on " + format_address(family, server.server_address),
              flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
