// The chat page: sign in, pick a character, talk to it with streamed replies over the
// WebSocket, and pick up where the reply was after a reload or a dropped connection.

import { ApiError, api, auth, blobUrl, randomId, signIn, whoami } from "./api.js";
import { $, h, show, when } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { Realtime } from "./ws.js";

// sessionStorage: survives a reload of the tab, not its closing.
const saved = {
  get: (name) => sessionStorage.getItem(`personae.${name}`),
  set: (name, value) =>
    value === null ? sessionStorage.removeItem(`personae.${name}`) : sessionStorage.setItem(`personae.${name}`, value),
  // The last seq of a conversation at which no reply was half shown: resuming after it
  // replays the reply in flight from its start, so a reload shows all of it.
  seq: (conversation) => Number(sessionStorage.getItem(`personae.seq.${conversation}`) || 0),
  setSeq: (conversation, seq) => sessionStorage.setItem(`personae.seq.${conversation}`, String(seq)),
};

const state = {
  characters: new Map(),
  character: null,
  conversation: null,
  seen: 0, // the last seq applied to the screen
  shown: new Set(), // ids of the messages on screen
  replies: new Map(), // reply_to -> {el, body, text}: replies being streamed
  awaitingNew: false, // a send that starts a conversation has no answer yet
  early: [], // events that arrived before that answer
  greeting: 0, // which greeting a new conversation opens with
  opening: 0, // counts conversation opens: only the latest one may fill the screen
  groups: new Map(), // a reply's alternatives ("swipes"): group id -> messages, oldest first
  contents: new Map(), // message id -> its text as stored (for an edit's starting point)
  realtime: null,
  me: null,
};

const ui = {
  status: $("#status"),
  nav: $("#nav"),
  messages: $("#messages"),
  notice: $("#notice"),
  text: $("#composer-text"),
  cancel: $("#cancel"),
  stateList: $("#state"),
};

function view(name) {
  for (const id of ["signin", "gallery", "chat"]) show($(`#${id}`), id === name);
}

// ---- signing in -------------------------------------------------------------------------

async function boot() {
  wire();
  if (!auth.signedIn()) return signInView();
  try {
    await enter();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      auth.signOut();
      signInView(error.message);
    } else {
      setStatus(`Could not load: ${error.message}`);
    }
  }
}

function signInView(message = "") {
  view("signin");
  show(ui.nav, false);
  $("#signin-error").textContent = message;
  $("#api-key").focus();
}

async function enter() {
  const me = await whoami();
  const characters = await api("/api/characters");
  state.characters = new Map(characters.map((c) => [c.id, c]));
  gallery(characters);
  show(ui.nav, true);
  show($("#to-admin"), me.admin);
  state.me = me;
  const character = saved.get("character");
  if (character && state.characters.has(character)) {
    await openCharacter(character, saved.get("conversation"));
  } else {
    view("gallery");
  }
  startRealtime();
}

function startRealtime() {
  state.realtime = new Realtime({
    token: auth.key(),
    deviceId: saved.get("device") ?? newDevice(),
    resume: () => (state.conversation ? { [state.conversation]: saved.seq(state.conversation) } : {}),
    onEvent: receive,
    onStatus: connection,
  });
  window.personae = { realtime: state.realtime }; // for the console and the browser tests
  state.realtime.start();
}

function newDevice() {
  const id = `web-${randomId().slice(0, 8)}`;
  saved.set("device", id);
  return id;
}

function connection(status, detail) {
  const words = { connecting: "Connecting…", online: "Online", offline: "Reconnecting…", denied: "Not allowed" };
  const why = status === "denied" && detail ? `: ${detail.message}` : "";
  setStatus(`${words[status]}${why} · ${state.me.user}`);
  document.body.dataset.connection = status;
  if (status === "connecting") restartReplies();
  if (status === "online" && state.conversation) {
    const resumed = detail.resumed ?? [];
    const problem = detail.resume_errors?.[state.conversation];
    if (problem) notice(`This conversation could not be resumed (${problem}).`);
    else if (!resumed.includes(state.conversation)) subscribe(state.conversation);
  }
}

