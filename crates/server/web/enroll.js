// /enroll#<token>: registers this phone's passkey with the enrollment link, then offers
// notifications and shows the backup codes once.
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

  sshield.registerWorker();
  $("enroll").addEventListener("click", enroll);
  $("notify").addEventListener("click", notifications);
})();
