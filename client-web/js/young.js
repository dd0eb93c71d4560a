// young.js: the young person's page (/). Screens: welcome (what Helpline
// is, what is kept, confidentiality, the emergency number), intake (all
// optional), waiting (live position and estimate), chat (end-to-end
// encrypted through secure.js; message states, typing, offline banner,
// return code), ended (short feedback), and help (reachable from every
// screen). Nothing is stored in the browser; every string comes from
// i18n.js and goes into the page with textContent.
import { ContactClient } from './helpline.js';
import { SecureContact, inboxLeave, inboxRead } from './secure.js';
import * as E from './e2e.js';
import { t, setLang, getLang, LANGS } from './i18n.js';
import { CARDS } from './cards.js';

const app = document.getElementById('app');
const banner = document.getElementById('banner');
const state = { config: null, taxonomy: null, client: null, secure: null, status: null, screen: null, intake: { topics: new Set(), flags: new Set(), age: null } };

// ---- DOM helpers -------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') n.textContent = v;
    else if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c) n.append(c);
  return n;
}

// A new screen takes focus to its heading, except while someone is typing
// in the message box and the box stays (waiting <-> chat): then it keeps
// focus and what was being typed.
function show(screen, ...nodes) {
  const typingNow = composer !== null && document.activeElement === composer.box;
  state.screen = screen;
  app.replaceChildren(...nodes);
  app.dataset.screen = screen;
  state.keepTyping = typingNow && (screen === 'chat' || screen === 'waiting');
  const h = app.querySelector('h1');
  if (h) { h.tabIndex = -1; if (!state.keepTyping) h.focus({ preventScroll: true }); }
}

function say(text, danger = false) {
  banner.hidden = !text;
  banner.textContent = text ?? '';
  banner.classList.toggle('danger', danger);
  banner.setAttribute('role', danger ? 'alert' : 'status');
}

function chrome() {
  document.getElementById('exit').textContent = t('exit');
  document.getElementById('exit').href = state.config?.exit_url ?? document.getElementById('exit').href;
  document.getElementById('exit-hint').textContent = t('exit.hint');
  document.getElementById('help-link').textContent = t('help.link');
  document.getElementById('brand').textContent = t('app.name');
  document.title = t('app.name');
}

// ---- screens ---------------------------------------------------------------------

function helpScreen() {
  const c = state.config;
  if (state.screen !== 'help') state.back = state.screen;
  const back = state.back;
  const lang = getLang();
  show('help',
    el('h1', { text: t('help.title') }),
    el('p', { class: 'strong', text: t('help.emergency', { n: c.emergency_number }) }),
    el('p', { text: t('help.police', { n: c.police_non_emergency }) }),
    el('h2', { text: t('help.resources') }),
    el('ul', { class: 'links' }, c.resources.map((r) => el('li', {}, el('a', { href: r.url, rel: 'noreferrer', target: '_blank', text: r.name[lang] ?? r.name.en })))),
    el('button', { type: 'button', class: 'secondary', id: 'back', text: t('back'), onclick: () => { if (back === 'chat') chatScreen(); else if (back === 'waiting') waitingScreen(); else welcome(); } }));
}

function welcome() {
  const s = state.status ?? {};
  const parts = [
    el('h1', { text: t('welcome.title') }),
    el('p', { text: t('welcome.what') }),
    el('p', { text: t('welcome.kept') }),
    el('p', { text: t('welcome.confidential') }),
    el('p', { class: 'strong', text: t('help.emergency', { n: state.config.emergency_number }) }),
    el('label', { for: 'lang', text: t('intake.language') }),
    el('select', { id: 'lang', onchange: (e) => { setLang(e.target.value); chrome(); welcome(); document.getElementById('lang')?.focus(); } },
      Object.entries(LANGS).map(([k, name]) => el('option', { value: k, lang: k, selected: k === getLang(), text: name }))),
  ];
  if (s.open === false) {
    parts.push(el('p', { class: 'banner', text: t('welcome.closed') }));
    if (s.opens_at) parts.push(el('p', { text: t('welcome.opens', { when: new Date(s.opens_at).toLocaleString(getLang()) }) }));
  } else if (s.queue_full) {
    parts.push(el('p', { class: 'banner', text: t('welcome.busy') }));
  } else {
    parts.push(el('p', {}, el('button', { type: 'button', id: 'start', text: t('welcome.start'), onclick: intakeScreen })));
  }
  const closed = s.open === false || s.queue_full;
  if (s.inbox) parts.push(el('p', {}, el('button', { type: 'button', class: closed ? '' : 'secondary', id: 'leave-message', text: t('inbox.leave'), onclick: leaveMessageScreen })));
  parts.push(el('p', {}, el('button', { type: 'button', class: 'link', id: 'have-code', text: t('inbox.have_code'), onclick: readReplyScreen })));
  show('welcome', ...parts);
}