function setStatus(text) {
  ui.status.textContent = text;
}

// ---- the gallery --------------------------------------------------------------------------

function avatar(character, size = "") {
  const initials = character.name.split(/\s+/).map((w) => w[0] ?? "").join("").slice(0, 2).toUpperCase();
  const el = h("span", { class: `avatar ${size}`, "aria-hidden": "true" }, initials || "?");
  let hue = 0;
  for (const ch of character.id) hue = (hue * 31 + ch.charCodeAt(0)) % 360;
  el.style.setProperty("--hue", String(hue)); // CSSOM, which the page's CSP allows
  // The card's picture replaces the initials once it has arrived (they stay if it never does).
  blobUrl(`/api/characters/${encodeURIComponent(character.id)}/avatar`)
    .then((url) => el.replaceChildren(h("img", { src: url, alt: "" })))
    .catch(() => {});
  return el;
}

function gallery(characters) {
  show($("#gallery-empty"), characters.length === 0);
  $("#characters").replaceChildren(
    ...characters.map((c) =>
      h(
        "li",
        { class: "card" },
        h(
          "button",
          { type: "button", class: "card-button", "data-character": c.id, onclick: () => openCharacter(c.id, null) },
          avatar(c),
          h("span", { class: "card-name" }, c.name),
          h("span", { class: "tags" }, c.tags.map((t) => h("span", { class: "tag" }, t))),
          h("span", { class: "card-text" }, renderMarkdown(c.description)),
        ),
      ),
    ),
  );
}

// ---- a character and its conversations ------------------------------------------------------

async function openCharacter(id, conversation) {
  const character = state.characters.get(id);
  state.character = character;
  saved.set("character", id);
  $("#who").replaceChildren(avatar(character, "large"), h("strong", {}, character.name));
  $("#side").open = matchMedia("(min-width: 760px)").matches;
  view("chat");
  // The side lists load alongside: waiting for them before the conversation is set up would
  // let a message sent meanwhile be wiped when they arrive.
  const sides = Promise.all([listConversations(), loadMemory()]);
  let opened = false;
  if (conversation) {
    try {
      await openConversation(conversation);
      opened = true;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
  }
  if (!opened) newConversation();
  await sides;
}

async function listConversations() {
  const list = await api(`/api/conversations?character=${encodeURIComponent(state.character.id)}`);
  $("#conversations").replaceChildren(
    ...list.map((c) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "conversation",
            "aria-current": c.id === state.conversation ? "true" : null,
            "data-conversation": c.id,
            onclick: () => openConversation(c.id),
          },
          when(c.updated_at),
          h("span", { class: "hint" }, ` · ${c.last_seq} messages`),
        ),
      ),
    ),
  );
}

function leave() {
  const previous = state.conversation;
  if (previous && state.realtime?.ready) {
    state.realtime.request("conversation.unsubscribe", { conversation: previous }).catch(() => {});
  }
  state.conversation = null;
  state.seen = 0;
  state.shown.clear();
  state.replies.clear();
  state.groups.clear();
  state.contents.clear();
  ui.messages.replaceChildren();
  ui.stateList.replaceChildren(h("dt", {}, "state"), h("dd", {}, "unknown until the mood moves"));
  show(ui.notice, false);
  busy(false);
}

function newConversation() {
  state.opening += 1; // an earlier open still loading must not replace this one
  ui.text.disabled = false;
  leave();
  saved.set("conversation", null);
  state.greeting = 0;
  showGreeting();
  markCurrent();
  ui.text.focus();
}

