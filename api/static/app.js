// The job board: REST for snapshots and creation, GraphQL (graphql-transport-ws) for live updates.
// One page, two views: the board at / and one job's detail at /job/{id}.

import { commandButton, config, countdown, credit, el, photoFrame, queuedCommands, seconds, waitBar,
  waited } from "./dom.js";
import { detailView } from "./detail.js";

const STATUSES = ["pending", "processing", "resolved", "failed", "cancelled"];
const SETTLED = new Set(["resolved", "cancelled"]);  // no command moves these on (a failure: retry)
const PING_EVERY_MS = 10000;
const PONG_TIMEOUT_MS = 5000;
const JOB_FIELDS = `id status version seq createdAt dueAt updatedAt error waitingUntil
  result { id altDescription color blurHash width height urls { small regular } links { html }
           user { name username links { html } } }`;

const jobs = new Map();
const list = document.getElementById("jobs");
const connection = document.getElementById("connection");
const board = document.getElementById("board");
const detailSection = document.getElementById("detail");
const detail = detailView(detailSection);
let boardScroll = 0;

function fromGraphQL(job) {
  const r = job.result;
  return {
    id: job.id, status: job.status.toLowerCase(), version: job.version, seq: job.seq,
    created_at: job.createdAt,
    due_at: job.dueAt, updated_at: job.updatedAt, error: job.error,
    waiting_until: job.waitingUntil,
    result: r && { id: r.id, alt_description: r.altDescription, color: r.color,
      blur_hash: r.blurHash, width: r.width, height: r.height, urls: r.urls, links: r.links,
      user: r.user },
  };
}

// A job as the server says it is now. Each change is a new version; an older one (a page read
// before a live update, say) changes nothing. A command's answer is `tentative`: the job as it
// will be if the log takes the command, replaced by what the server then says of that version.
function upsert(job) {
  const known = jobs.get(job.id);
  if (known && (known.version > job.version || (known.version === job.version && !known.tentative))) return;
  jobs.set(job.id, job);
  render(job);
  if (job.id === detail.id) detail.take(job);
}

function newer(a, b) {  // the server's order: seq (jobs without one after), then id
  const bySeq = Number(a.dataset.seq) - Number(b.dataset.seq);
  if (bySeq) return bySeq > 0;
  const at = Number(a.dataset.created) - Number(b.dataset.created);
  return at > 0 || (at === 0 && a.id > b.id);
}

// While Unsplash's hourly allowance is spent, every processing job waits for the same window:
// when it ends (the server says it on each job it sends; checkAllowance asks meanwhile).
let allowanceWait = null;

function render(job) {
  let card = document.getElementById(`job-${job.id}`);
  const waiting = job.status === "processing" ? job.waiting_until || allowanceWait : null;
  // A version's card never changes: keep it (and its photo), unless the server contradicts a
  // command's tentative answer for that version, or the job's wait for Unsplash changed.
  if (card?.dataset.version === String(job.version) && card.dataset.status === job.status
      && card.dataset.waiting === String(waiting)) return;
  if (!card) {
    card = el("li", { class: "job", id: `job-${job.id}` });
    card.dataset.seq = job.seq ?? 0;  // none: a job from before seq, listed after all others
    card.dataset.created = Date.parse(job.created_at) || 0;
    list.insertBefore(card, [...list.children].find((c) => newer(card, c)) || null);
  }
  card.dataset.status = job.status;
  card.dataset.version = job.version;
  card.dataset.waiting = String(waiting);
  const meta = el("div", { class: "meta" }, el("span", { class: "status", text: job.status }));
  if (job.status === "pending") meta.append(" · ", el("span", { class: "countdown", text: countdown(job) }));
  let photo;
  if (job.status === "resolved" && job.result) {
    photo = photoFrame(job.result, "small", "(max-width: 600px) calc(100vw - 2rem), 270px");
    meta.append(credit(job.result));
  } else {
    const text = { processing: "fetching photo…", failed: "no photo", cancelled: "cancelled: no photo" };
    if (waiting) {  // Unsplash's hourly allowance is spent: it waits, it does not fail
      const at = new Date(waiting).toLocaleTimeString();
      text.processing = `waiting for Unsplash's allowance (until ${at})`;
    }
    photo = el("div", { class: "photo", text: text[job.status] || "waiting…" });
    if (job.status === "pending") photo.append(waitBar(job));
    if (job.status === "failed") meta.append(el("p", { class: "error", text: job.error || "failed" }));
  }
  meta.append(el("a", { class: "id", href: `/job/${encodeURIComponent(job.id)}`, "data-route": "",
    "aria-label": `Details of job ${job.id}`, text: job.id }));
  const command = commandButton(job);
  if (command) meta.append(command);
  card.replaceChildren(photo, meta);
  document.getElementById("empty").hidden = jobs.size > 0;
}