function chip(set, id, label) {
  const b = el('button', { type: 'button', 'aria-pressed': set.has(id) ? 'true' : 'false', 'data-id': id, text: label });
  b.addEventListener('click', () => { if (set.has(id)) set.delete(id); else set.add(id); b.setAttribute('aria-pressed', set.has(id) ? 'true' : 'false'); });
  return b;
}

function intakeScreen() {
  const tax = state.taxonomy, it = state.intake;
  const tags = tax.groups.flatMap((g) => g.tags.filter((x) => x.chip));
  const ages = el('div', { class: 'chips', role: 'radiogroup', 'aria-labelledby': 'age-title' },
    tax.age_bands.map((a) => {
      const b = el('button', { type: 'button', role: 'radio', 'aria-checked': it.age === a.id ? 'true' : 'false', 'data-id': a.id, text: t(`age.${a.id}`) });
      b.addEventListener('click', () => { it.age = it.age === a.id ? null : a.id; for (const x of ages.children) x.setAttribute('aria-checked', x.dataset.id === it.age ? 'true' : 'false'); });
      return b;
    }));
  show('intake',
    el('h1', { text: t('intake.title') }),
    el('h2', { id: 'topics-title', text: t('intake.topics') }),
    el('div', { class: 'chips', id: 'topics', role: 'group', 'aria-labelledby': 'topics-title' }, tags.map((x) => chip(it.topics, x.id, t(`tag.${x.id}`)))),
    el('h2', { id: 'flags-title', text: t('intake.flags') }),
    el('div', { class: 'chips', id: 'flags', role: 'group', 'aria-labelledby': 'flags-title' }, tax.risk_flags.map((f) => chip(it.flags, f.id, t(`flag.${f.id}`)))),
    el('h2', { id: 'age-title', text: t('intake.age') }),
    ages,
    el('p', {}, el('button', { type: 'button', id: 'go', text: t('intake.go'), onclick: () => start(true) }), ' ',
      el('button', { type: 'button', class: 'secondary', id: 'skip', text: t('intake.skip'), onclick: () => start(false) })));
}

async function start(withIntake) {
  const it = state.intake;
  const intake = { language: getLang() };
  if (withIntake) {
    if (it.topics.size) intake.topics = [...it.topics].join(',');
    if (it.flags.size) intake.flags = [...it.flags].join(',');
    if (it.age) intake.age_band = it.age;
  }
  try {
    const r = await state.secure.start(intake);
    state.position = { position: r.position, estimate_s: r.estimate_s };
    waitingScreen();
  } catch (e) {
    say(e.code === 'closed' ? t('welcome.closed') : e.code === 'busy' ? t('welcome.busy') : e.message, true);
  }
}

function waitingScreen() {
  show('waiting',
    el('h1', { text: t('wait.title') }),
    el('div', { 'aria-live': 'polite' }, el('p', { id: 'position' }), el('p', { id: 'estimate' })),
    el('p', { text: t('wait.typing_ok') }),
    el('p', {}, el('button', { type: 'button', class: 'secondary', id: 'leave', text: t('wait.leave'), onclick: leave })),
    list);
  compose();
  updateWaiting();
}

// A new position or estimate changes the words in place: focus and what is
// being typed stay where they are.
function updateWaiting() {
  const p = state.position ?? {};
  const est = p.estimate_s ? Math.max(1, Math.round(p.estimate_s / 60)) : 0;
  const pos = document.getElementById('position');
  if (!pos) return;
  pos.textContent = p.position ? t('wait.position', { p: p.position }) : '';
  pos.hidden = !p.position;
  document.getElementById('estimate').textContent = est ? t('wait.estimate', { m: est }) : t('wait.estimate_soon');
}

