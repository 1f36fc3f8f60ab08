// /approve: the signed-in user's pending logins. Approve is a number and a passkey; Deny and
// "This wasn't me" need only this device's sign-in.
"use strict";

(() => {
  const list = document.getElementById("requests");
  const template = document.getElementById("request");
  let busy = false;

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }

  async function decide(id, body, card) {
    busy = true;
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      if (body.decision === "approve") {
        sshield.status("Confirm with your passkey…");
        const options = await sshield.api("POST", "/v1/me/approvals/" + encodeURIComponent(id) + "/challenge");
        const cred = await navigator.credentials.get(sshield.requestOptions(options));
        body.assertion = sshield.assertion(cred);
      }
      const answer = await sshield.api("POST", "/v1/me/approvals/" + encodeURIComponent(id), body);
      const said = {
        approved: ["Approved: the login goes ahead.", "ok"],
        denied: [body.decision === "approve" ? "Denied: that was not the number the prompt shows." : "Denied.", "error"],
        reported: ["Denied and reported. No more login requests reach you until your admin clears it.", "error"],
      }[answer.state] || [answer.state, ""];
      sshield.status(said[0], said[1]);
      card.dataset.state = answer.state;
    } catch (e) {
      sshield.status("Not decided: " + e.message, "error");
    }
    busy = false;
    setTimeout(load, 1500);
  }

  function show(request) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.request = request.id;
    card.querySelector(".title").textContent = "Log in to " + request.host + " as " + request.user + "?";
    card.querySelector(".source").textContent = request.source || "unknown";
    card.querySelector(".service").textContent = request.service;
    card.querySelector(".time").textContent = when(request.created_at);
    if (request.command) {
      card.querySelector(".command").textContent = request.command;
    } else {
      card.querySelector(".command").remove();
      card.querySelector(".command-label").remove();
    }
    card.querySelector(".expires").textContent = "Expires at " + when(request.expires_at);
    const numbers = card.querySelector(".numbers");
    for (const n of request.choices) {
      const b = document.createElement("button");
      b.className = "number primary";
      b.dataset.number = String(n);
      b.textContent = String(n);
      b.addEventListener("click", () => decide(request.id, { decision: "approve", number: n }, card));
      numbers.appendChild(b);
    }
    card.querySelector(".deny").addEventListener("click", () => decide(request.id, { decision: "deny" }, card));
    card.querySelector(".report").addEventListener("click", () => decide(request.id, { decision: "report" }, card));
    return card;
  }

  async function load() {
    if (busy) return;
    if (!sshield.device()) {
      sshield.status("This browser is not enrolled: open the enrollment link your admin sent.", "error");
      return;
    }
    try {
      const answer = await sshield.api("GET", "/v1/me/approvals");
      list.replaceChildren(...answer.approvals.map(show));
      document.getElementById("empty").hidden = answer.approvals.length > 0;
    } catch (e) {
      sshield.status("Cannot load: " + e.message, "error");
    }
  }

  sshield.registerWorker();
  document.getElementById("refresh").addEventListener("click", load);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") load();
  });
  load();
})();
