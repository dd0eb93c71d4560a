// console.js: the staff console (/console). It logs a member of staff in
// (enrolment with a QR code for the authenticator, password + TOTP, resume
// after a reload from this tab's sessionStorage), sets up this browser's
// device keys (made here, sealed in IndexedDB under a passphrase, certified
// by an admin's device, or for the first admin by the organisation root with
// helplinectl), then mounts the views the roles allow: the counsellor's
// chats (console-chat.js), the supervisors' queue health and statistics
// (console-super.js), and the admins' staff accounts, devices and hours
// (console-admin.js). Text goes in with textContent only; no inline script.
import { StaffClient } from './helpline.js';
import { SecureStaff, registerDevice, certifyDevice } from './secure.js';
import * as E from './e2e.js';
import qrcode from '../vendor/qrcode/qrcode.mjs';
import { Workspace } from './console-chat.js';

const TOKEN_KEY = 'helpline.console.token'; // this tab only: a reload resumes, closing the tab forgets
const SHORTCUTS_KEY = 'helpline.console.shortcuts';
const view = document.getElementById('view');
const nav = document.getElementById('views');
const banner = document.getElementById('banner');

const app = {
  client: null, me: null, rootPk: null, taxonomy: null, store: new E.KeyStore(),
  device: null, adminDevice: null, secure: null, workspace: null,
  current: null, // {name, handle, off: [unsubscribe]}
  shortcuts: localStorage.getItem(SHORTCUTS_KEY) !== 'off',
};

// ---- DOM helpers -------------------------------------------------------------

/** el(tag, props, ...children): props text/class/on<event>/attributes. */
export function el(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') n.textContent = v;
    else if (k === 'class') n.className = v;
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) n.append(c);
  return n;
}

/** A short message in the corner; errors stay longer. */
export function toast(text, kind = 'ok') {
  const box = document.getElementById('toasts');
  const t = el('p', { class: `toast ${kind}`, text });
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 4000);
}

function say(text, danger = false) {
  banner.hidden = !text;
  banner.textContent = text ?? '';
  banner.classList.toggle('danger', danger);
}

// Plain words for the error codes people meet here.
const WORDS = {
  auth_failed: 'Those details did not work. Check them and try again.',
  busy: 'The server is busy. Try again in a moment.',
  rate_limited: 'Too many requests at once. Wait a moment.',
  forbidden: 'Your account is not allowed to do that.',
  reauth_required: 'Confirm it is you with a fresh authenticator code first.',
  not_found: 'Not found: it may have just changed.',
  conflict: 'That already exists or was just done by someone else.',
  bad_state: 'That cannot be done right now.',
  expired: 'Too late: it expired or went to someone else.',
  store_failed: 'The server could not save that. Try again.',
  handover_required: 'Hand over or end your open chats before ending your shift.',
  no_device: 'They have no certified device yet, so the chat cannot be handed to them.',
};
export const explain = (e) => `${WORDS[e?.code] ?? e?.message ?? String(e)}${e?.code && !WORDS[e.code] ? ` (${e.code})` : ''}`;

function screen(title, ...nodes) {
  view.classList.add('narrow');
  view.replaceChildren(el('h1', { text: title, tabindex: '-1' }), ...nodes);
  view.querySelector('h1').focus({ preventScroll: true });
}

const field = (id, label, props = {}) => [el('label', { for: id, text: label }), el('input', { id, name: id, ...props })];
const val = (id) => document.getElementById(id).value;

// ---- log in, enrol ---------------------------------------------------------

