// What the enrollment and approval pages share: the API with this device's sign-in, and
// WebAuthn's binary fields as base64url (the server's JSON) and ArrayBuffers (the browser's).
"use strict";

const sshield = (() => {
  const KEY = "sshield-device";

  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    let raw = "";
    for (const byte of new Uint8Array(buffer)) raw += String.fromCharCode(byte);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
  }

  // The server's CreationChallengeResponse, for navigator.credentials.create().
  function creationOptions(json) {
    const pk = Object.assign({}, json.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: toBytes(pk.user.id) });
    pk.excludeCredentials = withIds(pk.excludeCredentials);
    return { publicKey: pk };
  }

  // The server's RequestChallengeResponse, for navigator.credentials.get().
  function requestOptions(json) {
    const pk = Object.assign({}, json.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.allowCredentials = withIds(pk.allowCredentials);
    return { publicKey: pk };
  }

  function registration(cred) {
    return {
      id: cred.id,
      rawId: toText(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toText(cred.response.attestationObject),
        clientDataJSON: toText(cred.response.clientDataJSON),
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertion(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toText(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toText(r.authenticatorData),
        clientDataJSON: toText(r.clientDataJSON),
        signature: toText(r.signature),
        userHandle: r.userHandle ? toText(r.userHandle) : null,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function device() {
    try {
      return JSON.parse(localStorage.getItem(KEY) || "null");
    } catch (e) {
      return null;
    }
  }

  function remember(enrolled) {
    localStorage.setItem(KEY, JSON.stringify(enrolled));
  }

  // A JSON request to this server; the answer's JSON, or an Error with the server's message.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const d = device();
    if (d && d.token) headers.Authorization = "Bearer " + d.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      const error = new Error((json && json.error) || response.status + " " + response.statusText);
      error.status = response.status;
      throw error;
    }
    return json;
  }

  function status(text, kind) {
    const el = document.getElementById("status");
    el.textContent = text;
    el.className = "status " + (kind || "");
  }

  function registerWorker() {
    if ("serviceWorker" in navigator) {
      return navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => null);
    }
    return Promise.resolve(null);
  }

  return { toBytes, toText, creationOptions, requestOptions, registration, assertion,
    device, remember, api, status, registerWorker };
})();
