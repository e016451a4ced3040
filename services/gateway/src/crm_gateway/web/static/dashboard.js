/*
 * The live KPI dashboard of the CRM gateway.
 *
 * Talks to the gateway's JSON/HTTP API only (same origin): IdentityService/GetCaller to check
 * the credential, MetricsService/StreamKpis (NDJSON, one GetKpisResponse per line) for the
 * tiles and series, MetricsService/GetPerceptionGap for the gap histogram, CSAT by wait and the
 * worst tickets, MetricsService/GetKpis (grouped by team) for the team list, and
 * MetricsService/ListKpis for the KPI descriptions.
 *
 * Test hooks (stable): every number carries data-kpi="<kpi>" (headline) or
 * data-kpi="<kpi>.<stat>" and data-value="<raw number>"; #live has data-state
 * ("connecting" | "live" | "reconnecting" | "error" | "idle"); <main> counts stream updates in
 * data-updates and perception-gap loads in data-gap-loads; chart canvases have fixed ids.
 */
(function () {
  "use strict";

  const CREDENTIAL_KEY = "crm.dashboard.credential";
  const SELECTION_KEY = "crm.dashboard.selection";
  const STREAM_INTERVAL = "2s";
  const GAP_REFRESH_MS = 5000; // at most one GetPerceptionGap per 5 s while data changes
  const HOUR = 3600 * 1000;
  const PERIODS = { "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, "30d": 30 * 24 * HOUR };
  const MAX_HOUR_SERIES = 7 * 24 * HOUR; // longer ranges use day buckets
  const WAIT_BUCKETS = ["<1h", "1-4h", "4-12h", "12-24h", ">24h"];
  const COLORS = {
    company: "#0072b2",
    customer: "#d55e00",
    green: "#009e73",
    yellow: "#e69f00",
    purple: "#cc79a7",
    sky: "#56b4e9",
    grey: "#8b949e",
  };

  // --- the tiles -------------------------------------------------------------------------------
  // kpi: catalogue name; clock: which side of the perception gap it measures (a colour cue).
  const OPS_TILES = [
    { kpi: "tickets_created", title: "Tickets created" },
    { kpi: "backlog", title: "Backlog", note: "open at the end of the period" },
    { kpi: "awaiting_first_response", title: "Awaiting first response", note: "at the end of the period" },
    { kpi: "frt_wall", title: "First response (wall clock)", clock: "company" },
    { kpi: "frt_business", title: "First response (business hours)", clock: "company" },
    { kpi: "resolution_wall", title: "Time to resolution" },
    { kpi: "sla_first_response", title: "SLA met: first response" },
    { kpi: "sla_resolution", title: "SLA met: resolution" },
    { kpi: "reopen_rate", title: "Reopen rate" },
    { kpi: "first_contact_resolution", title: "First-contact resolution" },
  ];
  const PERCEPTION_TILES = [
    { kpi: "csat", title: "CSAT" },
    { kpi: "nps", title: "NPS" },
    { kpi: "company_frt", title: "Company clock: FRT", clock: "company" },
    { kpi: "customer_wait", title: "Customer clock: wait", clock: "customer" },
    { kpi: "perception_gap", title: "Perception gap", clock: "customer" },
    { kpi: "green_inside_red_outside", title: "Green inside, red outside" },
    { kpi: "expectation_breach", title: "Expectation breached" },
    { kpi: "survey_response_rate", title: "Survey response rate" },
  ];
  const SERIES_KPIS = ["tickets_created", "backlog", "sla_first_response", "sla_resolution",
    "green_inside_red_outside", "company_frt", "customer_wait"];
  const STREAM_KPIS = Array.from(new Set([...OPS_TILES, ...PERCEPTION_TILES].map((t) => t.kpi)
    .concat(SERIES_KPIS)));

  // --- small helpers ---------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const baseName = (kpi) => String(kpi || "").split("@")[0];
  const num = (x) => (x === undefined || x === null || x === "" ? null : Number(x));
  const int = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const one = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const hourFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
  const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const localZone = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (_) {
      return "";
    }
  })();

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "scope" || key === "title" || key === "datetime") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  /** A duration in seconds, compactly: "42s", "12m 5s", "3h 20m", "2d 4h" (signed). */
  function duration(seconds) {
    if (seconds === null || !Number.isFinite(seconds)) return "—";
    const sign = seconds < 0 ? "−" : "";
    let s = Math.abs(seconds);
    if (s < 1) return s === 0 ? "0s" : `${sign}<1s`;
    s = Math.round(s);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d > 0) return `${sign}${d}d${h ? ` ${h}h` : ""}`;
    if (h > 0) return `${sign}${h}h${m ? ` ${m}m` : ""}`;
    if (m > 0) return `${sign}${m}m${m < 10 && sec ? ` ${sec}s` : ""}`;
    return `${sign}${sec}s`;
  }

  /** A KPI number in its unit ("s", "%", "1", "score", "min"). */
  function formatValue(value, unit) {
    if (value === null || !Number.isFinite(value)) return "—";
    switch (unit) {
      case "s": return duration(value);
      case "min": return duration(value * 60);
      case "%": return `${one.format(value)}%`;
      case "score": return `${value > 0 ? "+" : ""}${int.format(value)}`;
      default: return int.format(value);
    }
  }

  // --- the credential --------------------------------------------------------------------------
  const credential = {
    load() {
      try {
        const raw = sessionStorage.getItem(CREDENTIAL_KEY);
        return raw ? JSON.parse(raw) : null;
      } catch (_) {
        return null;
      }
    },
    save(kind, value) {
      sessionStorage.setItem(CREDENTIAL_KEY, JSON.stringify({ kind, value }));
    },
    clear() {
      sessionStorage.removeItem(CREDENTIAL_KEY);
    },
    /** Take `#token=<jwt>` (or `#api_key=<key>`) from the URL, keep it, and drop it from the URL. */
    fromFragment() {
      if (!location.hash || location.hash.length < 2) return;
      const params = new URLSearchParams(location.hash.slice(1));
      const token = params.get("token");
      const key = params.get("api_key") || params.get("apikey");
      if (token) this.save("bearer", token.trim());
      else if (key) this.save("api_key", key.trim());
      else return;
      history.replaceState(null, "", location.pathname + location.search);
    },
    headers(cred) {
      if (!cred) return {};
      return cred.kind === "api_key" ? { "X-API-Key": cred.value } : { Authorization: `Bearer ${cred.value}` };
    },
  };

  function looksLikeJwt(value) {
    return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value);
  }

  // --- the API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message || code || `HTTP ${status}`);
      this.status = status;
      this.code = code || "";
      this.details = details || [];
    }
  }

  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      /* not JSON */
    }
    const error = body && (body.error || body);
    return new ApiError(response.status, error && error.code, error && error.message, error && error.details);
  }

  function describe(error) {
    const fields = (error.details || []).flatMap((d) => d.fieldViolations || d.field_violations || [])
      .map((v) => `${v.field}: ${v.description}`);
    return fields.length ? `${error.message} (${fields.join("; ")})` : error.message;
  }

  async function call(method, body, signal) {
    const response = await fetch(`/v1/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...credential.headers(state.credential) },
      body: JSON.stringify(body || {}),
      signal,
      cache: "no-store",
    });
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /** Yield the JSON messages of an NDJSON response, one per line, as they arrive. */
  async function* ndjson(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line) yield JSON.parse(line);
        }
      }
      if (buffer.trim()) yield JSON.parse(buffer);
    } finally {
      reader.releaseLock();
    }
  }

  // --- state -----------------------------------------------------------------------------------
  const state = {
    credential: null,
    descriptions: {},
    selection: null,
    stream: null, // AbortController of the running stream
    generation: 0, // bumps on every selection change: late answers of older ones are dropped
    updates: 0,
    gapLoads: 0,
    lastWatermark: null,
    gapTimer: null,
    gapLoadedAt: 0,
    gapInFlight: false,
    previous: {},
    charts: {},
    banners: {},
  };

  // --- the selection ---------------------------------------------------------------------------
  function toLocalInput(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function readSelection() {
    const period = $("period").value;
    const filters = {};
    for (const name of ["channel", "priority", "team"]) {
      const value = $(name).value;
      if (value) filters[name] = value;
    }
    const selection = { period, filters, custom: null };
    if (period === "custom") {
      const start = new Date($("custom-start").value);
      const end = new Date($("custom-end").value);
      selection.custom = { start: $("custom-start").value, end: $("custom-end").value };
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return { error: "Choose both ends of the custom period." };
      if (end <= start) return { error: "The end of the period must be after its start." };
      if (end - start > 3 * 366 * 24 * HOUR) return { error: "A period spans at most three years." };
    }
    return selection;
  }

  /** The time range of a selection now: [start, end), and whether it follows the clock. */
  function rangeOf(selection) {
    if (selection.period === "custom") {
      return { start: new Date(selection.custom.start), end: new Date(selection.custom.end), follow: false };
    }
    const end = new Date();
    return { start: new Date(end.getTime() - PERIODS[selection.period]), end, follow: true };
  }

  /** Hour buckets are kept for the whole population only: a slice or a long range uses days. */
  function granularityOf(selection, range) {
    const sliced = Object.keys(selection.filters).length > 0;
    return !sliced && range.end - range.start <= MAX_HOUR_SERIES ? "GRANULARITY_HOUR" : "GRANULARITY_DAY";
  }

  function saveSelection(selection) {
    try {
      sessionStorage.setItem(SELECTION_KEY, JSON.stringify(selection));
    } catch (_) {
      /* storage full or disabled: not worth failing for */
    }
  }

  function restoreSelection() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(SELECTION_KEY) || "null");
    } catch (_) {
      saved = null;
    }
    const now = new Date();
    $("custom-start").value = toLocalInput(new Date(now.getTime() - 7 * 24 * HOUR));
    $("custom-end").value = toLocalInput(now);
    if (!saved) return;
    if (saved.period in PERIODS || saved.period === "custom") $("period").value = saved.period;
    if (saved.custom) {
      $("custom-start").value = saved.custom.start;
      $("custom-end").value = saved.custom.end;
    }
    for (const [name, value] of Object.entries(saved.filters || {})) {
      const select = $(name);
      if (!select) continue;
      if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value, text: value }));
      select.value = value;
    }
  }

  // --- rendering: tiles ------------------------------------------------------------------------
  function buildTiles(container, tiles) {
    container.replaceChildren(...tiles.map((tile) => el("article", {
      class: "tile",
      "data-kpi-tile": tile.kpi,
      "data-clock": tile.clock,
      "aria-labelledby": `tile-${tile.kpi}-title`,
    },
    el("h3", { id: `tile-${tile.kpi}-title`, text: tile.title }),
    el("p", { class: "value", "data-kpi": tile.kpi, "data-empty": "true", text: "—" }),
    el("p", { class: "detail", "data-detail-for": tile.kpi, text: tile.note || "\u00a0" }))));
  }

  function setNumber(node, value, text) {
    node.textContent = text;
    if (value === null || !Number.isFinite(value)) {
      node.removeAttribute("data-value");
      node.setAttribute("data-empty", "true");
    } else {
      node.setAttribute("data-value", String(value));
      node.setAttribute("data-empty", "false");
    }
  }

  function stat(kpi, name, value, text) {
    const span = el("span", { "data-kpi": `${kpi}.${name}` });
    setNumber(span, value, text);
    return span;
  }

  /** The headline number of a KpiValue (0 for counts and levels with no data). */
  function headline(kv) {
    const kind = kv.kind || "";
    let value = num(kv.value);
    if (value === null && kind === "KPI_KIND_DISTRIBUTION") value = num(kv.p50);
    if (value === null && (kind === "KPI_KIND_COUNT" || kind === "KPI_KIND_LEVEL")) value = 0;
    return value;
  }

  function renderTile(tile, kv) {
    const article = document.querySelector(`[data-kpi-tile="${tile.kpi}"]`);
    if (!article) return;
    const valueNode = article.querySelector(".value");
    const detail = article.querySelector(".detail");
    const description = state.descriptions[tile.kpi];
    if (description) article.setAttribute("title", description);
    if (!kv) {
      setNumber(valueNode, null, "—");
      detail.replaceChildren(tile.note || "no data");
      return;
    }
    const unit = kv.unit || "";
    const value = headline(kv);
    const count = num(kv.count) || 0;
    setNumber(valueNode, value, formatValue(value, unit));
    const parts = [];
    switch (kv.kind) {
      case "KPI_KIND_DISTRIBUTION":
        if (!count) {
          parts.push("no data in the period");
          break;
        }
        parts.push("p90 ", stat(tile.kpi, "p90", num(kv.p90), formatValue(num(kv.p90), unit)),
          " · n ", stat(tile.kpi, "count", count, int.format(count)));
        break;
      case "KPI_KIND_RATE": {
        const n = num(kv.numerator) || 0;
        const d = num(kv.denominator) || 0;
        parts.push(stat(tile.kpi, "numerator", n, int.format(n)), " of ",
          stat(tile.kpi, "denominator", d, int.format(d)));
        break;
      }
      case "KPI_KIND_SCORE":
      case "KPI_KIND_SENTIMENT":
        parts.push(stat(tile.kpi, "count", count, int.format(count)), count === 1 ? " answer" : " answers");
        if (num(kv.mean) !== null) parts.push(" · mean ", stat(tile.kpi, "mean", num(kv.mean), one.format(num(kv.mean))));
        break;
      default:
        parts.push(tile.note || "in the period");
    }
    detail.replaceChildren(...parts);
    const key = `${tile.kpi}=${value}`;
    if (state.previous[tile.kpi] !== undefined && state.previous[tile.kpi] !== key) {
      article.classList.remove("changed");
      void article.offsetWidth; // restart the animation
      article.classList.add("changed");
    }
    state.previous[tile.kpi] = key;
  }

  // --- rendering: charts -----------------------------------------------------------------------
  /** Draws "No data" over an empty chart, so an empty period does not look broken. */
  const emptyPlugin = {
    id: "crmEmpty",
    afterDraw(chart) {
      const hasData = chart.data.datasets.some((ds) => ds.data.some((v) => v !== null && v !== undefined && v !== 0));
      if (hasData) return;
      const { ctx, chartArea } = chart;
      if (!chartArea) return;
      ctx.save();
      ctx.fillStyle = "#55606e";
      ctx.font = "14px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("No data in this period", (chartArea.left + chartArea.right) / 2, (chartArea.top + chartArea.bottom) / 2);
      ctx.restore();
    },
  };

  function timeUnit(maxSeconds) {
    if (maxSeconds >= 2 * 86400) return { name: "days", scale: 86400 };
    if (maxSeconds >= 3600) return { name: "hours", scale: 3600 };
    if (maxSeconds >= 60) return { name: "minutes", scale: 60 };
    return { name: "seconds", scale: 1 };
  }

  function makeCharts() {
    const Chart = window.Chart;
    if (!Chart) {
      showBanner("The charting library did not load (/dashboard/static/chart.umd.js); numbers still update.", "charts");
      return;
    }
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#55606e";
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.animation = window.matchMedia("(prefers-reduced-motion: reduce)").matches ? false : { duration: 300 };
    Chart.register(emptyPlugin);
    // Legend entries in dataset order (a combined chart's draw `order` would reorder them).
    const legend = { position: "bottom", labels: { boxWidth: 12, sort: (a, b) => a.datasetIndex - b.datasetIndex } };
    const pct = { min: 0, max: 100, ticks: { callback: (v) => `${v}%` } };
    const make = (id, config) => {
      state.charts[id] = new Chart($(id), config);
    };
    make("chart-volume", {
      type: "bar",
      data: { labels: [], datasets: [
        { label: "Tickets created", data: [], backgroundColor: COLORS.company, yAxisID: "y", order: 2 },
        { label: "Backlog (open)", data: [], type: "line", borderColor: COLORS.yellow, backgroundColor: COLORS.yellow, pointRadius: 0, tension: 0.2, yAxisID: "y1", order: 1 },
      ] },
      options: { plugins: { legend }, scales: {
        y: { beginAtZero: true, title: { display: true, text: "created" }, ticks: { precision: 0 } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "open" }, ticks: { precision: 0 } },
      } },
    });
    make("chart-sla", {
      type: "line",
      data: { labels: [], datasets: [
        { label: "First response met", data: [], borderColor: COLORS.company, backgroundColor: COLORS.company, spanGaps: true },
        { label: "Resolution met", data: [], borderColor: COLORS.green, backgroundColor: COLORS.green, spanGaps: true },
        { label: "Green inside, red outside", data: [], borderColor: COLORS.customer, backgroundColor: COLORS.customer, borderDash: [6, 4], spanGaps: true },
      ] },
      options: { plugins: { legend, tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${one.format(c.parsed.y)}%` } } }, scales: { y: pct } },
    });
    make("chart-clock-trend", {
      type: "line",
      data: { labels: [], datasets: [
        { label: "Company FRT (p50)", data: [], borderColor: COLORS.company, backgroundColor: COLORS.company, spanGaps: true },
        { label: "Customer wait (p50)", data: [], borderColor: COLORS.customer, backgroundColor: COLORS.customer, spanGaps: true },
      ] },
      options: { plugins: { legend }, scales: { y: { beginAtZero: true, title: { display: true, text: "hours" } } } },
    });
    make("chart-clocks", {
      type: "bar",
      data: { labels: ["p50", "p90"], datasets: [
        { label: "Company FRT", data: [], backgroundColor: COLORS.company },
        { label: "Customer wait", data: [], backgroundColor: COLORS.customer },
      ] },
      options: { plugins: { legend }, scales: { y: { beginAtZero: true, title: { display: true, text: "hours" } } } },
    });
    make("chart-gap-histogram", {
      type: "bar",
      data: { labels: [], datasets: [{ label: "Tickets", data: [], backgroundColor: [], categoryPercentage: 1.0, barPercentage: 0.95 }] },
      options: { plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => `gap ${items[0].label}` } } },
        scales: { x: { title: { display: true, text: "customer wait − company FRT (hours)" } }, y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "tickets" } } } },
    });
    make("chart-csat-by-wait", {
      type: "bar",
      data: { labels: WAIT_BUCKETS, datasets: [
        { label: "CSAT %", data: [], backgroundColor: COLORS.green, yAxisID: "y", order: 2 },
        { label: "NPS", data: [], type: "line", borderColor: COLORS.purple, backgroundColor: COLORS.purple, yAxisID: "y1", spanGaps: true, order: 1 },
      ] },
      options: { plugins: { legend }, scales: {
        x: { title: { display: true, text: "customer wait" } },
        y: { ...pct, title: { display: true, text: "CSAT" } },
        y1: { min: -100, max: 100, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "NPS" } },
      } },
    });
  }

  function updateChart(id, labels, series, yTitle) {
    const chart = state.charts[id];
    if (!chart) return;
    if (labels) chart.data.labels = labels;
    series.forEach((data, i) => { chart.data.datasets[i].data = data; });
    if (yTitle) chart.options.scales.y.title.text = yTitle;
    chart.update(chart.$crmDrawn ? "none" : undefined);
    chart.$crmDrawn = true;
    renderChartTable(id);
  }

  /** The data of a chart as a table (for screen readers and for copying numbers). */
  function renderChartTable(id) {
    const chart = state.charts[id];
    const holder = document.querySelector(`[data-table-for="${id}"]`);
    if (!chart || !holder) return;
    const datasets = chart.data.datasets;
    const head = el("tr", null, el("th", { scope: "col", text: "" }),
      ...datasets.map((ds) => el("th", { scope: "col", text: ds.label })));
    const rows = chart.data.labels.map((label, i) => el("tr", null, el("th", { scope: "row", text: String(label) }),
      ...datasets.map((ds) => {
        const v = ds.data[i];
        return el("td", { text: v === null || v === undefined ? "—" : (Number.isInteger(v) ? int.format(v) : one.format(v)) });
      })));
    holder.replaceChildren(el("table", { class: "data" }, el("thead", null, head), el("tbody", null, ...rows)));
  }

  // --- rendering: a streamed result ------------------------------------------------------------
  /** Every bucket start of the range (hour: UTC hours; day: local midnights), as epoch ms. */
  function bucketStarts(range, granularity) {
    const out = [];
    if (granularity === "GRANULARITY_HOUR") {
      for (let t = Math.floor(range.start.getTime() / HOUR) * HOUR; t < range.end.getTime(); t += HOUR) out.push(t);
    } else {
      const day = new Date(range.start);
      day.setHours(0, 0, 0, 0);
      while (day.getTime() < range.end.getTime()) {
        out.push(day.getTime());
        day.setDate(day.getDate() + 1);
      }
    }
    return out;
  }

  function renderResult(result, selection, generation) {
    if (generation !== state.generation) return;
    const group = (result.groups || [])[0] || { points: [], totals: [] };
    const totals = {};
    for (const kv of group.totals || []) totals[baseName(kv.kpi)] = kv;
    for (const tile of OPS_TILES.concat(PERCEPTION_TILES)) renderTile(tile, totals[tile.kpi]);

    // The series, on a full axis of buckets (a bucket with no data has no point).
    const range = rangeOf(selection);
    const granularity = granularityOf(selection, range);
    const starts = bucketStarts(range, granularity);
    const byStart = new Map();
    for (const point of group.points || []) {
      const values = {};
      for (const kv of point.values || []) values[baseName(kv.kpi)] = kv;
      const t = new Date(point.bucketStart).getTime();
      byStart.set(granularity === "GRANULARITY_HOUR" ? Math.floor(t / HOUR) * HOUR : t, values);
    }
    // Buckets the server returned that the local axis does not have (another day boundary).
    for (const t of byStart.keys()) if (!starts.includes(t)) starts.push(t);
    starts.sort((a, b) => a - b);
    const fmt = granularity === "GRANULARITY_HOUR" ? hourFormat : dayFormat;
    const labels = starts.map((t) => fmt.format(new Date(t)));
    const column = (kpi, pick) => starts.map((t) => {
      const kv = (byStart.get(t) || {})[kpi];
      return kv ? pick(kv) : null;
    });
    const created = column("tickets_created", (kv) => headline(kv) || 0).map((v) => v || 0);
    // A level with no point in a bucket did not change there: carry the previous level.
    let level = null;
    const backlog = column("backlog", (kv) => headline(kv)).map((v) => {
      if (v !== null) level = v;
      return level;
    });
    updateChart("chart-volume", labels, [created, backlog]);
    updateChart("chart-sla", labels, [
      column("sla_first_response", (kv) => num(kv.value)),
      column("sla_resolution", (kv) => num(kv.value)),
      column("green_inside_red_outside", (kv) => num(kv.value)),
    ]);
    const company = column("company_frt", (kv) => headline(kv));
    const customer = column("customer_wait", (kv) => headline(kv));
    const trendUnit = timeUnit(Math.max(0, ...company.concat(customer).filter((v) => v !== null)));
    const scaled = (values) => values.map((v) => (v === null ? null : v / trendUnit.scale));
    updateChart("chart-clock-trend", labels, [scaled(company), scaled(customer)], trendUnit.name);

    const c = totals.company_frt || {};
    const w = totals.customer_wait || {};
    const quantiles = [num(c.p50), num(c.p90), num(w.p50), num(w.p90)];
    const unit = timeUnit(Math.max(0, ...quantiles.filter((v) => v !== null)));
    const q = (v) => (v === null ? null : v / unit.scale);
    updateChart("chart-clocks", null, [[q(quantiles[0]), q(quantiles[1])], [q(quantiles[2]), q(quantiles[3])]], unit.name);

    if (result.definitions && result.definitions.length) {
      $("definitions").textContent = `Definitions: ${result.definitions.filter((d) => STREAM_KPIS.includes(baseName(d))).join(", ")}.`;
    }
    state.updates += 1;
    $("main").dataset.updates = String(state.updates);
    const now = new Date();
    const stamp = $("last-update");
    stamp.textContent = clockFormat.format(now);
    stamp.setAttribute("datetime", now.toISOString());
    if (result.watermarkTime) stamp.setAttribute("title", `Newest event reflected: ${new Date(result.watermarkTime).toLocaleString()}`);
    if (result.watermarkTime !== state.lastWatermark) {
      state.lastWatermark = result.watermarkTime;
      scheduleGap();
    }
  }

  // --- the perception gap (unary, refreshed when the stream says the data changed) ---------------
  function scheduleGap(now) {
    if (state.gapTimer) return;
    const wait = now ? 0 : Math.max(0, state.gapLoadedAt + GAP_REFRESH_MS - Date.now());
    state.gapTimer = setTimeout(() => {
      state.gapTimer = null;
      loadGap();
    }, wait);
  }

  async function loadGap() {
    if (state.gapInFlight) {
      scheduleGap();
      return;
    }
    const selection = state.selection;
    const generation = state.generation;
    const range = rangeOf(selection);
    state.gapInFlight = true;
    state.gapLoadedAt = Date.now();
    try {
      const gap = await call("MetricsService/GetPerceptionGap", {
        startTime: range.start.toISOString(),
        endTime: range.end.toISOString(),
        filters: gapFilters(selection),
        worstLimit: 8,
      });
      if (generation !== state.generation) return;
      hideBanner("gap");
      renderGap(gap);
      loadTeams(selection); // new tickets may name new teams
      state.gapLoads += 1;
      $("main").dataset.gapLoads = String(state.gapLoads);
    } catch (error) {
      if (error.status === 401) return signOut("The credential was refused (expired?). Sign in again.");
      showBanner(`Perception gap: ${describe(error)}`, "gap");
    } finally {
      state.gapInFlight = false;
    }
  }

  /**
   * The perception gap's breakdown by customer-wait bucket is kept per channel only (the
   * metrics service combines a wait bucket with the channel, not with priority or team), so
   * its part of the page follows the channel of the slice and says so.
   */
  function gapFilters(selection) {
    return selection.filters.channel ? { channel: selection.filters.channel } : {};
  }

  function renderGapScope(selection) {
    const narrowed = Object.keys(selection.filters).some((name) => name !== "channel");
    const text = narrowed
      ? ` — ${selection.filters.channel ? "this channel" : "all channels"}, every priority and team`
      : "";
    for (const node of document.querySelectorAll("[data-gap-scope]")) node.textContent = text;
  }

  function slug(label) {
    return label.replace("<", "lt").replace(">", "gt");
  }

  function renderGap(gap) {
    // Histogram: one-hour bins from the lowest to the highest, empty bins included.
    const bins = (gap.gapHistogram || []).map((b) => ({ lower: Number(b.lowerHours || 0), tickets: Number(b.tickets || 0) }));
    const labels = [];
    const counts = [];
    const colors = [];
    if (bins.length) {
      const byLower = new Map(bins.map((b) => [b.lower, b.tickets]));
      const lo = Math.min(...byLower.keys());
      const hi = Math.max(...byLower.keys());
      for (let h = lo; h <= hi && labels.length < 200; h += 1) {
        labels.push(`${h}…${h + 1} h`);
        counts.push(byLower.get(h) || 0);
        colors.push(h < 0 ? COLORS.company : COLORS.customer);
      }
    }
    const chart = state.charts["chart-gap-histogram"];
    if (chart) chart.data.datasets[0].backgroundColor = colors;
    updateChart("chart-gap-histogram", labels, [counts]);

    // CSAT and NPS by customer wait.
    const buckets = new Map((gap.waitBuckets || []).map((b) => [b.label, b]));
    const csat = [];
    const nps = [];
    const rows = WAIT_BUCKETS.map((label) => {
      const b = buckets.get(label) || {};
      const c = b.csat ? num(b.csat.value) : null;
      const n = b.nps ? num(b.nps.value) : null;
      const tickets = num(b.tickets) || 0;
      csat.push(c);
      nps.push(n);
      const key = `wait_bucket.${slug(label)}`;
      const cell = (name, value, text) => {
        const td = el("td", { "data-kpi": `${key}.${name}` });
        setNumber(td, value, text);
        return td;
      };
      return el("tr", null, el("th", { scope: "row", text: label }),
        cell("tickets", tickets, int.format(tickets)),
        cell("csat", c, formatValue(c, "%")),
        cell("nps", n, formatValue(n, "score")));
    });
    $("wait-buckets").tBodies[0].replaceChildren(...rows);
    updateChart("chart-csat-by-wait", WAIT_BUCKETS, [csat, nps]);

    // The worst tickets.
    const worst = gap.worstTickets || [];
    const body = $("worst-tickets").tBodies[0];
    if (!worst.length) {
      body.replaceChildren(el("tr", null, el("td", { class: "empty", colSpan: 4, text: "No answered tickets in this period." })));
    } else {
      body.replaceChildren(...worst.map((t) => el("tr", { "data-ticket-id": t.ticketId },
        el("td", { class: "mono", text: t.ticketId }),
        el("td", { text: duration(num(t.companyFrtSeconds) || 0) }),
        el("td", { text: duration(num(t.customerWaitSeconds) || 0) }),
        el("td", { text: duration(num(t.perceptionGapSeconds) || 0) }))));
    }
  }

  // --- the team list ---------------------------------------------------------------------------
  async function loadTeams(selection) {
    const range = rangeOf(selection);
    try {
      const answer = await call("MetricsService/GetKpis", {
        kpis: ["tickets_created"],
        startTime: range.start.toISOString(),
        endTime: range.end.toISOString(),
        granularity: "GRANULARITY_TOTAL",
        groupBy: "team",
      });
      const select = $("team");
      const current = select.value;
      const teams = new Set((answer.groups || []).map((g) => g.value).filter(Boolean));
      if (current) teams.add(current);
      const options = [...teams].sort().map((team) => el("option", { value: team, text: team }));
      select.replaceChildren(el("option", { value: "", text: "All teams" }), ...options);
      select.value = current;
    } catch (error) {
      if (error.status === 401) signOut("The credential was refused (expired?). Sign in again.");
      /* otherwise keep the list as it is: the team filter is a convenience */
    }
  }

  // --- the stream ------------------------------------------------------------------------------
  function setLive(stateName, label) {
    const live = $("live");
    live.dataset.state = stateName;
    const text = label || {
      idle: "Not connected",
      connecting: "Connecting…",
      live: "Live",
      reconnecting: "Reconnecting…",
      error: "Stopped",
    }[stateName];
    if ($("live-label").textContent !== text) $("live-label").textContent = text;
  }

  function streamRequest(selection) {
    const range = rangeOf(selection);
    return {
      query: {
        kpis: STREAM_KPIS,
        startTime: range.start.toISOString(),
        endTime: range.end.toISOString(),
        granularity: granularityOf(selection, range),
        filters: selection.filters,
        timezone: localZone,
      },
      minInterval: STREAM_INTERVAL,
      follow: range.follow,
    };
  }

  async function runStream(selection, generation, controller) {
    let delay = 1000;
    while (!controller.signal.aborted) {
      setLive(state.updates && generation === state.generation ? "reconnecting" : "connecting");
      // A following stream answers every 2 s: silence for longer means a dead connection.
      let watchdog = null;
      const attempt = new AbortController();
      const abortAttempt = () => attempt.abort();
      controller.signal.addEventListener("abort", abortAttempt, { once: true });
      const arm = () => {
        clearTimeout(watchdog);
        if (rangeOf(selection).follow) watchdog = setTimeout(abortAttempt, 30000);
      };
      try {
        arm();
        const response = await fetch("/v1/MetricsService/StreamKpis", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/x-ndjson", ...credential.headers(state.credential) },
          body: JSON.stringify(streamRequest(selection)),
          signal: attempt.signal,
          cache: "no-store",
        });
        if (!response.ok) throw await errorOf(response);
        for await (const message of ndjson(response)) {
          arm();
          if (message.error || (message.code && message.message && !message.result)) {
            const e = message.error || message;
            throw new ApiError(200, e.code, e.message, e.details);
          }
          if (generation !== state.generation) return;
          delay = 1000;
          hideBanner("stream");
          setLive("live");
          renderResult(message.result || message, selection, generation);
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError) {
          if (error.status === 401 || error.code === "UNAUTHENTICATED") return signOut("The credential was refused (expired?). Sign in again.");
          if (error.status === 400 || error.status === 403 || error.code === "INVALID_ARGUMENT" || error.code === "PERMISSION_DENIED") {
            setLive("error");
            showBanner(describe(error), "stream");
            return;
          }
          showBanner(`Live updates interrupted: ${describe(error)}. Retrying…`, "stream");
        } else if (!attempt.signal.aborted) {
          showBanner("Live updates interrupted (connection lost). Retrying…", "stream");
        }
      } finally {
        clearTimeout(watchdog);
        controller.signal.removeEventListener("abort", abortAttempt);
      }
      if (controller.signal.aborted) return;
      setLive("reconnecting");
      await sleep(delay, controller.signal);
      delay = Math.min(delay * 2, 30000);
    }
  }

  function applySelection() {
    const selection = readSelection();
    const custom = $("period").value === "custom";
    $("custom-range").hidden = !custom;
    $("custom-range-end").hidden = !custom;
    if (selection.error) {
      $("filters-error").textContent = selection.error;
      $("filters-error").hidden = false;
      return;
    }
    $("filters-error").hidden = true;
    saveSelection(selection);
    state.selection = selection;
    renderGapScope(selection);
    hideBanner("gap");
    hideBanner("stream");
    state.generation += 1;
    state.previous = {};
    state.lastWatermark = null;
    if (state.stream) state.stream.abort();
    const controller = new AbortController();
    state.stream = controller;
    runStream(selection, state.generation, controller);
    clearTimeout(state.gapTimer);
    state.gapTimer = null;
    scheduleGap(true);
  }

  // --- banners, sign-in, sign-out ----------------------------------------------------------------
  /** One message per source ("stream", "gap", "charts"): a source clears only its own. */
  function showBanner(text, source) {
    state.banners[source || "page"] = text;
    renderBanners();
  }

  function hideBanner(source) {
    if (!(source in state.banners)) return;
    delete state.banners[source];
    renderBanners();
  }

  function renderBanners() {
    const banner = $("banner");
    const texts = Object.values(state.banners);
    banner.textContent = texts.join(" ");
    banner.hidden = texts.length === 0;
  }

  function signOut(reason) {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.generation += 1;
    credential.clear();
    state.credential = null;
    setLive("idle");
    $("main").hidden = true;
    $("sign-out").hidden = true;
    $("caller").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = reason || "";
    error.hidden = !reason;
    $("login-credential").focus();
  }

  async function connect() {
    state.credential = credential.load();
    if (!state.credential) return signOut();
    setLive("connecting");
    try {
      const caller = await call("IdentityService/GetCaller", {});
      const actor = [caller.actor, caller.role && `(${caller.role})`].filter(Boolean).join(" ");
      const who = [caller.tenantId && `tenant ${caller.tenantId}`, actor].filter(Boolean).join(" · ");
      $("caller").textContent = who ? `Signed in: ${who}` : "";
      $("caller").hidden = !who;
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        return signOut(`The credential was refused: ${describe(error)}`);
      }
      // Another failure (the identity operation missing or down): the KPI calls will tell.
    }
    $("login").hidden = true;
    $("main").hidden = false;
    $("sign-out").hidden = false;
    try {
      const catalogue = await call("MetricsService/ListKpis", {});
      for (const kpi of catalogue.kpis || []) state.descriptions[kpi.name] = kpi.description;
    } catch (_) {
      /* descriptions are a nicety */
    }
    applySelection();
  }

  function onLogin(event) {
    event.preventDefault();
    const value = $("login-credential").value.trim();
    if (!value) {
      $("login-error").textContent = "Paste a token or an API key first.";
      $("login-error").hidden = false;
      return;
    }
    let kind = new FormData(event.target).get("kind");
    if (kind === "auto") kind = looksLikeJwt(value) ? "bearer" : "api_key";
    credential.save(kind, value);
    $("login-credential").value = "";
    connect();
  }

  let defaultHint = "";

  function onFilterChange(event) {
    const changed = event.target.id;
    $("slice-hint").textContent = defaultHint;
    // Cells exist for channel plus one other dimension: priority and team exclude each other.
    if (changed === "priority" && $("priority").value && $("team").value) {
      $("team").value = "";
      $("slice-hint").textContent = "Team cleared: slice by channel, plus priority or team.";
    } else if (changed === "team" && $("team").value && $("priority").value) {
      $("priority").value = "";
      $("slice-hint").textContent = "Priority cleared: slice by channel, plus priority or team.";
    }
    applySelection();
  }

  function init() {
    credential.fromFragment();
    defaultHint = $("slice-hint").textContent;
    buildTiles($("ops-tiles"), OPS_TILES);
    buildTiles($("perception-tiles"), PERCEPTION_TILES);
    restoreSelection();
    $("custom-range").hidden = $("period").value !== "custom";
    $("custom-range-end").hidden = $("period").value !== "custom";
    makeCharts();
    $("filters").addEventListener("change", onFilterChange);
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", () => {
      const before = JSON.stringify(credential.load());
      credential.fromFragment();
      if (JSON.stringify(credential.load()) !== before) connect();
    });
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