function clearChat() {
  list.replaceChildren();
  sent.clear();
  consents.clear();
  if (composer) composer.box.value = '';
}

async function leave() {
  try { await state.client.leave(); } catch { /* gone anyway */ }
  state.client.close();
  clearChat();
  connect().then(welcome);
}

// ---- out of hours: leave a message, read the reply -------------------------------

function leaveMessageScreen() {
  const code = E.newReturnCode();
  const box = el('textarea', { id: 'message', rows: '6', maxlength: '4000' });
  const done = el('p', { role: 'status', id: 'left' });
  const send = el('button', { type: 'button', id: 'send-message', text: t('inbox.send') });
  send.addEventListener('click', async () => {
    const text = box.value.trim();
    if (!text) return;
    send.disabled = true;
    try {
      await inboxLeave(state.client, { code, text, teamPk: state.status.inbox_pk });
      box.value = '';
      done.textContent = t('inbox.sent');
    } catch (e) { send.disabled = false; done.textContent = e.code === 'rate_limited' ? t('inbox.too_many') : t('chat.failed'); }
  });
  show('leave', el('h1', { text: t('inbox.title') }), el('p', { text: t('inbox.explain') }),
    el('label', { for: 'message', text: t('inbox.your_message') }), box,
    el('h2', { text: t('code.title') }), el('p', { class: 'code', id: 'return-code', text: code }), el('p', { text: t('code.advice') }),
    el('p', {}, send), done,
    el('p', {}, el('button', { type: 'button', class: 'secondary', text: t('back'), onclick: welcome })));
}