const PAGE = 30;
let nextCursor;  // undefined: first page not loaded yet; null: no more pages
let loadingMore = false;

async function getPage(cursor) {
  const query = new URLSearchParams({ limit: PAGE, ...(cursor ? { cursor } : {}) });
  const response = await fetch(`/jobs?${query}`);
  if (!response.ok) throw new Error(`GET /jobs answered ${response.status}`);
  return response.json();
}

const CATCH_UP_PAGES = 10;
let boardEpoch = 0;  // bumped when older cards are dropped: a page loading meanwhile is stale

// The newest jobs, first at load and again after a reconnect. It pages down until it meets a
// job the board already shows, so jobs created meanwhile leave no gap; after CATCH_UP_PAGES
// pages of only new jobs it drops the older cards instead and scrolling goes on from there.
async function snapshot() {
  // What the board showed before: live updates arriving meanwhile add jobs too, anywhere.
  const before = new Set(jobs.keys());
  const firstLoad = nextCursor === undefined || before.size === 0;
  const paged = new Set();
  let page = await getPage(null);
  for (let pages = 1; ; pages++) {
    const joined = page.items.some((job) => before.has(job.id));
    for (const job of page.items) { before.delete(job.id); paged.add(job.id); upsert(job); }
    if (firstLoad || (!joined && pages === CATCH_UP_PAGES)) {
      if (!firstLoad) drop(before);  // older than every job paged: they would leave a gap
      nextCursor = page.next_cursor;
      break;
    }
    if (joined || !page.next_cursor) break;
    page = await getPage(page.next_cursor);
  }
  document.getElementById("empty").hidden = jobs.size > 0;
  return paged;  // the jobs it has just read
}

function drop(ids) {
  boardEpoch++;
  for (const id of ids) {
    jobs.delete(id);
    document.getElementById(`job-${id}`)?.remove();
  }
}

// Whether the end of the list is on screen now (an observer's entry may be a frame old).
function moreInView() {
  const top = document.getElementById("more").getBoundingClientRect().top;
  return !board.hidden && top < window.innerHeight + 200;
}

async function loadMore() {
  if (loadingMore || !nextCursor || !moreInView()) return;
  loadingMore = true;
  document.getElementById("more").textContent = "loading more…";
  try {
    const epoch = boardEpoch;
    const page = await getPage(nextCursor);
    if (epoch !== boardEpoch) return;
    for (const job of page.items) upsert(job);
    nextCursor = page.next_cursor;
  } finally {
    loadingMore = false;
    document.getElementById("more").textContent = nextCursor ? "" : "that is every job";
  }
  requestAnimationFrame(loadMore);  // still at the end (a tall screen): the next page too
}

function showCounts(counts) {  // pushed by the jobCounts subscription: now, then on changes
  for (const status of STATUSES) {
    document.getElementById(`count-${status}`).textContent = counts[status];
  }
}

// Requests go to localStorage first, each with its idempotency key, then to the server: a lost
// connection (or a closed tab) loses none, and the key makes each request count once even
// when it got through but its answer did not. "Create N" is one request ({"count": N}),
// appended on the server as one batch; a cancel or a retry is an item {key, command, id}.
const QUEUE_KEY = "jobline.queue";

