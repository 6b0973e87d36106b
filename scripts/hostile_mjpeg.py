#!/usr/bin/env python3
"""A hostile MJPEG camera for scripts/soak-mjpeg.sh (test tooling, not the product's path).

Each connection gets the next behaviour of a fixed rotation: good frames for a while, a status
line dripped one byte a second, an endless header, a part that never has a newline, garbage
between parts, a 404, an immediate close, a truncated JPEG. `tag watch` must keep its memory and
open files flat while it is cut off, reconnects and goes on.
"""
import itertools
import socket
import sys
import threading
import time

JPEG = open(sys.argv[2], "rb").read()
HEAD = (b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n")


def part(body, length=True):
    h = b"--f\r\nContent-Type: image/jpeg\r\n"
    if length:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body + b"\r\n"


def good(s, seconds=20):
    s.sendall(HEAD)
    end = time.time() + seconds
    while time.time() < end:
        s.sendall(part(JPEG, length=int(time.time() * 10) % 2 == 0))
        time.sleep(1 / 30)


def drip_status(s):
    for b in b"HTTP/1.0 200 OK\r\n":
        s.sendall(bytes([b]))
        time.sleep(1)


def endless_header(s):
    s.sendall(b"HTTP/1.0 200 OK\r\n")
    for i in itertools.count():
        s.sendall(b"X-Pad-%d: %s\r\n" % (i, b"a" * 100))
        time.sleep(0.01)


def no_newline_part(s):
    s.sendall(HEAD + b"--f\r\nContent-Type: image/jpeg\r\n\r\n")
    block = b"A" * 65536
    while True:
        s.sendall(block)


def garbage(s):
    s.sendall(HEAD + part(JPEG) + b"garbage that is not a boundary\r\n" * 10)
    time.sleep(1)


def not_found(s):
    s.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")


def close_now(s):
    pass


def truncated(s):
    s.sendall(HEAD)
    for _ in range(50):
        s.sendall(part(JPEG[: len(JPEG) // 2]))
        time.sleep(1 / 30)


MIX = [good, drip_status, good, endless_header, good, no_newline_part, garbage, not_found,
       good, close_now, truncated]


def handle(conn, behaviour):
    try:
        conn.settimeout(30)
        conn.recv(4096)
        behaviour(conn)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port = int(sys.argv[1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    for behaviour in itertools.cycle(MIX):
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, behaviour), daemon=True).start()


if __name__ == "__main__":
    main()
