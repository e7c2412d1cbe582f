#!/usr/bin/env python3
"""Opens many connections to a Unix socket and holds them, as a hostile local user would.

usage: hold_connections.py SOCKET COUNT HOLD_SECONDS [--report-after SECONDS]

SOCKET is a path or @name (abstract). Raises its own open-file limit to fit COUNT, connects COUNT
times (1 s timeout each), sleeps --report-after seconds (default 1), then reports on one line
    connected=N failed=N closed_by_server=N open=N
where closed_by_server counts connections the server has closed (EOF after any bytes it sent,
e.g. gRPC's HTTP/2 SETTINGS) and open those still open; then holds everything until HOLD_SECONDS
have passed since the start and exits 0.
"""
import resource
import select
import socket
import sys
import time


def main():
    path, count, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    report_after = 1.0
    if len(sys.argv) > 5 and sys.argv[4] == "--report-after":
        report_after = float(sys.argv[5])
    start = time.monotonic()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    address = "\0" + path[1:] if path.startswith("@") else path
    socks, failed = [], 0
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(address)
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    time.sleep(report_after)
    closed = 0
    for s in socks:
        s.setblocking(False)
        eof = False
        poller = select.poll()  # select() cannot take descriptors above 1023
        poller.register(s, select.POLLIN)
        while True:
            if not poller.poll(0):
                break
            try:
                data = s.recv(65536)
            except OSError:
                eof = True
                break
            if not data:
                eof = True
                break
        closed += eof
    print("connected=%d failed=%d closed_by_server=%d open=%d" % (len(socks), failed, closed, len(socks) - closed),
          flush=True)
    left = hold - (time.monotonic() - start)
    if left > 0:
        time.sleep(left)
    return 0


if __name__ == "__main__":
    sys.exit(main())
