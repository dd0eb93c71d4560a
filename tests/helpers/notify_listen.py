#!/usr/bin/env python3
"""notify_listen.py SOCKET: stands in for systemd's notification socket in
tests (Node.js has no unix datagram sockets). Binds a unix datagram socket
at SOCKET ('@name' = the abstract namespace), prints "bound" once it is
ready, then each datagram received as one JSON line {"t": ms, "msg": text}
on stdout, until stdin closes or it is killed."""
import json
import os
import select
import socket
import sys
import time

path = sys.argv[1]
addr = "\0" + path[1:] if path.startswith("@") else path
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(addr)
print("bound", flush=True)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096):
        break
    if s in r:
        data = s.recv(65536)
        print(json.dumps({"t": int(time.time() * 1000),
                          "msg": data.decode("utf-8", "replace")}), flush=True)
