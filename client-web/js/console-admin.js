// console-admin.js: the admins' views of the staff console (role admin).
// mount(): staff accounts (staff.list; create with a one-time enrolment
// code; disable/enable, reset password or authenticator, end sessions),
// every change confirmed first and re-authenticated with a fresh TOTP code
// when the server asks (reauth_required, protocol.md §5.4).
// mountDevices(): staff devices (§5.12): certify the waiting ones with this
// admin's own root-certified device, check and revoke the certified ones.
// mountHours(): opening hours as the line reports them (line.status, §5.9);
// read-only, because they are set in the daemon's configuration file.
// Text goes in with textContent only; no inline style or script.
import { certifyDevice } from './secure.js';
import * as E from './e2e.js';

const ROLES = [['counsellor', 'Counsellor'], ['supervisor', 'Supervisor'], ['admin', 'Admin']];
const STATE_WORDS = { pending: 'Not enrolled yet', active: 'Active', disabled: 'Disabled' };
const PRESENCE_WORDS = { available: 'Available', busy: 'Busy', away: 'Away', offline: 'Offline' };
const FIELD_WORDS = {
  username: 'the username (3–32 of a–z, 0–9, dot, dash, underscore; starting with a letter)',
  display_name: 'the display name (1–64 characters)', roles: 'the roles (choose at least one)',
  languages: 'the languages (e.g. en,cy)', skills: 'the skills (e.g. sextortion,grooming)',
  capacity: 'the capacity (0–20)', staff_id: 'the account', state: 'the state',
  cert: 'the certificate', issuer: 'your admin device', revocation: 'the revocation', device: 'the device',
};
const WORDS = {
  conflict: 'That already exists: the username is taken, or it was just done.',
  not_found: 'Not found: it may have just changed. The list is refreshed.',
  forbidden: 'Not allowed: your account or device may not do that (you cannot disable yourself).',
  reauth_required: 'A fresh authenticator code is needed first.',
  auth_failed: 'That authenticator code did not work.',
  cancelled: 'Cancelled: nothing was changed.',
  busy: 'The server is busy. Try again in a moment.',
  store_failed: 'The server could not save that. Try again.',
  rate_limited: 'Too many requests at once. Wait a moment.',
};

/** Plain words for an error reply, with its code. */
export function words(ctx, e) {
  if ((e?.code === 'bad_field' || e?.code === 'missing_field') && e.field) {
    return `The server did not accept ${FIELD_WORDS[e.field] ?? e.field}. (${e.code})`;
  }
  if (e?.code && WORDS[e.code]) return `${WORDS[e.code]} (${e.code})`;
  const t = ctx.explain ? ctx.explain(e) : String(e?.message ?? e);
  return e?.code && !t.includes(`(${e.code})`) ? `${t} (${e.code})` : t;
}

/**
 * Sends an admin request; if the server wants a fresh TOTP code first
 * (reauth_required), asks for one with ctx.reauth() and retries once.
 */
export async function adminRequest(ctx, msg) {
  try {
    return await ctx.client.request(msg);
  } catch (e) {
    if (e?.code !== 'reauth_required') throw e;
    await ctx.reauth(); // rejects (code 'cancelled') when the user cancels
    return ctx.client.request(msg);
  }
}

const when = (ms) => (ms ? new Date(ms).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '—');
const dash = (s) => (s ? s : '—');
const roleNames = (roles) => (roles ?? []).map((r) => r[0].toUpperCase() + r.slice(1)).join(', ');

// ---- staff accounts -----------------------------------------------------------

