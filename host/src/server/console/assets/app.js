// The Faultline console: pages over the JSON API, refreshed by server-sent events.
"use strict";

// ---------------------------------------------------------------------------------------
// Helpers: DOM building (text only, never HTML from data), the API, formatting.

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const Auth = {
  token() { return localStorage.getItem("faultline.token") || ""; },
  headers() {
    const token = Auth.token();
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...Auth.headers(), ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text.trim();
    try { const j = JSON.parse(text); message = j.error || j.message || message; } catch (_) {}
    if (response.status === 401) message = "Not signed in: set an API token (top right).";
    if (response.status === 403) message = "Your token may look but not change this.";
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
  }
  if (!text) return null;
  const json = JSON.parse(text);
  return json && json.status === "success" && "data" in json ? json.data : json;
}

function toast(message, kind) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = `show ${kind || ""}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, 5000);
}

function ago(time) {
  const ms = typeof time === "number" ? time : Date.parse(time);
  if (!ms || isNaN(ms)) return "";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return `in ${duration(-s)}`;
  return `${duration(s)} ago`;
}

function duration(s) {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

function when(time) {
  const ms = typeof time === "number" ? time : Date.parse(time);
  if (!ms || isNaN(ms)) return "";
  return h("time", { datetime: new Date(ms).toISOString(), title: new Date(ms).toISOString() },
           ago(ms));
}

function labelChips(labels, highlight) {
  return h("span", { class: "labels" }, Object.entries(labels || {}).map(([k, v]) =>
    h("span", { class: `chip${highlight && highlight.includes(k) ? " strong" : ""}` },
      `${k}="${v}"`)));
}

function labelText(labels) {
  return "{" + Object.entries(labels || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(", ") + "}";
}

// Alertmanager's matcher syntax: `{a="b", c=~"d.*"}` or `a="b", c!="d"`.
function parseMatchers(text) {
  let s = text.trim();
  if (s.startsWith("{") && s.endsWith("}")) s = s.slice(1, -1);
  const matchers = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,\s"]+)\s*(,|$)/y;
  let i = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new Error(`cannot read a matcher at "${s.slice(i)}"`);
    const value = m[3].startsWith('"') ? JSON.parse(m[3]) : m[3];
    matchers.push({ name: m[1], op: m[2], value });
    i = re.lastIndex;
    if (m[4] === "") break;
  }
  return matchers;
}

function matcherText(m) { return `${m.name}${m.op}${JSON.stringify(m.value)}`; }

function toSilenceMatcher(m) {
  return { name: m.name, value: m.value, isRegex: m.op.includes("~"), isEqual: !m.op.startsWith("!") };
}

function fromSilenceMatcher(m) {
  const op = m.isRegex ? (m.isEqual === false ? "!~" : "=~") : (m.isEqual === false ? "!=" : "=");
  return { name: m.name, op, value: m.value };
}

function filterQuery(matchers) {
  return matchers.map((m) => `filter=${encodeURIComponent(matcherText(m))}`).join("&");
}

function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty || "None.");
  return h("div", { class: "scroll" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}

function badge(text, kind) { return h("span", { class: `badge ${kind || text}` }, text); }

// ---------------------------------------------------------------------------------------
// Pages. Each returns its content; `refresh` re-renders the current page.

const pages = {
  async overview() {
    const [alerts, incidents, pending, dead, rules, reload, history] = await Promise.all([
      api("/api/v2/alerts?active=true&silenced=false&inhibited=false"),
      api("/api/v1/incidents"),
      api("/api/v1/outbox?state=pending&limit=20"),
      api("/api/v1/outbox?state=dead&limit=20"),
      api("/api/v1/rules"),
      api("/api/v1/status/reload"),
      api("/api/v1/history"),
    ]);
    const open = incidents.filter((i) => i.status !== "resolved");
    const ruleRows = sortRules(rulesOf(rules)).slice(0, 8);
    return [
      h("div", { class: "stats" },
        stat("Firing alerts", alerts.length, "#/alerts", "firing-count"),
        stat("Open incidents", open.length, "#/incidents"),
        stat("Actions in flight", pending.length, "#/incidents"),
        stat("Dead letters", dead.length, "#/incidents", dead.length ? "bad" : "")),
      section("Open incidents", incidentList(open.slice(0, 5))),
      section("Firing alerts", table(["Alert", "Labels", "Since"], alerts.slice(0, 10).map((a) =>
        h("tr", {}, h("td", {}, a.labels.alertname || ""), h("td", {}, labelChips(a.labels)),
          h("td", {}, when(a.startsAt)))), "Nothing is firing.")),
      section("Actions in flight", actionTable(pending, "Nothing is in flight.")),
      section("Dead letters", actionTable(dead, "No dead letters.")),
      section("Rule health", ruleTable(ruleRows)),
      section("Last reload", reloadView(reload)),
      h("div", { class: "plots" },
        plotBox("plot-firing", "Firing alerts (muted ones too)", history.times, history.firing, ""),
        plotBox("plot-ingest", "Ingest rate", history.times, history.ingest, "/s"),
        plotBox("plot-deliveries", "Deliveries per receiver and outcome", history.times,
                history.deliveries, "")),
    ];
  },

  async alerts(params) {
    const filter = params.get("filter") || "";
    const groupBy = params.get("group") || "alertname";
    const showSilenced = params.get("silenced") !== "false";
    let matchers = [];
    let error = null;
    try { matchers = filter ? parseMatchers(filter) : []; } catch (e) { error = e.message; }
    const query = [filterQuery(matchers), `silenced=${showSilenced}`, `inhibited=${showSilenced}`]
      .filter(Boolean).join("&");
    const [alerts, ruleAlerts] = await Promise.all([
      error ? [] : api(`/api/v2/alerts?${query}`).catch((e) => { error = e.message; return []; }),
      api("/api/v1/alerts"),
    ]);
    const values = new Map((ruleAlerts.alerts || []).map((a) => [labelText(a.labels), a]));
    const form = h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      const f = e.target.elements;
      if (f.filter.value) p.set("filter", f.filter.value);
      p.set("group", f.group.value);
      p.set("silenced", f.silenced.checked);
      location.hash = `#/alerts?${p}`;
    } },
      h("input", { name: "filter", value: filter, placeholder: '{alertname="HighErrors", severity=~"crit.*"}',
                   "aria-label": "Filter with matchers", class: "grow" }),
      h("input", { name: "group", value: groupBy, placeholder: "group by labels", "aria-label": "Group by" }),
      h("label", {}, h("input", { type: "checkbox", name: "silenced", checked: showSilenced }),
        " silenced and inhibited"),
      h("button", { type: "submit" }, "Apply"));
    const keys = groupBy.split(",").map((s) => s.trim()).filter(Boolean);
    const groups = new Map();
    for (const a of alerts) {
      const key = keys.map((k) => `${k}="${a.labels[k] || ""}"`).join(", ");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    }
    return [
      section("Alerts", form, error ? h("p", { class: "error" }, error) : null,
        h("p", { class: "muted" }, `${alerts.length} alerts`),
        [...groups].map(([key, list]) => h("div", { class: "group" },
          h("h3", {}, key || "(all)", h("span", { class: "muted" }, ` ${list.length}`)),
          table(["State", "Labels", "Value", "Since", ""], list.map((a) => {
            const rule = values.get(labelText(a.labels));
            const muted = [...(a.status.silencedBy || []).map((id) => `silenced by ${id}`),
                           ...(a.status.inhibitedBy || []).map((fp) => `inhibited by ${fp}`)];
            return h("tr", { class: "alert", "data-alertname": a.labels.alertname || "" },
              h("td", {}, badge(a.status.state === "suppressed" ? "suppressed" : (rule ? rule.state : "firing")),
                muted.length ? h("div", { class: "muted small" }, muted.join("; ")) : null),
              h("td", {}, labelChips(a.labels, keys)),
              h("td", {}, rule && rule.value !== null ? rule.value : ""),
              h("td", {}, when(a.startsAt)),
              h("td", {}, h("a", { class: "button", href: `#/silences?${new URLSearchParams({
                matchers: labelText(a.labels) })}` }, "Silence this")));
          }))))),
    ];
  },

  async silences(params) {
    const silences = await api("/api/v2/silences");
    const editing = params.get("edit") ? silences.find((s) => s.id === params.get("edit")) : null;
    const prefill = editing ? "{" + editing.matchers.map(fromSilenceMatcher).map(matcherText).join(", ") + "}"
                            : params.get("matchers") || "";
    const preview = h("div", { class: "preview" });
    const form = h("form", { class: "silence-form", onsubmit: (e) => { e.preventDefault(); saveSilence(e.target, editing); } },
      h("label", {}, "Matchers", h("input", { name: "matchers", value: prefill, required: true,
        placeholder: '{alertname="HighErrors", instance="node3"}', oninput: () => previewSilence(form, preview) })),
      h("div", { class: "row" },
        h("label", {}, "Duration", h("input", { name: "duration", value: editing ? "" : "2h",
          placeholder: editing ? `ends ${editing.endsAt}` : "2h" })),
        h("label", {}, "Created by", h("input", { name: "createdBy", required: true,
          value: editing ? editing.createdBy : localStorage.getItem("faultline.user") || "" }))),
      h("label", {}, "Comment", h("input", { name: "comment", required: true,
        value: editing ? editing.comment : "" })),
      h("div", { class: "row" },
        h("button", { type: "submit" }, editing ? "Save (expire and recreate)" : "Create silence"),
        editing ? h("a", { class: "button secondary", href: "#/silences" }, "Cancel") : null),
      h("h3", {}, "Alerts it would mute"), preview);
    previewSilence(form, preview);
    const byState = (state) => silences.filter((s) => s.status.state === state);
    const rows = (list) => table(["Matchers", "Ends", "By", "Comment", ""], list.map((s) =>
      h("tr", { class: "silence", "data-id": s.id },
        h("td", {}, h("code", {}, s.matchers.map(fromSilenceMatcher).map(matcherText).join(", "))),
        h("td", {}, when(s.endsAt)), h("td", {}, s.createdBy), h("td", {}, s.comment),
        h("td", {}, s.status.state === "expired" ? null : [
          h("a", { class: "button secondary", href: `#/silences?edit=${s.id}` }, "Edit"), " ",
          h("button", { class: "danger", onclick: () => expireSilence(s.id) }, "Expire")]))));
    return [
      section(editing ? `Edit silence ${editing.id}` : "New silence", form),
      section("Active", rows(byState("active"))),
      section("Pending", rows(byState("pending"))),
      section("Expired", rows(byState("expired").slice(0, 20))),
    ];
  },

  async incidents(params) {
    const [incidents, dead, pending] = await Promise.all([
      api("/api/v1/incidents"),
      api("/api/v1/outbox?state=dead&limit=50"),
      api("/api/v1/outbox?state=pending&limit=50"),
    ]);
    const id = params.get("id");
    if (!id) {
      return [
        section("Incidents", incidentList(incidents)),
        section("Actions in flight", actionTable(pending, "Nothing is in flight.")),
        section("Dead letters", actionTable(dead, "No dead letters.")),
      ];
    }
    const incident = incidents.find((i) => i.id === id);
    const [decisions, done] = await Promise.all([
      api(`/api/v1/decisions?incident=${encodeURIComponent(id)}&limit=200`),
      api("/api/v1/outbox?state=done&limit=200"),
    ]);
    const actions = [...pending, ...dead, ...done].filter((a) => a.incidentId === id);
    if (!incident) return [section("Incident", h("p", { class: "muted" }, `No incident ${id} now.`))];
    return [
      h("p", {}, h("a", { href: "#/incidents" }, "← all incidents")),
      section(`Incident ${incident.id}`,
        h("p", {}, badge(incident.status), " ", labelChips(incident.groupLabels),
          " · notified ", when(incident.updatedAt), " to ", (incident.receivers || []).join(", ") || "nobody")),
      section("Suspects", suspectList(incident)),
      section("Alerts", table(["State", "Labels", "Value", "Active since"], incident.alerts.map((a) =>
        h("tr", {}, h("td", {}, badge(a.state)), h("td", {}, labelChips(a.labels)),
          h("td", {}, a.value === null ? "" : a.value), h("td", {}, when(a.activeAt)))))),
      section("Actions", actionTable(actions, "No actions.")),
      section("Timeline", table(["When", "Receiver", "Decision", "Why"], decisions.map((d) =>
        h("tr", { class: "decision", "data-decision": d.decision },
          h("td", {}, when(d.at)), h("td", {}, d.receiver), h("td", {}, badge(d.decision)),
          h("td", {}, d.reason))), "No decisions yet.")),
    ];
  },

  async rules() {
    const [rules, history, reload] = await Promise.all([
      api("/api/v1/rules"), api("/api/v1/history"), api("/api/v1/status/reload"),
    ]);
    return [
      section("Last reload", reloadView(reload)),
      section("Rules", ruleTable(sortRules(rulesOf(rules)))),
      h("div", { class: "plots" },
        plotBox("plot-evaluation", "Evaluation time per rule", history.times, milliseconds(history.evaluation), " ms")),
    ];
  },
};