function queue() {
  try { return JSON.parse(localStorage.getItem(QUEUE_KEY)) || []; } catch { return []; }
}

function saveQueue(items) {
  localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
}

function showQueued(item) {
  if (item.command) {
    queuedCommands.set(item.id, item.command);
    redrawCommands(item.id);
    return;
  }
  for (let i = 0; i < (item.count || 1); i += 1) {
    if (document.getElementById(`queued-${item.key}-${i}`)) continue;
    const card = el("li", { class: "job", id: `queued-${item.key}-${i}`, "data-status": "queued" },
      el("div", { class: "photo", text: "queued: sent when the connection is back" }),
      el("div", { class: "meta" }, el("span", { class: "status", text: "queued" })));
    list.prepend(card);
  }
  document.getElementById("empty").hidden = true;
}

function dequeue(item) {
  saveQueue(queue().filter((queued) => queued.key !== item.key));
  if (item.command) {
    queuedCommands.delete(item.id);
    redrawCommands(item.id);
    return;
  }
  for (let i = 0; i < (item.count || 1); i += 1) {
    document.getElementById(`queued-${item.key}-${i}`)?.remove();
  }
}

// The API's bearer token, when the server needs one for changes (JOBLINE_API_TOKEN): typed
// once into the header's field, kept in localStorage, sent with every change and in the live
// connection's init payload.
const TOKEN_KEY = "jobline.token";
const token = () => localStorage.getItem(TOKEN_KEY) || "";
const withToken = (headers) => (token() ? { ...headers, Authorization: `Bearer ${token()}` } : headers);

function askForToken(why) {
  const field = document.getElementById("token-field");
  field.hidden = false;
  if (why) {
    notice(why);
    document.getElementById("token").focus();
  }
}

document.getElementById("token").value = token();
document.getElementById("token").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();  // the token, not a job: take it without submitting the form
  event.target.blur();
});
document.getElementById("token").addEventListener("change", (event) => {
  localStorage.setItem(TOKEN_KEY, event.target.value.trim());
  socket?.close();  // reconnect with it
  flush();
});

function enqueue(item) {
  saveQueue([...queue(), item]);
  showQueued(item);
  return flush();
}

const createJobs = (howMany) => enqueue({ key: crypto.randomUUID(), count: howMany });

// The command buttons of a job (its card's, its detail view's), as its state and queue say now.
function redrawCommands(id) {
  for (const button of document.querySelectorAll(`button.command[data-job="${CSS.escape(id)}"]`)) {
    const job = button.closest("#detail") ? detail.job : jobs.get(id);
    button.replaceWith(commandButton(job) || "");
  }
}

let noticeTimer = null;
function notice(text) {
  const shown = document.getElementById("notice");
  shown.textContent = text;
  shown.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { shown.hidden = true; }, 10000);
}

// A command the server refused (the job moved on meanwhile, or is gone): say why, and show
// the job as it is now.
async function refused(item, response) {
  let detail = `the server answered ${response.status}`;
  try { detail = (await response.json()).detail || detail; } catch { /* not JSON: keep the status */ }
  notice(`Could not ${item.command} job ${item.id.slice(0, 8)}: ${detail}`);
  const current = await fetch(`/jobs/${encodeURIComponent(item.id)}`).catch(() => null);
  if (current?.ok) upsert(await current.json());
}

