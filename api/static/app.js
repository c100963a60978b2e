// The job board: REST for snapshots and creation, GraphQL (graphql-transport-ws) for live updates.
// Data from the server is only ever set as text or attributes, never parsed as HTML.

const RANK = { pending: 0, processing: 1, resolved: 2, failed: 2 };
const PING_EVERY_MS = 10000;
const PONG_TIMEOUT_MS = 5000;
const JOB_FIELDS = `id status createdAt dueAt updatedAt error
  result { id altDescription color width height urls { small regular } links { html }
           user { name username links { html } } }`;

const jobs = new Map();
const list = document.getElementById("jobs");
const connection = document.getElementById("connection");
let appName = "jobline";

function fromGraphQL(job) {
  const r = job.result;
  return {
    id: job.id, status: job.status.toLowerCase(), created_at: job.createdAt,
    due_at: job.dueAt, updated_at: job.updatedAt, error: job.error,
    result: r && { id: r.id, alt_description: r.altDescription, color: r.color,
      urls: r.urls, links: r.links, user: r.user },
  };
}

function upsert(job) {
  const known = jobs.get(job.id);
  if (known && RANK[known.status] > RANK[job.status]) return;
  jobs.set(job.id, job);
  render(job);
}

function referral(url) {
  const u = new URL(url, location.href);
  u.searchParams.set("utm_source", appName);
  u.searchParams.set("utm_medium", "referral");
  return u.href;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function countdown(job) {
  const left = Math.max(0, Math.ceil((Date.parse(job.due_at) - Date.now()) / 1000));
  return left > 0 ? `due in ${left} s` : "due now";
}

function render(job) {
  let card = document.getElementById(`job-${job.id}`);
  if (!card) {
    card = el("li", { class: "job", id: `job-${job.id}` });
    const before = [...list.children].find((c) => c.dataset.created < job.created_at);
    list.insertBefore(card, before || null);
  }
  card.dataset.status = job.status;
  card.dataset.created = job.created_at || "";
  const photo = el("div", { class: "photo" });
  const meta = el("div", { class: "meta" });
  const status = el("span", { class: "status", text: job.status });
  meta.append(status);
  if (job.status === "pending") meta.append(" · ", el("span", { class: "countdown", text: countdown(job) }));
  if (job.status === "resolved" && job.result) {
    const r = job.result;
    if (r.color) photo.style.background = r.color;
    photo.append(el("img", { src: r.urls.small, alt: r.alt_description || "food photo", loading: "lazy" }));
    meta.append(el("div", { class: "credit" }, "Photo by ",
      el("a", { href: referral(r.user.links.html), text: r.user.name, rel: "noopener" }),
      " on ", el("a", { href: referral(r.links.html), text: "Unsplash", rel: "noopener" })));
  } else if (job.status === "failed") {
    photo.textContent = "no photo";
    meta.append(el("div", { class: "error", text: job.error || "failed" }));
  } else {
    photo.textContent = job.status === "processing" ? "fetching photo…" : "waiting…";
  }
  meta.append(el("div", { class: "id", text: job.id }));
  card.replaceChildren(photo, meta);
  document.getElementById("empty").hidden = jobs.size > 0;
}

async function snapshot() {
  const response = await fetch("/jobs?limit=100");
  if (!response.ok) throw new Error(`GET /jobs answered ${response.status}`);
  const page = await response.json();
  for (const job of page.items) upsert(job);
  document.getElementById("empty").hidden = jobs.size > 0;
}

async function createJob() {
  const response = await fetch("/jobs", {
    method: "POST", headers: { "Idempotency-Key": crypto.randomUUID() },
  });
  if (response.ok) upsert(await response.json());
}

function setConnection(state) {
  connection.className = `connection ${state}`;
  connection.textContent = state;
}

function live(attempt = 0) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  const ws = new WebSocket(url, "graphql-transport-ws");
  let pinger = null;
  let pongDue = null;
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init" }));
  ws.onmessage = async (message) => {
    const msg = JSON.parse(message.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "jobs", type: "subscribe",
        payload: { query: `subscription { jobUpdates { ${JOB_FIELDS} } }` } }));
      pinger = setInterval(() => {
        ws.send(JSON.stringify({ type: "ping" }));
        pongDue = setTimeout(() => ws.close(), PONG_TIMEOUT_MS);
      }, PING_EVERY_MS);
      attempt = 0;
      setConnection("live");
      snapshot().catch(() => ws.close());  // catch up on what changed while away
    } else if (msg.type === "pong") {
      clearTimeout(pongDue);
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    } else if (msg.type === "next" && msg.payload.data) {
      upsert(fromGraphQL(msg.payload.data.jobUpdates));
    } else if (msg.type === "error" || msg.type === "complete") {
      ws.close();  // resubscribe from a fresh snapshot
    }
  };
  ws.onclose = () => {
    clearInterval(pinger);
    clearTimeout(pongDue);
    setConnection(navigator.onLine ? "reconnecting" : "offline");
    setTimeout(() => live(attempt + 1), Math.min(10000, 500 * 2 ** attempt));
  };
}

setInterval(() => {
  for (const card of list.querySelectorAll('.job[data-status="pending"] .countdown')) {
    const job = jobs.get(card.closest(".job").id.slice(4));
    if (job) card.textContent = countdown(job);
  }
}, 1000);

document.getElementById("create").addEventListener("click", createJob);
function duration(seconds) {
  return seconds >= 60 && seconds % 60 === 0 ? `${seconds / 60}\u00a0min` : `${seconds}\u00a0s`;
}

fetch("/config.json").then((r) => r.json()).then((config) => {
  appName = config.app_name;
  document.getElementById("delay").textContent =
    `${duration(config.delay_s.min)} to ${duration(config.delay_s.max)}`;
  if (config.photo_source === "stand-in") {
    const source = document.getElementById("source");
    source.textContent = "Photos come from the local Unsplash stand-in (no Unsplash access key is set).";
    source.hidden = false;
  }
});
live();
