// The ragstream web chat: sign in, upload, watch documents, ask, read sources.
// Every piece of data reaches the page through textContent (never innerHTML),
// and the page's Content-Security-Policy allows no inline script either.
"use strict";

const POLL_MS = 2000;
const RETRY_MS = 5000;
const STORE_KEY = "ragstream.session";
const $ = (id) => document.getElementById(id);

// --- session -------------------------------------------------------------
// Kept in sessionStorage: this tab only, gone when it closes; a reload keeps
// the user signed in. Each refresh token works once, so refreshes are shared.

let session = null;
let refreshing = null;
let refreshTimer = null;
let config = { registration: false, sso: false, max_upload_mb: 0, suffixes: [] };

function saveSession(tokens, username) {
  session = {
    access: tokens.access_token,
    refresh: tokens.refresh_token,
    username: username || (session && session.username) || "",
  };
  sessionStorage.setItem(STORE_KEY, JSON.stringify(session));
  clearTimeout(refreshTimer);
  // Well before the access token expires, so requests rarely meet a 401.
  const seconds = Math.max(5, tokens.expires_in * 0.8);
  refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), seconds * 1000);
}

function loadSession() {
  try {
    session = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
  } catch {
    session = null;
  }
}

function refreshTokens() {
  if (!refreshing) {
    refreshing = doRefresh().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function doRefresh() {
  const token = session && session.refresh;
  if (!token) throw new Error("not signed in");
  const response = await fetch("/api/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: token }),
  });
  if (!response.ok) {
    signOut("Your session has ended; please sign in again.");
    throw new Error("session ended");
  }
  saveSession(await response.json());
}

// A request with the access token; on a 401, one refresh and one retry.
async function api(path, init = {}, retry = true) {
  const headers = { ...(init.headers || {}) };
  if (session) headers.Authorization = `Bearer ${session.access}`;
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401 && retry && session) {
    await refreshTokens();
    return api(path, init, false);
  }
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch {
    // not JSON: the status says enough
  }
  return `${response.status} ${response.statusText}`.trim();
}

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

// --- signing in and out -----------------------------------------------------

let registering = false;

function setRegistering(on) {
  registering = on;
  $("signin-title").textContent = on ? "Create an account" : "Sign in";
  $("signin-submit").textContent = on ? "Create account" : "Sign in";
  $("register-toggle").textContent = on ? "I have an account" : "Create an account";
  $("password").autocomplete = on ? "new-password" : "current-password";
  show($("signin-error"), "");
}

async function onSignIn(event) {
  event.preventDefault();
  const body = JSON.stringify({ username: $("username").value, password: $("password").value });
  const post = (path) =>
    fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body });
  $("signin-submit").disabled = true;
  try {
    if (registering) {
      const created = await post("/api/auth/register");
      if (!created.ok) return show($("signin-error"), await errorText(created));
    }
    const response = await post("/api/auth/login");
    if (!response.ok) return show($("signin-error"), await errorText(response));
    saveSession(await response.json(), $("username").value.trim());
    $("password").value = "";
    enterApp();
  } catch (err) {
    show($("signin-error"), `Cannot reach the server: ${err.message}`);
  } finally {
    $("signin-submit").disabled = false;
  }
}

// --- single sign-on ---------------------------------------------------------
// The gateway's callback sends the browser back to "/#sso=<one-time code>"
// (or "#sso_error=<reason>"); the code is traded for a session's tokens once.

const SSO_ERRORS = {
  refused: "Your organisation's sign-in did not let you in.",
  expired: "The sign-in took too long; please try again.",
  unavailable: "Your organisation's sign-in cannot be reached; try again later.",
};

async function finishSingleSignOn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("sso");
  const error = fragment.get("sso_error");
  if (!code && !error) return false;
  history.replaceState(null, "", location.pathname + location.search); // the code, out of sight
  if (error) {
    show($("signin-error"), SSO_ERRORS[error] || SSO_ERRORS.refused);
    return false;
  }
  const response = await fetch("/api/auth/oidc/exchange", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }),
  });
  if (!response.ok) {
    show($("signin-error"), SSO_ERRORS.expired);
    return false;
  }
  const tokens = await response.json();
  const me = await fetch("/api/auth/verify", {
    headers: { Authorization: `Bearer ${tokens.access_token}` },
  });
  saveSession(tokens, me.ok ? (await me.json()).username : "");
  enterApp();
  return true;
}