function readReplyScreen() {
  const input = el('input', { id: 'code-input', type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const out = el('div', { id: 'replies', 'aria-live': 'polite' });
  const go = el('button', { type: 'button', id: 'read-replies', text: t('inbox.read') });
  go.addEventListener('click', async () => {
    out.replaceChildren(el('p', { text: t('inbox.checking') }));
    let code;
    try { code = E.normalizeReturnCode(input.value); } catch { out.replaceChildren(el('p', { text: t('inbox.bad_code') })); return; }
    try {
      const thread = await inboxRead(state.client, { code });
      const replies = thread.filter((m) => m.reply);
      out.replaceChildren(...(replies.length ? replies.map((m) => el('p', { class: 'reply', text: m.reply }))
        : [el('p', { text: thread.length ? t('inbox.no_reply_yet') : t('inbox.nothing') })]));
    } catch (e) {
      out.replaceChildren(el('p', { text: e?.code === 'rate_limited' && e.retry_after
        ? t('inbox.too_many_tries', { m: Math.max(1, Math.ceil(e.retry_after / 60)) }) : t('inbox.nothing') }));
    }
  });
  show('read', el('h1', { text: t('inbox.read_title') }), el('label', { for: 'code-input', text: t('inbox.code_label') }), input,
    el('p', {}, go), out, el('p', {}, el('button', { type: 'button', class: 'secondary', text: t('back'), onclick: welcome })));
}

// ---- the chat ---------------------------------------------------------------------------

const list = el('ol', { class: 'messages', id: 'messages', 'aria-live': 'polite' });
const typing = el('p', { class: 'typing', id: 'typing', 'aria-live': 'polite' });
const sent = new Map(); // seq -> {li, status}
let typingTimer = null, lastTypingSent = 0;
let composer = null; // the message box: one for waiting and chat, so a draft survives

function chatScreen() {
  show('chat', el('h1', { class: 'visually-hidden', text: t('chat.title') }), list, typing,
    el('p', {}, el('button', { type: 'button', class: 'secondary', id: 'end', text: t('chat.end'), onclick: endChat }), ' ',
      el('button', { type: 'button', class: 'secondary', id: 'code', text: t('code.offer'), onclick: returnCode }), ' ',
      el('button', { type: 'button', class: 'secondary', id: 'hash-open', text: t('hash.open'), onclick: hashPanel })));
  compose();
}

// ---- no pictures, only their fingerprints (docs/hashing.md) ---------------------------

// The page never sends a picture or video, not even to the counsellor:
// pasting or dropping one explains why and offers the fingerprint route.
function refusePicture(e) {
  const dt = e.clipboardData ?? e.dataTransfer;
  if (!dt || ![...(dt.items ?? [])].some((i) => i.kind === 'file') && !(dt.files?.length)) return;
  e.preventDefault();
  if (e.type === 'dragover') return;
  say(t('hash.no_images'));
  if (state.screen === 'chat') hashPanel();
}
document.addEventListener('paste', refusePicture);
document.addEventListener('dragover', refusePicture);
document.addEventListener('drop', refusePicture);

let hashJob = null; // the AbortController of the hashing in progress

function hashPanel() {
  if (document.getElementById('hash-panel')) { document.getElementById('hash-file')?.focus(); return; }
  const status = el('p', { id: 'hash-status', role: 'status' });
  const result = el('div', { id: 'hash-result' });
  const input = el('input', { type: 'file', id: 'hash-file', accept: 'image/*,video/*', multiple: true });
  const age = el('select', { id: 'hash-age' },
    el('option', { value: '', text: t('hash.age_none') }),
    ...(state.taxonomy?.age_bands ?? []).map((a) => el('option', { value: a.id, text: t(`age.${a.id}`), selected: state.intake.age === a.id })));
  const sendBtn = el('button', { type: 'button', id: 'hash-send', text: t('hash.send'), hidden: true });
  const close = () => { hashJob?.abort(); hashJob = null; panel.remove(); document.getElementById('hash-open')?.focus(); };
  const panel = el('section', { class: 'card hash-panel', id: 'hash-panel', 'aria-labelledby': 'hash-title' },
    el('h2', { id: 'hash-title', text: t('hash.title') }), el('p', { text: t('hash.what') }), el('p', { text: t('hash.next') }),
    el('label', { for: 'hash-file', text: t('hash.choose') }), input,
    el('label', { for: 'hash-age', text: t('hash.age') }), age,
    status, result,
    el('p', { class: 'actions' }, sendBtn, ' ', el('button', { type: 'button', class: 'secondary', id: 'hash-cancel', text: t('hash.cancel'), onclick: close })));
  let items = [];
  input.addEventListener('change', async () => {
    hashJob?.abort();
    const job = hashJob = new AbortController();
    items = [];
    result.replaceChildren();
    sendBtn.hidden = true;
    const files = [...input.files].slice(0, E.HASH_REPORT_MAX_ITEMS);
    if (!files.length) return;
    status.textContent = t('hash.working');
    const { hashFileInWorker } = await import('./filehash.js');
    for (const f of files) {
      let h = null, note = null;
      try { h = await hashFileInWorker(f, { signal: job.signal }); } catch (x) {
        if (job.signal.aborted) return;
        if (x.exact && x.exact.sha256) { h = { ...x.exact, kind: 'image', pdq: null, quality: null }; note = t('hash.exact_only'); } else {
          result.append(el('p', { class: 'error', text: t(['not_image', 'too_large', 'empty', 'timeout'].includes(x.code) ? `hash.error.${x.code}` : 'hash.error.other') }));
          continue;
        }
      }
      if (job !== hashJob) return;
      if (!note && h.kind === 'video') note = t('hash.video_note');
      if (!note && h.lowQuality) note = t('hash.low_quality');
      items.push({ kind: h.kind, type: h.type, size: h.size, sha256: h.sha256, md5: h.md5, pdq: h.pdq ?? null, quality: h.quality ?? null });
      result.append(el('div', { class: 'hash-item' },
        el('p', {}, el('strong', { text: t(`hash.kind.${h.kind}`) }), ` · ${h.type.split('/')[1].toUpperCase()} · ${t('hash.size_kb', { n: Math.max(1, Math.round(h.size / 1024)) })}`),
        el('dl', { class: 'hashes' },
          el('dt', { text: 'SHA-256' }), el('dd', {}, el('code', { text: h.sha256 })),
          el('dt', { text: 'MD5' }), el('dd', {}, el('code', { text: h.md5 })),
          h.pdq ? el('dt', { text: 'PDQ' }) : null, h.pdq ? el('dd', {}, el('code', { text: h.pdq })) : null),
        note ? el('p', { class: 'hash-note', text: note }) : null));
    }
    status.textContent = items.length ? t('hash.shared') : '';
    sendBtn.hidden = !items.length;
  });
  sendBtn.addEventListener('click', async () => {
    sendBtn.disabled = true;
    try {
      await state.secure.sendHashes({ age_band: age.value || null, items });
      panel.replaceChildren(el('h2', { id: 'hash-title', text: t('hash.title') }), el('p', { role: 'status', id: 'hash-status', text: t('hash.sent') }),
        el('p', {}, el('button', { type: 'button', class: 'secondary', id: 'hash-cancel', text: t('hash.close'), onclick: close })));
      addMessage(t('hash.sent'), 'system', 'system');
    } catch { status.textContent = t('hash.failed'); sendBtn.disabled = false; }
  });
  list.after(panel);
  input.focus();
}

function compose() {
  if (!composer) {
    const box = el('textarea', { id: 'text', rows: '1', maxlength: '4000' });
    box.addEventListener('input', () => {
      const now = Date.now();
      if (state.screen === 'chat' && now - lastTypingSent > 3000) { lastTypingSent = now; state.client.typing(); }
    });
    box.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
    const button = el('button', { type: 'submit', id: 'send' });
    const form = el('form', { class: 'compose', onsubmit: (e) => { e.preventDefault(); const v = box.value.trim(); if (v) { box.value = ''; send(v); } } },
      box, button);
    composer = { form, box, button };
  }
  composer.box.setAttribute('aria-label', t('chat.placeholder'));
  composer.box.placeholder = t('chat.placeholder');
  composer.button.textContent = t('chat.send');
  app.append(composer.form);
  if (state.keepTyping) composer.box.focus({ preventScroll: true });
}

function addMessage(text, who, cls) {
  const li = el('li', { class: cls }, el('span', { class: 'who visually-hidden', text: who === 'system' ? '' : t(who === 'me' ? 'chat.you' : 'chat.counsellor') + ': ' }), el('span', { class: 'text', text }));
  list.append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

// A safety card the counsellor sent: its words come from the catalogue.
function addCard(id) {
  if (!CARDS[id]) return;
  const li = el('li', { class: 'theirs card', 'data-card': id },
    el('h2', { text: t(`card.${id}.title`) }),
    el('ul', {}, Array.from({ length: CARDS[id] }, (_, i) => el('li', { text: t(`card.${id}.${i + 1}`) }))));
  list.append(li);
  li.scrollIntoView({ block: 'end' });
}

// A consent question the counsellor asked: in plain words from the
// catalogue, with three answers; the answer goes back encrypted, naming the
// question's seq. Answered questions (also after a reconnect's replay) show
// the answer instead of the buttons.
const consents = new Map(); // question seq -> {li, box}

function listOf(items) {
  if (items.length < 2) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${t('consent.and')} ${items.at(-1)}`;
}

function addConsent(seq, q) {
  if (consents.has(seq)) return;
  const what = listOf(q.share.map((x) => t(`consent.share.${x}`)));
  const box = el('p', { class: 'consent-answers' });
  const li = el('li', { class: 'theirs card consent', 'data-question': String(seq) },
    el('h2', { text: t('consent.title') }),
    el('p', { class: 'consent-ask', text: t('consent.ask', { what, who: t(`consent.with.${q.with}`) }) }),
    el('p', { class: 'consent-explain', text: t('consent.explain') }), box);
  consents.set(seq, { li, box });
  const status = el('span', { role: 'status' });
  const answer = (a) => async () => {
    for (const b of box.querySelectorAll('button')) b.disabled = true;
    try {
      await state.secure.answerConsent(seq, a);
      answered(seq, a);
    } catch {
      status.textContent = t('consent.failed');
      for (const b of box.querySelectorAll('button')) b.disabled = false;
    }
  };
  box.append(...['yes', 'no', 'not_sure'].map((a) => el('button', { type: 'button', class: a === 'yes' ? '' : 'secondary', 'data-answer': a, text: t(`consent.${a}`), onclick: answer(a) })), status);
  list.append(li);
  li.scrollIntoView({ block: 'end' });
}

function answered(seq, a) {
  const c = consents.get(seq);
  if (!c) return;
  c.box.replaceChildren(el('strong', { class: 'consent-answered', text: t('consent.answered', { a: t(`consent.${a}`) }) }));
}

function send(text) {
  const li = addMessage(text, 'me', 'mine');
  const status = el('span', { class: 'status', text: t('chat.sending') });
  li.append(status);
  state.secure.send(text).then((ack) => {
    status.textContent = t('chat.sent');
    sent.set(ack.seq, { li, status });
    li.dataset.seq = ack.seq;
  }, () => { status.textContent = t('chat.failed'); });
}

function receipt(m) {
  for (const [seq, s] of sent) if (seq <= m.seq) s.status.textContent = t(m.kind === 'read' ? 'chat.read' : 'chat.delivered');
}

async function endChat() {
  if (!window.confirm(t('chat.end_confirm'))) return;
  try { await state.client.end(); } catch { /* ended anyway */ }
  ended();
}

async function returnCode() {
  const code = E.newReturnCode();
  document.getElementById('code')?.remove();
  const box = el('section', { class: 'card', 'aria-labelledby': 'code-title' },
    el('h2', { id: 'code-title', text: t('code.title') }), el('p', { class: 'code', id: 'return-code', text: code }), el('p', { text: t('code.advice') }));
  list.after(box);
  await state.secure.setReturnCode(code);
}

function ended() {
  const thanks = el('p', { role: 'status' });
  const fb = (k) => el('button', { type: 'button', class: 'secondary', text: t(k), onclick: () => { thanks.textContent = t('ended.thanks'); } });
  show('ended', el('h1', { text: t('ended.title') }), el('p', { text: t('ended.feedback') }),
    el('p', {}, fb('ended.yes'), ' ', fb('ended.some'), ' ', fb('ended.no')), thanks,
    el('p', {}, el('button', { type: 'button', id: 'again', text: t('ended.again'), onclick: () => { clearChat(); state.client.close(); connect().then(welcome); } })));
}

// ---- wiring ---------------------------------------------------------------------------------

async function connect() {
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
  const client = new ContactClient({ url });
  state.status = await client.lineStatus();
  const org = await client.request({ type: 'e2e.org' });
  const secure = new SecureContact({ client, rootPk: E.unb64(org.root_pk, 32) });
  client.on('position', (m) => { state.position = m; if (state.screen === 'waiting') updateWaiting(); });
  client.on('offline', () => say(t('offline')));
  client.on('online', () => say(null));
  client.on('receipt', receipt);
  client.on('typing', () => { typing.textContent = t('chat.typing'); clearTimeout(typingTimer); typingTimer = setTimeout(() => { typing.textContent = ''; }, 4000); });
  secure.on('message', (m) => {
    if (m.mine) { if (m.answer) answered(m.answer.question, m.answer.answer); return; }
    typing.textContent = '';
    if (m.card) addCard(m.card);
    else if (m.consent) addConsent(m.seq, m.consent);
    else addMessage(m.text, 'counsellor', 'theirs');
    client.delivered(m.seq);
    if (document.visibilityState === 'visible') client.read(m.seq);
  });
  secure.on('security', () => say(t('chat.security'), true));
  secure.on('system', (m) => {
    if (m.text === 'joined') { addMessage(t('chat.joined'), 'system', 'system'); chatScreen(); }
    else if (m.text === 'transferred') addMessage(t('chat.transferred'), 'system', 'system');
    else if (m.text === 'counsellor_lost') { addMessage(t('chat.lost'), 'system', 'system'); waitingScreen(); }
    else if (m.text.startsWith('ended')) ended();
  });
  state.client = client;
  state.secure = secure;
}

async function main() {
  const [config, taxonomy] = await Promise.all([fetch('/config.json').then((r) => r.json()), fetch('/taxonomy.json').then((r) => r.json())]);
  state.config = config;
  state.taxonomy = taxonomy;
  const nav = (navigator.language || 'en').slice(0, 2);
  setLang(LANGS[nav] ? nav : 'en');
  chrome();
  document.getElementById('help-link').addEventListener('click', helpScreen);
  await E.ready();
  await connect();
  welcome();
}

main().catch((e) => say(e.message, true));
