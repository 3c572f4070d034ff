// Backline portal: passkeys (WebAuthn) on the security page and on the log-in page.
// Security page: the "Add a passkey" form asks the API for registration options
// (POST /api/me/passkeys/options), has the browser make the credential
// (navigator.credentials.create) and sends it with its name (POST /api/me/passkeys), then
// reloads the page, whose list is rendered by the server. Renaming and removing are plain form
// posts; this only asks before a removal. Requests carry the form's CSRF token in X-CSRF-Token;
// when the access cookie has lapsed, a request answered 401 renews the session through
// POST /api/auth/refresh, as chat.js does, and is sent once more.
// Log-in page: "Sign in with a passkey" asks for sign-in options (POST /api/auth/passkeys/options),
// has the browser sign the challenge (navigator.credentials.get) and sends the answer in the
// cookie mode (POST /api/auth/passkeys/verify), then goes where the password form leads.
// Second step of a sign-in (the page after a right password, when the account holds a
// passkey): "Use a passkey" asks for options bound to the sign-in's challenge
// (POST /api/auth/mfa/passkey/options with the challenge token the page holds in a form field),
// has the browser sign (navigator.credentials.get) and sends the answer in the cookie mode
// (POST /api/auth/mfa/passkey/verify), then goes to the dashboard as the code form does. A
// refusal whose code is `challenge_*` (or `invalid_challenge`) ends the sign-in: the page then
// links to /login to start again.
// Without WebAuthn (window.PublicKeyCredential undefined) the page says so: no button that
// cannot work. The API speaks base64url for binary fields; the browser, ArrayBuffers.

class SignedOut extends Error {}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function described(list) {
  return (list || []).map((entry) => ({ ...entry, id: fromBase64url(entry.id) }));
}

function creationOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    user: { ...options.user, id: fromBase64url(options.user.id) },
    excludeCredentials: described(options.excludeCredentials),
  };
}

function requestOptions(options) {
  return {
    ...options,
    challenge: fromBase64url(options.challenge),
    allowCredentials: described(options.allowCredentials),
  };
}

// What PublicKeyCredential.toJSON() gives, for browsers that lack it.
function credentialJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

// The browser's refusal, in words; `doing` is what the prompt was for.
function ceremonyFailure(error, doing) {
  if (error && error.name === "NotAllowedError") {
    return `No passkey was ${doing}: the prompt was cancelled, or it timed out. Try again.`;
  }
  if (error && error.name === "InvalidStateError") {
    return "This device already keeps a passkey for your account.";
  }
  if (error && error.name === "SecurityError") {
    return "Passkeys are not set up for this address of the site.";
  }
  return `No passkey was ${doing}: ${(error && error.message) || "the browser refused"}.`;
}

async function problem(response) {
  try {
    const body = await response.json();
    return { code: body.code, detail: body.detail || body.title || response.statusText };
  } catch {
    return { code: null, detail: `The request failed (${response.status}). Try again.` };
  }
}

function speaker(status) {
  return (text, alert = false) => {
    status.textContent = text;
    status.setAttribute("role", alert ? "alert" : "status");
    status.classList.toggle("field-error", alert);
  };
}

function post(url, headers, body) {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body === undefined ? {} : body),
  });
}

// A signed-in request: renewed once when its access cookie has lapsed.
async function signedIn(url, csrf, body) {
  const headers = { "X-CSRF-Token": csrf };
  let response = await post(url, headers, body);
  if (response.status === 401) {
    const renewal = await fetch("/api/auth/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers,
    });
    if (renewal.ok) response = await post(url, headers, body);
  }
  if (response.status === 401) {
    window.location.assign("/login"); // the session ended: sign in again, as pages do
    throw new SignedOut();
  }
  return response;
}

// ----------------------------------------------------------------------------- security page