function stat(title, value, href, id) {
  return h("a", { class: "stat", href, id }, h("span", { class: "value" }, value), h("span", {}, title));
}

function incidentList(incidents) {
  return table(["Incident", "Status", "Alerts", "Top suspects"], incidents.map((i) =>
    h("tr", { class: "incident", "data-id": i.id },
      h("td", {}, h("a", { href: `#/incidents?id=${encodeURIComponent(i.id)}` }, labelText(i.groupLabels)),
        h("div", { class: "muted small" }, when(i.updatedAt))),
      h("td", {}, badge(i.status), i.ambiguous ? badge("ambiguous") : null),
      h("td", {}, i.alerts.length),
      h("td", {}, (i.suspects || []).slice(0, 3).map((s) =>
        h("div", {}, h("b", {}, s.score.toFixed(2)), " ", labelChips(s.labels)))))),
    "No incidents.");
}

function suspectList(incident) {
  const suspects = incident.suspects || [];
  if (suspects.length === 0) return h("p", { class: "muted" }, "No suspects: no localizer matched, or none named one.");
  return [
    h("p", { class: "muted" }, `Margin ${incident.margin === null ? "-" : incident.margin.toFixed(2)}`,
      incident.ambiguous ? " · ambiguous: actions on a target wait for a clearer ranking" : ""),
    h("ol", { class: "suspects" }, suspects.map((s) =>
      h("li", { class: "suspect" },
        h("div", {}, h("span", { class: "score" }, s.score.toFixed(2)), " ", labelChips(s.labels)),
        h("div", { class: "bar" }, h("span", { style: `width:${Math.round(Math.max(0, Math.min(1, s.score)) * 100)}%` })),
        h("div", { class: "reason" }, s.reason)))),
  ];
}

