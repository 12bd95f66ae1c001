#!/usr/bin/env python3
"""Python's asyncio echo server: the coroutine-per-connection reference.

    py_asyncio_echo.py [--uvloop] [--udp] ADDRESS

Streams (TCP, or a Unix socket for a path): asyncio.start_server (or
start_unix_server) with a coroutine per connection that loops
reader.read(16384), writer.write(data), await writer.drain() until EOF, as
the asyncio documentation writes it. --udp: a DatagramProtocol whose
datagram_received sends the datagram back (asyncio has no datagram
streams).

--uvloop runs the same code on uvloop's event loop (libuv) instead of
asyncio's own selector loop; it exits with status 3 and a message when the
uvloop module cannot be imported (Debian: python3-uvloop, for Debian's
python3).

ADDRESS is HOST:PORT, [V6]:PORT or a Unix socket path; port 0 picks a free
port. The first line on stdout is "listening on ADDRESS" with the real
address. SIGINT and SIGTERM close the server and exit 0. The listen backlog
is 4096 (asyncio's default is 100) so the benchmark's 1,000 connections
arrive at once, and the soft RLIMIT_NOFILE is raised to 4096 (a higher one
is kept); TCP_NODELAY is asyncio's and uvloop's default, set anyway as
every server of bench/ does.
"""
import asyncio
import resource
import signal
import socket
import sys

BUFSZ = 16384   # as every echo server of bench/
BACKLOG = 4096
NOFILE = 4096


async def echo(reader, writer):
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = await reader.read(BUFSZ)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the client went away: nothing to echo to
    finally:
        writer.close()


class DatagramEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def parse_address(text):
    """(family, address) from HOST:PORT, [V6]:PORT or a path."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    if text.startswith(("/", ".", "@")):
        # A leading NUL makes an abstract name, as "@NAME" elsewhere.
        return socket.AF_UNIX, ("\0" + text[1:] if text[0] == "@" else text)
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("expected HOST:PORT, [V6]:PORT or a path: " + text)
    if host.startswith("[") and host.endswith("]"):
        return socket.AF_INET6, (host[1:-1], int(port))
    if host == "localhost":
        host = "127.0.0.1"
    elif host in ("", "*"):
        host = "0.0.0.0"
    return socket.AF_INET, (host, int(port))


def format_address(family, address):
    if family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode(errors="replace")
        return "@" + address[1:] if address.startswith("\0") else address
    if family == socket.AF_INET6:
        return "[%s]:%d" % address[:2]
    return "%s:%d" % address


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard), hard))


def bound_socket(family, address, kind):
    """A socket bound to address: asyncio would resolve names and, for an
    empty host, bind every family; the benchmark wants the one it named."""
    sock = socket.socket(family, kind)
    if family != socket.AF_UNIX and kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


async def serve(family, address, udp):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if udp:
        sock = bound_socket(family, address, socket.SOCK_DGRAM)
        transport, _ = await loop.create_datagram_endpoint(DatagramEcho,
                                                           sock=sock)
        bound, closer = sock.getsockname(), transport
    else:
        sock = bound_socket(family, address, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            server = await asyncio.start_unix_server(echo, sock=sock,
                                                     backlog=BACKLOG)
        else:
            server = await asyncio.start_server(echo, sock=sock,
                                                backlog=BACKLOG)
        bound, closer = sock.getsockname(), server
    print("listening on " + format_address(family, bound), flush=True)
    await stop.wait()
    closer.close()
    # Not wait_closed(): from Python 3.12 it waits for every connection,
    # and stopping must not wait on a client that never hangs up.


def main(argv):
    args = argv[1:]
    use_uvloop = "--uvloop" in args
    udp = "--udp" in args
    args = [a for a in args if a not in ("--uvloop", "--udp")]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: py_asyncio_echo.py [--uvloop] [--udp] ADDRESS",
              file=sys.stderr)
        return 2
    raise_nofile()
    family, address = parse_address(args[0])
    coro = serve(family, address, udp)
    if not use_uvloop:
        asyncio.run(coro)
        return 0
    try:
        import uvloop
    except ImportError as e:
        coro.close()
        print("py_asyncio_echo.py: --uvloop: %s (Debian: python3-uvloop, for "
              "Debian's python3)" % e, file=sys.stderr)
        return 3
    if hasattr(uvloop, "run"):  # uvloop 0.18+; install() is deprecated
        uvloop.run(coro)
    else:
        uvloop.install()
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