function nameError(input, text) {
  const field = input.closest(".field");
  field.querySelector(".field-error")?.remove();
  const hint = `${input.id}-hint`;
  if (!text) {
    input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", hint);
    return;
  }
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${input.id}-error`;
  error.textContent = text;
  field.append(error);
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", `${hint} ${error.id}`);
}

async function addPasskey(form, say) {
  const input = form.elements.namedItem("passkey_name");
  const button = form.querySelector("button[type=submit]");
  const csrf = form.elements.namedItem("csrf_token").value;
  const name = input.value.trim();
  nameError(input, "");
  if (!name) {
    nameError(input, "Name the passkey, such as the device that keeps it.");
    say("Name the passkey first.", true);
    input.focus();
    return;
  }
  button.disabled = true;
  say("Preparing…");
  try {
    const offered = await signedIn("/api/me/passkeys/options", csrf);
    if (!offered.ok) {
      say((await problem(offered)).detail, true);
      return;
    }
    const options = creationOptions(await offered.json());
    say("Follow your browser's prompt to make the passkey…");
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: options });
    } catch (error) {
      say(ceremonyFailure(error, "made"), true);
      return;
    }
    say("Saving the passkey…");
    const saved = await signedIn("/api/me/passkeys", csrf, {
      name,
      credential: credentialJSON(credential),
    });
    if (!saved.ok) {
      const refused = await problem(saved);
      if (refused.code === "invalid_passkey_name") {
        nameError(input, refused.detail);
        input.focus();
      }
      say(refused.detail, true);
      return;
    }
    say("The passkey is added.");
    window.location.assign("/account/security?passkey=added#passkeys");
  } catch (failure) {
    if (!(failure instanceof SignedOut)) say("The connection failed; try again.", true);
  } finally {
    button.disabled = false;
  }
}

function securityPage() {
  const form = document.getElementById("passkey-add");
  const support = document.getElementById("passkey-support");
  const status = document.getElementById("passkey-status");
  for (const removal of document.querySelectorAll("form[data-confirm]")) {
    removal.addEventListener("submit", (event) => {
      if (!window.confirm(removal.dataset.confirm)) event.preventDefault();
    });
  }
  if (!form || !support || !status) return;
  if (!window.PublicKeyCredential || !navigator.credentials) {
    support.textContent =
      "This browser cannot make passkeys. You can still rename and remove the ones listed here.";
    return;
  }
  support.remove();
  form.hidden = false;
  const say = speaker(status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    addPasskey(form, say);
  });
}

// ----------------------------------------------------------------------------- log-in page

// Where to go once signed in: a path on this site, never another origin.
function destination(next) {
  return /^\/(?![/\\])/.test(next || "") ? next : "/dashboard";
}

// Signing in with a passkey, alone or as the second step: options from `paths.options`, the
// browser's prompt, the assertion to `paths.verify` in cookie mode, each with `extra` (the
// second step's challenge token). Null once signed in, else the refusal ({code, detail}).
async function usePasskey(paths, extra, say, checking) {
  const offered = await post(paths.options, {}, extra);
  if (!offered.ok) return problem(offered);
  const options = requestOptions(await offered.json());
  say("Follow your browser's prompt to use your passkey…");
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: options });
  } catch (error) {
    return { code: null, detail: ceremonyFailure(error, "used") };
  }
  say(checking);
  const verified = await post(paths.verify, {}, {
    ...extra,
    credential: credentialJSON(credential),
    mode: "cookie",
  });
  return verified.ok ? null : problem(verified);
}

const PASSWORDLESS = { options: "/api/auth/passkeys/options", verify: "/api/auth/passkeys/verify" };
const SECOND_STEP = {
  options: "/api/auth/mfa/passkey/options",
  verify: "/api/auth/mfa/passkey/verify",
};

async function signIn(section, button, say) {
  button.disabled = true;
  say("Preparing…");
  try {
    const refused = await usePasskey(PASSWORDLESS, {}, say, "Signing in…");
    if (refused) {
      say(refused.detail, true);
      return;
    }
    say("Signed in.");
    window.location.assign(destination(section.dataset.next));
  } catch {
    say("The connection failed; try again.", true);
  } finally {
    button.disabled = false;
  }
}

function loginPage() {
  const section = document.getElementById("passkey-sign-in");
  const button = document.getElementById("passkey-sign-in-button");
  const status = document.getElementById("passkey-sign-in-status");
  if (!section || !button || !status) return;
  if (!window.PublicKeyCredential || !navigator.credentials) return; // the section stays hidden
  section.hidden = false;
  const say = speaker(status);
  button.addEventListener("click", () => signIn(section, button, say));
}

// ----------------------------------------------------------------------------- second step

// The sign-in's own challenge can no longer be completed (used, expired, out of tries, not
// valid): only a new sign-in helps. `passkey_challenge_*` name the passkey's challenge instead,
// which the next try asks afresh.
function signInOver(code) {
  return typeof code === "string" && (code.startsWith("challenge_") || code === "invalid_challenge");
}

// Says a refusal; answers whether the sign-in is over (then with a link to start again).
function refuseStep(refused, status, say) {
  say(refused.detail, true);
  if (!signInOver(refused.code)) return false;
  const again = document.createElement("a");
  again.href = "/login";
  again.textContent = "Log in again";
  status.append(" ", again);
  return true;
}

async function secondStep(token, button, status, say) {
  button.disabled = true;
  let done = false;
  say("Preparing…");
  try {
    const extra = { challenge_token: token };
    const refused = await usePasskey(SECOND_STEP, extra, say, "Checking your passkey…");
    if (refused) {
      done = refuseStep(refused, status, say);
      return;
    }
    done = true;
    say("Signed in.");
    window.location.assign("/dashboard");
  } catch {
    say("The connection failed; try again.", true);
  } finally {
    button.disabled = done;
  }
}

function secondStepPage() {
  const section = document.getElementById("passkey-step");
  const button = document.getElementById("passkey-step-button");
  const status = document.getElementById("passkey-step-status");
  const support = document.getElementById("passkey-step-support");
  const action = document.getElementById("passkey-step-action");
  const field = section && section.querySelector("input[name=challenge_token]");
  if (!section || !button || !status || !support || !action || !field) return;
  if (!window.PublicKeyCredential || !navigator.credentials) {
    support.textContent = document.getElementById("code")
      ? "This browser cannot use passkeys: enter a code instead."
      : "This browser cannot use passkeys: log in from one that can.";
    return; // the button stays hidden
  }
  support.remove();
  action.hidden = false;
  const say = speaker(status);
  button.addEventListener("click", () => secondStep(field.value, button, status, say));
}

securityPage();
loginPage();
secondStepPage();