function actionTable(actions, empty) {
  return table(["Receiver", "Target", "State", "Attempts", "Idempotency key", "Last error", ""], actions.map((a) =>
    h("tr", { class: "action", "data-id": a.id, "data-state": a.state },
      h("td", {}, a.receiver), h("td", {}, h("code", {}, a.target)), h("td", {}, badge(a.state)),
      h("td", {}, a.attempts), h("td", {}, h("code", { class: "small" }, a.idempotencyKey)),
      h("td", { class: "small" }, a.lastError || ""),
      h("td", {}, a.state === "dead" ? h("button", { class: "retry", onclick: () => retry(a.id) }, "Retry") : null))),
    empty);
}

function rulesOf(data) {
  if (data.rules) return data.rules;
  // Prometheus's shape: groups with their rules.
  return (data.groups || []).flatMap((g) => g.rules.map((r) => ({ group: g.name, file: g.file, ...r })));
}

function sortRules(rules) {
  const rank = (r) => (r.quarantinedUntil ? 0 : r.health === "err" || r.lastError ? 1 : 2);
  return [...rules].sort((a, b) => rank(a) - rank(b) || `${a.group}/${a.name}`.localeCompare(`${b.group}/${b.name}`));
}

function ruleTable(rules) {
  return table(["Rule", "Health", "Last evaluation", "Took", "Last error", "Quarantined until", "Source"], rules.map((r) =>
    h("tr", { class: "rule", "data-health": r.health },
      h("td", {}, h("b", {}, r.name), h("div", { class: "muted small" }, `${r.group} · ${r.plugin}`)),
      h("td", {}, badge(r.quarantinedUntil ? "quarantined" : r.health || "unknown")),
      h("td", {}, when(r.lastEvaluation)),
      h("td", {}, r.evaluationTime === null || r.evaluationTime === undefined ? "" : `${(r.evaluationTime * 1000).toFixed(1)} ms`),
      h("td", { class: "small" }, r.lastError || ""),
      h("td", {}, r.quarantinedUntil ? when(r.quarantinedUntil) : ""),
      h("td", { class: "small" }, h("code", {}, `${r.file}${r.line ? ":" + r.line : ""}`)))),
    "No rules loaded.");
}