let flushing = false;
async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    // One at a time, oldest first, until the queue is empty: an item queued meanwhile too.
    for (let item = queue()[0]; item; item = queue()[0]) {
      let response;
      try {
        response = await fetch(item.command ? `/jobs/${encodeURIComponent(item.id)}/${item.command}` : "/jobs", {
          method: "POST",
          headers: withToken({ "Idempotency-Key": item.key, "Content-Type": "application/json" }),
          // An item queued by an older page has no count: sent as it was, without a body.
          body: item.count ? JSON.stringify({ count: item.count }) : undefined,
        });
      } catch {
        return;  // offline: the rest stays queued
      }
      if (response.status >= 500) return;  // the server is struggling: try again later
      if (response.status === 401) {  // kept queued until the token is given
        askForToken("This server needs an API token for changes: enter it above.");
        return;
      }
      if (response.status === 429) {  // this address created too many jobs lately
        const wait = Number(response.headers.get("Retry-After")) || 1;
        notice(`Too many jobs at once: the rest are sent in ${wait} s.`);
        setTimeout(flush, wait * 1000);
        return;
      }
      if (response.status === 202) {
        const answer = await response.json();
        if (item.command) upsert({ ...answer, tentative: true });
        else (answer.jobs || [answer]).forEach(upsert);
      } else if (item.command) {
        await refused(item, response);
      }
      dequeue(item);  // done, or refused for good (a 4xx will not get better)
    }
  } finally {
    flushing = false;
  }
}

async function catchUp() {  // after a reconnect: the newest jobs, and every unsettled one
  if (detail.id !== null) detail.refresh();
  const fresh = await snapshot();
  const open = [...jobs.values()].filter((job) => !SETTLED.has(job.status) && !fresh.has(job.id));
  await Promise.all(open.map(async (job) => {
    const response = await fetch(`/jobs/${job.id}`);
    if (response.ok) upsert(await response.json());
  }));
}

function setConnection(state) {
  connection.className = `connection ${state}`;
  connection.textContent = state;
}

let socket = null;
let retry = null;
// The position of the last change received. A reconnect resumes after it: the server sends
// every change since, then live. Without one (the first connection), or when the server can
// no longer serve it, the page re-reads the board instead (catchUp).
let lastCursor = null;
const UPDATES = `subscription($since: String) {
  jobUpdates(since: $since) { cursor job { ${JOB_FIELDS} } } }`;

function live(attempt = 0) {
  clearTimeout(retry);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  const ws = new WebSocket(url, "graphql-transport-ws");
  socket = ws;
  let pinger = null;
  let pongDue = null;
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init",
    payload: token() ? { Authorization: `Bearer ${token()}` } : {} }));
  ws.onmessage = async (message) => {
    const msg = JSON.parse(message.data);
    if (msg.type === "connection_ack") {
      const resuming = lastCursor !== null;
      ws.send(JSON.stringify({ id: "jobs", type: "subscribe",
        payload: { query: UPDATES, variables: { since: lastCursor } } }));
      ws.send(JSON.stringify({ id: "counts", type: "subscribe",
        payload: { query: "subscription { jobCounts { pending processing resolved failed cancelled } }" } }));
      pinger = setInterval(() => {
        ws.send(JSON.stringify({ type: "ping" }));
        pongDue = setTimeout(() => ws.close(), PONG_TIMEOUT_MS);
      }, PING_EVERY_MS);
      attempt = 0;
      setConnection("live");
      if (resuming) {
        if (detail.id !== null) detail.refresh();
      } else {
        catchUp().catch(() => ws.close());  // whatever changed while away
      }
      flush();
    } else if (msg.type === "pong") {
      clearTimeout(pongDue);
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    } else if (msg.type === "next" && msg.payload.errors?.some((e) => e.extensions?.code === "POSITION_TOO_OLD")) {
      lastCursor = null;  // the server cannot resume from it: re-read on the next connection
      ws.close();
    } else if (msg.type === "next" && msg.payload.data) {
      if (msg.id === "counts") showCounts(msg.payload.data.jobCounts);
      else {
        const { cursor, job } = msg.payload.data.jobUpdates;
        lastCursor = cursor;
        if (job) upsert(fromGraphQL(job));  // none: the mark of where the stream starts
      }
    } else if (msg.type === "error" || msg.type === "complete") {
      ws.close();  // resubscribe from a fresh snapshot
    }
  };
  ws.onclose = () => {
    clearInterval(pinger);
    clearTimeout(pongDue);
    if (socket !== ws) return;  // a newer connection has taken over
    setConnection(navigator.onLine ? "reconnecting" : "offline");
    retry = setTimeout(() => live(attempt + 1), Math.min(10000, 500 * 2 ** attempt));
  };
}