/** Staff accounts: list, create, and the per-account actions. */
export function mount(root, ctx) {
  const { el } = ctx;
  let stopped = false, staff = [];

  const field = (id, label, props = {}, hint = null) => el('div', { class: 'field' },
    el('label', { for: id, text: label }),
    el('input', { id, name: id, ...props, 'aria-describedby': hint ? `${id}-hint` : null }),
    hint ? el('p', { class: 'hint muted', id: `${id}-hint`, text: hint }) : null);
  const form = el('form', { id: 'sa-form', class: 'sa-form', 'aria-labelledby': 'sa-h-create' },
    field('sa-username', 'Username', { required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', minlength: '3', maxlength: '32', pattern: '[A-Za-z][A-Za-z0-9._\\-]{2,31}' },
      '3–32 letters, digits, dots, dashes or underscores, starting with a letter. They log in with it.'),
    field('sa-name', 'Display name', { required: true, maxlength: '64', autocomplete: 'off' }, 'Shown to colleagues. Young people never see it.'),
    el('fieldset', { class: 'sa-roles' }, el('legend', { text: 'Roles' }),
      ...ROLES.map(([id, label]) => el('label', { class: 'inline', for: `sa-role-${id}` },
        el('input', { type: 'checkbox', id: `sa-role-${id}`, name: 'sa-roles', value: id, checked: id === 'counsellor' }), label))),
    field('sa-languages', 'Languages (optional)', { autocomplete: 'off', placeholder: 'en,cy', maxlength: '128' }, 'Comma-separated language codes. Empty: offered chats in any language.'),
    field('sa-skills', 'Skills (optional)', { autocomplete: 'off', placeholder: 'sextortion,grooming', maxlength: '128' }, 'Comma-separated tag ids; chats with these topics are offered to them first.'),
    field('sa-capacity', 'Chats at once', { type: 'number', min: '0', max: '20', value: '2', required: true }),
    el('p', { class: 'actions' }, el('button', { type: 'submit', id: 'sa-create', text: 'Create account' })));
  const codeBox = el('section', { id: 'sa-code-box', class: 'sa-code-box', 'aria-labelledby': 'sa-code-title', hidden: true, tabindex: '-1' });
  const body = el('tbody', { id: 'sa-rows' });
  const table = el('table', { id: 'sa-table', class: 'sa-table' },
    el('caption', { class: 'visually-hidden', text: 'Staff accounts' }),
    el('thead', {}, el('tr', {}, ...['Name', 'Username', 'Roles', 'Languages', 'Chats at once', 'State', 'Status', 'Actions']
      .map((h) => el('th', { scope: 'col', text: h })))), body);

  root.replaceChildren(
    el('h1', { id: 'h-staff', text: 'Staff accounts' }),
    codeBox,
    el('section', { 'aria-labelledby': 'sa-h-list' }, el('h2', { id: 'sa-h-list', text: 'Accounts' }),
      el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: 'sa-refresh', text: 'Refresh', onclick: () => load() })),
      el('div', { class: 'table-wrap' }, table)),
    el('section', { 'aria-labelledby': 'sa-h-create' }, el('h2', { id: 'sa-h-create', text: 'New account' }),
      el('p', { class: 'muted', text: 'The new member of staff gets a one-time enrolment code: with it they choose their password and set up their authenticator app.' }),
      form));

  function showCode(title, code, who) {
    codeBox.replaceChildren(
      el('h2', { id: 'sa-code-title', text: title }),
      el('p', { class: 'sa-code code', id: 'sa-code', text: code }),
      el('p', {}, el('strong', { text: 'Give this code to ' }), who, el('strong', { text: ' in person' }),
        ' (or read it out on a phone call you made to them). Do not email or message it: anyone with the code can become them.'),
      el('p', { text: 'It works once. They open the console, choose "Enrol with your code", and set their own password and authenticator app. It is shown only now.' }),
      el('p', { class: 'actions' }, el('button', { type: 'button', id: 'sa-code-done', class: 'secondary', text: 'Done: hide the code', onclick: () => { codeBox.hidden = true; codeBox.replaceChildren(); } })));
    codeBox.hidden = false;
    codeBox.focus();
  }

  const isMe = (s) => s.id === ctx.me?.id;
  function actions(s) {
    const b = (action, text, cls = 'secondary') => el('button', { type: 'button', class: `small ${cls}`, 'data-action': action, text, 'aria-label': `${text}: ${s.display_name}`, onclick: () => act(s, action) });
    return el('div', { class: 'sa-actions' },
      isMe(s) ? null : s.state === 'disabled' ? b('enable', 'Enable') : b('disable', 'Disable', 'danger'),
      b('reset-password', 'Reset password'), b('reset-totp', 'Reset authenticator'),
      b('revoke-sessions', isMe(s) ? 'End my other sessions' : 'End sessions'));
  }

  function render() {
    body.replaceChildren(...staff.map((s) => el('tr', { 'data-staff-id': String(s.id), 'data-username': s.username, class: s.state === 'disabled' ? 'sa-disabled' : null },
      el('th', { scope: 'row', text: s.display_name }),
      el('td', { text: s.username }),
      el('td', { text: roleNames(s.roles) }),
      el('td', { text: dash(s.languages) }),
      el('td', { text: String(s.capacity) }),
      el('td', { class: `sa-state sa-state-${s.state}`, text: STATE_WORDS[s.state] ?? s.state }),
      el('td', { text: `${PRESENCE_WORDS[s.presence] ?? s.presence}${s.connections ? ` (${s.connections} connected)` : ''}` }),
      el('td', {}, actions(s)))));
  }

  async function load() {
    try {
      const list = await ctx.client.staffList();
      if (stopped) return;
      staff = list.sort((a, b) => a.display_name.localeCompare(b.display_name));
      render();
    } catch (e) {
      if (!stopped) ctx.toast(`Staff list: ${words(ctx, e)}`, 'error');
    }
  }

  const ACTIONS = {
    disable: (s) => ({ ask: `Disable ${s.display_name} (${s.username})? They are logged out at once and cannot log in until enabled again.`, msg: { type: 'staff.set_state', staff_id: s.id, state: 'disabled' }, done: `${s.display_name} is disabled.` }),
    enable: (s) => ({ ask: `Enable ${s.display_name} (${s.username}) again?`, msg: { type: 'staff.set_state', staff_id: s.id, state: 'active' }, done: `${s.display_name} is enabled.` }),
    'reset-password': (s) => ({ ask: `Reset the password of ${s.display_name} (${s.username})? Their sessions end, and they enrol again with a new code to choose a new password.`, msg: { type: 'staff.reset', staff_id: s.id, what: 'password' }, done: `A new enrolment code for ${s.display_name}.` }),
    'reset-totp': (s) => ({ ask: `Reset the authenticator of ${s.display_name} (${s.username})? Their sessions end, and they enrol again with a new code to set up their app.`, msg: { type: 'staff.reset', staff_id: s.id, what: 'totp' }, done: `A new enrolment code for ${s.display_name}.` }),
    'revoke-sessions': (s) => ({ ask: `End every session of ${s.display_name} (${s.username})? They must log in again; any chats they hold go back to the queue if they do not.`, msg: { type: 'staff.revoke_sessions', staff_id: s.id }, done: null }),
  };

  async function act(s, action) {
    const a = ACTIONS[action](s);
    if (!window.confirm(a.ask)) return;
    try {
      const r = await adminRequest(ctx, a.msg);
      if (stopped) return;
      if (r.enrolment_code) showCode(`New enrolment code for ${s.display_name}`, r.enrolment_code, s.display_name);
      ctx.toast(a.done ?? `${r.count ?? 0} session${r.count === 1 ? '' : 's'} of ${s.display_name} ended.`, 'ok');
    } catch (e) {
      if (!stopped) ctx.toast(words(ctx, e), 'error');
    }
    load();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = (id) => root.querySelector(`#${id}`).value.trim();
    const roles = ROLES.map(([id]) => id).filter((id) => root.querySelector(`#sa-role-${id}`).checked);
    if (!roles.length) { ctx.toast('Choose at least one role.', 'error'); return; }
    const msg = { type: 'staff.create', username: v('sa-username').toLowerCase(), display_name: v('sa-name'), roles: roles.join(','), capacity: Number(v('sa-capacity')) };
    if (v('sa-languages')) msg.languages = v('sa-languages').replace(/\s+/g, '');
    if (v('sa-skills')) msg.skills = v('sa-skills').replace(/\s+/g, '');
    const go = root.querySelector('#sa-create');
    go.disabled = true;
    try {
      const r = await adminRequest(ctx, msg);
      if (stopped) return;
      form.reset();
      showCode(`Enrolment code for ${r.staff.display_name} (${r.staff.username})`, r.enrolment_code, r.staff.display_name);
      ctx.toast(`Account ${r.staff.username} created.`, 'ok');
      load();
    } catch (x) {
      if (!stopped) ctx.toast(words(ctx, x), 'error');
    } finally {
      go.disabled = false;
    }
  });

  ctx.on('online', () => { if (!stopped) load(); });
  const timer = setInterval(() => { if (!document.hidden) load(); }, 15000);
  load();
  return { unmount() { stopped = true; clearInterval(timer); } };
}

