// The Logos console's only script: live figures, fragments reloaded at each finalized head,
// streamed logs and resource charts. No framework and no build step; every value from the
// server goes into the page as text (textContent) or as server-rendered, escaped HTML.
"use strict";

// Fragments are reloaded at most this often, ms.
const FRAGMENT_INTERVAL_MS = 1000;
// Log lines kept on the page.
const LOG_LINES_MAX = 1000;
// Points kept per chart.
const CHART_POINTS_MAX = 60;
// Stats are asked for this often, ms.
const STATS_INTERVAL_MS = 3000;

function setLive(pace) {
  for (const element of document.querySelectorAll("[data-live]")) {
    const value = pace[element.dataset.live];
    if (value === undefined) continue;
    element.textContent =
      typeof value === "number" && !Number.isInteger(value) ? value.toFixed(2) : String(value);
  }
}

let lastReload = 0;
async function reloadFragments() {
  const now = Date.now();
  if (now - lastReload < FRAGMENT_INTERVAL_MS) return;
  lastReload = now;
  for (const element of document.querySelectorAll("[data-fragment]")) {
    try {
      const response = await fetch(element.dataset.fragment, { credentials: "same-origin" });
      if (response.ok) element.innerHTML = await response.text();
    } catch (_) {
      // The next head tries again.
    }
  }
}

function followPace() {
  const events = new EventSource("/events");
  events.addEventListener("pace", (event) => {
    setLive(JSON.parse(event.data));
    reloadFragments();
  });
}

function followLogs(element) {
  const lines = [];
  const source = new EventSource(element.dataset.logs);
  // A reopened stream starts again from the tail: show it once.
  source.addEventListener("open", () => {
    lines.length = 0;
  });
  const show = (text) => {
    if (text === "") return;
    lines.push(...text.split("\n"));
    lines.splice(0, Math.max(0, lines.length - LOG_LINES_MAX));
    const atBottom = element.scrollTop + element.clientHeight >= element.scrollHeight - 4;
    element.textContent = lines.join("\n");
    if (atBottom) element.scrollTop = element.scrollHeight;
  };
  source.addEventListener("lines", (event) => show(event.data));
  // The stream ended (the agent closed it, or the console's bound was reached): stop, rather
  // than reconnect and replay the tail. Reloading the page follows again.
  source.addEventListener("end", (event) => {
    show(event.data);
    source.close();
  });
}

function drawChart(svg, points) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (points.length < 2) return;
  const max = Math.max(...points, 1);
  const step = 300 / (CHART_POINTS_MAX - 1);
  const start = CHART_POINTS_MAX - points.length;
  const coordinates = points
    .map((value, index) => `${((start + index) * step).toFixed(1)},${(78 - (value / max) * 74).toFixed(1)}`)
    .join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", coordinates);
  svg.appendChild(line);
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", "4");
  label.setAttribute("y", "12");
  label.textContent = `${points[points.length - 1].toFixed(1)} (max ${max.toFixed(1)})`;
  svg.appendChild(label);
  svg.setAttribute("aria-label", `${svg.getAttribute("aria-label").split(":")[0]}: ${label.textContent}`);
}

function followStats(element) {
  const series = { cpu: [], memory: [], disk: [] };
  const error = document.querySelector("[data-stats-error]");
  let previous = null;
  const push = (name, value) => {
    series[name].push(value);
    series[name].splice(0, Math.max(0, series[name].length - CHART_POINTS_MAX));
    drawChart(element.querySelector(`[data-chart="${name}"]`), series[name]);
  };
  const poll = async () => {
    try {
      const response = await fetch(element.dataset.stats, { credentials: "same-origin" });
      if (response.status >= 400 && response.status < 500) {
        // Refused (read-only console, not the tenant, gone): asking again will not help.
        if (error) {
          error.hidden = false;
          error.textContent = `Stats unavailable (${response.status}).`;
        }
        return;
      }
      if (!response.ok) throw new Error(`the console answered ${response.status}`);
      const stats = await response.json();
      if (previous && stats.measured_at_ms > previous.measured_at_ms) {
        const busy = stats.cpu_usage_us - previous.cpu_usage_us;
        push("cpu", (busy / 1000 / (stats.measured_at_ms - previous.measured_at_ms)) * 100);
      }
      previous = stats;
      push("memory", stats.memory_bytes / 1048576);
      push("disk", stats.disk_used_bytes / 1048576);
      if (error) error.hidden = true;
    } catch (failure) {
      if (error) {
        error.hidden = false;
        error.textContent = "Stats unavailable: " + String(failure.message).slice(0, 200);
      }
    }
    // The next poll starts after this one ended: polls never pile up.
    setTimeout(poll, STATS_INTERVAL_MS);
  };
  poll();
}

// The question a form asks before it is sent (data-confirm), with the escrow a deploy takes
// (data-price × its blocks, exact: BigInt), or null.
function confirmation(form) {
  const question = form.dataset.confirm;
  if (!question) return null;
  const blocks = form.querySelector("input[name=blocks]");
  if (form.dataset.price === undefined || !blocks) return question;
  try {
    const escrow = BigInt(form.dataset.price) * BigInt(blocks.value);
    return `${question}\n${blocks.value} blocks × ${form.dataset.price} per block = ${escrow} ` +
      "(smallest unit) held in escrow; what is not spent comes back when the lease closes.";
  } catch (_) {
    return question;
  }
}

// A form that spends or closes asks first; a submitted form's button is disabled: a double
// click does not lease twice.
function guardForms() {
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      const question = confirmation(form);
      if (question !== null && !window.confirm(question)) {
        event.preventDefault();
        return;
      }
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  guardForms();
  followPace();
  for (const element of document.querySelectorAll("[data-logs]")) followLogs(element);
  for (const element of document.querySelectorAll("[data-stats]")) followStats(element);
});