// Two views: the board at /, one job at /job/{id}, reached by a link (no reload) or directly.
function go(href, { refocus = true } = {}) {
  if (href !== location.href) history.pushState(null, "", href);
  route({ refocus });
}

function route({ refocus = true } = {}) {
  const match = location.pathname.match(/^\/job\/([^/]+)$/);
  let id = match && match[1];
  try { id = id && decodeURIComponent(id); } catch { /* not percent-encoding: the id as written */ }
  if (id && id !== detail.id) {
    if (detail.id === null) boardScroll = window.scrollY;
    board.hidden = true;
    detailSection.hidden = false;
    document.title = `Job ${id.slice(0, 8)} · jobline`;
    window.scrollTo(0, 0);
    detail.show(id);
  } else if (!id && detail.id !== null) {
    const left = detail.id;
    detail.id = null;
    detailSection.hidden = true;
    board.hidden = false;
    document.title = "jobline · food photo jobs";
    window.scrollTo(0, boardScroll);
    if (refocus) document.querySelector(`#job-${CSS.escape(left)} a.id`)?.focus({ preventScroll: true });
  }
}

document.addEventListener("click", (event) => {
  const command = event.target.closest("button.command");
  if (command && !command.disabled) {
    enqueue({ key: crypto.randomUUID(), command: command.dataset.command, id: command.dataset.job });
    return;
  }
  const anchor = event.target.closest("a[data-route]");
  if (!anchor || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  go(anchor.href);
});
window.addEventListener("popstate", () => route());

setInterval(() => {
  for (const card of list.querySelectorAll('.job[data-status="pending"]')) {
    const job = jobs.get(card.id.slice(4));
    if (!job) continue;
    card.querySelector(".countdown").textContent = countdown(job);
    card.querySelector(".wait").value = waited(job);
  }
  detail.countdown();
}, 1000);

// Jobs that were already fetching when the allowance ran out learn it here: one small read
// every 10 s, only while some job is processing.
async function checkAllowance() {
  const processing = [...jobs.values()].filter((job) => job.status === "processing");
  let next = null;
  if (processing.length) {
    const response = await fetch("/jobs?status=processing&limit=1");
    if (!response.ok) return;
    next = (await response.json()).items[0]?.waiting_until ?? null;
  }
  if (next === allowanceWait) return;
  allowanceWait = next;
  processing.forEach(render);
}
setInterval(() => checkAllowance().catch(() => {}), 10000);

window.addEventListener("online", () => {  // back: reconnect now, not at the next backoff
  if (!socket || socket.readyState >= WebSocket.CLOSING) live();
  flush();
});
window.addEventListener("offline", () => setConnection("offline"));
setInterval(() => { if (queue().length) flush(); }, 3000);
queue().forEach(showQueued);

document.getElementById("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const howMany = Math.min(100, Math.max(1, Math.round(Number(document.getElementById("how-many").value)) || 1));
  if (detail.id !== null) go(new URL("/", location.href).href, { refocus: false });  // to see them
  createJobs(howMany);
});
new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadMore();
}, { rootMargin: "200px" }).observe(document.getElementById("more"));

fetch("/config.json").then((r) => r.json()).then((settings) => {
  config.appName = settings.app_name;
  if (settings.token_required) askForToken(token() ? "" : "This server needs an API token: enter it above.");
  document.getElementById("delay").textContent =
    `${seconds(settings.delay_s.min)} to ${seconds(settings.delay_s.max)}`;
  if (settings.photo_source === "stand-in") {
    const source = document.getElementById("source");
    source.textContent = "Photos come from the local Unsplash stand-in (no Unsplash access key is set).";
    source.hidden = false;
  }
});
route();
snapshot().catch(() => {});  // first paint now; the catch-up after subscribing closes any gap
live();
