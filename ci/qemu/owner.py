#!/usr/bin/env python3
"""The owner's side of ci/qemu-test.sh's power cut (issue 21), over HTTPS to 127.0.0.1:PORT
as a browser on the device's own page sends it (Origin: https://<Host>), the certificate
not verified (the device's own is self-signed):

  owner.py PORT saves PASSWORD LOG   logs in, then changes the label to save-1, save-2, ...
                                     on one connection until a request fails or
                                     --max-seconds pass; LOG gets "try N" before each save
                                     and "ack N" once the server acknowledged it (303 to
                                     /settings?saved). Exit 0 once a save was acknowledged.
  owner.py PORT label PASSWORD       logs in and prints the label /settings shows.

Errors go to stderr, with exit 1.
"""
import argparse
import html
import http.client
import re
import ssl
import sys
import time
import urllib.parse

p = argparse.ArgumentParser(description="the owner's requests for ci/qemu-test.sh")
p.add_argument("port", type=int)
p.add_argument("what", choices=["saves", "label"])
p.add_argument("password")
p.add_argument("log", nargs="?")
p.add_argument("--max-seconds", type=float, default=60)
args = p.parse_args()

HOST = f"127.0.0.1:{args.port}"
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def die(message):
    print(f"owner.py: {message}", file=sys.stderr)
    sys.exit(1)


class Owner:
    """One keep-alive HTTPS connection, and the owner's session cookie once logged in."""

    def __init__(self):
        self.conn = http.client.HTTPSConnection("127.0.0.1", args.port, context=TLS, timeout=30)
        self.cookie = None

    def request(self, method, path, form=None):
        headers = {"Origin": f"https://{HOST}"}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response, text

    def log_in(self):
        response, text = self.request("POST", "/login", {"password": args.password})
        cookie = response.getheader("Set-Cookie") or ""
        if response.status != 303 or not cookie.startswith("__Host-portico="):
            die(f"POST /login answered {response.status} {response.reason}, Set-Cookie {cookie!r}: {text[:200]}")
        self.cookie = cookie.split(";")[0]

    def settings(self):
        """The label and the csrf token /settings shows."""
        response, text = self.request("GET", "/settings")
        label = re.search(r'name="label" value="([^"]*)"', text)
        csrf = re.search(r'name="csrf" value="([^"]*)"', text)
        if response.status != 200 or not label or not csrf:
            die(f"GET /settings answered {response.status} {response.reason} without a label and a csrf field")
        return html.unescape(label.group(1)), html.unescape(csrf.group(1))


owner = Owner()
owner.log_in()
label, csrf = owner.settings()
if args.what == "label":
    print(label)
    sys.exit(0)

if not args.log:
    die("saves needs a LOG file")
acked = 0
end = time.monotonic() + args.max_seconds
with open(args.log, "w", buffering=1) as log:
    n = 0
    while time.monotonic() < end:
        n += 1
        log.write(f"try {n}\n")
        try:
            response, text = owner.request("POST", "/settings/label", {"label": f"save-{n}", "csrf": csrf})
        except (OSError, http.client.HTTPException) as e:
            print(f"owner.py: save {n}: {e!r} (the power cut, if it came)", file=sys.stderr)
            break
        if response.status != 303 or response.getheader("Location") != "/settings?saved":
            die(f"save {n}: POST /settings/label answered {response.status} {response.reason}: {text[:200]}")
        log.write(f"ack {n}\n")
        acked = n
if not acked:
    die("no save was acknowledged")
print(f"owner.py: {acked} saves acknowledged", file=sys.stderr)
