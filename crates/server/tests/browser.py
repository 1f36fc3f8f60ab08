"""The phone's web app in real Chromium, driven by Playwright with a DevTools virtual
authenticator (CTAP2, internal, user verification) standing in for the phone's passkey.

Run by crates/server/tests/browser.rs, which started sshield-server at BASE and plays the SSH
host: this script asks it for what a host or an admin does by writing one JSON line to stdout
({"ask": ...}) and reading the answer from stdin. Progress goes to stderr. Screenshots of each
page at a phone's viewport go to ARTIFACTS. Any failed check raises: the exit status is what
the Rust test reads.
"""

import json
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import sync_playwright, expect

BASE = os.environ["SSHIELD_BASE"]
ARTIFACTS = os.environ["SSHIELD_ARTIFACTS"]
TTL = int(os.environ["SSHIELD_APPROVAL_TTL"])
LINK_TTL = int(os.environ["SSHIELD_LINK_TTL"])
PHONE = {"width": 390, "height": 844}
CHECKS = []


def ask(what, **fields):
    """One request to the Rust side (the host and the admin); its JSON answer."""
    print(json.dumps(dict(ask=what, **fields)), flush=True)
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the Rust side went away")
    return json.loads(line)


def log(text):
    print(text, file=sys.stderr, flush=True)


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    CHECKS.append(name)
    log(f"ok: {name}")


def shot(page, name):
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    log(f"screenshot: {path}")


def phone(browser):
    """A new phone: its own browser context (storage) and its own passkey authenticator."""
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
        base_url=BASE, service_workers="allow")
    context.grant_permissions(["notifications"], origin=BASE)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    page.on("console", lambda m: log(f"console: {m.text}"))
    return context, page, cdp, authenticator["authenticatorId"]


def credentials(cdp, authenticator):
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]


def status_of(page):
    return page.locator("#status").inner_text()


def enroll(page, name, shots=False):
    link = ask("enroll-link", user="alice")["link"]
    page.goto(link)
    expect(page.locator("#enroll")).to_be_visible()
    if shots:
        shot(page, "1-enroll")
    page.fill("#name", name)
    page.click("#enroll")
    expect(page.locator("#done")).to_be_visible(timeout=15000)
    return link


def oathtool(secret, offset=0):
    """The TOTP code of `secret` now + `offset` seconds, from oathtool (the reference)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + offset))
    out = subprocess.run(["oathtool", "--totp", "-b", "-N", when, secret],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def scan_qr(page, selector, name):
    """Screenshots the element and decodes it with zbarimg: the text the QR code holds."""
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.locator(selector).screenshot(path=path)
    log(f"screenshot: {path}")
    out = subprocess.run(["zbarimg", "--raw", "-q", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"zbarimg read no QR code in {path}: {out.stderr}")
    return out.stdout.strip()


def add_authenticator_app(page):
    """The enrollment page's optional step: scan the QR code, refuse a wrong first code,
    confirm with oathtool's code. The secret, for the host side to check logins with."""
    page.click("#app-start")
    expect(page.locator("#app-step")).to_be_visible(timeout=10000)
    expect(page.locator("#app-qr svg")).to_be_visible()
    uri = scan_qr(page, "#app-qr", "2a-app-qr")
    check("the QR code decodes to an otpauth URI", uri.startswith("otpauth://totp/"), uri)
    query = parse_qs(urlparse(uri).query)
    secret = query["secret"][0]
    check("the app's defaults: SHA1, 6 digits, 30 s, issuer sshield",
          query.get("issuer") == ["sshield"] and query.get("digits", ["6"]) == ["6"]
          and query.get("period", ["30"]) == ["30"]
          and query.get("algorithm", ["SHA1"]) == ["SHA1"]
          and urlparse(uri).path.endswith("alice"), uri)
    shown = page.locator("#app-secret").inner_text()
    check("the key for typing is the QR code's, in groups of four",
          shown.replace(" ", "") == secret
          and all(len(g) <= 4 for g in shown.split(" ")), shown)
    check("the link opens the app with the same URI",
          page.locator("#app-open").get_attribute("href") == uri)
    # A code of no step within the window (the engine takes one step either side).
    near = {oathtool(secret, offset) for offset in (-60, -30, 0, 30, 60)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in near)
    page.fill("#app-code", wrong)
    page.click("#app-confirm")
    expect(page.locator("#app-status")).to_contain_text("Not confirmed", timeout=10000)
    said = page.locator("#app-status").inner_text()
    check("a wrong first code is refused, and the page says so",
          "does not confirm" in said and page.locator("#app-step").is_visible()
          and page.locator("#app-status").is_visible(), said)
    shot(page, "2b-app-wrong-code")
    # The step alone, with the card's margin: the picture in docs/images.
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#app-box").bounding_box()
    page.screenshot(path=os.path.join(ARTIFACTS, "2b-app-step.png"), full_page=True, clip={
        "x": 0, "y": box["y"] - 24, "width": PHONE["width"], "height": box["height"] + 48})
    page.fill("#app-code", oathtool(secret))
    page.click("#app-confirm")
    expect(page.locator("#app-status")).to_contain_text("app is confirmed", timeout=10000)
    check("oathtool's code confirms the app, and the page says so",
          page.locator("#app-step").is_hidden() and page.locator("#app-status").is_visible(),
          page.locator("#app-status").inner_text())
    shot(page, "2c-app-confirmed")
    again = page.evaluate("""sshield.api("POST", "/v1/me/authenticator", {})
        .then(() => 0, (e) => e.status)""")
    check("the step is spent once confirmed", again == 403, again)
    return secret