function reloadView(r) {
  return h("div", {}, badge(r.success ? "ok" : "failed"), " last attempt ", when(r.lastAttempt),
    ", last success ", when(r.lastSuccess),
    (r.errors || []).length ? h("ul", { class: "errors" }, r.errors.map((e) => h("li", {}, typeof e === "string" ? e : JSON.stringify(e)))) : null);
}

function milliseconds(lines) {
  return Object.fromEntries(Object.entries(lines).map(([name, values]) =>
    [name, values.map((v) => (v === null ? null : v * 1000))]));
}

function plotBox(id, title, times, lines, unit) {
  const box = h("div", { id, class: "card" });
  Plot.lines(box, { title, times, lines, unit });
  return box;
}

// ---------------------------------------------------------------------------------------
// Actions.

async function retry(id) {
  try {
    await api(`/api/v1/outbox/${id}/retry`, { method: "POST" });
    toast(`Action ${id} is queued again.`, "ok");
    refresh();
  } catch (e) { toast(e.message, "bad"); }
}

function silenceEnd(form, editing) {
  const text = form.elements.duration.value.trim();
  if (!text && editing) return editing.endsAt;
  const m = /^(\d+)\s*([smhdw])$/.exec(text || "2h");
  if (!m) throw new Error(`duration "${text}": write it as 30m, 2h or 1d`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
  return new Date(Date.now() + Number(m[1]) * unit * 1000).toISOString();
}

async function saveSilence(form, editing) {
  try {
    const matchers = parseMatchers(form.elements.matchers.value).map(toSilenceMatcher);
    if (matchers.length === 0) throw new Error("a silence needs at least one matcher");
    const createdBy = form.elements.createdBy.value.trim();
    localStorage.setItem("faultline.user", createdBy);
    const body = {
      matchers,
      startsAt: editing ? editing.startsAt : new Date().toISOString(),
      endsAt: silenceEnd(form, editing),
      createdBy,
      comment: form.elements.comment.value.trim(),
    };
    if (editing) body.id = editing.id;
    const saved = await api("/api/v2/silences", { method: "POST", body });
    toast(`Silence ${saved.silenceID} saved.`, "ok");
    location.hash = "#/silences";
    refresh();
  } catch (e) { toast(e.message, "bad"); }
}

async function expireSilence(id) {
  try {
    await api(`/api/v2/silence/${id}`, { method: "DELETE" });
    toast(`Silence ${id} expired.`, "ok");
    refresh();
  } catch (e) { toast(e.message, "bad"); }
}

async function previewSilence(form, preview) {
  clearTimeout(previewSilence.timer);
  previewSilence.timer = setTimeout(async () => {
    try {
      const matchers = parseMatchers(form.elements.matchers.value);
      if (matchers.length === 0) { preview.replaceChildren(h("p", { class: "muted" }, "Write matchers to see which alerts they mute.")); return; }
      const alerts = await api(`/api/v2/alerts?${filterQuery(matchers)}`);
      preview.replaceChildren(alerts.length === 0 ? h("p", { class: "muted" }, "No alert matches now.") :
        h("ul", { class: "preview-list" }, alerts.map((a) => h("li", {}, labelChips(a.labels)))));
    } catch (e) { preview.replaceChildren(h("p", { class: "error" }, e.message)); }
  }, 250);
}

// ---------------------------------------------------------------------------------------
// Routing, refresh and live updates.

let rendering = null;

function route() {
  const [path, query] = (location.hash.slice(2) || "overview").split("?");
  const name = pages[path] ? path : "overview";
  return { name, params: new URLSearchParams(query || "") };
}

async function refresh() {
  const { name, params } = route();
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === name);
  // Keep what the user is typing: forms are not re-rendered by live updates.
  const typing = document.activeElement && main.contains(document.activeElement) &&
    ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (typing && rendering === name) return;
  rendering = name;
  try {
    const content = await pages[name](params);
    main.replaceChildren(...[content].flat());
    main.dataset.page = name;
    document.title = `Faultline · ${name[0].toUpperCase()}${name.slice(1)}`;
  } catch (e) {
    main.replaceChildren(section("Cannot load this page", h("p", { class: "error" }, e.message)));
  }
}

