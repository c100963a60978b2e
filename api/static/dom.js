// Building the page's elements. Data from the server is only ever set as text or attributes,
// never parsed as HTML.

import { blurCanvas } from "./blurhash.js";

export const config = { appName: "jobline" };

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// An Unsplash link with the referral parameters its guidelines ask for; null unless http(s).
function referral(url) {
  let u;
  try { u = new URL(url, location.href); } catch { return null; }
  if (u.protocol !== "https:" && u.protocol !== "http:") return null;  // no javascript: links
  u.searchParams.set("utm_source", config.appName);
  u.searchParams.set("utm_medium", "referral");
  return u.href;
}

export function link(url, text) {
  const href = referral(url);
  return href ? el("a", { href, text, rel: "noopener" }) : el("span", { text });
}

export function credit(photo) {
  return el("p", { class: "credit" }, "Photo by ", link(photo.user.links.html, photo.user.name),
    " on ", link(photo.links.html, "Unsplash"));
}

export function countdown(job) {
  const left = Math.max(0, Math.ceil((Date.parse(job.due_at) - Date.now()) / 1000));
  return left > 0 ? `due in ${seconds(left)}` : "due now";
}

// How much of its wait a pending job has done, 0 to 1. A wait starts when the job is created,
// or retried (the job's last change while it is pending).
export function waited(job) {
  const start = Date.parse(job.updated_at || job.created_at);
  const span = Date.parse(job.due_at) - start;
  return span > 0 ? Math.min(1, Math.max(0, (Date.now() - start) / span)) : 1;
}

export function waitBar(job) {
  return el("progress", { class: "wait", max: "1", value: String(waited(job)), "aria-label": "Time waited" });
}

// A duration for people: "45 s", "5 min", "2 min 33 s" (no line break inside).
export function seconds(value) {
  if (value < 60) return `${value}\u00a0s`;
  const rest = Math.round(value % 60);
  return `${Math.floor(value / 60)}\u00a0min${rest ? ` ${rest}\u00a0s` : ""}`;
}

const HEX_COLOUR = /^#[0-9a-f]{6}$/i;
export const safeColour = (value) => (HEX_COLOUR.test(value || "") ? value : null);

// Unsplash's sizes by width, for the browser to pick what the layout and the screen need.
const WIDTHS = { thumb: 200, small: 400, regular: 1080 };

function srcset(urls) {
  return Object.entries(WIDTHS).filter(([size]) => urls[size])
    .map(([size, width]) => `${urls[size].replace(/[\s,]/g, encodeURIComponent)} ${width}w`)
    .join(", ");
}

// The photo in a frame that shows its colour, then its BlurHash, until the image has loaded.
// `size` is the fallback image; `sizes` how wide the layout shows it (the img sizes attribute).
export function photoFrame(photo, size, sizes) {
  const frame = el("div", { class: "photo" });
  const colour = safeColour(photo.color);
  if (colour) frame.style.backgroundColor = colour;
  const placeholder = photo.blur_hash && blurCanvas(photo.blur_hash, photo.width / photo.height);
  if (placeholder) frame.append(placeholder);
  const img = el("img", { src: photo.urls[size], srcset: srcset(photo.urls), sizes,
    alt: photo.alt_description || "food photo", loading: "lazy", decoding: "async" });
  img.addEventListener("load", () => frame.classList.add("loaded"), { once: true });
  frame.append(img);
  return frame;
}

// The command a job's state offers (cancel while it waits, retry once it failed), as a button
// for the page's click handler; while a request for it is queued, disabled and saying so.
const COMMANDS = {
  pending: { command: "cancel", label: "Cancel", busy: "Cancelling…" },
  failed: { command: "retry", label: "Retry", busy: "Retrying…" },
};
export const queuedCommands = new Map();  // job id -> the command queued for it

export function commandButton(job) {
  const offered = job && COMMANDS[job.status];
  if (!offered) return null;
  const queued = queuedCommands.get(job.id) === offered.command;
  const button = el("button", { type: "button", class: "command", "data-command": offered.command,
    "data-job": job.id, "aria-label": `${offered.label} job ${job.id}`,
    text: queued ? offered.busy : offered.label });
  button.disabled = queued;
  return button;
}
