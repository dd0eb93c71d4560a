// console-super.js: the supervisors' views of the staff console (roles
// supervisor or admin). mount(): queue health, live from queue.watch
// (protocol.md §5.7): who is waiting by risk class, the longest wait, offers
// and chats, the counsellors on shift or connected, and the alerts.
// mountStats(): statistics from stats.get (§5.11) over a range of UTC days
// or hours, drawn as SVG bar charts (each with a heading, an aria-label that
// reads the values, and a table of the same numbers). Text goes in with
// textContent only; no inline style or script (the page's CSP).
const SVG = 'http://www.w3.org/2000/svg';
const RISKS = ['immediate', 'high', 'elevated', 'standard']; // most urgent first
const RISK_WORDS = { standard: 'Standard', elevated: 'Elevated', high: 'High', immediate: 'Immediate' };
const ALERT_WORDS = {
  offer_timeout: 'Offer timed out',
  counsellor_lost: 'Counsellor lost',
  immediate_waiting: 'Immediate risk waiting',
  long_wait: 'Long wait',
};
const PRESENCE_WORDS = { available: 'Available', busy: 'Busy', away: 'Away', offline: 'Offline' };
const DAY = 86400000;
const HOUR = 3600000;

// Plain words for the codes these views meet; the shell's explain() for the rest.
const WORDS = {
  forbidden: 'Your account is not allowed to see this.',
  busy: 'The server is busy. Try again in a moment.',
  bad_field: 'The server did not accept that range. Choose a shorter or different one.',
  store_failed: 'The server could not read its records just now. Try again.',
  internal: 'The server had a problem. Try again.',
};
export function words(ctx, e) {
  if (e?.code && WORDS[e.code]) return `${WORDS[e.code]} (${e.code})`;
  const t = ctx.explain ? ctx.explain(e) : String(e?.message ?? e);
  return e?.code && !t.includes(`(${e.code})`) ? `${t} (${e.code})` : t;
}

