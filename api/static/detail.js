// One job's own view, at /job/{id}: every field, and the events of its life.

import { commandButton, countdown, credit, el, link, photoFrame, safeColour, seconds, waitBar,
  waited } from "./dom.js";

// What each event of the history meant. `last`: the job's latest event (the view's fields,
// such as its wait, its photo or its error, are that event's); `attempt`: which fetch.
const WHAT_HAPPENED = {
  JobRequested: (job, { retried }) => (retried || job.delay_s == null ? "requested"
    : `requested; waits ${seconds(job.delay_s)}`),
  JobDue: (job, { attempt }) => `due: the fetcher asks Unsplash for a photo (attempt ${attempt})`,
  JobResolved: (job) => (job.result ? `photo ${job.result.id} by ${job.result.user.name}` : "resolved"),
  JobFailed: (job, { last, attempt }) => (last ? `attempt ${attempt} failed: ${job.error || "no reason given"}`
    : `attempt ${attempt} failed`),
  JobCancelled: () => "cancelled: no photo is fetched",
  JobRetried: (job, { last }) => (last && job.delay_s != null ? `retried; waits ${seconds(job.delay_s)}`
    : "retried: a new attempt after a new wait"),
};

const SETTLED_WITHOUT = new Set(["failed", "cancelled"]);  // no photo, unless retried

function when(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return el("span", { text: "—" });
  const text = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  return el("time", { datetime: at.toISOString(), title: at.toISOString(), text });
}

function field(list, term, ...value) {
  list.append(el("div", {}, el("dt", { text: term }), el("dd", {}, ...value)));
}

function jobFields(job) {
  const list = el("dl", { class: "fields", "aria-label": "Job fields" });
  field(list, "ID", el("code", { text: job.id }));
  const command = commandButton(job);
  field(list, "Status", el("span", { class: "status", text: job.status }),
    ...(job.status === "pending" ? [" · ", el("span", { class: "countdown", text: countdown(job) })] : []),
    ...(command ? [" ", command] : []));
  field(list, "Created", when(job.created_at));
  field(list, "Due", when(job.due_at));
  if (job.delay_s != null) field(list, "Delay", seconds(job.delay_s));
  field(list, "Updated", when(job.updated_at));
  field(list, "Version", String(job.version));
  if (job.error) field(list, "Error", el("span", { class: "error", text: job.error }));
  return list;
}

function photoFields(photo) {
  const list = el("dl", { class: "fields", "aria-label": "Photo fields" });
  field(list, "Photo ID", el("code", { text: photo.id }));
  field(list, "Description", photo.alt_description || "—");
  field(list, "Size", `${photo.width} × ${photo.height} px`);
  const colour = safeColour(photo.color);
  const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
  if (colour) swatch.style.backgroundColor = colour;
  field(list, "Colour", swatch, photo.color || "—");
  field(list, "BlurHash", el("code", { text: photo.blur_hash || "—" }));
  field(list, "Photographer", link(photo.user.links.html, photo.user.name),
    ` (@${photo.user.username})`);
  field(list, "On Unsplash", link(photo.links.html, "photo page"));
  const sizes = el("span", { class: "sizes" });
  for (const size of ["thumb", "small", "regular", "full", "raw"]) {
    sizes.append(link(photo.urls[size], size), " ");
  }
  field(list, "Image", sizes);
  return list;
}

function history(job) {
  const events = job.history || [];
  const start = Date.parse(events[0]?.occurred_at);
  const list = el("ol", { class: "history" });
  const retried = events.some((event) => event.type === "JobRetried");
  let attempt = 0;
  for (const [i, event] of events.entries()) {
    const after = (Date.parse(event.occurred_at) - start) / 1000;
    if (event.type === "JobDue") attempt += 1;
    const describe = WHAT_HAPPENED[event.type] || (() => "");
    const context = { last: i === events.length - 1, attempt, retried };
    list.append(el("li", { "data-type": event.type },
      el("span", { class: "event-type", text: event.type }),
      el("span", { class: "event-at" }, when(event.occurred_at),
        event.version > 1 ? ` (+${after.toFixed(1)} s)` : ""),
      el("span", { class: "event-what", text: describe(job, context) }),
      el("code", { class: "event-id", title: "event id", text: `v${event.version} · ${event.event_id}` })));
  }
  return list;
}

function renderDetail(section, job) {
  const heading = el("h2", { tabindex: "-1", text: `Job ${job.id.slice(0, 8)}` });
  const sizes = "(max-width: 700px) calc(100vw - 2rem), 640px";
  const photo = job.result ? photoFrame(job.result, "regular", sizes)
    : el("div", { class: "photo", text: SETTLED_WITHOUT.has(job.status) ? "no photo" : "no photo yet" });
  if (job.status === "pending") photo.append(waitBar(job));
  const facts = el("div", { class: "facts" }, jobFields(job));
  if (job.result) facts.append(credit(job.result), el("h3", { text: "Photo" }), photoFields(job.result));
  section.dataset.status = job.status;
  section.replaceChildren(
    el("a", { href: "/", class: "back", "data-route": "", text: "← All jobs" }),
    heading,
    el("div", { class: "detail-grid" }, photo, facts),
    el("h3", { text: "Event history" }),
    history(job),
  );
  return heading;
}

function renderAbsent(section, id, message) {
  const heading = el("h2", { tabindex: "-1", text: "Job not found" });
  section.dataset.status = "absent";
  section.replaceChildren(
    el("a", { href: "/", class: "back", "data-route": "", text: "← All jobs" }),
    heading,
    el("p", { class: "error", text: message }),
    el("p", {}, "Job ID: ", el("code", { text: id })),
  );
  return heading;
}

// The view of one job in `section`: `show(id)` loads it, `refresh()` reloads it (after a live
// update or a reconnect); `job` is what it shows, null when nothing or a problem.
export function detailView(section) {
  const view = { id: null, job: null };

  view.refresh = async () => {
    const id = view.id;
    let response;
    try {
      response = await fetch(`/jobs/${encodeURIComponent(id)}`);
    } catch {
      if (!view.job) return renderAbsent(section, id, "Could not reach the server; retrying when the connection is back.");
      return null;
    }
    if (id !== view.id) return null;  // the user has moved on meanwhile
    if (response.ok) return view.take(await response.json());
    if (response.status === 404) return renderAbsent(section, id, "There is no job with this ID.");
    if (!view.job) return renderAbsent(section, id, `The server answered ${response.status}; retrying.`);
    return null;
  };

  // Show `job` if it is news: a later version than shown, or the server's word on a version
  // shown from a command's tentative answer. Otherwise keep the view (its focus, its photo).
  view.take = (job) => {
    const shown = view.job;
    if (job.id !== view.id || (shown && (job.version < shown.version
        || (job.version === shown.version && !shown.tentative)))) return null;
    if (!job.history) return view.refresh();  // a live update: the history comes by REST
    view.job = job;
    return renderDetail(section, job);
  };

  view.show = async (id) => {
    Object.assign(view, { id, job: null });
    section.replaceChildren();
    (await view.refresh())?.focus();
  };

  view.countdown = () => {
    const node = section.querySelector('[data-status="pending"] .countdown');
    if (!node || !view.job) return;
    node.textContent = countdown(view.job);
    section.querySelector(".wait").value = waited(view.job);
  };
  return view;
}
