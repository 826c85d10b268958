// The Rivulet console: polls the broker's JSON API (/api/*) and renders it. Everything a
// client named (topics, groups, transactional ids) is inserted as text, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const VIEWS = ["brokers", "topics", "groups", "transactions"];
const PLOTS = [
  ["produce_bytes_per_s", "Produce throughput", bytesRate],
  ["produce_records_per_s", "Produce records", (v) => number(v) + " rec/s"],
  ["fetch_bytes_per_s", "Fetch throughput", bytesRate],
  ["produce_latency_ms", "Produce latency (mean)", ms],
  ["fetch_latency_ms", "Fetch latency (mean, incl. long-poll wait)", ms],
  ["produce_requests_per_s", "Produce requests", (v) => number(v) + " req/s"],
  ["fetch_requests_per_s", "Fetch requests", (v) => number(v) + " req/s"],
];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function number(v) {
  if (v == null) return "–";
  return v >= 100 ? Math.round(v).toLocaleString("en") : (Math.round(v * 10) / 10).toString();
}

function bytes(v) {
  if (v == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
function bytesRate(v) { return v == null ? "–" : bytes(v) + "/s"; }
function ms(v) { return v == null ? "–" : (v < 10 ? v.toFixed(2) : Math.round(v)) + " ms"; }

function duration(msValue) {
  if (msValue == null || msValue < 0) return "forever";
  const units = [[86400000, "d"], [3600000, "h"], [60000, "min"], [1000, "s"]];
  for (const [size, name] of units) if (msValue >= size && msValue % size === 0) return msValue / size + " " + name;
  return msValue + " ms";
}

function time(msValue) { return msValue > 0 ? new Date(msValue).toISOString().replace("T", " ").slice(0, 19) : "–"; }

function table(target, headers, rows) {
  target.replaceChildren(el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const row of rows) {
    target.append(el("tr", {}, ...row.map((cell) => {
      const numeric = typeof cell === "number";
      return el("td", numeric ? { class: "num" } : {}, numeric ? cell.toLocaleString("en") : cell);
    })));
  }
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

function identify(doc) {
  document.getElementById("identity").textContent =
    "broker " + doc.answered_by.node_id + " · cluster " + doc.answered_by.cluster_id;
}

async function renderBrokers() {
  const [cluster, metrics] = await Promise.all([getJson("/api/cluster"), getJson("/api/metrics")]);
  identify(cluster);
  document.getElementById("controller-line").textContent =
    "Controller: " + (cluster.controller == null ? "none elected" : "broker " + cluster.controller) +
    " (epoch " + cluster.controller_epoch + ") · Rivulet " + cluster.version;
  table(document.getElementById("brokers-table"),
    ["Node", "Host", "Port", "Rack", "Listeners", "Leads", "Replicas", "Role"],
    cluster.brokers.map((b) => [b.node_id, b.host, String(b.port), b.rack || "", b.listeners.join(" "),
      b.leader_partitions, b.replica_partitions,
      [b.is_controller ? "controller" : "", b.is_this_broker ? "this broker" : ""].filter(Boolean).join(", ")]));
  renderPlots(metrics);
}

// One sparkline per series over the samples the broker kept (one a second). The SVG
// carries the plotted values in data attributes so the page's state can be checked.
function renderPlots(metrics) {
  const samples = metrics.samples;
  document.getElementById("plots-note").textContent =
    "(broker " + metrics.answered_by.node_id + ", " + samples.length + " samples, one every " +
    metrics.interval_ms / 1000 + " s)";
  const container = document.getElementById("plots");
  container.replaceChildren();
  const width = 300, height = 60;
  for (const [key, title, format] of PLOTS) {
    const values = samples.map((s) => s[key]);
    const known = values.filter((v) => v != null);
    const max = Math.max(1e-9, ...known);
    const step = values.length > 1 ? width / (values.length - 1) : 0;
    const points = values.map((v, i) =>
      (i * step).toFixed(1) + "," + (height - 2 - ((v || 0) / max) * (height - 4)).toFixed(1)).join(" ");
    const svgNs = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("preserveAspectRatio", "none");
    const line = document.createElementNS(svgNs, "polyline");
    line.setAttribute("points", points);
    svg.append(line);
    const last = values.length ? values[values.length - 1] : null;
    const plot = el("div", {
      class: "plot", id: "plot-" + key, "data-series": key, "data-samples": String(values.length),
      "data-last": last == null ? "" : String(last), "data-max": String(known.length ? Math.max(...known) : 0),
      "data-last-time": samples.length ? String(samples[samples.length - 1].time_ms) : "",
    }, el("div", { class: "title" }, title), el("div", { class: "value" }, format(last)));
    plot.append(svg);
    container.append(plot);
  }
}

async function renderTopics() {
  const doc = await getJson("/api/topics");
  identify(doc);
  const showInternal = document.getElementById("show-internal").checked;
  const list = document.getElementById("topics-list");
  list.replaceChildren();
  const topics = doc.topics.filter((t) => showInternal || !t.internal);
  if (!topics.length) list.append(el("p", { class: "note" }, "No topics."));
  for (const t of topics) {
    const heading = el("h3", { "data-topic": t.name }, t.name);
    heading.append(el("span", { class: "badge" }, plural(t.partitions.length, "partition")));
    heading.append(el("span", { class: "badge" }, "RF " + t.replication_factor));
    heading.append(el("span", { class: "badge" }, t.cleanup_policy));
    heading.append(el("span", { class: "badge" }, "retention " + duration(t.retention_ms) +
      (t.retention_bytes >= 0 ? " / " + bytes(t.retention_bytes) : "")));
    heading.append(el("span", { class: "badge" }, bytes(t.local_size_bytes) + " here"));
    if (t.internal) heading.append(el("span", { class: "badge" }, "internal"));
    const rows = el("table", { class: "partitions" });
    table(rows, ["Partition", "Leader", "Epoch", "Replicas", "ISR", "Start offset", "End offset", "High watermark", "Size"],
      t.partitions.map((p) => [p.partition, p.leader, p.leader_epoch, p.replicas.join(","), p.isr.join(","),
        p.local ? p.log_start_offset : "not here", p.local ? p.log_end_offset : "",
        p.local ? p.high_watermark : "", p.local ? bytes(p.size_bytes) : ""]));
    list.append(heading, rows);
  }
}

async function renderGroups() {
  const doc = await getJson("/api/groups");
  identify(doc);
  const list = document.getElementById("groups-list");
  list.replaceChildren();
  if (!doc.groups.length) list.append(el("p", { class: "note" }, "No consumer groups."));
  for (const g of doc.groups) {
    const heading = el("h3", { "data-group": g.group_id }, g.group_id);
    heading.append(el("span", { class: "badge" }, g.state));
    heading.append(el("span", { class: "badge" }, plural(g.members.length, "member")));
    if (g.protocol) heading.append(el("span", { class: "badge" }, g.protocol));
    heading.append(el("span", { class: g.total_lag > 0 ? "badge warn" : "badge" }, "lag " + g.total_lag.toLocaleString("en")));
    const offsets = el("table", { class: "offsets" });
    table(offsets, ["Topic", "Partition", "Committed offset", "End offset", "Lag"],
      g.offsets.map((o) => [o.topic, o.partition, o.committed_offset,
        o.end_offset == null ? "not here" : o.end_offset, o.lag == null ? "–" : o.lag]));
    list.append(heading, offsets);
    if (g.members.length) {
      const members = el("table", { class: "members" });
      table(members, ["Member", "Instance", "Client id", "Host"],
        g.members.map((m) => [m.member_id, m.group_instance_id || "", m.client_id, m.client_host]));
      list.append(members);
    }
  }
}

async function renderTransactions() {
  const doc = await getJson("/api/transactions");
  identify(doc);
  table(document.getElementById("transactions-table"),
    ["Transactional id", "State", "Producer id", "Epoch", "Timeout", "Started", "Partitions"],
    doc.transactions.map((t) => [t.transactional_id, t.state, t.producer_id, t.producer_epoch,
      duration(t.timeout_ms), t.txn_start_ms >= 0 ? time(t.txn_start_ms) : "–", t.partitions.join(" ")]));
}

const RENDER = { brokers: renderBrokers, topics: renderTopics, groups: renderGroups, transactions: renderTransactions };

function currentView() {
  const name = location.hash.replace("#", "");
  return VIEWS.includes(name) ? name : "brokers";
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  const view = currentView();
  for (const name of VIEWS) {
    document.getElementById("view-" + name).classList.toggle("active", name === view);
    document.querySelector('[data-nav="' + name + '"]').classList.toggle("active", name === view);
  }
  document.body.dataset.view = view;
  const status = document.getElementById("status");
  try {
    await RENDER[view]();
    document.body.dataset.loaded = view;
    status.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
    status.classList.remove("error");
  } catch (e) {
    status.textContent = "cannot reach the broker: " + e.message;
    status.classList.add("error");
  } finally {
    refreshing = false;
  }
}

window.addEventListener("hashchange", () => { document.body.dataset.loaded = ""; refresh(); });
document.getElementById("show-internal").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