function loginScreen(note, username = '') {
  nav.hidden = true;
  document.getElementById('me').textContent = '';
  document.getElementById('controls').replaceChildren();
  const err = el('p', { class: 'error', id: 'login-error', role: 'alert' });
  const form = el('form', { id: 'login-form' },
    ...field('login-username', 'Username', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true, value: username }),
    ...field('login-password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    ...field('login-totp', 'Authenticator code', { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: true }),
    err,
    el('p', { class: 'actions' }, el('button', { id: 'login-go', type: 'submit', text: 'Log in' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const go = document.getElementById('login-go');
    go.disabled = true;
    err.textContent = '';
    try {
      const r = await app.client.login(val('login-username').trim(), val('login-password'), val('login-totp').trim());
      sessionStorage.setItem(TOKEN_KEY, r.token);
      await loggedIn(r.staff);
    } catch (x) {
      err.textContent = explain(x);
      go.disabled = false;
    }
  });
  screen('Log in', note ? el('p', { class: 'banner', id: 'login-note', text: note }) : null, form,
    el('p', {}, 'First time here? ', el('button', { type: 'button', class: 'secondary', id: 'enrol-open', text: 'Enrol with your code', onclick: enrolScreen })));
  document.getElementById(username ? 'login-password' : 'login-username').focus();
}

// The otpauth:// URI as a QR code on a canvas, drawn in the page.
function qrCanvas(text) {
  const q = qrcode(0, 'M');
  q.addData(text);
  q.make();
  const n = q.getModuleCount(), quiet = 4, scale = 6, size = (n + 2 * quiet) * scale;
  const c = el('canvas', { class: 'qr', id: 'enrol-qr', width: String(size), height: String(size), role: 'img', 'aria-label': 'QR code to scan with your authenticator app' });
  const g = c.getContext('2d');
  g.fillStyle = '#fff';
  g.fillRect(0, 0, size, size);
  g.fillStyle = '#000';
  for (let r = 0; r < n; r++) for (let col = 0; col < n; col++) if (q.isDark(r, col)) g.fillRect((col + quiet) * scale, (r + quiet) * scale, scale, scale);
  return c;
}

function enrolScreen() {
  const err = el('p', { class: 'error', id: 'enrol-error', role: 'alert' });
  const form = el('form', { id: 'enrol-form' },
    el('p', { text: 'Your administrator gave you a one-time enrolment code. Enter it to choose your password and set up your authenticator app.' }),
    ...field('enrol-code', 'Enrolment code', { autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', required: true }),
    err, el('p', { class: 'actions' }, el('button', { id: 'enrol-begin', type: 'submit', text: 'Continue' }),
      el('button', { type: 'button', class: 'secondary', text: 'Back to log in', onclick: () => loginScreen() })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const code = val('enrol-code').trim();
    try {
      if (!app.client.conn) await app.client.connect();
      const ch = await app.client.conn.request({ type: 'auth.enrol_begin', code });
      enrolFinishScreen(code, ch);
    } catch (x) { err.textContent = explain(x); }
  });
  screen('Enrol', form);
}

function enrolFinishScreen(code, ch) {
  const err = el('p', { class: 'error', id: 'enrol-error', role: 'alert' });
  const secret = ch.totp_secret.replace(/(.{4})/g, '$1 ').trim();
  const form = el('form', { id: 'enrol-finish-form' },
    el('p', {}, 'Hello ', el('strong', { text: ch.display_name }), '. Your username is ', el('strong', { id: 'enrol-username', text: ch.username }), '.'),
    el('h2', { text: '1. Your authenticator app' }),
    el('p', { text: 'Scan this code with an authenticator app (for example on your work phone), or type the key below into it.' }),
    qrCanvas(ch.otpauth_uri),
    el('p', {}, 'Key: ', el('span', { class: 'code', id: 'enrol-secret', text: secret })),
    el('h2', { text: '2. Your password' }),
    el('p', { class: 'muted', text: 'At least 12 characters; a few unrelated words are easy to remember and hard to guess. It must not contain your username.' }),
    ...field('enrol-password', 'New password', { type: 'password', autocomplete: 'new-password', minlength: '12', required: true }),
    ...field('enrol-password2', 'New password again', { type: 'password', autocomplete: 'new-password', minlength: '12', required: true }),
    el('h2', { text: '3. Check the app' }),
    ...field('enrol-totp', 'The code your app shows now', { inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: '6', required: true }),
    err, el('p', { class: 'actions' }, el('button', { id: 'enrol-finish', type: 'submit', text: 'Finish enrolment' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const password = val('enrol-password');
    if (password !== val('enrol-password2')) { err.textContent = 'The two passwords are not the same.'; return; }
    if (new TextEncoder().encode(password).length < 12) { err.textContent = 'The password needs at least 12 characters.'; return; }
    if (password.toLowerCase().includes(ch.username.toLowerCase())) { err.textContent = 'The password must not contain your username.'; return; }
    try {
      const r = await app.client.conn.request({ type: 'auth.enrol_finish', code, password, totp: val('enrol-totp').trim() });
      loginScreen('You are enrolled. Log in with your new password and a fresh code from your app.', r.username);
    } catch (x) { err.textContent = explain(x); }
  });
  screen('Enrol', form);
}

// ---- this browser's device keys ----------------------------------------------------

const has = (role) => app.me.roles.includes(role);
const keyName = () => `staff:${app.me.id}`;

// Device keys: one chat device (counsellor or supervisor certificate, from
// an admin's device) and, for admins, one admin device (certified by the
// organisation root). Both sealed under one passphrase in IndexedDB.
async function deviceSetup() {
  const rec = await app.store.load(keyName());
  const needChat = has('counsellor') || has('supervisor'), needAdmin = has('admin');
  if (!rec || (needChat && !rec.chat) || (needAdmin && !rec.admin)) return newDeviceScreen(rec);
  return unlockScreen(rec);
}

function newDeviceScreen(old) {
  const err = el('p', { class: 'error', id: 'device-error', role: 'alert' });
  const form = el('form', { id: 'device-form' },
    el('p', { text: 'This browser needs its own keys for end-to-end encrypted chats. They are made here and never leave this browser unprotected.' }),
    el('p', { text: 'Choose a passphrase to protect them on this computer. It is not your login password. If you forget it, this browser is simply set up again and an administrator certifies it again.' }),
    old ? el('p', { class: 'banner', text: 'This browser had keys for you before; new ones will replace them. Ask an administrator to revoke the old device.' }) : null,
    ...field('device-pass', 'Passphrase for this browser', { type: 'password', autocomplete: 'new-password', minlength: '10', required: true }),
    ...field('device-pass2', 'Passphrase again', { type: 'password', autocomplete: 'new-password', minlength: '10', required: true }),
    err, el('p', { class: 'actions' }, el('button', { id: 'device-go', type: 'submit', text: 'Set up this browser' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const pass = val('device-pass');
    if (pass !== val('device-pass2')) { err.textContent = 'The two passphrases are not the same.'; return; }
    if (pass.length < 10) { err.textContent = 'The passphrase needs at least 10 characters.'; return; }
    document.getElementById('device-go').disabled = true;
    try {
      await E.ready();
      const rec = { v: 1 };
      const keys = {};
      if (has('counsellor') || has('supervisor')) {
        const d = await registerDevice(app.client, app.me.id);
        rec.chat = { device: d.id, sealed: E.sealDeviceKeys(d.keys, pass) };
        keys.chat = d.keys;
      }
      if (has('admin')) {
        const d = await registerDevice(app.client, app.me.id);
        rec.admin = { device: d.id, sealed: E.sealDeviceKeys(d.keys, pass) };
        keys.admin = d.keys;
      }
      await app.store.save(keyName(), rec);
      await checkDevices(rec, keys);
    } catch (x) {
      err.textContent = explain(x);
      document.getElementById('device-go').disabled = false;
    }
  });
  screen('Set up this browser', form);
}

function unlockScreen(rec) {
  const err = el('p', { class: 'error', id: 'device-error', role: 'alert' });
  const form = el('form', { id: 'device-form' },
    el('p', { text: 'Enter this browser\'s passphrase to unlock your chat keys.' }),
    ...field('device-pass', 'Passphrase for this browser', { type: 'password', autocomplete: 'current-password', required: true }),
    err, el('p', { class: 'actions' }, el('button', { id: 'device-go', type: 'submit', text: 'Unlock' }),
      el('button', { type: 'button', class: 'secondary', id: 'device-reset', text: 'Forgot it: set up this browser again', onclick: () => newDeviceScreen(rec) })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    document.getElementById('device-go').disabled = true;
    try {
      await E.ready();
      const keys = {};
      if (rec.chat) keys.chat = E.openDeviceKeys(rec.chat.sealed, val('device-pass'));
      if (rec.admin) keys.admin = E.openDeviceKeys(rec.admin.sealed, val('device-pass'));
      await checkDevices(rec, keys);
    } catch (x) {
      err.textContent = x.code === 'bad_passphrase' ? 'That passphrase does not open this browser\'s keys.' : explain(x);
      document.getElementById('device-go').disabled = false;
    }
  });
  screen('Unlock this browser', form);
}

// Looks the devices up on the server: certified ones are ready; a chat
// device waiting is certified by this admin's own admin device; anything
// else waits (for helplinectl, or for an admin) with a button to look again.
async function checkDevices(rec, keys) {
  const devices = await app.client.devices(app.me.id);
  const find = (id) => devices.find((d) => d.device === id && !d.revoked);
  const waiting = [];
  app.adminDevice = null;
  app.device = null;
  if (rec.admin) {
    const d = find(rec.admin.device);
    if (!d) return lostDevice(rec);
    if (d.cert) app.adminDevice = { id: d.device, keys: keys.admin, cert: E.unb64(d.cert) };
    else waiting.push({ id: d.device, kind: 'admin' });
  }
  if (rec.chat) {
    let d = find(rec.chat.device);
    if (!d) return lostDevice(rec);
    if (!d.cert && app.adminDevice) {
      const role = has('supervisor') ? E.ROLE.SUPERVISOR : E.ROLE.COUNSELLOR;
      const cert = await certifyDevice(app.client, app.adminDevice, d, { role });
      d = { ...d, cert: E.b64(cert), issuer: E.b64(app.adminDevice.cert) };
    }
    if (d.cert) {
      const device = { id: d.device, keys: keys.chat, cert: E.unb64(d.cert), issuer: E.unb64(d.issuer) };
      E.verifyChain({ cert: device.cert, issuer: device.issuer }, app.rootPk, Math.floor(Date.now() / 1000));
      app.device = device;
    } else waiting.push({ id: d.device, kind: 'chat' });
  }
  if (waiting.length) return waitingScreen(rec, keys, waiting);
  return shell();
}

function lostDevice(rec) {
  screen('This browser must be set up again',
    el('p', { text: 'The server no longer knows this browser\'s keys (they were revoked, or the service was reset).' }),
    el('p', { class: 'actions' }, el('button', { type: 'button', id: 'device-reset', text: 'Set up this browser again', onclick: () => newDeviceScreen(rec) })));
}

// The fingerprint an admin compares before certifying (console-admin.js shows the same).
const fingerprint = (signPk) => E.deviceSubject(signPk).slice(4, 20).replace(/(.{4})(?!$)/g, '$1 ');

function waitingScreen(rec, keys, waiting) {
  const items = waiting.map((w) => el('li', {},
    w.kind === 'admin'
      ? el('span', {}, 'Your admin device ', el('strong', { 'data-device-id': String(w.id), text: `#${w.id}` }),
        ' must be certified with the organisation root key, on the server: ',
        el('code', { class: 'code', text: `helplinectl certify-device --root-key ROOT-KEY-FILE ${w.id}` }))
      : el('span', {}, 'Your chat device ', el('strong', { 'data-device-id': String(w.id), text: `#${w.id}` }),
        has('admin') ? ' is certified by this browser itself, with your administrator keys, as soon as those are certified (above).' : ' must be certified by an administrator (Devices, in their console).'),
    el('span', { class: 'muted' }, ' Fingerprint: ', el('code', { class: 'fingerprint', text: fingerprint((w.kind === 'admin' ? keys.admin : keys.chat).signPk) }), '.')));
  const again = async () => {
    try { await checkDevices(rec, keys); } catch (x) { toast(explain(x), 'error'); }
  };
  const timer = setInterval(() => { if (document.getElementById('device-waiting')) again(); else clearInterval(timer); }, 5000);
  screen('Waiting for a certificate',
    el('div', { id: 'device-waiting' }, el('p', { text: 'Your keys are made. Before you can take chats, someone must vouch for them, so young people can check they are talking to Helpline.' }),
      el('ul', {}, items)),
    el('p', { class: 'actions' }, el('button', { type: 'button', id: 'device-check', text: 'Check again', onclick: () => { clearInterval(timer); again(); } })));
}

// ---- the shell: header controls, navigation, views -----------------------------

const VIEWS = [
  { name: 'chats', label: 'Chats', allowed: () => !!app.device, mount: (root) => app.workspace.mount(root) },
  { name: 'escalations', label: 'Escalations', allowed: () => has('supervisor') && !!app.device, module: './console-escalation.js', fn: 'mount' },
  { name: 'queue', label: 'Queue health', allowed: () => has('supervisor') || has('admin'), module: './console-super.js', fn: 'mount' },
  { name: 'stats', label: 'Statistics', allowed: () => has('supervisor') || has('admin'), module: './console-super.js', fn: 'mountStats' },
  { name: 'staff', label: 'Staff', allowed: () => has('admin'), module: './console-admin.js', fn: 'mount' },
  { name: 'devices', label: 'Devices', allowed: () => has('admin'), module: './console-admin.js', fn: 'mountDevices' },
  { name: 'hours', label: 'Opening hours', allowed: () => has('admin'), module: './console-admin.js', fn: 'mountHours' },
];

function ctxFor(off) {
  return {
    client: app.client, me: app.me, el, toast, reauth, explain,
    adminDevice: app.adminDevice, device: app.device, rootPk: app.rootPk, taxonomy: app.taxonomy, secure: app.secure,
    on: (type, fn) => { const u = app.client.on(type, fn); off.push(u); return u; },
  };
}

async function show(name) {
  const v = VIEWS.find((x) => x.name === name && x.allowed()) ?? VIEWS.find((x) => x.allowed());
  if (!v) { view.replaceChildren(el('h1', { text: 'Nothing to show' }), el('p', { text: 'Your account has no role that uses this console.' })); return; }
  if (app.current) {
    try { app.current.handle?.unmount?.(); } catch { /* the view is going anyway */ }
    for (const u of app.current.off) u();
  }
  const off = [];
  const root = el('section', { 'data-view': v.name, 'aria-labelledby': `h-${v.name}` });
  view.classList.remove('narrow');
  view.replaceChildren(root);
  app.current = { name: v.name, handle: null, off };
  for (const b of nav.querySelectorAll('button')) b.setAttribute('aria-current', b.dataset.view === v.name ? 'page' : 'false');
  try {
    if (v.module) {
      const mod = await import(v.module);
      if (app.current?.off !== off) return; // switched again meanwhile
      app.current.handle = mod[v.fn](root, ctxFor(off));
    } else {
      app.current.handle = v.mount(root, ctxFor(off));
    }
  } catch (x) {
    root.replaceChildren(el('h1', { id: `h-${v.name}`, text: v.label }), el('p', { class: 'error', text: `This view could not start: ${explain(x)}` }));
  }
  if (!root.querySelector('h1')) root.prepend(el('h1', { id: `h-${v.name}`, text: v.label }));
  else root.querySelector('h1').id ||= `h-${v.name}`;
}

/** Asks for a fresh TOTP code and sends auth.reauth; rejects when cancelled. */
export function reauth() {
  const dlg = document.getElementById('reauth'), input = document.getElementById('reauth-totp'), err = document.getElementById('reauth-error');
  input.value = '';
  err.textContent = '';
  return new Promise((resolve, reject) => {
    const go = async (e) => {
      e.preventDefault();
      try {
        await app.client.request({ type: 'auth.reauth', totp: input.value.trim() });
        done(); dlg.close(); resolve();
      } catch (x) { err.textContent = explain(x); }
    };
    const cancel = () => { done(); if (dlg.open) dlg.close(); reject(Object.assign(new Error('cancelled'), { code: 'cancelled' })); };
    const cancelBtn = document.getElementById('reauth-cancel');
    const form = document.getElementById('reauth-form');
    const onCancel = (e) => { e.preventDefault(); cancel(); };
    function done() { form.removeEventListener('submit', go); cancelBtn.removeEventListener('click', onCancel); dlg.removeEventListener('cancel', onCancel); }
    form.addEventListener('submit', go);
    cancelBtn.addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    input.focus();
  });
}

function controls() {
  const box = document.getElementById('controls');
  const parts = [];
  if (app.device) {
    const presence = el('select', { id: 'presence', 'aria-label': 'Your status' },
      ['available', 'busy', 'away'].map((s) => el('option', { value: s, text: s[0].toUpperCase() + s.slice(1), selected: app.me.presence === s })));
    presence.addEventListener('change', async () => {
      try { await app.client.presence(presence.value); toast(`You are ${presence.value}.`); } catch (x) { toast(explain(x), 'error'); }
    });
    const shift = el('button', { type: 'button', id: 'shift', class: 'secondary' });
    const label = () => { shift.textContent = app.me.on_shift ? 'End shift' : 'Start shift'; shift.setAttribute('aria-pressed', app.me.on_shift ? 'true' : 'false'); };
    label();
    shift.addEventListener('click', async () => {
      try {
        const r = app.me.on_shift ? await app.client.shiftEnd() : await app.client.shiftStart();
        app.me.on_shift = r.on_shift;
        app.me.presence = r.presence;
        presence.value = ['available', 'busy', 'away'].includes(r.presence) ? r.presence : 'away';
        label();
        toast(r.on_shift ? 'Shift started: chats can be offered to you.' : 'Shift ended.');
      } catch (x) {
        if (x.code === 'bad_state' && !app.me.on_shift) { app.me.on_shift = true; label(); }
        toast(explain(x), 'error');
      }
    });
    app.client.on('presence', (m) => { app.me.presence = m.status; if ([...presence.options].some((o) => o.value === m.status)) presence.value = m.status; });
    parts.push(el('label', { for: 'presence', text: 'Status' }), presence, shift);
  }
  parts.push(el('button', { type: 'button', class: 'secondary', id: 'shortcuts-open', 'aria-label': 'Keyboard shortcuts', text: '?', onclick: openShortcuts }));
  parts.push(el('button', { type: 'button', class: 'secondary', id: 'logout', text: 'Log out', onclick: logout }));
  box.replaceChildren(...parts);
}

async function logout() {
  if (app.workspace?.busy() && !window.confirm('You still have open chats. Log out anyway? They will go back to the queue if you do not come back within a minute.')) return;
  try { await app.client.logout(); } catch { /* the session ends anyway */ }
  sessionStorage.removeItem(TOKEN_KEY);
  app.workspace?.forget();
  location.reload();
}

async function shell() {
  say(null);
  document.getElementById('me').textContent = `${app.me.display_name} · ${app.me.roles.join(', ')}`;
  if (app.device && !app.secure) {
    app.secure = new SecureStaff({ client: app.client, device: app.device, rootPk: app.rootPk });
    app.workspace = new Workspace({ client: app.client, secure: app.secure, me: app.me, taxonomy: app.taxonomy, el, toast, explain, notify: offerElsewhere });
    await app.workspace.restore();
  }
  controls();
  nav.replaceChildren(...VIEWS.filter((v) => v.allowed()).map((v) => el('button', { type: 'button', 'data-view': v.name, text: v.label, onclick: () => show(v.name) })));
  nav.hidden = false;
  if (has('supervisor') && app.device && !app.escalationAlerts) {
    app.escalationAlerts = true;
    app.client.on('escalation', (m) => {
      if (!m.alert || app.current?.name === 'escalations') return;
      const e = m.escalation;
      say(`Escalation ${m.why === 'waiting' ? 'still waiting' : 'raised'}: chat ${e.conversation}, ${e.urgency}. A supervisor is needed.`, true);
      banner.append(' ', el('button', { type: 'button', class: 'small', id: 'banner-escalations', text: 'Go to escalations', onclick: () => { say(null); show('escalations'); } }));
      import('./console-escalation.js').then((mod) => mod.chime(app)).catch(() => {});
    });
  }
  await show('chats');
}

// An offer while another view is shown: a banner with a way back.
function offerElsewhere(text) {
  if (app.current?.name === 'chats') return;
  say(text, true);
  banner.append(' ', el('button', { type: 'button', class: 'small', id: 'banner-go', text: 'Go to chats', onclick: () => { say(null); show('chats'); } }));
}

// ---- keyboard shortcuts ------------------------------------------------------------

const SHORTCUTS = [
  ['?', 'Show this list'],
  ['Alt+N', 'Take the next chat'],
  ['Alt+A', 'Accept the chat offered to you'],
  ['Alt+D', 'Decline the chat offered to you'],
  ['Alt+1 … Alt+9', 'Go to chat tab 1 … 9'],
  ['Alt+M', 'Write in the open chat'],
  ['/ (at the start of a message)', 'Search canned responses; ↑ ↓ to choose, Enter to use, Esc to close'],
  ['Enter / Shift+Enter', 'Send / new line'],
];

function openShortcuts() {
  document.getElementById('shortcut-list').replaceChildren(...SHORTCUTS.map(([k, d]) => el('tr', {}, el('td', {}, el('kbd', { text: k })), el('td', { text: d }))));
  const box = document.getElementById('shortcuts-on');
  box.checked = app.shortcuts;
  box.onchange = () => { app.shortcuts = box.checked; localStorage.setItem(SHORTCUTS_KEY, box.checked ? 'on' : 'off'); };
  document.getElementById('shortcuts').showModal();
}

document.addEventListener('keydown', (e) => {
  if (!app.me || document.querySelector('dialog[open]')) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
  if (e.key === '?' && !typing && !e.altKey && !e.ctrlKey && !e.metaKey) { e.preventDefault(); openShortcuts(); return; }
  if (!app.shortcuts || !e.altKey || e.ctrlKey || e.metaKey || !app.workspace) return;
  const ws = app.workspace;
  const k = e.code;
  let done = true;
  if (k === 'KeyN') ws.takeNext();
  else if (k === 'KeyA') ws.acceptOffer();
  else if (k === 'KeyD') ws.declineOffer();
  else if (k === 'KeyM') ws.focusCompose();
  else if (/^Digit[1-9]$/.test(k)) ws.selectTab(Number(k.slice(5)) - 1);
  else done = false;
  if (done) { e.preventDefault(); if (app.current?.name !== 'chats') show('chats'); }
});

// ---- start ---------------------------------------------------------------------------

async function loggedIn(staff) {
  app.me = staff;
  await deviceSetup();
}

async function main() {
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
  app.client = new StaffClient({ url });
  app.taxonomy = await fetch('/taxonomy.json').then((r) => r.json());
  await E.ready();
  await app.client.connect();
  const org = await app.client.conn.request({ type: 'e2e.org' });
  if (!org.root_pk) { screen('Not set up yet', el('p', { text: 'This service has no organisation keys yet: run helplinectl init on the server first.' })); return; }
  app.rootPk = E.unb64(org.root_pk, 32);
  app.client.on('offline', () => say('Connection lost. Reconnecting… Your drafts and chats are kept.', true));
  app.client.on('online', () => say(null));
  app.client.on('ended', (c) => {
    sessionStorage.removeItem(TOKEN_KEY);
    app.workspace?.forget();
    app.me = null;
    loginScreen(`Your session ended (${c?.reason || 'logged out'}). Log in again.`);
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    try {
      const r = await app.client.resume(token);
      await loggedIn(r.staff);
      return;
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
      app.client.token = null;
    }
  }
  loginScreen();
}

main().catch((e) => { say(`The console could not start: ${e.message}`, true); });
