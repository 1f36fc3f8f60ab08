#!/usr/bin/env python3
"""A stand-in for journald's /dev/log while scripts/bench-pam runs.

Usage: syslog_sink.py SOCKET LOGFILE

Binds a datagram socket at SOCKET and appends every message to LOGFILE, one a line, until it
is killed. scripts/bench-pam bind-mounts SOCKET's directory over /dev in a private mount
namespace for each benchmark process, so the modules' syslog lines cost what they cost on a
server (one datagram each) instead of failing fast for want of /dev/log, and glibc's LOG_CONS
fallback (google-authenticator opens its log with it) does not write them to the machine's
console.
"""
import os
import socket
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, log = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(path)
    os.chmod(path, 0o666)
    with open(log, "ab", buffering=0) as out:
        while True:
            out.write(sock.recv(65536).rstrip(b"\0\n") + b"\n")


if __name__ == "__main__":
    main()