def pending_card(page, request_id):
    page.goto(f"/approve/{request_id}")
    card = page.locator(f'[data-request="{request_id}"]')
    expect(card).to_be_visible(timeout=10000)
    return card


def wait_status(page, text):
    expect(page.locator("#status")).to_contain_text(text, timeout=15000)


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [])
        one, page, cdp, auth = phone(browser)

        # Enrollment by link: a passkey with user verification, ten backup codes once.
        link = enroll(page, "Alice's phone", shots=True)
        check("enrolled by link", "alice" in page.locator("#who").inner_text())
        codes = page.locator("#codes li").all_inner_texts()
        check("ten backup codes shown", len(codes) == 10 and all(len(c) >= 8 for c in codes), codes)
        creds = credentials(cdp, auth)
        check("one passkey on the phone's authenticator", len(creds) == 1, creds)
        check("the link left the address bar", page.url.endswith("/enroll"), page.url)

        # The authenticator app as a fallback: QR code -> zbarimg -> oathtool -> confirmed;
        # then the host's verification takes that app's codes.
        secret = add_authenticator_app(page)
        verified = ask("verify", user="alice", secret=secret)
        check("the server takes the app's next code for alice",
              verified.get("outcome") == "allowed" and verified.get("method") == "totp",
              verified)
        audit = ask("audit", user="alice")["entries"]
        check("the confirmation is audited",
              any(e.get("service") == "enroll" and e.get("outcome") == "allowed"
                  for e in audit), audit[:4])
        check("so is the wrong first code",
              any(e.get("service") == "enroll" and e.get("reason") == "wrong-code"
                  for e in audit), audit[:4])
        page.click("#notify")
        expect(page.locator("#notify-status")).not_to_have_text(
            "Allow notifications to hear of a login at once.", timeout=15000)
        log("notifications: " + page.locator("#notify-status").inner_text())
        shot(page, "2-enrolled")
        worker = page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.active && r.active.scriptURL)")
        check("the service worker is installed", worker == BASE + "/sw.js", worker)
        manifest = page.evaluate(
            "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
        check("the web app manifest opens /approve", manifest["start_url"] == "/approve", manifest)
        # The service worker shows a Web Push notification (the server's notice JSON, handed
        # to it through DevTools as a push service would), titled with host and user.
        registrations = []
        cdp.on("ServiceWorker.workerRegistrationUpdated",
               lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        deadline = time.time() + 10
        while not registrations and time.time() < deadline:
            page.wait_for_timeout(100)
        check("DevTools sees the service worker", registrations, registrations)
        notice = {"kind": "login", "title": "Log in to web1 as alice?",
                  "body": "From 203.0.113.9 via sshd. Open to approve or deny.",
                  "url": BASE + "/approve/r1", "id": "r1"}
        cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": BASE + "/", "registrationId": registrations[0]["registrationId"],
            "data": json.dumps(notice)})
        shown = []
        while not shown and time.time() < deadline + 10:
            page.wait_for_timeout(200)
            shown = page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications())"
                                  ".then(list => list.map(n => [n.title, n.body, n.data.url]))")
        check("a push shows the notification", shown and shown[0][0] == notice["title"]
              and shown[0][2] == notice["url"], shown)

        # The right number, with the passkey: approved, and the host hears it.
        push = ask("push", user="alice", command="git-upload-pack 'repo.git'")
        card = pending_card(page, push["id"])
        check("the request shows host, source and command",
              "web1" in card.inner_text() and "203.0.113.9" in card.inner_text()
              and "git-upload-pack" in card.inner_text(), card.inner_text())
        numbers = [int(n) for n in card.locator("button.number").all_inner_texts()]
        check("three numbers, the right one among them",
              len(numbers) == 3 and push["number"] in numbers, numbers)
        shot(page, "3-approve")
        card.locator(f'button[data-number="{push["number"]}"]').click()
        wait_status(page, "Approved")
        shot(page, "4-approved")
        check("the right number approves", ask("wait", id=push["id"])["state"] == "approved")
        sign_count = credentials(cdp, auth)[0]["signCount"]
        check("the passkey signed the approval", sign_count >= 1, sign_count)

        # The wrong number refuses (no second guess).
        push = ask("push", user="alice")
        card = pending_card(page, push["id"])
        wrong = next(n for n in (int(x) for x in card.locator("button.number").all_inner_texts())
                     if n != push["number"])
        card.locator(f'button[data-number="{wrong}"]').click()
        wait_status(page, "Denied")
        check("a wrong number denies", ask("wait", id=push["id"])["state"] == "denied")

        # Deny refuses.
        push = ask("push", user="alice")
        card = pending_card(page, push["id"])
        card.locator("button.deny").click()
        wait_status(page, "Denied")
        check("Deny denies", ask("wait", id=push["id"])["state"] == "denied")

        # An expired request refuses, even with the right number and the passkey.
        push = ask("push", user="alice")
        card = pending_card(page, push["id"])
        time.sleep(TTL + 1.5)
        card.locator(f'button[data-number="{push["number"]}"]').click()
        wait_status(page, "Not decided")
        check("an expired request is not approved", "no pending request" in status_of(page),
              status_of(page))
        check("the host hears it expired", ask("wait", id=push["id"])["state"] == "expired")

        # A second phone, with its own passkey, approves too.
        two, page2, cdp2, auth2 = phone(browser)
        enroll(page2, "Alice's tablet")
        check("the second phone has its own passkey", len(credentials(cdp2, auth2)) == 1)
        push = ask("push", user="alice")
        card = pending_card(page2, push["id"])
        card.locator(f'button[data-number="{push["number"]}"]').click()
        wait_status(page2, "Approved")
        check("the second phone approves", ask("wait", id=push["id"])["state"] == "approved")

        # The first phone, revoked, can no longer approve; the second denies meanwhile.
        first = page.evaluate("JSON.parse(localStorage.getItem('sshield-device')).device")
        revoked = ask("revoke-device", user="alice", device=first)
        check("the admin revoked the first phone", revoked["ok"], revoked)
        push = ask("push", user="alice")
        page.goto(f"/approve/{push['id']}")
        wait_status(page, "sign in")
        check("a revoked phone sees no request",
              page.locator(f'[data-request="{push["id"]}"]').count() == 0)
        card = pending_card(page2, push["id"])
        card.locator("button.deny").click()
        wait_status(page2, "Denied")
        check("the revoked phone decided nothing",
              ask("wait", id=push["id"])["state"] == "denied")

        # "This wasn't me": denied, the next push is blocked, and the audit says so.
        push = ask("push", user="alice")
        card = pending_card(page2, push["id"])
        card.locator("button.report").click()
        wait_status(page2, "reported")
        shot(page2, "5-reported")
        check("This wasn't me denies", ask("wait", id=push["id"])["state"] == "reported")
        blocked = ask("push", user="alice")
        check("the next push is blocked", blocked.get("status") == 403, blocked)
        audit = ask("audit", user="alice")["entries"]
        check("the audit has it", audit[0].get("reason") == "push-not-me", audit[:2])

        # A link used twice, and an expired link, are refused; nothing is enrolled.
        three, page3, cdp3, auth3 = phone(browser)
        page3.goto(link)
        page3.click("#enroll")
        wait_status(page3, "Not enrolled")
        check("a link used twice is refused", "unknown, used or expired" in status_of(page3),
              status_of(page3))
        late = ask("enroll-link", user="alice")["link"]
        time.sleep(LINK_TTL + 1.5)
        page3.goto(late)
        page3.click("#enroll")
        wait_status(page3, "Not enrolled")
        check("an expired link is refused", "unknown, used or expired" in status_of(page3),
              status_of(page3))
        check("the refused links made no passkey", len(credentials(cdp3, auth3)) == 0)
        # The first phone (revoked) and the second, enrolled long ago by now: no app step.
        late = page2.evaluate("""sshield.api("POST", "/v1/me/authenticator", {})
            .then(() => 0, (e) => e.status + " " + e.message)""")
        check("a device enrolled longer ago than the link's lifetime gets no secret",
              str(late).startswith("403") and "within" in late, late)
        shot(page3, "6-link-refused")
        devices = ask("devices", user="alice")["count"]
        check("two devices, no third", devices == 2, devices)

        for context in (one, two, three):
            context.close()
        browser.close()
    print(json.dumps({"done": True, "checks": len(CHECKS)}), flush=True)


if __name__ == "__main__":
    main()