// A new conversation shows the greeting it will open with; a card's alternate greetings can
// be chosen with the arrows until the first message is sent (message.send's ``greeting``).
function showGreeting() {
  const greetings = state.character.greetings;
  const greeting = greetings[state.greeting];
  if (!greeting) return ui.messages.replaceChildren();
  const text = greeting.replaceAll("{{char}}", state.character.name).replaceAll("{{user}}", "you");
  const el = bubble({ role: "assistant", content: text, id: null }, "greeting");
  if (greetings.length > 1) {
    const step = (by) => () => {
      state.greeting = (state.greeting + by + greetings.length) % greetings.length;
      showGreeting();
      $(`#greeting-${by > 0 ? "next" : "previous"}`).focus();
    };
    el.append(
      h(
        "span",
        { class: "swipe", role: "group", "aria-label": "greetings" },
        h("button", { type: "button", id: "greeting-previous", "aria-label": "previous greeting", onclick: step(-1) }, "‹"),
        h("span", { class: "hint", "aria-live": "polite" }, `${state.greeting + 1}/${greetings.length}`),
        h("button", { type: "button", id: "greeting-next", "aria-label": "next greeting", onclick: step(1) }, "›"),
      ),
    );
  }
  ui.messages.replaceChildren(el);
}

async function openConversation(id) {
  const path = `/api/conversations/${encodeURIComponent(id)}/messages?limit=500&alternatives=true`;
  const ticket = ++state.opening;
  ui.text.disabled = true; // a message written now would go to the conversation being left
  let messages;
  try {
    messages = await api(path);
  } finally {
    if (ticket === state.opening) ui.text.disabled = false;
  }
  if (ticket !== state.opening) return; // another conversation was opened meanwhile
  leave();
  state.conversation = id;
  saved.set("conversation", id);
  state.seen = saved.seq(id);
  for (const m of messages) {
    remember(m);
    if (!m.hidden) addMessage(m);
  }
  refreshTools();
  const machine = saved.get(`behaviour.${id}`);
  if (machine) behaviour(JSON.parse(machine), []);
  markCurrent();
  if (state.realtime?.ready) subscribe(id);
  ui.text.focus();
}

function subscribe(conversation) {
  state.seen = saved.seq(conversation);
  state.realtime
    .request("conversation.subscribe", { conversation, after_seq: saved.seq(conversation) })
    .catch((error) => notice(`Live updates are off: ${error.message}`));
}

