// The console's inbox view: shown once the API answers that an inbox is
// attached. Every piece of data from the server is put on the page with
// textContent, never parsed as HTML.
"use strict";

(function () {
  const ui = window.webhookConsole;
  if (!ui) return;
  const { api, el, when, badge, button, say, showPage, refreshMs } = ui;
  const $ = (id) => document.getElementById(id);
  const STATES = ["received", "processing", "retrying", "dead_lettered", "done"];
  const view = { state: "", cursor: null };

  function stateBadge(state) {
    switch (state) {
      case "done": return badge("Done", "ok");
      case "dead_lettered": return badge("Dead letter", "bad");
      case "retrying": return badge("Failed, retrying", "warn");
      case "processing": return badge("Processing", "warn");
      default: return badge("Received", "neutral");
    }
  }

  async function change(label, fn) {
    try {
      say(label + "…");
      const done = await fn();
      say(label + ": " + done.replayed + " replayed.");
    } catch (e) {
      say(label + " failed: " + e.message);
    }
    refresh();
  }

  function replayOne(e) {
    if (!confirm("Replay the dead letter " + e.id + "? The handler runs it again.")) return;
    change("Replay", () => api("POST", "api/inbox/dead-letters/" + encodeURIComponent(e.id) + "/replay"));
  }

  function renderCounts(counts) {
    for (const s of STATES) {
      const n = counts[s === "dead_lettered" ? "deadLettered" : s];
      $("inbox-count-" + s).textContent = String(n);
    }
    $("inbox-replay-all").disabled = counts.deadLettered === 0;
  }

  function renderEvents(page, append) {
    const tbody = $("inbox-events").querySelector("tbody");
    const rows = page.items.map((e) => {
      const actions = el("td", { className: "nowrap" });
      if (e.state === "dead_lettered") {
        actions.append(button("Replay", () => replayOne(e), { "aria-label": "Replay " + e.id }));
      }
      const next = e.finishedAtMs !== null ? when(e.finishedAtMs) : when(e.nextAttemptAtMs);
      return el("tr", { "data-id": e.id, "data-state": e.state }, [
        el("td", { className: "nowrap", text: when(e.receivedAtMs) }),
        el("td", {}, [el("code", { text: e.eventType || "" })]),
        el("td", { className: "nowrap" }, [el("code", { text: e.id })]),
        el("td", { className: "nowrap" }, [stateBadge(e.state)]),
        el("td", { text: String(e.attempts) }),
        el("td", { className: "nowrap", text: next }),
        el("td", { className: "err", text: (e.lastError || "").slice(0, 300) }),
        actions,
      ]);
    });
    showPage(tbody, rows, page, append, "inbox-more", "inbox-empty");
    view.cursor = page.nextCursor;
  }

  function eventsQuery(cursor) {
    const params = new URLSearchParams({ limit: "50" });
    if (view.state) params.set("state", view.state);
    if (cursor !== null && cursor !== undefined) params.set("beforeSeq", String(cursor));
    return "api/inbox/events?" + params.toString();
  }

  let refreshing = false;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const [counts, page] = await Promise.all([
        api("GET", "api/inbox/counts"),
        api("GET", eventsQuery(null)),
      ]);
      renderCounts(counts);
      renderEvents(page, false);
      $("inbox").hidden = false;
    } catch (e) {
      // No inbox attached (404), or not signed in yet: the view stays
      // hidden until an answer comes.
      if (!$("inbox").hidden) say("Could not load the inbox: " + e.message);
    } finally {
      refreshing = false;
    }
  }

  for (const b of $("inbox-counts").querySelectorAll("button.count")) {
    b.addEventListener("click", () => {
      view.state = b.dataset.state;
      for (const other of $("inbox-counts").querySelectorAll("button.count")) {
        other.setAttribute("aria-pressed", other === b ? "true" : "false");
      }
      refresh();
    });
  }

  $("inbox-more").addEventListener("click", async () => {
    try {
      renderEvents(await api("GET", eventsQuery(view.cursor)), true);
    } catch (e) {
      say("Could not load: " + e.message);
    }
  });

  $("inbox-replay-all").addEventListener("click", () => {
    if (!confirm("Replay every dead letter of the inbox? The handler runs each again.")) return;
    change("Replay all", () => api("POST", "api/inbox/dead-letters/replay-all"));
  });

  $("inbox-replay-between").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const sinceMs = new Date(ev.target.since.value).getTime();
    const untilMs = new Date(ev.target.until.value).getTime();
    if (Number.isNaN(sinceMs) || Number.isNaN(untilMs)) {
      say("Replay range: give both times.");
      return;
    }
    if (!confirm("Replay the dead letters dead-lettered from " + when(sinceMs) + " until " + when(untilMs) + "?")) return;
    change("Replay range", () => api("POST", "api/inbox/dead-letters/replay-between", { sinceMs, untilMs }));
  });

  refresh();
  setInterval(refresh, refreshMs);
})();