/** "4 min 10 s", "1 h 5 min", "12 s". */
export function duration(s) {
  if (s === null || s === undefined) return '—';
  s = Math.max(0, Math.floor(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return `${h} h${m ? ` ${m} min` : ''}`;
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayTime = (ms) => new Date(ms).toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });

// ---- queue health ---------------------------------------------------------------

/** Queue health: queue.watch on while mounted, the view and alerts live. */
export function mount(root, ctx) {
  const { el } = ctx;
  let view = null, viewAt = 0, stopped = false;
  const alerts = new Map(); // key -> alert, merged from views and pushes
  const names = new Map(); // staff_id -> display name (from the views)

  const status = el('p', { id: 'qh-status', class: 'muted', role: 'status', text: 'Connecting to the live view…' });
  const num = (id, label, cls = '') => el('div', { class: `qh-tile ${cls}`, id: `qh-tile-${id}` },
    el('span', { class: 'qh-label', text: label }), el('span', { class: 'qh-num', id: `qh-${id}`, text: '—' }));
  const tiles = el('div', { class: 'qh-tiles', id: 'qh-summary' },
    num('waiting', 'Waiting'),
    num('longest', 'Longest wait'),
    num('offered', 'Being offered'),
    num('active', 'Chats in progress'));
  const riskTiles = el('div', { class: 'qh-tiles', id: 'qh-by-risk' },
    ...RISKS.map((r) => num(`risk-${r}`, RISK_WORDS[r], `qh-risk qh-risk-${r}`)));
  const staffBody = el('tbody', { id: 'qh-counsellors' });
  const staffTable = el('table', { class: 'qh-table' },
    el('caption', { class: 'visually-hidden', text: 'Counsellors and supervisors on shift or connected' }),
    el('thead', {}, el('tr', {}, ...['Name', 'Status', 'On shift since', 'Chats / capacity', 'Offers', 'Connections']
      .map((h) => el('th', { scope: 'col', text: h })))),
    staffBody);
  const alertList = el('ol', { id: 'qh-alerts', class: 'qh-alerts', 'aria-live': 'polite' });

  root.replaceChildren(
    el('h1', { id: 'h-queue', text: 'Queue health' }), status,
    el('section', { 'aria-labelledby': 'qh-h-now' }, el('h2', { id: 'qh-h-now', text: 'Right now' }), tiles),
    el('section', { 'aria-labelledby': 'qh-h-risk' }, el('h2', { id: 'qh-h-risk', text: 'Waiting by risk class' }), riskTiles),
    el('section', { 'aria-labelledby': 'qh-h-staff' }, el('h2', { id: 'qh-h-staff', text: 'Counsellors' }), el('div', { class: 'table-wrap' }, staffTable),
      el('p', { id: 'qh-no-staff', class: 'muted', hidden: true, text: 'Nobody is on shift or connected.' })),
    el('section', { 'aria-labelledby': 'qh-h-alerts' }, el('h2', { id: 'qh-h-alerts', text: 'Alerts' }),
      el('p', { id: 'qh-no-alerts', class: 'muted', text: 'No alerts.' }), alertList));

  const set = (id, text) => { root.querySelector(`#qh-${id}`).textContent = text; };

  function renderLongest() {
    if (!view) return;
    // Between pushes the longest wait keeps growing: count it on here.
    const s = view.waiting ? view.longest_wait_s + Math.floor((Date.now() - viewAt) / 1000) : 0;
    set('longest', view.waiting ? duration(s) : 'nobody waiting');
  }

  function render() {
    if (!view) return;
    set('waiting', String(view.waiting));
    set('offered', String(view.offered));
    set('active', String(view.active));
    for (const r of RISKS) {
      const n = view.by_risk?.[r] ?? 0;
      set(`risk-${r}`, String(n));
      root.querySelector(`#qh-tile-risk-${r}`).classList.toggle('qh-hot', n > 0 && (r === 'immediate' || r === 'high'));
    }
    renderLongest();
    for (const c of view.counsellors ?? []) names.set(c.staff_id, c.display_name);
    const rows = (view.counsellors ?? []).map((c) => el('tr', { 'data-staff-id': String(c.staff_id) },
      el('th', { scope: 'row', text: c.display_name }),
      el('td', { text: PRESENCE_WORDS[c.presence] ?? c.presence }),
      el('td', { text: c.on_shift && c.shift_started_at ? dayTime(c.shift_started_at) : 'Not on shift' }),
      el('td', { text: `${c.chats} / ${c.capacity}` }),
      el('td', { text: String(c.offers) }),
      el('td', { text: String(c.connections) })));
    staffBody.replaceChildren(...rows);
    root.querySelector('#qh-no-staff').hidden = rows.length > 0;
    for (const a of view.alerts ?? []) addAlert(a, false);
    renderAlerts();
  }

  const alertKey = (a) => `${a.at}|${a.kind}|${a.conversation ?? ''}|${a.staff_id ?? ''}`;
  function addAlert(a, fresh) {
    const k = alertKey(a);
    if (!alerts.has(k)) alerts.set(k, { ...a, fresh });
  }
  function renderAlerts() {
    const list = [...alerts.values()].sort((x, y) => y.at - x.at).slice(0, 50);
    alertList.replaceChildren(...list.map((a) => {
      const who = a.staff_id ? names.get(a.staff_id) ?? `staff #${a.staff_id}` : null;
      return el('li', { class: `qh-alert qh-alert-${a.kind}`, 'data-kind': a.kind },
        el('span', { class: 'qh-alert-kind', text: ALERT_WORDS[a.kind] ?? a.kind.replace(/_/g, ' ') }),
        ' ', el('time', { datetime: new Date(a.at).toISOString(), text: clock(a.at) }),
        a.conversation ? ` · chat ${a.conversation}` : '',
        who ? ` · ${who}` : '',
        a.detail ? el('span', { class: 'qh-alert-detail', text: ` — ${a.detail}` }) : '');
    }));
    root.querySelector('#qh-no-alerts').hidden = list.length > 0;
  }

  function onView(v) {
    view = v;
    viewAt = Date.now();
    status.textContent = `Live. Last change ${clock(viewAt)}.`;
    render();
  }

  async function watch() {
    try {
      const v = await ctx.client.request({ type: 'queue.watch', on: 1 });
      if (!stopped) onView(v);
    } catch (e) {
      if (stopped) return;
      status.textContent = `The live view could not start: ${words(ctx, e)}`;
      ctx.toast(`Queue health: ${words(ctx, e)}`, 'error');
    }
  }

  ctx.on('view', (v) => { if (!stopped) onView(v); });
  ctx.on('alert', (a) => { if (stopped) return; addAlert(a, true); renderAlerts(); });
  ctx.on('offline', () => { if (!stopped) status.textContent = 'Connection lost: these numbers are not live until it is back.'; });
  ctx.on('online', () => { if (!stopped) watch(); }); // a new socket has no watch yet
  const ticker = setInterval(renderLongest, 1000);
  watch();

  return {
    unmount() {
      stopped = true;
      clearInterval(ticker);
      ctx.client.request({ type: 'queue.watch', on: 0 }).catch(() => { /* offline: nothing to stop */ });
    },
  };
}

// ---- statistics ---------------------------------------------------------------

const pad2 = (n) => String(n).padStart(2, '0');
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const parseDay = (s) => { const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s); return m ? Date.UTC(+m[1], +m[2] - 1, +m[3]) : NaN; };
const periodLabel = (ms, by) => by === 'hour' ? `${pad2(new Date(ms).getUTCHours())}:00` : isoDay(ms).slice(5);
const periodName = (ms, by) => by === 'hour' ? `${isoDay(ms)} ${pad2(new Date(ms).getUTCHours())}:00–${pad2((new Date(ms).getUTCHours() + 1) % 24)}:00 UTC` : isoDay(ms);