// ---- devices -----------------------------------------------------------------

/** Devices: certify the waiting ones, check and revoke the certified ones. */
export function mountDevices(root, ctx) {
  const { el } = ctx;
  let stopped = false;
  const admin = ctx.adminDevice;
  const waitingBody = el('tbody', { id: 'dv-waiting-rows' });
  const certBody = el('tbody', { id: 'dv-certified-rows' });
  const revokedBody = el('tbody', { id: 'dv-revoked-rows' });
  const head = (...h) => el('thead', {}, el('tr', {}, ...h.map((x) => el('th', { scope: 'col', text: x }))));

  root.replaceChildren(
    el('h1', { id: 'h-devices', text: 'Devices' }),
    el('p', { text: 'Every browser a member of staff uses for chats has its own keys. A young person\'s page checks that a counsellor\'s keys were certified by an administrator, whose own device the organisation\'s root key certified.' }),
    admin ? '' : el('p', { class: 'banner dv-no-admin', id: 'dv-no-admin', role: 'note' },
      el('strong', { text: 'This browser cannot certify or revoke yet. ' }),
      'Your own admin device must first be certified with the organisation root key, on the server: ',
      el('code', { class: 'code', text: 'helplinectl certify-device --root-key ROOT-KEY-FILE DEVICE' }),
      ' (the device number is shown when you log in). Then log in again.'),
    el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: 'dv-refresh', text: 'Refresh', onclick: () => load() })),
    el('section', { 'aria-labelledby': 'dv-h-waiting' }, el('h2', { id: 'dv-h-waiting', text: 'Waiting for a certificate' }),
      el('p', { class: 'muted', text: 'Before you certify, check with the person (in person or on a call you made) that the device number and fingerprint match what their screen shows.' }),
      el('p', { id: 'dv-none-waiting', class: 'muted', hidden: true, text: 'No device is waiting.' }),
      el('div', { class: 'table-wrap' }, el('table', { id: 'dv-waiting' }, el('caption', { class: 'visually-hidden', text: 'Devices waiting for a certificate' }),
        head('Device', 'Owner', 'Roles', 'Registered', 'Fingerprint', 'Action'), waitingBody))),
    el('section', { 'aria-labelledby': 'dv-h-certified' }, el('h2', { id: 'dv-h-certified', text: 'Certified devices' }),
      el('p', { id: 'dv-none-certified', class: 'muted', hidden: true, text: 'No certified device.' }),
      el('div', { class: 'table-wrap' }, el('table', { id: 'dv-certified' }, el('caption', { class: 'visually-hidden', text: 'Certified devices' }),
        head('Device', 'Owner', 'Kind', 'Certified', 'Certificate check', 'Action'), certBody))),
    el('section', { 'aria-labelledby': 'dv-h-revoked' }, el('h2', { id: 'dv-h-revoked', text: 'Revoked devices' }),
      el('p', { id: 'dv-none-revoked', class: 'muted', hidden: true, text: 'No revoked device.' }),
      el('div', { class: 'table-wrap' }, el('table', { id: 'dv-revoked' }, el('caption', { class: 'visually-hidden', text: 'Revoked devices' }),
        head('Device', 'Owner', 'Certified'), revokedBody))));

  const KIND = { [E.ROLE.ADMIN]: 'Admin device', [E.ROLE.COUNSELLOR]: 'Counsellor', [E.ROLE.SUPERVISOR]: 'Supervisor', [E.ROLE.STAMP]: 'Service stamp' };
  const fingerprint = (signPk) => {
    try { return E.deviceSubject(E.unb64(signPk, 32)).slice(4, 20).replace(/(.{4})(?!$)/g, '$1 '); } catch { return '?'; }
  };
  // Checks a certified device's chain as a young person's page would.
  function check(d, revoked) {
    const now = Math.floor(Date.now() / 1000);
    try {
      const cert = E.unb64(d.cert);
      const role = E.parseCert(cert).role;
      if (role === E.ROLE.ADMIN) {
        const c = E.verifyCert(cert, ctx.rootPk, now, E.ROLE.ADMIN);
        return { ok: true, role, text: `Valid: by the organisation root, until ${new Date(c.notAfter * 1000).toISOString().slice(0, 10)}` };
      }
      const { device } = E.verifyChain({ cert, issuer: E.unb64(d.issuer) }, ctx.rootPk, now, { revoked, subject: E.deviceSubject(E.unb64(d.sign_pk, 32)) });
      return { ok: true, role, text: `Valid until ${new Date(device.notAfter * 1000).toISOString().slice(0, 10)}` };
    } catch (x) {
      let role = null;
      try { role = E.parseCert(E.unb64(d.cert)).role; } catch { /* unreadable */ }
      return { ok: false, role, text: `Does not verify (${x.code ?? x.message}): revoke it` };
    }
  }

  async function load() {
    try {
      const [staff, devices, revocations] = await Promise.all([
        ctx.client.staffList(),
        ctx.client.devices(),
        ctx.client.revocations()]);
      if (stopped) return;
      await E.ready();
      const revoked = E.revokedSet(revocations, ctx.rootPk, Math.floor(Date.now() / 1000));
      render(new Map(staff.map((s) => [s.id, s])), devices, revoked);
    } catch (e) {
      if (!stopped) ctx.toast(`Devices: ${words(ctx, e)}`, 'error');
    }
  }

  function render(people, devices, revoked) {
    const owner = (d) => people.get(d.staff_id);
    const name = (d) => owner(d) ? `${owner(d).display_name} (${owner(d).username})` : `staff #${d.staff_id}`;
    const waiting = devices.filter((d) => !d.cert && !d.revoked);
    const certified = devices.filter((d) => d.cert && !d.revoked);
    const gone = devices.filter((d) => d.revoked);
    waitingBody.replaceChildren(...waiting.map((d) => {
      const o = owner(d), roles = o?.roles ?? [];
      const chat = roles.includes('counsellor') || roles.includes('supervisor');
      let action;
      if (!chat || d.staff_id === ctx.me?.id) {
        action = el('span', { class: 'muted', text: `An admin device: certify it on the server with helplinectl certify-device --root-key ROOT-KEY-FILE ${d.device}` });
      } else if (!admin) {
        action = el('span', { class: 'muted', text: 'Your own admin device must be certified first (above).' });
      } else {
        action = el('button', { type: 'button', class: 'small', 'data-action': 'certify', text: 'Certify', 'aria-label': `Certify device #${d.device} of ${name(d)}`, onclick: () => certify(d, o) });
      }
      return el('tr', { 'data-device-id': String(d.device), 'data-staff-id': String(d.staff_id) },
        el('th', { scope: 'row', text: `#${d.device}` }),
        el('td', { text: name(d) }),
        el('td', { text: roleNames(roles) }),
        el('td', { text: when(d.created_at) }),
        el('td', {}, el('span', { class: 'fingerprint', text: fingerprint(d.sign_pk) })),
        el('td', {}, action,
          chat && roles.includes('admin') && d.staff_id !== ctx.me?.id && admin
            ? el('p', { class: 'hint muted', text: 'They are also an admin: certify here only the device their screen calls their chat device; their admin device needs the root key.' }) : null));
    }));
    certBody.replaceChildren(...certified.map((d) => {
      const c = check(d, revoked);
      const mine = admin && d.device === admin.id;
      const thisBrowser = ctx.device && d.device === ctx.device.id;
      const action = mine
        ? el('span', { class: 'muted', text: 'Your admin device in this browser (revoke it on the server with helplinectl revoke-device).' })
        : admin ? el('button', { type: 'button', class: 'small danger', 'data-action': 'revoke', text: 'Revoke', 'aria-label': `Revoke device #${d.device} of ${name(d)}`, onclick: () => revoke(d, name(d), thisBrowser) })
          : el('span', { class: 'muted', text: 'Needs your certified admin device.' });
      return el('tr', { 'data-device-id': String(d.device), 'data-staff-id': String(d.staff_id), 'data-verified': c.ok ? 'yes' : 'no' },
        el('th', { scope: 'row', text: `#${d.device}` }),
        el('td', { text: thisBrowser ? `${name(d)}: this browser` : name(d) }),
        el('td', { text: KIND[c.role] ?? '?' }),
        el('td', { text: when(d.certified_at) }),
        el('td', { class: c.ok ? 'dv-ok' : 'dv-bad', text: c.text }),
        el('td', {}, action));
    }));
    revokedBody.replaceChildren(...gone.map((d) => el('tr', { 'data-device-id': String(d.device), 'data-staff-id': String(d.staff_id) },
      el('th', { scope: 'row', text: `#${d.device}` }), el('td', { text: name(d) }), el('td', { text: when(d.certified_at) }))));
    root.querySelector('#dv-none-waiting').hidden = waiting.length > 0;
    root.querySelector('#dv-waiting').hidden = waiting.length === 0;
    root.querySelector('#dv-none-certified').hidden = certified.length > 0;
    root.querySelector('#dv-certified').hidden = certified.length === 0;
    root.querySelector('#dv-none-revoked').hidden = gone.length > 0;
    root.querySelector('#dv-revoked').hidden = gone.length === 0;
  }

  async function certify(d, o) {
    const supervisor = o.roles.includes('supervisor');
    if (!window.confirm(`Certify device #${d.device} (fingerprint ${fingerprint(d.sign_pk)}) for ${o.display_name} as a ${supervisor ? 'supervisor' : 'counsellor'}'s device? Check the number with them first.`)) return;
    try {
      await E.ready();
      const role = supervisor ? E.ROLE.SUPERVISOR : E.ROLE.COUNSELLOR;
      try {
        await certifyDevice(ctx.client, admin, d, { role });
      } catch (e) {
        if (e?.code !== 'reauth_required') throw e;
        await ctx.reauth();
        await certifyDevice(ctx.client, admin, d, { role });
      }
      if (!stopped) ctx.toast(`Device #${d.device} of ${o.display_name} is certified.`, 'ok');
    } catch (e) {
      if (!stopped) ctx.toast(words(ctx, e), 'error');
    }
    load();
  }

  async function revoke(d, who, thisBrowser = false) {
    if (!window.confirm(`${thisBrowser ? 'This is the chat device of this very browser. ' : ''}Revoke device #${d.device} of ${who}? It can no longer answer young people or read chats handed to it, and it cannot be undone: they set that browser up again and it is certified anew.`)) return;
    try {
      await E.ready();
      const revocation = E.makeRevocation(E.certHash(E.unb64(d.cert)), Math.floor(Date.now() / 1000), admin.keys.signSk);
      await adminRequest(ctx, { type: 'device.revoke', device: d.device, revocation: E.b64(revocation), issuer: E.b64(admin.cert) });
      if (!stopped) ctx.toast(`Device #${d.device} of ${who} is revoked.`, 'ok');
    } catch (e) {
      if (!stopped) ctx.toast(words(ctx, e), 'error');
    }
    load();
  }

  ctx.on('online', () => { if (!stopped) load(); });
  const timer = setInterval(() => { if (!document.hidden) load(); }, 15000);
  load();
  return { unmount() { stopped = true; clearInterval(timer); } };
}