function signOut(message) {
  const refresh = session && session.refresh;
  if (refresh) {
    // Ends the session on the server too; nothing to wait for.
    fetch("/api/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    }).catch(() => {});
  }
  session = null;
  sessionStorage.removeItem(STORE_KEY);
  clearTimeout(refreshTimer);
  stopDocumentWatch();
  clearTimeout(syncTimer);
  $("sync-panel").hidden = true;
  $("sync-list").replaceChildren();
  if (chatAbort) chatAbort.abort();
  $("document-list").replaceChildren();
  $("messages").replaceChildren();
  conversationId = null;
  clearConversations();
  setRegistering(false);
  $("app-view").hidden = true;
  $("sign-out").hidden = true;
  $("whoami").textContent = "";
  $("signin-view").hidden = false;
  show($("signin-error"), message || "");
}

function enterApp() {
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  $("sign-out").hidden = false;
  $("whoami").textContent = session.username;
  startDocumentWatch();
  refreshConversations();
  refreshSources();
}

// --- server-sent events over fetch --------------------------------------------
// EventSource cannot send an Authorization header, so the body is read here.

async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "message";
  let id = null;
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let match;
    while ((match = /\r\n|\r|\n/.exec(buffer))) {
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === buffer.length - 1) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      if (line === "") {
        if (data.length) yield { event: name, data: JSON.parse(data.join("\n")), id };
        name = "message";
        id = null;
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
    }
  }
}

// --- documents --------------------------------------------------------------

let watch = null;

function stopDocumentWatch() {
  if (watch) {
    watch.abort();
    clearTimeout(watch.timer);
  }
  watch = null;
}

function startDocumentWatch() {
  stopDocumentWatch();
  watch = new AbortController();
  watchEvents(watch);
}

// Live status from GET /api/documents/events; a gateway without it (an older
// one) is polled instead.
async function watchEvents(current) {
  let response;
  try {
    response = await api("/api/documents/events", { signal: current.signal });
  } catch {
    if (!current.signal.aborted) pollDocuments(current);
    return;
  }
  if (!response.ok) {
    pollDocuments(current);
    return;
  }
  $("live-mode").textContent = "Live status";
  try {
    for await (const event of readEvents(response)) {
      if (event.event === "status") renderDocument(event.data);
    }
  } catch {
    // the stream broke: reconnect below
  }
  if (!current.signal.aborted) {
    current.timer = setTimeout(() => watchEvents(current), RETRY_MS);
  }
}

async function pollDocuments(current) {
  $("live-mode").textContent = `Status refreshed every ${POLL_MS / 1000} s`;
  try {
    const response = await api("/api/documents", { signal: current.signal });
    if (response.ok) {
      // Newest first; each new one goes on top, so the oldest is drawn first.
      const docs = await response.json();
      for (const doc of docs.reverse()) renderDocument({ ...doc, document_id: doc.id });
    }
  } catch {
    // the next poll tries again
  }
  if (!current.signal.aborted) current.timer = setTimeout(() => pollDocuments(current), POLL_MS);
}

function renderDocument(doc) {
  const list = $("document-list");
  let item = list.querySelector(`li[data-id="${CSS.escape(doc.document_id)}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.id = doc.document_id;
    for (const part of ["filename", "status", "detail", "tags"]) {
      const span = document.createElement("span");
      span.className = part;
      item.append(span);
    }
    list.prepend(item);
  }
  item.querySelector(".filename").textContent = doc.filename;
  // A status event carries no tags: keep what the list showed.
  if (Array.isArray(doc.tags)) {
    item.querySelector(".tags").textContent = doc.tags.map((tag) => `#${tag}`).join(" ");
  }
  const status = item.querySelector(".status");
  status.textContent = doc.status;
  status.dataset.status = doc.status;
  let detail = "";
  if (doc.status === "indexed") detail = `${doc.chunks} passages`;
  if (doc.status === "failed") detail = doc.error || "failed";
  item.querySelector(".detail").textContent = detail;
}

function onFileChosen() {
  const file = $("file-input").files[0];
  if (file) upload(file, true);
}

