#!/usr/bin/env python3
"""The upload client of the original article, made non-interactive.

    article_upload_client.py HOST PORT FILE...

puts each FILE, in order, over one connection, exactly the article's way:
a struct.pack('i') length, the json.dumps header, then the file sent line
by line with sock.send (whose return value the article never checks).
Like the article, it never reads a reply; it closes as soon as it has
sent everything.
"""
import json
import os
import socket
import struct
import sys

coding = 'utf-8'


def put(sock, filename):
    filesize = os.path.getsize(filename)
    head_dic = {'cmd': 'put', 'filename': os.path.basename(filename),
                'filesize': filesize}
    head_json = json.dumps(head_dic)
    head_json_bytes = bytes(head_json, encoding=coding)
    head_struct = struct.pack('i', len(head_json_bytes))
    sock.send(head_struct)
    sock.send(head_json_bytes)
    with open(filename, 'rb') as f:
        for line in f:
            sock.send(line)
        else:
            print('upload successful', filename)


def main():
    if len(sys.argv) < 4:
        sys.exit('usage: article_upload_client.py HOST PORT FILE...')
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    for filename in sys.argv[3:]:
        put(sock, filename)
    sock.close()


if __name__ == '__main__':
    main()