const BINS = [['lt1m', 'Under 1 min', 0, 59], ['1m_5m', '1–5 min', 60, 299], ['5m_15m', '5–15 min', 300, 899],
  ['15m_60m', '15–60 min', 900, 3599], ['ge60m', '1 h or more', 3600, Infinity]];

/** Sums the periods of a stats reply into one set of totals. */
export function totals(periods) {
  const t = { conversations: 0, answered: 0, unanswered: 0, open: 0, by_risk: {}, by_age_band: {}, by_tag: {}, by_outcome: {} };
  const dist = () => ({ count: 0, max: null, hist: Object.fromEntries(BINS.map(([k]) => [k, 0])), p50: [], p90: [] });
  t.wait_s = dist();
  t.handle_s = dist();
  for (const p of periods) {
    for (const k of ['conversations', 'answered', 'unanswered', 'open']) t[k] += p[k] ?? 0;
    for (const k of ['by_risk', 'by_age_band', 'by_tag', 'by_outcome']) {
      for (const [id, n] of Object.entries(p[k] ?? {})) t[k][id] = (t[k][id] ?? 0) + n;
    }
    for (const k of ['wait_s', 'handle_s']) {
      const d = p[k];
      if (!d || !d.count) continue;
      t[k].count += d.count;
      t[k].max = Math.max(t[k].max ?? 0, d.max);
      for (const [b, n] of Object.entries(d.histogram ?? {})) t[k].hist[b] = (t[k].hist[b] ?? 0) + n;
      t[k].p50.push(d.p50);
      t[k].p90.push(d.p90);
    }
  }
  return t;
}

/**
 * A percentile over several periods cannot be recomputed from each period's
 * own percentiles, but it lies between the smallest and the largest of them
 * and inside the histogram bin where the cumulative count crosses it.
 * Returns [lo, hi] (equal when exact) or null.
 */
