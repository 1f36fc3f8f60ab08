#!/usr/bin/env python3
"""Enrolls N users, the same way, for each of the three PAM modules scripts/bench-pam compares.

Usage: setup_users.py DIR N TARGET KEYHEX

Makes, under DIR:
  oath/users.oath     pam_oath's usersfile: N lines `HOTP user - HEXKEY`, TARGET last (pam_oath
                      reads the file from the top and rewrites all of it on every success)
  ga/USER             one google-authenticator file per user, HOTP mode (`" HOTP_COUNTER 1`),
                      mode 0600 as pam_google_authenticator requires
  sshield/import.oath a copy of users.oath, for `sshield import users-oath`, which enrolls
                      everyone through the real CLI (the caller runs it)
  sshield/sshield.toml `store = "users"`; every other key keeps its default

Every user has the same HOTP secret in all three; TARGET's is KEYHEX, the others' are random.
"""
import base64
import os
import secrets
import sys


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    top, n, target, key_hex = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if n < 1:
        sys.exit("setup_users.py: N must be at least 1")
    users = [(f"u{i:06d}", secrets.token_hex(20)) for i in range(1, n)]
    users.append((target, key_hex))

    old = os.umask(0o077)
    try:
        for sub in ("oath", "ga", "sshield"):
            os.makedirs(os.path.join(top, sub), mode=0o700)
        text = "".join(f"HOTP {user} - {key}\n" for user, key in users)
        for path in ("oath/users.oath", "sshield/import.oath"):
            with open(os.path.join(top, path), "w") as f:
                f.write(text)
        for user, key in users:
            secret = base64.b32encode(bytes.fromhex(key)).decode()
            path = os.path.join(top, "ga", user)
            with open(path, "w") as f:
                f.write(f'{secret}\n" HOTP_COUNTER 1\n')
            os.chmod(path, 0o600)
        with open(os.path.join(top, "sshield", "sshield.toml"), "w") as f:
            f.write('# scripts/bench-pam: defaults but for the store\nstore = "users"\n')
        os.chmod(os.path.join(top, "sshield", "sshield.toml"), 0o644)
    finally:
        os.umask(old)


if __name__ == "__main__":
    main()
