"""Push approval end to end: the phone is real Chromium (Debian's, driven by Playwright, with a
DevTools virtual authenticator as its passkey) and the login is a real `ssh` through a real
sshd, in ForceCommand mode (`sshield login`) and in PAM mode (pam_sshield.so).

Run by crates/e2e/tests/fleet.rs (`push_approved_in_chromium_opens_real_ssh_sessions`), which
started the server, the hosts and the logins: this script asks it for an enrollment link, to
start a login ({"ask": "login", "mode": ...} answers the number the SSH prompt shows) and for
the login's outcome ({"ask": "outcome"}), one JSON line each way. The page helpers are the
server's browser test's (crates/server/tests/browser.py), imported from SSHIELD_BROWSER_LIB.
"""

import json
import os
import sys

sys.path.insert(0, os.environ["SSHIELD_BROWSER_LIB"])

from playwright.sync_api import sync_playwright  # noqa: E402

import browser as pages  # noqa: E402


def approve_on_phone(page, number, shot_name=None):
    """Opens the approval page, picks `number` on the one pending request (the passkey signs)."""
    page.goto("/approve")
    card = page.locator("[data-request]").first
    card.wait_for(timeout=10000)
    numbers = [int(n) for n in card.locator("button.number").all_inner_texts()]
    pages.check("three numbers on the phone, the prompt's among them",
                len(numbers) == 3 and number in numbers, numbers)
    if shot_name:
        pages.shot(page, shot_name)
    return card, numbers


def main():
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [])
        context, page, cdp, auth = pages.phone(chromium)
        pages.enroll(page, "phone")
        pages.check("a passkey on the phone", len(pages.credentials(cdp, auth)) == 1)

        for mode in ("forcecommand", "pam"):
            # The right number: the ssh session starts.
            number = pages.ask("login", mode=mode)["number"]
            card, _ = approve_on_phone(page, number, f"ssh-{mode}-approve")
            card.locator(f'button[data-number="{number}"]').click()
            pages.wait_status(page, "Approved")
            outcome = pages.ask("outcome", mode=mode)
            pages.check(f"{mode}: the right number opens the ssh session",
                        outcome["session"], outcome)

            # A wrong number: refused, no second guess.
            number = pages.ask("login", mode=mode)["number"]
            card, numbers = approve_on_phone(page, number)
            wrong = next(n for n in numbers if n != number)
            card.locator(f'button[data-number="{wrong}"]').click()
            pages.wait_status(page, "Denied")
            outcome = pages.ask("outcome", mode=mode)
            pages.check(f"{mode}: a wrong number refuses the ssh session",
                        not outcome["session"], outcome)

        context.close()
        chromium.close()
    print(json.dumps({"done": True, "checks": len(pages.CHECKS)}), flush=True)


if __name__ == "__main__":
    main()