export function percentile(d, q) {
  if (!d.count) return null;
  const ps = q === 50 ? d.p50 : d.p90;
  let lo = Math.min(...ps), hi = Math.max(...ps);
  const rank = Math.ceil((q / 100) * d.count);
  let cum = 0;
  for (const [k, , blo, bhi] of BINS) {
    cum += d.hist[k] ?? 0;
    if (cum >= rank) { lo = Math.max(lo, blo); hi = Math.min(hi, bhi); break; }
  }
  return lo <= hi ? [lo, hi] : [Math.min(...ps), Math.max(...ps)];
}
const range = (r) => (r === null ? '—' : r[0] === r[1] ? duration(r[0]) : `between ${duration(r[0])} and ${duration(r[1])}`);

function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

// Shortens an SVG label (already in the document) until it fits in px.
function fit(text, full, px) {
  if (text.getComputedTextLength() <= px) return;
  let n = full.length;
  while (n > 4 && text.getComputedTextLength() > px) text.textContent = `${full.slice(0, --n)}…`;
}

/**
 * One chart: a heading, an SVG of bars (each with a <title> and its number
 * written next to it) drawn at the box's real width in CSS pixels (so its
 * text is never scaled down; redrawn when the width changes), and the same
 * numbers in a table. items: [{id, label, name?, value, cls?}]. kind 'h'
 * (horizontal bars, for categories) or 'v' (columns, for periods and bins).
 * Returns {box, draw()}.
 */
function chart(ctx, { id, title, items, kind = 'h', unit = 'contacts', note = null, labelHead = 'Category' }) {
  const { el } = ctx;
  const max = Math.max(1, ...items.map((i) => i.value));
  const desc = `${title}: ${items.length ? items.map((i) => `${i.name ?? i.label} ${i.value}`).join(', ') : 'none'}.`;
  const canvas = el('div', { class: 'chart-canvas' });
  let drawn = 0;
  function draw() {
    const width = Math.max(200, Math.floor(canvas.clientWidth || 600));
    if (!items.length || width === drawn) return;
    drawn = width;
    let pic;
    if (kind === 'h') {
      const row = 26, left = Math.min(260, Math.round(width * 0.42)), barMax = width - left - 44, h = items.length * row + 8;
      pic = svg('svg', { width, height: h, viewBox: `0 0 ${width} ${h}`, class: 'chart chart-h', role: 'img', 'aria-label': desc, 'data-chart': id });
      canvas.replaceChildren(pic);
      items.forEach((it, i) => {
        const y = 4 + i * row, w = it.value ? Math.max(2, Math.round((it.value / max) * barMax)) : 0;
        const label = svg('text', { x: left - 8, y: y + row / 2 + 5, 'text-anchor': 'end', class: 'chart-label' }, it.label);
        pic.append(svg('g', { class: 'bar', 'data-id': it.id, 'data-value': it.value },
          svg('title', {}, `${it.name ?? it.label}: ${it.value} ${unit}`), label,
          svg('rect', { x: left, y: y + 3, width: w, height: row - 8, class: `chart-bar ${it.cls ?? ''}` }),
          svg('text', { x: left + w + 6, y: y + row / 2 + 5, class: 'chart-num' }, String(it.value))));
        fit(label, it.label, left - 12);
      });
    } else {
      const top = 20, base = 172, h = 200, pad = 8, n = items.length;
      const slot = (width - pad * 2) / n, bw = Math.max(1, slot * 0.7);
      const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(width / 56))));
      pic = svg('svg', { width, height: h, viewBox: `0 0 ${width} ${h}`, class: 'chart chart-v', role: 'img', 'aria-label': desc, 'data-chart': id },
        svg('line', { x1: pad, x2: width - pad, y1: base, y2: base, class: 'chart-axis' }));
      items.forEach((it, i) => {
        const x = pad + i * slot + (slot - bw) / 2, cx = (x + bw / 2).toFixed(1), hgt = Math.round((it.value / max) * (base - top));
        const g = svg('g', { class: 'bar', 'data-id': it.id, 'data-value': it.value },
          svg('title', {}, `${it.name ?? it.label}: ${it.value} ${unit}`),
          svg('rect', { x: x.toFixed(1), y: base - hgt, width: bw.toFixed(1), height: hgt, class: `chart-bar ${it.cls ?? ''}` }));
        // Numbers above the bars when there is room (always in the table).
        if (slot >= 18 || (slot >= 10 && it.value && it.value < 100)) g.append(svg('text', { x: cx, y: base - hgt - 5, 'text-anchor': 'middle', class: 'chart-num' }, String(it.value)));
        if (i % every === 0) g.append(svg('text', { x: cx, y: base + 18, 'text-anchor': 'middle', class: 'chart-label' }, it.label));
        pic.append(g);
      });
      canvas.replaceChildren(pic);
    }
  }
  const table = el('table', { class: 'chart-table', id: `st-table-${id}` },
    el('caption', { class: 'visually-hidden', text: title }),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: labelHead }), el('th', { scope: 'col', text: 'Count' }))),
    el('tbody', {}, ...items.map((it) => el('tr', { 'data-id': it.id },
      el('th', { scope: 'row', text: it.name ?? it.label }), el('td', { text: String(it.value) })))));
  const box = el('section', { class: `chart-box chart-box-${kind}`, id: `st-${id}`, 'aria-labelledby': `st-h-${id}` },
    el('h2', { id: `st-h-${id}`, text: title }),
    items.length ? canvas : el('p', { class: 'muted', text: 'None in this range.' }),
    note ? el('p', { class: 'chart-note', id: `st-${id}-text`, text: note }) : null,
    items.length ? el('details', {}, el('summary', { text: 'The numbers as a table' }), el('div', { class: 'table-wrap' }, table)) : null);
  return { box, draw };
}