// ---- opening hours ---------------------------------------------------------------

/** Opening hours as line.status reports them; read-only. */
export function mountHours(root, ctx) {
  const { el } = ctx;
  let stopped = false;
  const status = el('dl', { id: 'hr-status', class: 'hr-status' });
  root.replaceChildren(
    el('h1', { id: 'h-hours', text: 'Opening hours' }),
    el('section', { 'aria-labelledby': 'hr-h-now' }, el('h2', { id: 'hr-h-now', text: 'The line now' }),
      el('p', { id: 'hr-open', class: 'hr-open', role: 'status', text: 'Asking the server…' }), status,
      el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: 'hr-refresh', text: 'Check again', onclick: () => load() }))),
    el('section', { 'aria-labelledby': 'hr-h-set' }, el('h2', { id: 'hr-h-set', text: 'Changing the hours' }),
      el('p', { text: 'The hours cannot be changed from the console yet: they are set in the daemon\'s configuration file, in the [hours] section, and read when helplined starts.' }),
      el('ul', {},
        el('li', {}, el('code', { text: 'hours.weekly' }), ' — the weekly hours, e.g. ', el('code', { text: 'mon-fri 09:00-22:00, sat-sun 12:00-20:00' }), '. Empty: open all the time.'),
        el('li', {}, el('code', { text: 'hours.exceptions' }), ' — dated changes, e.g. ', el('code', { text: '2026-12-25 closed, 2026-12-24 09:00-14:00' }), '.'),
        el('li', {}, el('code', { text: 'hours.timezone' }), ' — the time zone the hours are in, e.g. ', el('code', { text: 'Europe/London' }), '.')),
      el('p', { text: 'After editing the file, restart helplined. While the line is closed, young people can leave a message for the team (the inbox) if its key is set; nobody already waiting is turned away when it closes.' })));

  function render(s) {
    const tz = s.timezone || 'UTC';
    let fmt;
    try {
      fmt = new Intl.DateTimeFormat([], { timeZone: tz, weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    } catch {
      fmt = new Intl.DateTimeFormat([], { timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    }
    const open = root.querySelector('#hr-open');
    open.textContent = s.open ? 'Open now: young people can start a chat.' : 'Closed now: new chats are refused.';
    open.className = `hr-open ${s.open ? 'hr-is-open' : 'hr-is-closed'}`;
    open.dataset.open = s.open ? 'yes' : 'no';
    const rows = [
      ['Open now', s.open ? 'Yes' : 'No', 'hr-now'],
      s.open
        ? ['Closes', s.closes_at ? fmt.format(new Date(s.closes_at)) : 'Not within the next 400 days', 'hr-closes']
        : ['Opens', s.opens_at ? fmt.format(new Date(s.opens_at)) : 'Not within the next 400 days', 'hr-opens'],
      ['Time zone of the hours', tz, 'hr-tz'],
      ['Queue full', s.queue_full ? 'Yes: new chats get a busy message' : 'No', 'hr-full'],
      ['Leave a message (inbox)', s.inbox ? 'Available' : 'Not available: the team inbox key is not set', 'hr-inbox'],
    ];
    status.replaceChildren(...rows.flatMap(([k, v, id]) => [el('dt', { text: k }), el('dd', { id, text: v })]));
  }

  async function load() {
    try {
      const s = await ctx.client.request({ type: 'line.status' });
      if (!stopped) render(s);
    } catch (e) {
      if (stopped) return;
      root.querySelector('#hr-open').textContent = `The line's status could not be read: ${words(ctx, e)}`;
      ctx.toast(`Opening hours: ${words(ctx, e)}`, 'error');
    }
  }
  ctx.on('online', () => { if (!stopped) load(); });
  const timer = setInterval(() => { if (!document.hidden) load(); }, 60000);
  load();
  return { unmount() { stopped = true; clearInterval(timer); } };
}
