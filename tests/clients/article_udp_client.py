#!/usr/bin/env python3
"""The UDP client of the original articles, made non-interactive:

    article_udp_client.py HOST PORT MESSAGE...

sends each message with sendto() and prints the reply of recvfrom(1024)."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(10)
for message in sys.argv[3:]:
    client.sendto(message.encode('utf-8'), (host, port))
    data, server_addr = client.recvfrom(1024)
    print(data.decode('utf-8'))
client.close()
