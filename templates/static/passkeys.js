// Civitas passkey ceremonies: the only script of the sign-in, account
// creation and account pages. It converts between the server's JSON (binary
// fields as base64url) and the browser's WebAuthn API.
"use strict";
(function () {
  const ui = document.getElementById("passkey-ui");
  if (!ui || !window.PublicKeyCredential) {
    const s = document.getElementById("status");
    if (s && !window.PublicKeyCredential) s.textContent = "This browser does not support passkeys.";
    return;
  }
  const csrf = ui.dataset.csrf;
  const auth = ui.dataset.auth || null;
  const status = document.getElementById("status");
  const say = (m) => { status.textContent = m; };

  const toBuf = (s) => {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };
  const toB64 = (buf) => {
    const bytes = new Uint8Array(buf);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const KNOWN_TRANSPORTS = ["usb", "nfc", "ble", "internal", "hybrid"];

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(json.error_description || "Something went wrong. Please try again.");
    return json;
  }

  function creationOptions(pk) {
    pk.challenge = toBuf(pk.challenge);
    pk.user.id = toBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = toBuf(c.id); });
    return pk;
  }
  function requestOptions(pk) {
    pk.challenge = toBuf(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = toBuf(c.id); });
    return pk;
  }
  function attestation(c) {
    const transports = c.response.getTransports ? c.response.getTransports() : [];
    return {
      id: c.id, rawId: toB64(c.rawId), type: c.type,
      response: {
        attestationObject: toB64(c.response.attestationObject),
        clientDataJSON: toB64(c.response.clientDataJSON),
        transports: transports.filter((t) => KNOWN_TRANSPORTS.includes(t)),
      },
      extensions: {},
    };
  }
  function assertion(c) {
    return {
      id: c.id, rawId: toB64(c.rawId), type: c.type,
      response: {
        authenticatorData: toB64(c.response.authenticatorData),
        clientDataJSON: toB64(c.response.clientDataJSON),
        signature: toB64(c.response.signature),
        userHandle: c.response.userHandle ? toB64(c.response.userHandle) : null,
      },
      extensions: {},
    };
  }
  const explain = (e) => (e && e.name === "NotAllowedError")
    ? "The passkey request was cancelled or timed out. You can try again."
    : (e && e.message) || "Something went wrong. Please try again.";

  let conditional = null;
  async function signIn(mediation) {
    const begin = await post("/passkeys/signin/begin", {});
    const options = { publicKey: requestOptions(begin.options.publicKey) };
    if (mediation) {
      conditional = new AbortController();
      options.mediation = mediation;
      options.signal = conditional.signal;
    }
    const cred = await navigator.credentials.get(options);
    if (!cred) return;
    say("Checking your passkey…");
    const done = await post("/passkeys/signin/finish", { ceremony: begin.ceremony, credential: assertion(cred), auth });
    window.location.assign(done.next);
  }

  async function register(body) {
    const begin = await post("/passkeys/register/begin", body);
    const cred = await navigator.credentials.create({ publicKey: creationOptions(begin.options.publicKey) });
    say("Saving your passkey…");
    const done = await post("/passkeys/register/finish", {
      ceremony: begin.ceremony, credential: attestation(cred), name: body.name || null, auth,
    });
    window.location.assign(done.next);
  }

  const mode = ui.dataset.mode;
  if (mode === "signin") {
    document.getElementById("passkey-signin").addEventListener("click", async () => {
      if (conditional) conditional.abort();
      say("Follow your browser's prompt to use your passkey.");
      try { await signIn(null); } catch (e) { say(explain(e)); }
    });
    // Passkey autofill (conditional mediation) where the browser offers it.
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
        if (ok) signIn("conditional").catch((e) => { if (e && e.name !== "AbortError") say(explain(e)); });
      });
    }
  } else if (mode === "create") {
    ui.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = document.getElementById("display_name");
      const email = document.getElementById("email");
      if (!name.value.trim() || !email.value.includes("@")) {
        say("Please give your name and a valid email address.");
        (name.value.trim() ? email : name).focus();
        return;
      }
      say("Follow your browser's prompt to create a passkey.");
      try {
        await register({ display_name: name.value.trim(), email: email.value.trim(), name: "Passkey" });
      } catch (e) { say(explain(e)); }
    });
  } else if (mode === "add") {
    document.getElementById("passkey-add").addEventListener("click", async () => {
      const label = document.getElementById("passkey-name").value.trim();
      say("Follow your browser's prompt to create a passkey.");
      try { await register({ name: label || "Passkey" }); } catch (e) { say(explain(e)); }
    });
  }
})();
