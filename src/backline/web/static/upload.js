// The track page's uploads with a progress bar. Without JavaScript the same forms post the
// file through the app; with it, the file goes through the API (XMLHttpRequest, for its upload
// progress events): straight to object storage when the page says the backend offers a
// presigned URL (upload-url, PUT, then complete), else as the body of PUT /api/tracks/{id}/<kind>
// with its SHA-256 in Content-Digest. Cookie requests carry the form's CSRF token as a header.
// When the access cookie has lapsed (a page left open a while, a long upload), a request to
// the app answered 401 renews the session through POST /api/auth/refresh, as chat.js does, and
// is sent once more; a session that cannot be renewed goes to the log-in page.

const POLL_MS = 500;
const POLL_LIMIT = 240;
const HASH_LIMIT = 1024 ** 3; // hashing reads the file into memory: a larger one goes unhashed

class SignedOut extends Error {}

async function sha256(file) {
  if (!window.crypto || !crypto.subtle || file.size > HASH_LIMIT) return null; // sent without
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

function problem(text, status) {
  try {
    const body = JSON.parse(text);
    return body.detail || body.title || `The upload failed (${status}).`;
  } catch {
    return `The upload failed (${status}).`;
  }
}

function ok(answer) {
  if (answer.status >= 200 && answer.status < 300) return answer.text;
  throw new Error(problem(answer.text, answer.status));
}

async function renewed(csrf) {
  const response = await fetch("/api/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf },
  });
  return response.ok;
}

// Sends a request to the app; if it is answered 401, renews the session and sends it again.
async function renewing(request, csrf) {
  let answer = await request();
  if (answer.status === 401 && (await renewed(csrf))) answer = await request();
  if (answer.status === 401) {
    window.location.assign("/login"); // the session ended: sign in again, as pages do
    throw new SignedOut();
  }
  return answer;
}

// Answers {status, text} once the whole response is in; fails only when the connection does.
function transfer(method, url, body, headers, bar) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    bar.value = 0;
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) bar.value = bar.max;
      resolve({ status: xhr.status, text: xhr.responseText });
    });
    xhr.addEventListener("error", () => reject(new Error("The connection failed; try again.")));
    xhr.send(body);
  });
}

async function api(method, url, csrf, body) {
  const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const request = async () => {
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    return { status: response.status, text: await response.text() };
  };
  return JSON.parse(ok(await renewing(request, csrf)));
}

async function direct(track, file, digest, csrf, bar, say) {
  const grant = await api("POST", `/api/tracks/${track}/upload-url`, csrf, {
    size: file.size,
    sha256: digest,
    content_type: "application/octet-stream",
  });
  say("Sending the file to storage…");
  ok(await transfer(grant.method, grant.url, file, grant.headers, bar)); // the store's own answer
  await api("POST", `/api/tracks/${track}/audio/complete`, csrf, {});
  say("Checking the audio…");
  for (let i = 0; i < POLL_LIMIT; i += 1) {
    const shown = await api("GET", `/api/tracks/${track}`, csrf);
    if (shown.upload && shown.upload.state === "ready") return;
    if (shown.upload && shown.upload.state === "failed") {
      throw new Error(`The audio was refused (${shown.upload.error}).`);
    }
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
  throw new Error("The check is taking long; reload the page in a while.");
}

async function upload(form) {
  const kind = form.dataset.upload;
  const track = form.dataset.track;
  const input = form.querySelector("input[type=file]");
  const bar = form.querySelector("progress");
  const status = form.querySelector("[role=status]");
  const button = form.querySelector("button[type=submit]");
  const csrf = form.querySelector("input[name=csrf_token]").value;
  const file = input.files[0];
  const say = (text) => {
    status.textContent = text;
  };
  form.querySelector(".field-error")?.remove();
  button.disabled = true;
  bar.value = 0;
  bar.hidden = false;
  try {
    say("Preparing the file…");
    const digest = await sha256(file);
    if (kind === "audio" && form.dataset.direct === "true" && digest) {
      await direct(track, file, digest, csrf, bar, say);
    } else {
      say("Uploading…");
      const headers = { "X-CSRF-Token": csrf, "Content-Type": file.type || "application/octet-stream" };
      if (digest) headers["Content-Digest"] = `sha-256=:${digest}:`;
      const url = `/api/tracks/${track}/${kind}`;
      ok(await renewing(() => transfer("PUT", url, file, headers, bar), csrf));
    }
    say("Uploaded.");
    window.location.assign(`/tracks/${track}?done=${kind}`);
  } catch (failure) {
    if (failure instanceof SignedOut) return;
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${kind}-error`;
    error.setAttribute("role", "alert");
    error.textContent = failure.message;
    input.closest(".field").append(error);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", `${kind}-hint ${kind}-error`);
    say("");
    bar.hidden = true;
    button.disabled = false;
  }
}

for (const form of document.querySelectorAll("form[data-upload]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    upload(form);
  });
}