/** Statistics: stats.get over a range, the periods added up, drawn as charts. */
export function mountStats(root, ctx) {
  const { el } = ctx;
  const tax = ctx.taxonomy ?? { groups: [], age_bands: [], outcomes: [] };
  const tagLabel = new Map(), tagGroup = new Map();
  for (const g of tax.groups ?? []) for (const t of g.tags ?? []) { tagLabel.set(t.id, t.label); tagGroup.set(t.id, g.label); }
  const ageLabel = new Map((tax.age_bands ?? []).map((a) => [a.id, a.label]));
  const outcomeLabel = new Map((tax.outcomes ?? []).map((o) => [o.id, o.label]));
  let stopped = false, seq = 0;

  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  const radio = (id, value, label, checked) => el('label', { class: 'inline', for: id },
    el('input', { type: 'radio', name: 'st-mode', id, value, checked }), label);
  const form = el('form', { id: 'st-form', class: 'st-form' },
    el('fieldset', {}, el('legend', { text: 'What to show' }),
      radio('st-mode-days', 'days', 'By day, from – to', true),
      radio('st-mode-24h', 'last24', 'By hour, the last 24 hours', false),
      radio('st-mode-day', 'day', 'By hour, one day', false)),
    el('div', { class: 'st-dates', id: 'st-days-fields' },
      el('div', {}, el('label', { for: 'st-from', text: 'From (UTC day)' }), el('input', { type: 'date', id: 'st-from', value: isoDay(today - 6 * DAY), required: true })),
      el('div', {}, el('label', { for: 'st-to', text: 'To (UTC day, included)' }), el('input', { type: 'date', id: 'st-to', value: isoDay(today), required: true }))),
    el('div', { class: 'st-dates', id: 'st-day-fields', hidden: true },
      el('div', {}, el('label', { for: 'st-day', text: 'Day (UTC)' }), el('input', { type: 'date', id: 'st-day', value: isoDay(today) }))),
    el('p', { class: 'actions' }, el('button', { type: 'submit', id: 'st-go', text: 'Show' })));
  const out = el('div', { id: 'st-out', 'aria-live': 'polite' });
  root.replaceChildren(
    el('h1', { id: 'h-stats', text: 'Statistics' }),
    el('p', { class: 'muted', text: 'Counts of conversations by when they started, added up over the periods you choose. Days and hours are in UTC. No conversation, time or person is shown.' }),
    el('p', { class: 'st-small', id: 'st-small-note', role: 'note' },
      el('strong', { text: 'Small numbers: ' }),
      'a count below 5 can point to one young person. Keep such numbers inside the organisation; before sharing figures outside, add them up to weeks or months and hide counts below 5.'),
    form, out);

  const mode = () => form.querySelector('input[name="st-mode"]:checked').value;
  const syncFields = () => {
    root.querySelector('#st-days-fields').hidden = mode() !== 'days';
    root.querySelector('#st-day-fields').hidden = mode() !== 'day';
  };
  for (const r of form.querySelectorAll('input[name="st-mode"]')) r.addEventListener('change', () => { syncFields(); load(); });

  function query() {
    const m = mode();
    if (m === 'last24') {
      const to = Math.ceil(Date.now() / HOUR) * HOUR;
      return { by: 'hour', from: to - 24 * HOUR, to, what: 'the last 24 hours, by hour' };
    }
    if (m === 'day') {
      const d = parseDay(root.querySelector('#st-day').value);
      if (Number.isNaN(d)) throw new Error('Choose a day.');
      return { by: 'hour', from: d, to: d + DAY, what: `${isoDay(d)}, by hour` };
    }
    const f = parseDay(root.querySelector('#st-from').value), t = parseDay(root.querySelector('#st-to').value);
    if (Number.isNaN(f) || Number.isNaN(t)) throw new Error('Choose both days.');
    if (t < f) throw new Error('The last day is before the first.');
    if ((t - f) / DAY + 1 > 366) throw new Error('Choose at most 366 days.');
    return { by: 'day', from: f, to: t + DAY, what: f === t ? isoDay(f) : `${isoDay(f)} to ${isoDay(t)}, by day` };
  }

  async function load() {
    let q;
    try { q = query(); } catch (e) { ctx.toast(e.message, 'error'); return; }
    const mine = ++seq;
    out.setAttribute('aria-busy', 'true');
    root.querySelector('#st-go').disabled = true;
    try {
      const r = await ctx.client.request({ type: 'stats.get', from: q.from, to: q.to, by: q.by });
      if (stopped || mine !== seq) return;
      show(q, r);
    } catch (e) {
      if (stopped || mine !== seq) return;
      out.replaceChildren(el('p', { class: 'error', text: `The statistics could not be loaded: ${words(ctx, e)}` }));
      ctx.toast(`Statistics: ${words(ctx, e)}`, 'error');
    } finally {
      if (!stopped && mine === seq) { out.removeAttribute('aria-busy'); root.querySelector('#st-go').disabled = false; }
    }
  }

  function show(q, r) {
    const t = totals(r.periods ?? []);
    const step = q.by === 'hour' ? HOUR : DAY;
    const byStart = new Map((r.periods ?? []).map((p) => [p.start, p.conversations]));
    const perPeriod = [];
    for (let s = q.from; s < q.to; s += step) perPeriod.push({ id: String(s), label: periodLabel(s, q.by), name: periodName(s, q.by), value: byStart.get(s) ?? 0 });
    const tagItems = Object.entries(t.by_tag).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([id, n]) => ({ id, label: tagLabel.get(id) ?? (id === 'invalid' ? 'Unrecognised tags' : id), name: tagLabel.has(id) ? `${tagLabel.get(id)} (${tagGroup.get(id)})` : id, value: n }));
    const riskItems = ['standard', 'elevated', 'high', 'immediate'].map((k) => ({ id: k, label: RISK_WORDS[k], value: t.by_risk[k] ?? 0, cls: `risk-bar-${k}` }));
    const ageItems = [...(tax.age_bands ?? []).map((a) => a.id), 'none'].map((k) => ({ id: k, label: k === 'none' ? 'Not given' : ageLabel.get(k) ?? k, value: t.by_age_band[k] ?? 0 }));
    const outcomeIds = [...(tax.outcomes ?? []).map((o) => o.id).filter((k) => t.by_outcome[k]), ...Object.keys(t.by_outcome).filter((k) => !outcomeLabel.has(k) && k !== 'none')];
    if (t.by_outcome.none) outcomeIds.push('none');
    const outcomeItems = outcomeIds.map((k) => ({ id: k, label: k === 'none' ? 'Not wrapped up (yet)' : outcomeLabel.get(k) ?? (k === 'invalid' ? 'Unrecognised outcomes' : k), value: t.by_outcome[k] }));
    const dist = (d, what) => {
      const items = BINS.map(([k, label]) => ({ id: k, label, value: d.hist[k] ?? 0 }));
      const text = d.count
        ? `${d.count} ${what}. Median (p50): ${range(percentile(d, 50))}; 90th percentile (p90): ${range(percentile(d, 90))}; longest: ${duration(d.max)}.`
        : `None in this range.`;
      return { items, text };
    };
    const wait = dist(t.wait_s, 'answered young people'), handle = dist(t.handle_s, 'ended conversations');
    const summary = el('dl', { class: 'st-summary', id: 'st-summary' },
      ...[['conversations', 'Conversations'], ['answered', 'Answered'], ['unanswered', 'Left before an answer'], ['open', 'Still waiting']]
        .flatMap(([k, label]) => [el('dt', { text: label }), el('dd', { id: `st-total-${k}`, text: String(t[k]) })]));
    const small = t.conversations > 0 && t.conversations < 5
      ? el('p', { class: 'st-small', text: `Only ${t.conversations} conversation${t.conversations === 1 ? '' : 's'} in this range: these numbers must not leave the organisation.` }) : '';
    charts = [
      chart(ctx, { id: 'periods', title: q.by === 'hour' ? 'Contacts per hour (UTC)' : 'Contacts per day (UTC)', items: perPeriod, kind: 'v', labelHead: q.by === 'hour' ? 'Hour' : 'Day' }),
      chart(ctx, { id: 'risk', title: 'Contacts by risk class', items: riskItems, labelHead: 'Risk class' }),
      chart(ctx, { id: 'tags', title: 'Contacts by tag', items: tagItems, labelHead: 'Tag (category)', note: 'A conversation can have several tags or none, so these need not add up to the conversations.' }),
      chart(ctx, { id: 'age', title: 'Contacts by age band', items: ageItems, labelHead: 'Age band' }),
      chart(ctx, { id: 'outcome', title: 'Contacts by outcome', items: outcomeItems, labelHead: 'Outcome' }),
      chart(ctx, { id: 'wait', title: 'Time waited before an answer', items: wait.items, kind: 'v', unit: 'young people', labelHead: 'Wait', note: wait.text }),
      chart(ctx, { id: 'handle', title: 'Length of conversations', items: handle.items, kind: 'v', unit: 'conversations', labelHead: 'Length', note: handle.text })];
    out.replaceChildren(
      el('h2', { id: 'st-range', text: `Totals for ${q.what}` }),
      summary, small,
      el('div', { class: 'charts' }, ...charts.map((c) => c.box)));
    for (const c of charts) c.draw();
  }

  // Charts are drawn at their real width: again when it changes.
  let charts = [], pending = 0;
  const resized = new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => { if (!stopped) for (const c of charts) c.draw(); });
  });
  resized.observe(out);

  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  ctx.on('online', () => { if (!stopped && !out.firstChild) load(); });
  load();
  return { unmount() { stopped = true; resized.disconnect(); cancelAnimationFrame(pending); } };
}
