// EAí Agent Gateway demo: send a message, poll for the reply, render WhatsApp formatting.
"use strict";

const WEBHOOK = "/api/v1/message/webhook/user";
const RESPONSE = "/api/v1/message/response";
const POLL_MS = 500;
const POLL_LIMIT = 240; // two minutes

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// WhatsApp formatting -> HTML. The text is escaped first; code spans are protected from the rest.
function renderWhatsApp(text) {
  const codes = [];
  let html = escapeHtml(text);
  html = html.replace(/```([\s\S]+?)```/g, (_, code) => { codes.push(`<pre>${code}</pre>`); return `\u0000${codes.length - 1}\u0000`; });
  html = html.replace(/`([^`\n]+)`/g, (_, code) => { codes.push(`<code>${code}</code>`); return `\u0000${codes.length - 1}\u0000`; });
  html = html.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?!\w)/g, "$1<strong>$2</strong>");
  html = html.replace(/(^|[^\w_])_(?!\s)([^_\n]+?)_(?!\w)/g, "$1<em>$2</em>");
  html = html.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?!\w)/g, "$1<s>$2</s>");
  return html.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]);
}

const state = { history: [] };

function storageKey(phone) { return `eai-demo-history:${phone}`; }

function loadHistory(phone) {
  try { state.history = JSON.parse(sessionStorage.getItem(storageKey(phone)) || "[]"); } catch { state.history = []; }
  draw();
}

function saveHistory(phone) {
  sessionStorage.setItem(storageKey(phone), JSON.stringify(state.history.filter((m) => m.kind !== "pending")));
}

function draw() {
  const list = document.getElementById("history");
  list.replaceChildren(...state.history.map((entry) => {
    const item = document.createElement("li");
    item.className = `bubble ${entry.kind}`;
    item.dataset.messageId = entry.id || "";
    const body = document.createElement("div");
    body.className = "text";
    if (entry.kind === "agent") body.innerHTML = renderWhatsApp(entry.text);
    else body.textContent = entry.text;
    const when = document.createElement("time");
    when.textContent = new Date(entry.at).toLocaleTimeString();
    item.append(body, when);
    return item;
  }));
  list.lastElementChild?.scrollIntoView({ block: "end" });
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function headers() {
  return { "Authorization": `Bearer ${document.getElementById("token").value.trim()}`, "Content-Type": "application/json" };
}

async function poll(messageId) {
  for (let i = 0; i < POLL_LIMIT; i++) {
    const response = await fetch(`${RESPONSE}?message_id=${encodeURIComponent(messageId)}`, { headers: headers() });
    if (response.status === 200) return response.json();
    if (response.status !== 202) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.message || `HTTP ${response.status}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error("no reply within two minutes");
}

async function send(event) {
  event.preventDefault();
  const phone = document.getElementById("phone").value.trim();
  const input = document.getElementById("message");
  const text = input.value;
  if (!document.getElementById("settings").reportValidity() || !text.trim()) return;
  input.value = "";
  state.history.push({ kind: "user", text, at: Date.now() });
  const pending = { kind: "pending", text: "…", at: Date.now() };
  state.history.push(pending);
  draw();
  setStatus("sending…");
  try {
    const accepted = await fetch(WEBHOOK, { method: "POST", headers: headers(), body: JSON.stringify({ user_number: phone, message: text }) });
    const body = await accepted.json().catch(() => ({}));
    if (!accepted.ok) throw new Error(body.message || `HTTP ${accepted.status}`);
    pending.id = body.message_id;
    setStatus("waiting for the agent…");
    const result = await poll(body.message_id);
    Object.assign(pending, result.status === "completed"
      ? { kind: "agent", text: result.content || "", at: Date.now() }
      : { kind: "error", text: `${result.error_code || "failed"}: ${result.error || result.message || ""}`, at: Date.now() });
    setStatus("");
  } catch (error) {
    Object.assign(pending, { kind: "error", text: String(error.message || error), at: Date.now() });
    setStatus("");
  }
  saveHistory(phone);
  draw();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("composer").addEventListener("submit", send);
  document.getElementById("phone").addEventListener("change", (e) => loadHistory(e.target.value.trim()));
});

window.renderWhatsApp = renderWhatsApp; // for the tests
