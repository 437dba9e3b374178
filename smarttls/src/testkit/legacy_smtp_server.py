#!/usr/bin/env python3
"""STARTTLS test server on the system OpenSSL (Python standard library only).

Used by the SmartTLS testkit for what rustls cannot serve: TLS 1.0/1.1-only servers and legacy
suites. Usage:
  legacy_smtp_server.py --host 127.0.0.5 --port 2525 --cert chain.pem --key key.pem \
      --tls-min TLSv1 --tls-max TLSv1 --ciphers 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'
Prints "READY <port>" once listening. Stops on SIGTERM / when stdin closes.
"""
import argparse
import socket
import ssl
import sys
import threading
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}


def reply_loop(f_read, send, tls_ctx, conn, name, in_tls):
    while True:
        line = f_read()
        if not line:
            return None
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
            lines = [name.encode(), b"PIPELINING", b"8BITMIME"]
            if not in_tls:
                lines.append(b"STARTTLS")
            out = b"".join(b"250-" + l + b"\r\n" for l in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
            send(out)
        elif cmd == b"STARTTLS" and not in_tls:
            send(b"220 2.0.0 Ready to start TLS\r\n")
            return "starttls"
        elif cmd == b"QUIT":
            send(b"221 2.0.0 Bye\r\n")
            return None
        elif cmd == b"NOOP" or cmd == b"RSET":
            send(b"250 2.0.0 OK\r\n")
        else:
            send(b"502 5.5.2 Command not implemented\r\n")


def handle(conn, tls_ctx, name):
    try:
        conn.settimeout(15)
        conn.sendall(b"220 " + name.encode() + b" ESMTP legacy test server\r\n")
        buf = b""

        def read_plain():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return b""
                buf += chunk
            line, _, rest = buf.partition(b"\r\n")
            buf = rest
            return line + b"\r\n"

        r = reply_loop(read_plain, conn.sendall, tls_ctx, conn, name, False)
        if r != "starttls":
            return
        tls = tls_ctx.wrap_socket(conn, server_side=True)
        f = tls.makefile("rb")
        reply_loop(f.readline, tls.sendall, tls_ctx, tls, name, True)
    except Exception:
        pass
    finally:
        try:
            conn.close()
        except Exception:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--tls-min", default="TLSv1")
    ap.add_argument("--tls-max", default="TLSv1")
    ap.add_argument("--ciphers", default="ALL:@SECLEVEL=0")
    ap.add_argument("--name", default="legacy.test")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = VERSIONS[a.tls_min]
    ctx.maximum_version = VERSIONS[a.tls_max]
    ctx.set_ciphers(a.ciphers)
    ctx.load_cert_chain(a.cert, a.key)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, a.port))
    srv.listen(64)
    print("READY %d" % srv.getsockname()[1], flush=True)
    # Exit when the parent goes away (stdin closed).
    threading.Thread(target=lambda: (sys.stdin.read(), srv.close(), sys.exit(0)), daemon=True).start()
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn, ctx, a.name), daemon=True).start()


if __name__ == "__main__":
    main()
