// Operator console for webhook-guard. Every piece of data from the server
// is put on the page with textContent, never parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "./";
  const refreshMs = Math.max(1, Number(body.dataset.refreshSeconds) || 5) * 1000;
  const state = { historyDestination: null, historyCursor: null, destinations: [], editing: null };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c);
    return node;
  }

  function token() {
    return sessionStorage.getItem("webhook-guard-console-token");
  }

  async function api(method, path, payload) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const init = { method, headers };
    // Every change says JSON, body or not: the console refuses anything
    // else, which keeps other sites' forms out.
    if (method !== "GET") headers["Content-Type"] = "application/json";
    if (payload !== undefined) init.body = JSON.stringify(payload);
    const res = await fetch(base + path, init);
    if (res.status === 401) {
      $("token-panel").hidden = false;
      throw new Error("the console token is missing or wrong");
    }
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const detail = data && (data.detail || data.title);
      throw new Error(detail || "the server answered " + res.status);
    }
    return data;
  }

  function showSecret(secret) {
    $("secret-value").textContent = secret;
    $("secret-once").hidden = false;
  }

  function say(text) {
    $("status").textContent = text;
  }

  function when(ms) {
    if (ms === null || ms === undefined) return "";
    return new Date(ms).toLocaleString();
  }

  function badge(text, kind) {
    return el("span", { className: "badge " + kind, text });
  }

  function button(label, onclick, extra) {
    return el("button", Object.assign({ type: "button", text: label, onclick }, extra || {}));
  }

  async function act(label, fn) {
    try {
      say(label + "…");
      const message = await fn();
      say(typeof message === "string" ? message : label + ": done.");
    } catch (e) {
      say(label + " failed: " + e.message);
    }
    refresh();
  }

  function destinationStatus(d) {
    if (!d.enabled) return badge("Disabled", "bad");
    if (d.paused) return badge("Paused (failing)", "warn");
    return badge("Active", "ok");
  }

  function eventsText(filter) {
    if (!filter || filter.kind === "all") return "All events";
    return filter.types.join(", ");
  }

  function renderWebhooks(list) {
    state.destinations = list;
    const tbody = $("webhooks").querySelector("tbody");
    const rows = list.map((d) => {
      const actions = el("td", { className: "nowrap" }, [
        button("Test", () => act("Test event", () => api("POST", "api/destinations/" + encodeURIComponent(d.id) + "/test")), { "aria-label": "Send a test event to " + d.url }),
        button("History", () => showHistory(d), { "aria-label": "Delivery history of " + d.url }),
        button("Edit events", () => editEvents(d), { "aria-label": "Edit the events of " + d.url }),
        button("Rotate secret", () => {
          if (confirm("Give " + d.url + " a new signing secret? The current one keeps signing for 24 hours.")) {
            act("Rotate secret", async () => {
              const rotated = await api("POST", "api/destinations/" + encodeURIComponent(d.id) + "/rotate-secret", {});
              showSecret(rotated.secret);
              return "New secret for " + d.url + ": copy it from the box below the form.";
            });
          }
        }),
        d.enabled
          ? button("Disable", () => act("Disable", () => api("PATCH", "api/destinations/" + encodeURIComponent(d.id), { enabled: false })))
          : button("Enable", () => act("Enable", () => api("PATCH", "api/destinations/" + encodeURIComponent(d.id), { enabled: true }))),
        button("Delete", () => {
          if (confirm("Delete the webhook " + d.url + "? Its pending deliveries move to the dead letter queue.")) {
            act("Delete", () => api("DELETE", "api/destinations/" + encodeURIComponent(d.id)));
          }
        }, { className: "danger", "aria-label": "Delete " + d.url }),
      ]);
      const status = el("td", {}, [destinationStatus(d)]);
      if (d.disabledReason) status.append(el("div", { className: "muted", text: d.disabledReason }));
      return el("tr", { "data-id": d.id }, [
        el("td", { className: "url", text: d.url }),
        el("td", { className: "scheme" }, [el("code", { text: d.scheme })]),
        el("td", { className: "events", text: eventsText(d.events) }),
        status,
        el("td", { className: "nowrap", text: when(d.createdAtMs) }),
        actions,
      ]);
    });
    tbody.replaceChildren(...rows);
    $("webhooks-empty").hidden = list.length > 0;
  }

  // The event filter editor: the known types as checkboxes, any other
  // pattern (`*`, `kpi.*`) as text, so saving keeps what it cannot tick.
  function editEvents(d) {
    const form = $("edit-events-form");
    state.editing = d;
    $("edit-events-url").textContent = d.url;
    $("edit-events-error").hidden = true;
    const types = d.events && d.events.kind === "only" ? d.events.types : [];
    const boxes = Array.from(form.querySelectorAll("input[name=events]"));
    for (const box of boxes) box.checked = types.includes(box.value);
    const known = new Set(boxes.map((b) => b.value));
    form.patterns.value = types.filter((t) => !known.has(t)).join(", ");
    form.hidden = false;
    form.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  function closeEditor() {
    state.editing = null;
    $("edit-events-form").hidden = true;
  }

  function deliveryBadge(status) {
    switch (status) {
      case "delivered": return badge("Delivered", "ok");
      case "dead_lettered": return badge("Failed", "bad");
      case "replayed": return badge("Replayed", "neutral");
      default: return badge("Pending", "warn");
    }
  }

  function renderHistory(page, append) {
    const tbody = $("history").querySelector("tbody");
    const rows = page.items.map((d) => {
      const a = d.lastAttempt;
      const code = a && a.statusCode ? String(a.statusCode) : a && a.errorClass ? a.errorClass : "";
      const response = a ? a.responseBody || a.error || "" : "";
      const actions = el("td", { className: "nowrap" });
      if (d.status === "delivered" || d.status === "dead_lettered") {
        actions.append(button("Resend", () => act("Resend", () => api("POST", "api/deliveries/" + encodeURIComponent(d.id) + "/resend"))));
      }
      return el("tr", { "data-id": d.id, "data-status": d.status }, [
        el("td", { className: "nowrap", text: when(d.createdAtMs) }),
        el("td", {}, [el("code", { text: d.eventType })]),
        el("td", { className: "url", text: d.destinationUrl || d.destinationId }),
        el("td", {}, [deliveryBadge(d.status)]),
        el("td", { className: "code", text: code }),
        el("td", { className: "nowrap", text: a ? a.durationMs + " ms" : "" }),
        el("td", { text: String(d.attempts) }),
        el("td", { className: "response", text: response.slice(0, 300) }),
        actions,
      ]);
    });
    showPage(tbody, rows, page, append, "history-more", "history-empty");
    state.historyCursor = page.nextCursor;
  }

  // Puts a page's rows in `tbody`, after the rows shown or instead of
  // them, and shows the "older" button and the empty note as they fit.
  function showPage(tbody, rows, page, append, moreId, emptyId) {
    if (append) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    $(moreId).hidden = page.nextCursor === null || page.nextCursor === undefined;
    $(emptyId).hidden = tbody.children.length > 0;
  }

  function renderDlq(page) {
    const tbody = $("dlq").querySelector("tbody");
    const rows = page.items.map((d) =>
      el("tr", { "data-id": d.id }, [
        el("td", { className: "nowrap", text: when(d.deadLetteredAtMs || d.updatedAtMs) }),
        el("td", {}, [el("code", { text: d.eventType })]),
        el("td", { className: "url", text: d.destinationUrl || d.destinationId + " (deleted)" }),
        el("td", { text: String(d.attempts) }),
        el("td", { className: "err", text: d.lastError || "" }),
        el("td", { className: "nowrap" }, [
          button("Replay", () => act("Replay", () => api("POST", "api/dead-letters/" + encodeURIComponent(d.id) + "/replay"))),
        ]),
      ])
    );
    tbody.replaceChildren(...rows);
    $("dlq-empty").hidden = rows.length > 0;
    $("replay-all").disabled = rows.length === 0;
  }

  function historyQuery(cursor) {
    const params = new URLSearchParams({ limit: "50" });
    if (state.historyDestination) params.set("destinationId", state.historyDestination.id);
    if (cursor !== null && cursor !== undefined) params.set("beforeSeq", String(cursor));
    return "api/deliveries?" + params.toString();
  }

  function showHistory(d) {
    state.historyDestination = d;
    $("history-filter").textContent = "Only " + d.url;
    $("history-all").hidden = false;
    refresh();
    $("history-title").scrollIntoView({ behavior: "smooth" });
  }

  // One refresh at a time; a request made meanwhile runs once it ends, so
  // the tables always end up showing the latest state.
  let refreshing = false;
  let again = false;
  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    again = false;
    try {
      const [list, history, dlq] = await Promise.all([
        api("GET", "api/destinations"),
        api("GET", historyQuery(null)),
        api("GET", "api/dead-letters?limit=100"),
      ]);
      renderWebhooks(list);
      renderHistory(history, false);
      renderDlq(dlq);
      $("token-panel").hidden = true;
    } catch (e) {
      say("Could not load: " + e.message);
    } finally {
      refreshing = false;
      if (again) refresh();
    }
  }

  $("register-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const errorBox = $("register-error");
    errorBox.hidden = true;
    $("secret-once").hidden = true;
    const payload = { url: form.url.value.trim(), scheme: form.scheme.value };
    if (form.secret.value !== "") payload.secret = form.secret.value;
    const events = Array.from(form.querySelectorAll("input[name=events]:checked")).map((c) => c.value);
    if (events.length > 0) payload.events = events;
    try {
      const created = await api("POST", "api/destinations", payload);
      form.reset();
      say("Registered " + created.destination.url + ".");
      if (created.secretGenerated) showSecret(created.secret);
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
    }
    refresh();
  });

  $("edit-events-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const d = state.editing;
    if (!d) return;
    const errorBox = $("edit-events-error");
    errorBox.hidden = true;
    const ticked = Array.from(form.querySelectorAll("input[name=events]:checked")).map((c) => c.value);
    const patterns = form.patterns.value.split(",").map((p) => p.trim()).filter((p) => p !== "");
    const events = ticked.concat(patterns.filter((p) => !ticked.includes(p)));
    try {
      await api("PATCH", "api/destinations/" + encodeURIComponent(d.id), { events: events.length > 0 ? events : null });
      closeEditor();
      say("Events of " + d.url + ": " + (events.length > 0 ? events.join(", ") : "all events") + ".");
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
    }
    refresh();
  });

  $("edit-events-cancel").addEventListener("click", closeEditor);

  $("secret-dismiss").addEventListener("click", () => {
    $("secret-value").textContent = "";
    $("secret-once").hidden = true;
  });

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("webhook-guard-console-token", $("token").value);
    $("token").value = "";
    refresh();
  });

  $("history-all").addEventListener("click", () => {
    state.historyDestination = null;
    $("history-filter").textContent = "All webhooks";
    $("history-all").hidden = true;
    refresh();
  });

  $("history-more").addEventListener("click", async () => {
    try {
      renderHistory(await api("GET", historyQuery(state.historyCursor)), true);
    } catch (e) {
      say("Could not load: " + e.message);
    }
  });

  $("replay-all").addEventListener("click", () =>
    act("Replay all", async () => {
      const summary = await api("POST", "api/dead-letters/replay-all");
      return "Replay all: " + summary.replayed.length + " replayed, " + summary.skipped.length + " skipped.";
    })
  );

  // For the other views' scripts (inbox.js): the same requests and markup.
  window.webhookConsole = { api, el, when, badge, button, say, showPage, refreshMs };

  if (body.dataset.tokenRequired === "true" && !token()) $("token-panel").hidden = false;
  refresh();
  setInterval(refresh, refreshMs);
})();