function upload(file, retry) {
  const progress = $("upload-progress");
  const status = $("upload-status");
  if (config.max_upload_mb && file.size > config.max_upload_mb * 1024 * 1024) {
    status.textContent = `${file.name} is larger than ${config.max_upload_mb} MB`;
    status.className = "error";
    return;
  }
  const form = new FormData();
  form.append("file", file);
  // The gateway splits on commas and says why a tag is refused.
  const tags = $("upload-tags").value.trim();
  if (tags) form.append("tags", tags);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/documents");
  xhr.setRequestHeader("Authorization", `Bearer ${session.access}`);
  xhr.responseType = "json";
  progress.hidden = false;
  progress.value = 0;
  status.className = "";
  status.textContent = `Uploading ${file.name}…`;
  xhr.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = Math.round((100 * event.loaded) / event.total);
  };
  xhr.onload = () => {
    if (xhr.status === 401 && retry) {
      refreshTokens().then(() => upload(file, false), () => {});
      return;
    }
    const body = xhr.response || {};
    if (xhr.status === 202) {
      progress.value = 100;
      status.textContent = `Uploaded ${file.name}`;
      renderDocument({ ...body, document_id: body.id });
    } else {
      status.className = "error";
      const detail = typeof body.detail === "string" ? body.detail : `error ${xhr.status}`;
      status.textContent = `${file.name}: ${detail}`;
    }
    $("file-input").value = "";
  };
  xhr.onerror = () => {
    status.className = "error";
    status.textContent = `${file.name}: the upload failed (network error)`;
  };
  xhr.send(form);
}

// --- chat -------------------------------------------------------------------

// Resumes of one dropped answer, and the wait before each.
const RESUMES = 5;
const RESUME_WAIT_MS = 1000;

let conversationId = null;
// The answer being streamed: signing out stops it (and the server its work).
let chatAbort = null;

function addMessage(kind) {
  const item = document.createElement("li");
  item.className = kind;
  $("messages").append(item);
  return item;
}

// The answer so far, with each [n] that names a source as a button. An
// answer not found in the documents cites nothing: its text stays plain.
function renderAnswer(turn) {
  const parts = [];
  let last = 0;
  if (turn.grounded) {
    for (const match of turn.text.matchAll(/\[(\d+)\]/g)) {
      const source = turn.sources.get(Number(match[1]));
      if (!source) continue;
      parts.push(document.createTextNode(turn.text.slice(last, match.index)));
      parts.push(citationButton(source));
      last = match.index + match[0].length;
    }
  }
  parts.push(document.createTextNode(turn.text.slice(last)));
  turn.body.replaceChildren(...parts);
}

function citationButton(source) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "citation";
  button.textContent = `[${source.n}]`;
  button.title = source.filename;
  button.addEventListener("click", () => openSource(source, true));
  return button;
}

// A passage that is only close to the question, not a citation: the button
// names the file rather than a number the answer could point to.
function passageButton(source) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "passage";
  button.textContent = source.filename;
  button.title = "Read this passage (not cited)";
  button.addEventListener("click", () => openSource(source, false));
  return button;
}

function renderSources(turn) {
  turn.element.querySelector(".sources-block")?.remove();
  if (!turn.sources.size) return;
  const block = document.createElement("div");
  block.className = "sources-block";
  if (!turn.grounded) {
    const heading = document.createElement("p");
    heading.className = "sources-heading";
    heading.textContent = "Closest passages (not cited)";
    block.append(heading);
  }
  const list = document.createElement("ul");
  list.className = turn.grounded ? "sources" : "sources closest";
  for (const source of turn.sources.values()) {
    const item = document.createElement("li");
    const place = where(source) ? ` (${where(source)})` : "";
    if (turn.grounded) {
      const name = document.createElement("span");
      name.textContent = ` ${source.filename}${place}`;
      item.append(citationButton(source), name);
    } else {
      const detail = document.createElement("span");
      detail.textContent = place;
      item.append(passageButton(source), detail);
    }
    list.append(item);
  }
  block.append(list);
  turn.element.append(block);
}

function where(source) {
  const parts = [];
  if (source.page) parts.push(`page ${source.page}`);
  if (source.section) parts.push(source.section);
  return parts.join(" · ");
}

function openSource(source, cited) {
  $("source-title").textContent = cited
    ? `[${source.n}] ${source.filename}`
    : `Closest passage (not cited): ${source.filename}`;
  $("source-where").textContent = where(source);
  $("source-text").textContent = source.text || source.snippet;
  $("source-dialog").showModal();
}