let pendingRefresh = null;
function refreshSoon() {
  clearTimeout(pendingRefresh);
  pendingRefresh = setTimeout(refresh, 150);
}

// Server-sent events, read with fetch so that the API token can be sent.
async function listen() {
  const live = document.getElementById("live");
  for (;;) {
    try {
      const response = await fetch("/api/v1/events", { headers: { Accept: "text/event-stream", ...Auth.headers() } });
      if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
      live.className = "live on";
      live.title = "Live: updates arrive as they happen";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: ?(.*)$/m.exec(block);
          if (event && event[1] !== "hello") refreshSoon();
        }
      }
    } catch (_) { /* reconnect below */ }
    live.className = "live off";
    live.title = "Reconnecting…";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("faultline.theme", theme);
}

window.addEventListener("hashchange", () => { rendering = null; refresh(); });
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("theme").addEventListener("click", () =>
    setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
  document.getElementById("token").addEventListener("click", () => {
    const token = prompt("API token (empty to sign out)", Auth.token());
    if (token === null) return;
    if (token) localStorage.setItem("faultline.token", token.trim());
    else localStorage.removeItem("faultline.token");
    refresh();
  });
  refresh();
  listen();
  // Plots and relative times move on even when nothing changes.
  setInterval(() => { if (["overview", "rules"].includes(route().name)) refreshSoon(); }, 10000);
});
