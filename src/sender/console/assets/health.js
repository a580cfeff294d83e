// The console's health view: per webhook, the last hour and day from
// GET api/health, with two small SVG charts of the day's 24 hourly slots
// (bars: successes and failures; a line: the median response time). Every
// value from the server goes on the page as textContent or as a number in
// an SVG attribute; colours come from classes in console.css, so the page's
// Content-Security-Policy (no inline style or script) holds.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "./";
  const refreshMs = Math.max(1, Number(body.dataset.refreshSeconds) || 5) * 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const CHART = { width: 144, height: 36, step: 6, bar: 5 };
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  // A number as the page shows it; "–" for none. The browser test reads
  // these back and compares them with the API's.
  function num(value) {
    return value === null || value === undefined ? "–" : String(value);
  }

  function field(name, value) {
    const span = el("span", "num", num(value));
    span.dataset.field = name;
    return span;
  }

  function when(ms) {
    return new Date(ms).toLocaleString();
  }

  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }

  function windowCell(name, w) {
    const td = el("td", "nowrap");
    td.dataset.window = name;
    const rate = w.attempts > 0 ? " (" + ((100 * w.successes) / w.attempts).toFixed(1) + "%)" : "";
    const counts = el("div");
    counts.append(field("successes", w.successes), "/", field("attempts", w.attempts), " ok" + rate);
    const times = el("div", "muted");
    times.append("p50 ", field("p50Ms", w.p50Ms), " ms · p99 ", field("p99Ms", w.p99Ms), " ms");
    td.append(counts, times);
    return td;
  }

  // The charts' base line: the day, hour by hour.
  function axis() {
    const y = CHART.height - 0.5;
    return svg("line", { class: "axis", x1: 0, y1: y, x2: CHART.width, y2: y });
  }

  // One bar per hourly slot: successes below, failures stacked on top,
  // scaled to the busiest slot.
  function barsChart(slots) {
    const chart = svg("svg", { class: "chart bars", width: CHART.width, height: CHART.height,
      viewBox: "0 0 " + CHART.width + " " + CHART.height, role: "img",
      "aria-label": "attempts per hour, last 24 hours" });
    chart.append(axis());
    const most = Math.max(1, ...slots.map((s) => s.attempts));
    slots.forEach((s, i) => {
      const g = svg("g", { class: "slot", "data-attempts": s.attempts, "data-successes": s.successes });
      const okH = (s.successes / most) * CHART.height;
      const failH = ((s.attempts - s.successes) / most) * CHART.height;
      const x = i * CHART.step;
      g.append(
        svg("rect", { class: "ok", x, y: CHART.height - okH, width: CHART.bar, height: okH }),
        svg("rect", { class: "fail", x, y: CHART.height - okH - failH, width: CHART.bar, height: failH }),
      );
      const title = svg("title");
      title.textContent = when(s.startMs) + ": " + s.successes + " ok, " + (s.attempts - s.successes) + " failed";
      g.append(title);
      chart.append(g);
    });
    return chart;
  }

  // The median response time of each slot that had attempts, as a line
  // with a point per slot, scaled to the slowest median.
  function latencyChart(slots) {
    const chart = svg("svg", { class: "chart spark", width: CHART.width, height: CHART.height,
      viewBox: "0 0 " + CHART.width + " " + CHART.height, role: "img",
      "aria-label": "median response time per hour, last 24 hours" });
    chart.append(axis());
    const timed = slots.map((s, i) => [s, i]).filter(([s]) => s.p50Ms !== null);
    const slowest = Math.max(1, ...timed.map(([s]) => s.p50Ms));
    const points = timed.map(([s, i]) => [
      i * CHART.step + CHART.bar / 2,
      CHART.height - 2 - (s.p50Ms / slowest) * (CHART.height - 4),
      s,
    ]);
    chart.append(svg("polyline", { class: "line", points: points.map(([x, y]) => x + "," + y).join(" ") }));
    for (const [x, y, s] of points) {
      const dot = svg("circle", { class: "point", cx: x, cy: y, r: 1.8, "data-p50": s.p50Ms });
      const title = svg("title");
      title.textContent = when(s.startMs) + ": p50 " + s.p50Ms + " ms";
      dot.append(title);
      chart.append(dot);
    }
    return chart;
  }

  function errorCell(e) {
    const td = el("td", "err");
    if (!e) {
      td.append(el("span", "muted", "none"));
      return td;
    }
    const code = el("span", "badge bad", e.statusCode === null ? "no answer" : String(e.statusCode));
    const message = el("div", "message", e.message);
    message.dataset.field = "message";
    td.append(code, " ", el("span", "muted", when(e.atMs)), message);
    return td;
  }

  function queueCell(q, nowMs) {
    const td = el("td", "nowrap");
    td.dataset.queue = "";
    const counts = el("div");
    counts.append(field("pending", q.pending), " pending, ", field("due", q.due), " due");
    td.append(counts);
    if (q.oldestDueAtMs !== null) {
      const oldest = el("div", "muted", "oldest due " + age(nowMs - q.oldestDueAtMs) + " ago");
      oldest.dataset.oldestDueAtMs = String(q.oldestDueAtMs);
      td.append(oldest);
    }
    return td;
  }

  function row(d, nowMs) {
    const tr = el("tr");
    tr.dataset.destinationId = d.destinationId;
    const name = el("td", "url");
    name.append(el("div", "", d.url), el("div", "muted", d.destinationId));
    if (!d.enabled) name.append(el("span", "badge neutral", "disabled"));
    else if (d.paused) name.append(el("span", "badge warn", "paused"));
    const bars = el("td");
    bars.append(barsChart(d.hourly));
    const line = el("td");
    line.append(latencyChart(d.hourly));
    tr.append(name, windowCell("lastHour", d.lastHour), windowCell("lastDay", d.lastDay), bars, line,
      errorCell(d.lastError), queueCell(d.queue, nowMs));
    return tr;
  }

  async function load() {
    const headers = { Accept: "application/json" };
    const t = sessionStorage.getItem("webhook-guard-console-token");
    if (t) headers.Authorization = "Bearer " + t;
    const res = await fetch(base + "api/health", { headers });
    // A missing token is the main script's to ask for.
    if (!res.ok) return;
    const data = await res.json();
    const tbody = $("health").querySelector("tbody");
    tbody.replaceChildren(...data.destinations.map((d) => row(d, data.nowMs)));
    $("health-empty").hidden = data.destinations.length > 0;
    $("health-view").dataset.loadedAt = String(data.nowMs);
  }

  let loading = false;
  async function refresh() {
    if (loading) return;
    loading = true;
    try {
      await load();
    } catch (e) {
      // The main script reports unreachable servers; try again later.
    } finally {
      loading = false;
    }
  }

  $("token-form").addEventListener("submit", () => setTimeout(refresh, 0));
  refresh();
  setInterval(refresh, refreshMs);
})();
