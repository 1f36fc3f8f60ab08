"""Schemathesis hook: signs every request to sshield-server as a joined host does.

tests/schemathesis.rs joins a host, then runs `st run` with SCHEMATHESIS_HOOKS naming this
module and SSHIELD_ST_HOST / SSHIELD_ST_SEED (the host's name and the hex of its ed25519
seed) in the environment. The signature covers the exact bytes requests sends, so it is added
by a requests auth object, which sees the prepared request (docs/server.md, "Signed requests").
"""

import base64
import hashlib
import os
import secrets
import time

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HOST = os.environ["SSHIELD_ST_HOST"]
KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(os.environ["SSHIELD_ST_SEED"]))


HEADERS = ("X-Sshield-Host", "X-Sshield-Timestamp", "X-Sshield-Nonce", "X-Sshield-Signature")


class SignedRequest(requests.auth.AuthBase):
    """Replaces the four headers with a good signature, when all four are there.

    `st run` is given placeholders for them with -H, so schemathesis counts them as the
    caller's credentials; a request it sends without one of them (a missing-header case, or
    a probe of whether authentication is enforced) goes out as it is, unsigned.
    """

    def __call__(self, request):
        if not all(name in request.headers for name in HEADERS):
            return request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        message = "\n".join(
            [
                "sshield-host-request-v1",
                request.method,
                request.path_url,
                hashlib.sha256(body).hexdigest(),
                timestamp,
                nonce,
                HOST,
            ]
        ).encode()
        request.headers["X-Sshield-Host"] = HOST
        request.headers["X-Sshield-Timestamp"] = timestamp
        request.headers["X-Sshield-Nonce"] = nonce
        request.headers["X-Sshield-Signature"] = base64.b64encode(KEY.sign(message)).decode()
        return request


@schemathesis.hook
def before_call(ctx, case, kwargs):
    kwargs["auth"] = SignedRequest()
