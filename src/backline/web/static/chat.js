// Backline portal: the assistant's answer shown as it streams.
// Without this module the form posts to /chat and the page shows the whole answer.
// With it, the message goes to POST /api/chat (the session cookie, the form's CSRF token in
// X-CSRF-Token) and the text/event-stream's `delta` events are written into the page as they come.
// When the access cookie has lapsed (a page left open a while), the session is renewed through
// POST /api/auth/refresh, as a page load renews it, and the message is sent again: never lost.

const form = document.getElementById("ask");
const log = document.getElementById("log");
const status = document.getElementById("chat-status");

function turn(role, text) {
  const item = document.createElement("li");
  item.className = `turn ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  log.append(item);
  document.getElementById("empty-log")?.remove();
  return body;
}

function parse(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  return data ? { name, data: JSON.parse(data) } : null; // comments (keep-alives) carry none
}

function say(text, alert = false) {
  status.textContent = text;
  status.setAttribute("role", alert ? "alert" : "status");
  status.classList.toggle("field-error", alert);
}

async function problem(response) {
  try {
    return (await response.json()).detail || response.statusText;
  } catch {
    return `The assistant could not answer (${response.status}).`;
  }
}

function csrf() {
  return form.elements.namedItem("csrf_token").value;
}

function ask(body) {
  return fetch("/api/chat", {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "text/event-stream",
      "X-CSRF-Token": csrf(),
    },
    body: JSON.stringify(body),
  });
}

async function renewed() {
  const response = await fetch("/api/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf() },
  });
  return response.ok;
}

async function send(event) {
  event.preventDefault();
  const box = form.elements.namedItem("message");
  const button = form.querySelector("button[type=submit]");
  const idField = form.elements.namedItem("conversation_id");
  const message = box.value;
  if (!message.trim()) {
    say("Write a message first.", true);
    box.focus();
    return;
  }
  const body = { message, stream: true };
  if (idField && idField.value) body.conversation_id = idField.value;
  button.disabled = true;
  say("The assistant is answering…");
  try {
    let response = await ask(body);
    if (response.status === 401 && (await renewed())) response = await ask(body);
    if (response.status === 401) {
      window.location.assign("/login"); // the session ended: sign in again, as pages do
      return;
    }
    if (!response.ok) {
      say(await problem(response), true);
      return;
    }
    turn("user", message);
    box.value = "";
    const answer = turn("assistant", "");
    answer.parentElement.setAttribute("aria-busy", "true");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let finished = false;
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const found = parse(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!found) continue;
        if (found.name === "delta") answer.append(found.data.text);
        else if (found.name === "error") say(found.data.detail || "The answer stopped.", true);
        else if (found.name === "done") {
          finished = true;
          const id = found.data.conversation_id;
          if (!idField) {
            const hidden = document.createElement("input");
            hidden.type = "hidden";
            hidden.name = "conversation_id";
            hidden.value = id;
            form.append(hidden);
            history.replaceState(null, "", `/chat/${id}`);
          }
          if (found.data.state === "complete") say("Answered.");
        }
      }
    }
    answer.parentElement.removeAttribute("aria-busy");
  } catch {
    say("The connection dropped before the answer was complete.", true);
  } finally {
    button.disabled = false;
  }
}

if (form && log && status && window.ReadableStream && window.TextDecoderStream) {
  form.addEventListener("submit", send);
}
