#!/usr/bin/python3
"""A proxy in front of an S3 server that ignores Range on GETs of packs, as some
proxies and servers do: such a GET is sent on without its Range (signed again
with AWS Signature Version 4, since the client signed the Range) and answered
200 with the whole object.  Everything else passes through unchanged.

    s3_norange_proxy.py UPSTREAM PORTFILE COUNTFILE [--missing MISSFILE]

UPSTREAM is http://HOST:PORT; the proxy listens on a free port of 127.0.0.1,
written to PORTFILE once it listens.  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
and AWS_REGION sign the GETs without Range.  COUNTFILE gets one line per GET of
a pack answered whole: "whole KEY" when its body reached the client whole,
"cut KEY" when the client closed the connection before; and "head KEY" per HEAD
of a pack.

With --missing, the proxy instead passes Range on, and plays a store that lists
objects it does not serve (an eventually consistent one, or a misbehaving
proxy): MISSFILE, read at each request, holds lines "N KEY" (KEY as the path
ends, N the number of GETs and HEADs still to answer, -1 for all of them); such
a request is answered 404 NoSuchKey, N decremented in MISSFILE, and "404 KEY"
written to COUNTFILE.  Listings pass through unchanged.  A line "N KEY delete"
also deletes the object from UPSTREAM when it answers the first of those 404s
(a prune running alongside the client: "delete KEY" in COUNTFILE).  A line
"N KEY get" answers 404 to GETs only (HEADs pass: a store whose listing and
HEAD agree, and whose read does not).
"""
import datetime
import hashlib
import hmac
import http.client
import http.server
import os
import sys
import threading
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
PORTFILE, COUNTFILE = sys.argv[2], sys.argv[3]
MISSFILE = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--missing" else None
KEY, SECRET = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = os.environ.get("AWS_REGION", "us-east-1")
EMPTY = hashlib.sha256(b"").hexdigest()
lock = threading.Lock()


def sign(path, host, method="GET"):
    """The headers of a METHOD of PATH (already percent-encoded, no query, no body) signed for HOST."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": host, "x-amz-content-sha256": EMPTY, "x-amz-date": amz_date}
    names = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), names, EMPTY])
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + SECRET).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}, SignedHeaders={names}, Signature={sig}"
    return headers


def missing(command, path):
    """Whether this GET or HEAD of PATH is to answer 404 (MISSFILE says so; its count is taken)."""
    if not MISSFILE or command not in ("GET", "HEAD"):
        return False
    with lock:
        try:
            with open(MISSFILE) as f:
                lines = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return False
        for entry in lines:
            if len(entry) > 2 and entry[2] == "get" and command != "GET":
                continue
            if path.endswith(entry[1]) and int(entry[0]) != 0:
                if len(entry) > 2 and entry[2] == "delete":
                    entry.pop()
                    up = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
                    up.request("DELETE", path, headers=sign(path, UPSTREAM.netloc, "DELETE"))
                    status = up.getresponse().status
                    up.close()
                    with open(COUNTFILE, "a") as f:
                        f.write(f"delete {path} {status}\n")
                if int(entry[0]) > 0:
                    entry[0] = str(int(entry[0]) - 1)
                with open(MISSFILE + ".tmp", "w") as f:
                    f.write("".join(" ".join(entry) + "\n" for entry in lines))
                os.rename(MISSFILE + ".tmp", MISSFILE)
                with open(COUNTFILE, "a") as f:
                    f.write(f"404 {path}\n")
                return True
    return False


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def not_found(self, path):
        """S3's answer for a key it does not have (with the x-amz-request-id of an S3 server)."""
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Key>{path}</Key>'
                '<RequestId>proxy-404</RequestId></Error>').encode()
        self.send_response_only(404, "Not Found")
        self.send_header("x-amz-request-id", "proxy-404")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path.split("?", 1)[0]
        if "?" not in self.path and missing(self.command, path):
            self.not_found(path)
            return
        whole = (not MISSFILE and self.command == "GET" and "Range" in self.headers and "?" not in self.path and
                 ("/data/" in path or "/tree/" in path))
        up = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        if whole:
            headers = sign(self.path, self.headers["Host"])
        else:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            up.putheader(k, v)
        up.endheaders(body)
        resp = up.getresponse()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding"):
                self.send_header(k, v)
        data = resp.read()
        if "Content-Length" not in resp.headers:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.close_connection = True
        done = False
        try:
            self.end_headers()
            if self.command != "HEAD":
                for at in range(0, len(data), 1 << 16):
                    self.wfile.write(data[at:at + (1 << 16)])
                self.wfile.flush()
            done = True
        except (BrokenPipeError, ConnectionResetError):
            pass
        if whole and resp.status == 200:
            with lock, open(COUNTFILE, "a") as f:
                f.write(f"{'whole' if done else 'cut'} {path}\n")
        if self.command == "HEAD" and ("/data/" in path or "/tree/" in path):
            with lock, open(COUNTFILE, "a") as f:
                f.write(f"head {path}\n")
        up.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
server.daemon_threads = True
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