function markCurrent() {
  for (const b of document.querySelectorAll(".conversation")) {
    if (b.dataset.conversation === state.conversation) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
}

// ---- messages on screen ----------------------------------------------------------------------

function bubble(message, status = message.status) {
  const who = message.role === "user" ? "You" : message.role === "assistant" ? state.character.name : message.role;
  const group = message.role === "assistant" && message.id ? message.swipe_of || message.id : null;
  return h(
    "li",
    { class: `message ${message.role}`, "data-id": message.id, "data-status": status, "data-group": group },
    h("span", { class: "speaker" }, who),
    h("div", { class: "body" }, renderMarkdown(message.content)),
    status && status !== "complete" ? h("span", { class: "meta" }, status) : null,
  );
}

function addMessage(message, meta = "") {
  if (message.id && state.shown.has(message.id)) return;
  if (message.id) state.shown.add(message.id);
  remember(message);
  const el = bubble(message);
  if (meta) el.append(h("span", { class: "meta" }, meta));
  ui.messages.append(el);
  scroll();
}

// ---- regenerate, swipes and edits (message.regenerate / .swipe / .edit) -------------------------

function remember(message) {
  if (!message.id) return;
  state.contents.set(message.id, message.content);
  if (message.role !== "assistant") return;
  const group = message.swipe_of || message.id;
  const members = state.groups.get(group) ?? [];
  if (!members.some((m) => m.id === message.id)) members.push(message);
  state.groups.set(group, members);
}

// The last reply gets regenerate and its alternatives' arrows, the last user message an edit
// button; nothing while a reply is being written.
function refreshTools() {
  for (const tools of ui.messages.querySelectorAll(".tools")) tools.remove();
  if (state.replies.size > 0 || !state.conversation) return;
  const shown = [...ui.messages.querySelectorAll(".message[data-id]")];
  const lastUser = shown.findLast((el) => el.classList.contains("user"));
  const lastReply = shown.at(-1)?.classList.contains("assistant") ? shown.at(-1) : null;
  if (lastReply && lastUser) {
    const members = state.groups.get(lastReply.dataset.group) ?? [];
    const at = members.findIndex((m) => m.id === lastReply.dataset.id);
    const tools = h("span", { class: "tools swipe" });
    if (members.length > 1) {
      const go = (by) => () => swipeTo(members[(at + by + members.length) % members.length].id);
      tools.append(
        h("button", { type: "button", class: "swipe-previous", "aria-label": "previous reply", onclick: go(-1) }, "‹"),
        h("span", { class: "hint swipe-position" }, `${at + 1}/${members.length}`),
        h("button", { type: "button", class: "swipe-next", "aria-label": "next reply", onclick: go(1) }, "›"),
      );
    }
    tools.append(h("button", { type: "button", class: "regenerate", onclick: () => regenerate(lastReply.dataset.id) }, "Regenerate"));
    lastReply.append(tools);
  }
  if (lastUser) {
    lastUser.append(
      h("span", { class: "tools" }, h("button", { type: "button", class: "edit", onclick: () => startEdit(lastUser) }, "Edit")),
    );
  }
}

async function redo(method, params) {
  show(ui.notice, false);
  try {
    await state.realtime.request(method, { conversation: state.conversation, idempotency_key: randomId(), ...params }, { replay: true });
  } catch (error) {
    notice(`Not done: ${error.message}`);
  }
}

const regenerate = (replyId) => redo("message.regenerate", { message: replyId });

async function swipeTo(messageId) {
  try {
    await state.realtime.request("message.swipe", { conversation: state.conversation, message: messageId });
  } catch (error) {
    notice(`Not changed: ${error.message}`);
  }
}

function startEdit(el) {
  const field = h("textarea", { class: "edit-text", "aria-label": "edit your message", rows: "3" });
  field.value = state.contents.get(el.dataset.id) ?? "";
  const body = el.querySelector(".body");
  const before = [...body.childNodes];
  const stop = () => {
    body.replaceChildren(...before);
    refreshTools();
  };
  const save = () => {
    const text = field.value.trim();
    if (!text) return field.focus();
    body.replaceChildren(...before);
    redo("message.edit", { message: el.dataset.id, text });
  };
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      save();
    } else if (event.key === "Escape") stop();
  });
  el.querySelector(".tools")?.remove();
  body.replaceChildren(
    field,
    h("span", { class: "tools" }, h("button", { type: "button", class: "save-edit", onclick: save }, "Save"), h("button", { type: "button", onclick: stop }, "Cancel")),
  );
  field.focus();
}

// A redo's ack: an edit shows the new text and drops what answered the old one; a regenerate
// takes the reply being replaced off the screen (it stays one of the alternatives).
function reopened(message, how) {
  const el = ui.messages.querySelector(`.message[data-id="${message.id}"]`);
  if (!el) return;
  if (how === "edit") {
    state.contents.set(message.id, message.content);
    el.querySelector(".body").replaceChildren(renderMarkdown(message.content));
    el.dataset.edited = "true";
  }
  while (el.nextElementSibling) el.nextElementSibling.remove();
}

// message.swiped: another device (or this one) chose another alternative of the last reply.
function swiped(message) {
  remember(message);
  const group = message.swipe_of || message.id;
  const el = ui.messages.querySelector(`.message[data-group="${group}"]`);
  if (el) {
    el.replaceWith(bubble(message));
    state.shown.add(message.id);
  }
  refreshTools();
}

function scroll() {
  ui.messages.lastElementChild?.scrollIntoView({ block: "end" });
}

