// /enroll#<token>: registers this phone's passkey with the enrollment link, then offers
// notifications and an authenticator app as a fallback, and shows the backup codes once.
"use strict";

(() => {
  const token = decodeURIComponent(location.hash.slice(1));
  const $ = (id) => document.getElementById(id);

  async function enroll() {
    const name = $("name").value.trim();
    if (!token) {
      sshield.status("This page needs the whole link your admin sent, with the part after #.", "error");
      return;
    }
    $("enroll").disabled = true;
    try {
      sshield.status("Creating a passkey…");
      const options = await sshield.api("POST", "/v1/enroll/passkey", { token });
      const cred = await navigator.credentials.create(sshield.creationOptions(options));
      const enrolled = await sshield.api("POST", "/v1/enroll", {
        token,
        name,
        passkey: sshield.registration(cred),
      });
      sshield.remember({ token: enrolled.token, user: enrolled.user, device: enrolled.device });
      // The link is spent: keep it out of the history.
      history.replaceState(null, "", "/enroll");
      $("start").hidden = true;
      $("done").hidden = false;
      $("who").textContent = "This phone now approves logins of " + enrolled.user + ".";
      const codes = $("codes");
      for (const code of enrolled.backup_codes) {
        const li = document.createElement("li");
        li.textContent = code;
        codes.appendChild(li);
      }
      $("codes-box").hidden = enrolled.backup_codes.length === 0;
      sshield.status("Enrolled.", "ok");
    } catch (e) {
      $("enroll").disabled = false;
      sshield.status("Not enrolled: " + e.message, "error");
    }
  }

  async function notifications() {
    const out = $("notify-status");
    try {
      if (!("Notification" in window) || !("PushManager" in window)) {
        throw new Error("this browser has no Web Push");
      }
      const permission = await Notification.requestPermission();
      if (permission !== "granted") throw new Error("permission " + permission);
      await sshield.registerWorker();
      const registration = await navigator.serviceWorker.ready;
      const key = await sshield.api("GET", "/v1/push/key");
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: sshield.toBytes(key.vapid_public_key),
      });
      await sshield.api("PUT", "/v1/me/subscription", subscription.toJSON());
      out.textContent = "Notifications are on.";
      $("notify").hidden = true;
    } catch (e) {
      out.textContent = "Notifications are off (" + e.message + "); open this app to see logins.";
    }
  }

  function appStatus(text, kind) {
    const el = $("app-status");
    el.textContent = text;
    el.className = "status " + (kind || "");
  }

  // A new pending authenticator: its QR code (the server's SVG, parsed here, so the page
  // needs no inline markup), the key in groups of four, and a field for the first code.
  async function addApp() {
    $("app-start").disabled = true;
    try {
      const offer = await sshield.api("POST", "/v1/me/authenticator", {});
      const svg = new DOMParser().parseFromString(offer.qr_svg, "image/svg+xml").documentElement;
      if (svg.nodeName !== "svg") throw new Error("the QR code did not load");
      $("app-qr").replaceChildren(document.importNode(svg, true));
      $("app-secret").textContent = offer.secret.match(/.{1,4}/g).join(" ");
      $("app-open").href = offer.uri;
      $("app-step").hidden = false;
      $("app-start").hidden = true;
      appStatus("");
      $("app-code").focus();
    } catch (e) {
      $("app-start").disabled = false;
      appStatus("No authenticator app added: " + e.message, "error");
    }
  }

  async function confirmApp() {
    const code = $("app-code").value.replace(/\s/g, "");
    if (!/^[0-9]{6,8}$/.test(code)) {
      appStatus("Type the 6 digits the app shows for sshield.", "error");
      return;
    }
    $("app-confirm").disabled = true;
    appStatus("Checking the code…");
    try {
      await sshield.api("POST", "/v1/me/authenticator/confirm", { code });
      $("app-step").hidden = true;
      appStatus("The authenticator app is confirmed: its codes now let you in.", "ok");
    } catch (e) {
      $("app-code").value = "";
      appStatus("Not confirmed: " + e.message, "error");
    } finally {
      $("app-confirm").disabled = false;
    }
  }

  sshield.registerWorker();
  $("app-start").addEventListener("click", addApp);
  $("app-confirm").addEventListener("click", confirmApp);
  $("enroll").addEventListener("click", enroll);
  $("notify").addEventListener("click", notifications);
})();
