#!/usr/bin/env python3
"""The echo client of the original articles, made non-interactive:

    article_echo_client.py HOST PORT MESSAGE...

connects once, sends each message with send() and prints what one recv(1024)
returns, as the articles' loop does."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.settimeout(10)
client.connect((host, port))
for message in sys.argv[3:]:
    client.send(message.encode('utf-8'))
    data = client.recv(1024)
    print(data.decode('utf-8'))
client.close()