function reply(replyTo) {
  let entry = state.replies.get(replyTo);
  if (!entry) {
    const body = h("div", { class: "body" }, h("span", { class: "typing", "aria-label": "typing" }, "…"));
    const el = h(
      "li",
      { class: "message assistant streaming", "data-reply-to": replyTo, "aria-busy": "true" },
      h("span", { class: "speaker" }, state.character.name),
      body,
    );
    ui.messages.append(el);
    entry = { el, body, text: "" };
    state.replies.set(replyTo, entry);
    busy(true);
  }
  return entry;
}

// After a reconnect the replies in flight are replayed from their start: drop what was shown.
function restartReplies() {
  for (const entry of state.replies.values()) entry.el.remove();
  state.replies.clear();
  if (state.conversation) state.seen = saved.seq(state.conversation);
  busy(false);
}

function busy(on) {
  show(ui.cancel, on || state.replies.size > 0);
  refreshTools();
}

function notice(text) {
  ui.notice.textContent = text;
  show(ui.notice, Boolean(text));
}

// ---- what the character remembers ---------------------------------------------------------

async function loadMemory() {
  const character = state.character.id;
  let items;
  try {
    items = await api(`/api/memory?character=${encodeURIComponent(character)}`);
  } catch (error) {
    items = [];
    if (!(error instanceof ApiError && error.status === 404)) notice(`Memory: ${error.message}`);
  }
  if (state.character.id !== character) return; // another character was opened meanwhile
  $("#memory").replaceChildren(
    ...items.map((item) =>
      h(
        "li",
        { "data-memory": item.id },
        h("span", { class: "memory-text" }, item.text),
        h("span", { class: "hint" }, ` (${item.kind})`),
        h("button", { type: "button", class: "link", "aria-label": `Forget: ${item.text}`, onclick: () => forget(item.id) }, "Forget"),
      ),
    ),
  );
  show($("#memory-empty"), items.length === 0);
  show($("#forget-all"), items.length > 0);
}

async function forget(item) {
  const path = item ? `/api/memory/${encodeURIComponent(item)}` : `/api/memory?character=${encodeURIComponent(state.character.id)}`;
  if (!item && !confirm(`Make ${state.character.name} forget everything about you?`)) return;
  try {
    await api(path, { method: "DELETE" });
  } catch (error) {
    notice(`Not forgotten: ${error.message}`);
  }
  await loadMemory();
}

// ---- events from the server ---------------------------------------------------------------

function receive(frame) {
  if (frame.conversation !== state.conversation) {
    if (state.awaitingNew) state.early.push(frame);
    return;
  }
  if (frame.seq <= state.seen) return; // already applied (a resume overlaps what was shown)
  state.seen = frame.seq;
  const p = frame.payload;
  if (frame.event === "message.ack") {
    if (p.redo) reopened(p.message, p.redo);
    else addMessage(p.message);
    reply(p.message.id);
    settle(frame.seq);
  } else if (frame.event === "state.changed") {
    behaviour(p.state, p.changes);
    // Kept for a reload, which resumes after this event and so does not see it again.
    saved.set(`behaviour.${state.conversation}`, JSON.stringify(p.state));
    settle(frame.seq);
  } else if (frame.event === "message.delta") {
    const entry = reply(p.reply_to);
    entry.text += p.text;
    entry.body.replaceChildren(renderMarkdown(entry.text));
    scroll();
  } else if (frame.event === "message.done") {
    state.replies.get(p.reply_to)?.el.remove();
    state.replies.delete(p.reply_to);
    const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
    addMessage(p.message, `${seconds(p.latency_ms)} · first token ${seconds(p.time_to_first_token_ms ?? 0)}`);
    loadMemory(); // the turn may have taught the character something
    // Screen readers hear the finished reply once, not every streamed piece of it.
    $("#announce").textContent = `${state.character.name}: ${p.message.content}`;
    settle(frame.seq);
    busy(false);
  } else if (frame.event === "message.swiped") {
    swiped(p.message);
    settle(frame.seq);
  } else if (frame.event === "error") {
    failed(p);
    settle(frame.seq);
    busy(false);
  }
}

