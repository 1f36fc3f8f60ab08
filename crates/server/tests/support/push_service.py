#!/usr/bin/env python3
"""A push service's stand-in on loopback, for crates/server/tests/push.rs: an independent decoder.

It plays both halves a real deployment splits: the browser (it makes the subscriber's P-256
key and auth secret) and the push service (it checks each POST's VAPID JWT with py_vapid and
decrypts the body with http_ece, the reference implementations on PyPI).

Usage: push_service.py VAPID_PUBLIC_KEY MODE LOG
  MODE: ok (answer 201), gone (answer 410), slow (answer after 30 s), webhook (a webhook
  receiver: check the HMAC of "<timestamp>.<body>" with the secret in $WEBHOOK_SECRET, or
  read from the file $WEBHOOK_SECRET_FILE at each request).
Prints one JSON line on stdout: {"port", "p256dh", "auth"}; appends one JSON line per
request to LOG: {"ok": true, "claims", "payload", "headers", "at"} or {"ok": false, "error",
"headers", "at"}.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


VAPID_PUBLIC, MODE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
SUBSCRIBER = ec.generate_private_key(ec.SECP256R1())
AUTH = os.urandom(16)


def check_vapid(header, origin):
    # RFC 8292 section 3: "vapid t=<JWT>, k=<key>", parameters split by commas and spaces.
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError(f"scheme {scheme!r} is not vapid")
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    if parts.get("k") != VAPID_PUBLIC:
        raise ValueError("k is not the server's VAPID public key")
    header = json.loads(base64.urlsafe_b64decode(parts["t"].split(".")[0] + "=="))
    if header.get("alg") != "ES256":
        raise ValueError(f"JWT alg {header.get('alg')!r} is not ES256")
    claims = vapid_jwt.decode(parts["t"], VAPID_PUBLIC)  # raises on a bad signature
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    now = time.time()
    if not now < claims["exp"] <= now + 24 * 3600:
        raise ValueError(f"exp {claims['exp']} is not within 24 h")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError(f"sub {claims.get('sub')!r} is not a contact")
    return claims


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if MODE == "slow":
            time.sleep(30)
        # When the request arrived (Unix seconds, float): benches/push_latency.rs measures
        # from the push request to here.
        record = {"headers": {k.lower(): v for k, v in self.headers.items()}, "at": time.time()}
        try:
            if MODE == "webhook":
                if "WEBHOOK_SECRET_FILE" in os.environ:
                    with open(os.environ["WEBHOOK_SECRET_FILE"]) as f:
                        secret = f.read().strip().encode()
                else:
                    secret = os.environ["WEBHOOK_SECRET"].encode()
                signed = self.headers["X-Sshield-Timestamp"].encode() + b"." + body
                want = "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, self.headers["X-Sshield-Signature"]):
                    raise ValueError("HMAC signature does not match")
                record["payload"] = json.loads(body)
            else:
                origin = f"http://{self.headers['Host']}"
                record["claims"] = check_vapid(self.headers["Authorization"], origin)
                if self.headers["Content-Encoding"] != "aes128gcm":
                    raise ValueError("Content-Encoding is not aes128gcm")
                plain = http_ece.decrypt(
                    body, private_key=SUBSCRIBER, auth_secret=AUTH, version="aes128gcm"
                )
                record["payload"] = json.loads(plain)
            record["ok"] = True
        except Exception as e:  # every failure is reported to the test, none hidden
            record["ok"] = False
            record["error"] = f"{type(e).__name__}: {e}"
        with open(LOG, "a") as log:
            log.write(json.dumps(record) + "\n")
        status = {"gone": 410}.get(MODE, 201 if record["ok"] else 400)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
public = SUBSCRIBER.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
)
print(json.dumps({"port": server.server_address[1], "p256dh": b64(public), "auth": b64(AUTH)}), flush=True)
server.serve_forever()