// The documents do not answer the question: the turn says so, and its
// sources are shown as the closest passages, none of them cited.
function markNotFound(turn) {
  turn.grounded = false;
  turn.element.classList.add("not-found");
  turn.element.dataset.grounded = "false";
  const label = document.createElement("p");
  label.className = "not-found-label";
  label.textContent = "Not found in your documents";
  turn.element.prepend(label);
  renderAnswer(turn);
  renderSources(turn);
}

function finish(turn, state, message) {
  turn.element.dataset.state = state;
  if (message) {
    const error = document.createElement("p");
    error.className = "error";
    error.setAttribute("role", "alert");
    error.textContent = message;
    turn.element.append(error);
  }
}

function onStreamEvent(turn, event) {
  switch (event.event) {
    case "sources":
      turn.sources = new Map(event.data.map((s) => [s.n, s]));
      renderSources(turn);
      break;
    case "token":
      turn.tokens += 1;
      turn.element.dataset.tokens = String(turn.tokens);
      turn.text += event.data.text;
      renderAnswer(turn);
      break;
    case "reset":
      // The worker writing the answer was lost; another starts it over:
      // what was shown of the lost attempt is not part of the answer.
      turn.text = "";
      turn.tokens = 0;
      turn.resets = (turn.resets || 0) + 1;
      turn.element.dataset.tokens = "0";
      turn.element.dataset.resets = String(turn.resets);
      turn.sources = new Map();
      renderAnswer(turn);
      renderSources(turn);
      break;
    case "done":
      conversationId = event.data.conversation_id;
      if (event.data.turn) {
        turn.element.dataset.turn = String(event.data.turn);
        addFeedbackBar(turn, conversationId, event.data.turn, null);
      }
      refreshConversations();
      // An older server sends no "grounded": its answers are grounded.
      if (event.data.grounded === false) markNotFound(turn);
      else turn.element.dataset.grounded = "true";
      finish(turn, "done");
      return true;
    case "error":
      finish(turn, "error", `The answer failed: ${event.data.message}`);
      return true;
    case "timeout":
      finish(turn, "timeout", `No answer within ${event.data.stream_timeout} seconds; please ask again.`);
      return true;
  }
  return false;
}

async function onAsk(event) {
  event.preventDefault();
  const message = $("question").value.trim();
  if (!message) return;
  addMessage("question").textContent = message;
  const element = addMessage("answer");
  const body = document.createElement("div");
  body.className = "answer-text";
  element.append(body);
  element.dataset.state = "streaming";
  const turn = { element, body, text: "", tokens: 0, sources: new Map(), grounded: true };
  const request = { message };
  if (conversationId) request.conversation_id = conversationId;
  const timeout = parseFloat($("stream-timeout").value);
  if (timeout > 0) request.stream_timeout = timeout;
  $("question").value = "";
  $("ask").disabled = true;
  chatAbort = new AbortController();
  try {
    await streamAnswer(turn, request, chatAbort.signal);
  } catch (err) {
    finish(turn, "error", `The connection failed: ${err.message}`);
  } finally {
    $("ask").disabled = false;
  }
}