function settle(seq) {
  const midReply = [...state.replies.values()].some((entry) => entry.text);
  if (!midReply) saved.setSeq(state.conversation, seq);
}

function failed(payload) {
  const entry = state.replies.get(payload.reply_to);
  state.replies.delete(payload.reply_to);
  if (entry && entry.text) {
    entry.el.classList.remove("streaming");
    entry.el.removeAttribute("aria-busy");
    entry.el.dataset.status = payload.code;
    entry.el.append(h("span", { class: "meta" }, payload.code === "cancelled" ? "stopped" : payload.code));
  } else {
    entry?.el.remove();
  }
  notice(payload.code === "cancelled" ? "The reply was stopped." : `No reply: ${payload.message}`);
}

function behaviour(machine, changes) {
  const changed = new Map(changes.map((c) => [c.name, c]));
  const row = (name, value) => {
    const change = changed.get(name);
    const dd = h("dd", { class: change ? "changed" : null, "data-name": name }, String(value));
    if (change) dd.title = `was ${change.old}`;
    if (typeof value === "number" && name === "affinity") {
      dd.append(h("meter", { min: "0", max: "100", value: String(value), "aria-label": name }));
    }
    return [h("dt", {}, name), dd];
  };
  ui.stateList.replaceChildren(
    ...row("state", machine.state),
    ...Object.entries(machine.variables ?? {}).flatMap(([name, value]) => row(name, value)),
  );
}

// ---- sending ---------------------------------------------------------------------------------

async function send(text) {
  const params = { character: state.character.id, text, idempotency_key: randomId() };
  const starting = !state.conversation;
  if (starting) {
    params.new_conversation = true;
    params.greeting = state.greeting ?? 0;
    state.awaitingNew = true;
    state.early = [];
  } else {
    params.conversation = state.conversation;
  }
  show(ui.notice, false);
  try {
    const result = await state.realtime.request("message.send", params, { replay: true });
    if (starting) {
      state.conversation = result.conversation;
      saved.set("conversation", result.conversation);
      state.seen = 0;
      const early = state.early;
      state.awaitingNew = false;
      state.early = [];
      for (const frame of early) receive(frame);
      listConversations().then(markCurrent, () => {});
    }
  } catch (error) {
    notice(`Not sent: ${error.message}`);
    if (!ui.text.value) ui.text.value = text;
  } finally {
    if (starting) {
      state.awaitingNew = false;
      state.early = [];
    }
  }
}

async function cancel() {
  if (!state.conversation) return;
  try {
    await state.realtime.request("message.cancel", { conversation: state.conversation });
  } catch (error) {
    notice(`Could not stop: ${error.message}`);
  }
}

// ---- wiring ----------------------------------------------------------------------------------

function wire() {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("#api-key").value);
      $("#api-key").value = "";
      await enter();
    } catch (error) {
      $("#signin-error").textContent = error.status === 401 ? "That key was not accepted." : error.message;
    }
  });
  $("#sign-out").addEventListener("click", () => {
    state.realtime?.stop();
    auth.signOut();
    location.reload();
  });
  $("#to-gallery").addEventListener("click", () => {
    state.opening += 1;
    leave();
    saved.set("character", null);
    saved.set("conversation", null);
    view("gallery");
  });
  $("#new-conversation").addEventListener("click", newConversation);
  $("#forget-all").addEventListener("click", () => forget(null));
  $("#composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    ui.text.value = "";
    send(text);
  });
  ui.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("#composer").requestSubmit();
    } else if (event.key === "Escape") {
      cancel();
    }
  });
  ui.cancel.addEventListener("click", cancel);
}

boot();
