#!/usr/bin/env python3
"""Counts the bytes a client sends to a server: byte-counter.py TARGET_PORT PORT_FILE COUNT_FILE

Listens on a free port of 127.0.0.1 (written to PORT_FILE once listening),
forwards every connection to 127.0.0.1:TARGET_PORT, and keeps the total of
bytes sent towards the target in COUNT_FILE (rewritten after each chunk).
scripts/bench.sh puts it between lifeboat and Garage to measure what a copy
sends over the network. Runs until killed.
"""
import socket
import sys
import threading

target_port, port_file, count_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sent = 0
lock = threading.Lock()


def pipe(source, sink, counted):
    global sent
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                break
            sink.sendall(chunk)
            if counted:
                with lock:
                    sent += len(chunk)
                    with open(count_file, "w") as f:
                        f.write(f"{sent}\n")
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    with open(count_file, "w") as f:
        f.write("0\n")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    with open(port_file, "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pipe, args=(client, server, True), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client, False), daemon=True).start()


if __name__ == "__main__":
    main()