async function streamAnswer(turn, request, signal) {
  const response = await api("/api/chat/stream", {
    method: "POST",
    signal,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  if (!response.ok) {
    finish(turn, "error", await errorText(response));
    return;
  }
  const place = { stream: response.headers.get("X-Stream-ID"), last: null };
  if (await readAnswer(turn, response, place)) return;
  // The connection dropped mid-answer: resume where it broke, on whichever
  // server answers (GET /api/chat/stream/{id} with Last-Event-ID), within
  // the server's grace (STREAM_RESUME_GRACE_SECONDS).
  for (let tries = 1; place.stream && tries <= RESUMES && !signal.aborted; tries++) {
    turn.element.dataset.resumes = String(tries);
    await new Promise((resolve) => setTimeout(resolve, RESUME_WAIT_MS));
    const headers = place.last ? { "Last-Event-ID": place.last } : {};
    let again;
    try {
      again = await api(`/api/chat/stream/${place.stream}`, { signal, headers });
    } catch (err) {
      if (signal.aborted) throw err;
      continue; // still unreachable: try again
    }
    if (!again.ok) {
      finish(turn, "error", await errorText(again));
      return;
    }
    if (await readAnswer(turn, again, place)) return;
  }
  finish(turn, "error", "The connection closed before the answer finished; please ask again.");
}

// One connection's events into the turn; true once the stream is over,
// false if the connection dropped first. ``place.last``: the last event's id.
async function readAnswer(turn, response, place) {
  try {
    for await (const event of readEvents(response)) {
      if (event.id) place.last = event.id;
      if (onStreamEvent(turn, event)) return true;
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
  }
  return false;
}

// --- conversations ------------------------------------------------------------
// A sidebar of the user's conversations, the most recently active first:
// open one to read it and ask on in it, rename it in place, delete it (a
// second click confirms: no JavaScript dialogs), or start a new one.

const CONVERSATION_PAGE = 30;
let conversationCursor = null;
// Bumped on each reload of the list: a slower, older answer is dropped.
let conversationLoad = 0;

function clearConversations() {
  conversationLoad += 1;
  conversationCursor = null;
  $("conversation-list").replaceChildren();
  $("more-conversations").hidden = true;
  show($("conversation-status"), "");
}

async function refreshConversations(more = false) {
  const load = more ? conversationLoad : ++conversationLoad;
  const params = new URLSearchParams({ limit: String(CONVERSATION_PAGE) });
  if (more && conversationCursor) params.set("cursor", conversationCursor);
  let page;
  try {
    const response = await api(`/api/conversations?${params}`);
    if (!response.ok) {
      // An older gateway has no conversations: no sidebar, nothing to show.
      $("conversations").hidden = response.status === 404;
      return;
    }
    page = await response.json();
  } catch {
    return; // the next answer refreshes it
  }
  if (load !== conversationLoad) return;
  if (!more) $("conversation-list").replaceChildren();
  for (const conversation of page.conversations) renderConversation(conversation);
  conversationCursor = page.next_cursor;
  $("more-conversations").hidden = !conversationCursor;
}

function renderConversation(conversation) {
  const item = document.createElement("li");
  item.dataset.id = conversation.id;
  item.dataset.active = String(conversation.id === conversationId);
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  open.textContent = conversation.title;
  open.title = "Open this conversation";
  open.addEventListener("click", () => openConversation(conversation.id));
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "rename";
  rename.textContent = "Rename";
  rename.addEventListener("click", () => startRename(item, conversation));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "delete";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => deleteConversation(item, remove, conversation.id));
  const meta = document.createElement("span");
  meta.className = "meta";
  const turns = conversation.turn_count === 1 ? "1 turn" : `${conversation.turn_count} turns`;
  meta.textContent = `${turns} · ${new Date(conversation.last_activity_at).toLocaleString()}`;
  item.append(open, rename, remove, meta);
  $("conversation-list").append(item);
}

function markActive() {
  for (const item of $("conversation-list").children) {
    item.dataset.active = String(item.dataset.id === conversationId);
  }
}

function newConversation() {
  opening += 1; // a conversation still being opened is not drawn
  if (chatAbort) chatAbort.abort();
  conversationId = null;
  $("messages").replaceChildren();
  markActive();
  $("question").focus();
}

// Bumped on each opening: only the last one clicked is drawn, whichever
// answer comes back first.
let opening = 0;

async function openConversation(id) {
  const mine = ++opening;
  show($("conversation-status"), "");
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (mine !== opening) return;
  if (!response.ok) {
    show($("conversation-status"), await errorText(response));
    if (response.status === 404) refreshConversations();
    return;
  }
  const conversation = await response.json();
  if (mine !== opening) return;
  if (chatAbort) chatAbort.abort();
  conversationId = conversation.id;
  $("messages").replaceChildren();
  for (const stored of conversation.turns) renderStoredTurn(stored);
  markActive();
}

// A turn read back: drawn like a streamed one. The stored answer does not
// say whether it was grounded; one that cites none of its sources was not.
function renderStoredTurn(stored) {
  addMessage("question").textContent = stored.question;
  const element = addMessage("answer");
  const body = document.createElement("div");
  body.className = "answer-text";
  element.append(body);
  element.dataset.state = "done";
  element.dataset.turn = String(stored.turn);
  const sources = new Map(stored.sources.map((s) => [s.n, s]));
  const cites = [...stored.answer.matchAll(/\[(\d+)\]/g)].some((m) => sources.has(Number(m[1])));
  const turn = { element, body, text: stored.answer, tokens: 0, sources, grounded: true };
  if (!cites && sources.size) {
    markNotFound(turn);
  } else {
    renderAnswer(turn);
    renderSources(turn);
  }
  addFeedbackBar(turn, conversationId, stored.turn, stored.feedback);
  return turn;
}

function startRename(item, conversation) {
  if (item.querySelector("input")) return;
  const input = document.createElement("input");
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute("aria-label", "New title");
  // Once: removing a focused input fires its blur, which would remove it again.
  let closed = false;
  const done = () => {
    if (closed) return;
    closed = true;
    input.remove();
  };
  input.addEventListener("keydown", async (event) => {
    if (event.key === "Escape") return done();
    if (event.key !== "Enter") return;
    event.preventDefault();
    const title = input.value.trim();
    if (!title) return done();
    const response = await api(`/api/conversations/${encodeURIComponent(conversation.id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title }),
    });
    if (!response.ok) return show($("conversation-status"), await errorText(response));
    conversation.title = (await response.json()).title;
    item.querySelector(".open").textContent = conversation.title;
    done();
  });
  input.addEventListener("blur", done);
  item.append(input);
  input.focus();
  input.select();
}

// The first click arms the button, a second within 4 s deletes.
async function deleteConversation(item, button, id) {
  if (button.dataset.armed !== "true") {
    button.dataset.armed = "true";
    button.textContent = "Delete?";
    setTimeout(() => {
      button.dataset.armed = "false";
      button.textContent = "Delete";
    }, 4000);
    return;
  }
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (!response.ok && response.status !== 404) {
    show($("conversation-status"), await errorText(response));
    return;
  }
  item.remove();
  if (conversationId === id) newConversation();
}

// --- feedback on answers -------------------------------------------------------
// Under each answer: a good and a bad button. A bad rating opens a short
// form (what was wrong, which source); sending it replaces the rating, as
// any new rating of the same answer does.

function addFeedbackBar(turn, conversation, number, existing) {
  turn.element.querySelector(".feedback")?.remove();
  const bar = document.createElement("div");
  bar.className = "feedback";
  const buttons = {};
  for (const [rating, label, title] of [
    ["up", "Good", "A good answer"],
    ["down", "Bad", "A bad answer"],
  ]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `rate rate-${rating}`;
    button.textContent = label;
    button.title = title;
    button.setAttribute("aria-label", title);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => rateAnswer(bar, rating, {}));
    buttons[rating] = button;
    bar.append(button);
  }
  const state = document.createElement("span");
  state.className = "feedback-state muted";
  state.setAttribute("role", "status");
  bar.append(state);
  bar.feedback = { conversation, number, turn, buttons, state };
  turn.element.append(bar);
  if (existing) showRating(bar, existing);
}

function showRating(bar, rated) {
  for (const [rating, button] of Object.entries(bar.feedback.buttons)) {
    button.setAttribute("aria-pressed", String(rating === rated.rating));
  }
  bar.dataset.rating = rated.rating;
  bar.feedback.state.textContent = rated.rating === "up" ? "Thanks!" : "Thanks: noted as a bad answer";
}

// From the buttons (a bad rating then opens the form), or the form's details.
async function rateAnswer(bar, rating, details, fromForm = false) {
  const { conversation, number } = bar.feedback;
  const path = `/api/conversations/${encodeURIComponent(conversation)}/turns/${number}/feedback`;
  const response = await api(path, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ rating, ...details }),
  });
  if (!response.ok) {
    bar.feedback.state.textContent = await errorText(response);
    bar.feedback.state.className = "feedback-state error";
    return false;
  }
  bar.feedback.state.className = "feedback-state muted";
  showRating(bar, await response.json());
  bar.querySelector(".feedback-form")?.remove();
  if (rating === "down" && !fromForm) openFeedbackForm(bar);
  return true;
}

function openFeedbackForm(bar) {
  const form = document.createElement("form");
  form.className = "feedback-form";
  const comment = document.createElement("textarea");
  comment.rows = 2;
  comment.maxLength = 2000;
  comment.placeholder = "What was wrong? (optional)";
  comment.setAttribute("aria-label", "What was wrong");
  const which = document.createElement("select");
  which.setAttribute("aria-label", "Which source was wrong");
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "No source in particular";
  which.append(none);
  for (const source of bar.feedback.turn.sources.values()) {
    const option = document.createElement("option");
    option.value = String(source.n);
    option.textContent = `[${source.n}] ${source.filename} was wrong`;
    which.append(option);
  }
  const send = document.createElement("button");
  send.type = "submit";
  send.textContent = "Send";
  form.append(comment, which, send);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const details = {};
    if (comment.value.trim()) details.comment = comment.value.trim();
    if (which.value) details.wrong_source = Number(which.value);
    rateAnswer(bar, "down", details, true).then((sent) => {
      if (sent) bar.feedback.state.textContent = "Thanks: your note was sent";
    });
  });
  bar.append(form);
  comment.focus();
}

// --- start ------------------------------------------------------------------

// --- folder sync (tenant admins) -----------------------------------------------
// GET /api/sources answers 403 to members: the panel stays hidden for them.

const SYNC_POLL_MS = 5000;
let syncTimer = null;

function runLine(run) {
  if (!run) return "never run yet";
  const counts = Object.entries(run.counts)
    .filter(([, n]) => n)
    .map(([what, n]) => `${what} ${n}`)
    .join(", ");
  if (run.outcome === "running") return `running: ${run.files_done}/${run.files_total} files`;
  const error = run.error ? `: ${run.error}` : "";
  return `${run.outcome}${error} (${counts || "nothing to do"}), ${run.finished_at.slice(0, 19)}`;
}

function renderSource(source, problems) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "sync-name";
  name.textContent = `${source.name} (${source.state})`;
  const run = document.createElement("div");
  run.className = "sync-run";
  run.textContent = runLine(source.current_run || source.last_run);
  item.append(name, run);
  if (problems.length) {
    const list = document.createElement("ul");
    list.className = "sync-problems";
    for (const problem of problems) {
      const line = document.createElement("li");
      line.textContent = `${problem.path}: ${problem.status}, ${problem.reason}`;
      list.append(line);
    }
    item.append(list);
  }
  return item;
}

async function refreshSources() {
  clearTimeout(syncTimer);
  if (!session) return;
  try {
    const response = await api("/api/sources");
    if (!response.ok) {
      $("sync-panel").hidden = true;
      return; // not an admin (403), or a gateway without folder sync (404)
    }
    const found = await response.json();
    $("sync-panel").hidden = false;
    const items = [];
    for (const source of found) {
      let problems = [];
      // The failed files, with why, while the panel is open.
      if ($("sync-panel").open) {
        const detail = await api(`/api/sources/${encodeURIComponent(source.id)}`);
        if (detail.ok) problems = (await detail.json()).problems;
      }
      items.push(renderSource(source, problems));
    }
    $("sync-list").replaceChildren(...items);
    $("sync-status").textContent = found.length ? "" : "No folders synced (rag sync add)";
  } catch {
    // the next refresh tries again
  }
  syncTimer = setTimeout(refreshSources, SYNC_POLL_MS);
}

async function start() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("register-toggle").addEventListener("click", (event) => {
    event.preventDefault();
    setRegistering(!registering);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("file-input").addEventListener("change", onFileChosen);
  $("chat-form").addEventListener("submit", onAsk);
  $("source-close").addEventListener("click", () => $("source-dialog").close());
  $("new-conversation").addEventListener("click", newConversation);
  $("more-conversations").addEventListener("click", () => refreshConversations(true));
  $("sync-panel").addEventListener("toggle", refreshSources);
  try {
    const response = await fetch("/web/config.json");
    if (response.ok) config = await response.json();
  } catch {
    // defaults: no registration link, no size check here
  }
  $("register-hint").hidden = !config.registration;
  $("sso-hint").hidden = !config.sso;
  if (config.suffixes.length) $("file-input").accept = config.suffixes.join(",");
  try {
    if (await finishSingleSignOn()) return;
  } catch (err) {
    show($("signin-error"), `Cannot reach the server: ${err.message}`);
  }
  loadSession();
  if (session) {
    // A reload: the stored access token may have expired; refresh first.
    refreshTokens().then(enterApp, () => {});
  } else {
    $("signin-view").hidden = false;
  }
}

start();
