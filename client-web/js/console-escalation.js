// console-escalation.js: the supervisors' escalations view of the staff
// console (docs/escalation.md, protocol.md §5.13). A live list of
// escalations, newest first, each with its reason, urgency and a timer since
// it was raised (unclaimed urgent ones flash, and alerts sound); claiming;
// and, for the one this supervisor claimed, the case: the counsellor's
// sealed note opened on this device, the chat's history read after entering
// a fresh authenticator code (the keys come from the counsellor's client,
// which checks this device's certificate itself and wraps them to it),
// joining the live chat silently, staff-only notes, and the decision with
// sealed reasons; then the evidence bundle and the referral
// (console-referral.js). Nothing here is stored in the browser; text goes in
// with textContent only.
import * as E from './e2e.js';
import { referralSection, saveFile } from './console-referral.js';

export const REASONS = {
  life_at_risk: 'Immediate risk to life',
  sextortion_threat: 'Sextortion with an active threat or deadline',
  position_of_trust: 'Harm by someone in a position of trust',
  harming_others: 'The young person is harming someone',
  asks_for_police: 'The young person asks for the police',
};
export const URGENCIES = { immediate: 'Immediate', urgent: 'Urgent', routine: 'Routine' };
export const DECISIONS = {
  no_further_action: 'No further action',
  safeguarding_referral: 'Safeguarding referral',
  police_referral: 'Police referral',
};
const SYSTEM = {
  joined: 'The counsellor joined the chat.',
  ended_by_contact: 'The young person ended the chat.',
  ended_by_counsellor: 'The counsellor ended the chat.',
  counsellor_lost: 'The counsellor lost their connection; the chat went back to the queue.',
  transferred: 'The chat was handed over.',
  supervisor_joined: 'A supervisor joined the chat (the young person was not told).',
};
// A consent question's parts, in the counsellor's words (the young person's
// page words them from its own catalogue, in their language).
export const CONSENT_WITH = { police: 'the police', social_care: 'children\'s social care', school: 'their school', parent_carer: 'a parent or carer', health: 'a doctor or health service' };
export const CONSENT_SHARE = { what_happened: 'what happened', messages: 'their messages', their_details: 'the other person\'s usernames and profile links', your_name: 'their name', your_contact: 'their contact details', your_location: 'where they are' };
export const CONSENT_ANSWER = { yes: 'Yes', no: 'No', not_sure: 'Not sure' };
export const consentWords = (q) => `May we share ${q.share.map((x) => CONSENT_SHARE[x] ?? x).join(', ')} with ${CONSENT_WITH[q.with] ?? q.with}?`;

const STATES = { open: 'Waiting for a supervisor', claimed: 'Claimed', decided: 'Decided' };

const since = (ms) => {
  const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
};
const timeOf = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** Opens a note sealed with conv's note key, if this device holds the key:
 * the text, or null. */
export function openSealed(secure, conv, b64) {
  if (!b64) return '';
  try {
    const bytes = E.unb64(b64);
    const key = secure.session(conv).noteKeys.get(E.hex(E.noteKid(bytes)));
    return key ? E.openNote({ conv: Number(conv), bytes, key }) : null;
  } catch { return null; }
}

/** A short beep (the console's offer sound, a little higher). */
export function chime(ctx) {
  try {
    ctx.audio ??= new AudioContext();
    const a = ctx.audio, o = a.createOscillator(), g = a.createGain();
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.15, a.currentTime);
    g.gain.exponentialRampToValueAtTime(0.001, a.currentTime + 0.8);
    o.connect(g).connect(a.destination);
    o.start();
    o.stop(a.currentTime + 0.8);
  } catch { /* no sound here: the item still flashes */ }
}

/** The escalations view. ctx: the shell's (client, me, el, toast, reauth,
 * explain, secure, on). Returns {unmount}. */
export function mount(root, ctx) {
  const { el, client, secure, me } = ctx;
  const all = new Map(); // id -> escalation object
  let open = null; // the case shown: {id, conv, list, bySeq, joined, read}
  const status = el('p', { id: 'esc-status', class: 'muted', role: 'status', text: 'Loading escalations…' });
  const list = el('ul', { id: 'esc-list', class: 'esc-list', 'aria-label': 'Escalations' });
  const casePanel = el('section', { id: 'esc-case', class: 'esc-case', 'aria-label': 'Escalation case', hidden: true });
  root.append(el('h1', { id: 'h-escalations', text: 'Escalations' }),
    el('p', { class: 'muted', text: 'Escalations raised by counsellors, newest first. Claim one to read the chat, join it and record the decision.' }),
    status, el('div', { class: 'esc-layout' }, list, casePanel));

  const fail = (x) => ctx.toast(ctx.explain(x), 'error');

  // Runs fn; when the server wants a fresh TOTP, asks for it and runs fn again.
  async function fresh(fn) {
    try { return await fn(); } catch (x) {
      if (x.code !== 'reauth_required') throw x;
      await ctx.reauth();
      return fn();
    }
  }

  function item(e) {
    const mine = e.claimed_by === me.id;
    const urgent = e.state === 'open' && e.urgency !== 'routine';
    const timer = el('span', { class: 'timer', 'data-since': String(e.state === 'open' ? e.raised_at : e.state === 'claimed' ? e.claimed_at : e.decided_at) });
    const li = el('li', { class: `esc ${urgent ? 'flash urgent' : ''} esc-${e.state}`, id: `esc-${e.escalation}`, 'data-escalation': String(e.escalation), 'data-state': e.state },
      el('div', {}, el('span', { class: `risk risk-${e.urgency === 'immediate' ? 3 : e.urgency === 'urgent' ? 2 : 0}`, text: URGENCIES[e.urgency] ?? e.urgency }), ' ',
        el('strong', { text: REASONS[e.reason] ?? e.reason })),
      el('div', { class: 'meta' }, `Chat ${e.conversation} (${e.conversation_state ?? 'unknown'}) · raised by ${e.raised_by_name ?? `#${e.raised_by}`} at ${timeOf(e.raised_at)}`),
      el('div', { class: 'meta' }, `${STATES[e.state] ?? e.state}`,
        e.state === 'claimed' ? ` by ${mine ? 'you' : e.claimed_by_name ?? `#${e.claimed_by}`}` : '',
        e.state === 'decided' ? `: ${DECISIONS[e.decision] ?? e.decision}` : '',
        ' · ', timer),
      el('p', { class: 'actions' },
        e.state === 'open' ? el('button', { type: 'button', id: `esc-claim-${e.escalation}`, text: 'Claim', onclick: () => claim(e) }) : null,
        (mine || (e.state === 'decided' && e.claimed_by === me.id)) ? el('button', { type: 'button', class: 'secondary', id: `esc-open-${e.escalation}`, text: 'Open case', onclick: () => showCase(e.escalation) }) : null));
    return li;
  }

  function tick() {
    for (const t of list.querySelectorAll('.timer')) t.textContent = since(Number(t.dataset.since));
  }

  function render() {
    const items = [...all.values()].sort((a, b) => b.raised_at - a.raised_at);
    list.replaceChildren(...items.map(item));
    const waiting = items.filter((e) => e.state === 'open').length;
    status.textContent = items.length ? `${waiting} waiting for a supervisor, ${items.length} in all.` : 'No escalations.';
    tick();
  }

  async function load() {
    try {
      for (const e of await client.escalations()) all.set(e.escalation, e);
      render();
      const mineOpen = [...all.values()].find((e) => e.state === 'claimed' && e.claimed_by === me.id);
      if (mineOpen && !open) showCase(mineOpen.escalation);
    } catch (x) { status.textContent = `Could not load escalations: ${ctx.explain(x)}`; }
  }

  async function claim(e) {
    try {
      const got = await client.claimEscalation(e.escalation);
      all.set(got.escalation, got);
      render();
      ctx.toast(`You claimed the escalation of chat ${got.conversation}. The counsellor's browser will now share the chat's keys with yours.`);
      showCase(got.escalation);
    } catch (x) { fail(x); load(); }
  }

  // ---- the case --------------------------------------------------------------

  function line(text, cls, seq) {
    if (!open) return null;
    if (seq && open.bySeq.has(seq)) {
      const old = open.bySeq.get(seq);
      if (old.dataset.placeholder && cls !== 'system placeholder') { const li = el('li', { class: cls, text }); old.replaceWith(li); open.bySeq.set(seq, li); return li; }
      return old;
    }
    const li = el('li', { class: cls, text });
    if (seq) { li.dataset.seq = String(seq); open.bySeq.set(seq, li); }
    open.list.append(li);
    open.list.scrollTop = open.list.scrollHeight;
    return li;
  }

  const offs = []; // unsubscribers, dropped on unmount
  const forCase = (m) => open && open.read && m.conversation === open.conv;
  // The raw events (with their chain heads) for an evidence bundle.
  offs.push(client.on('event', (ev) => { if (forCase(ev)) open.events.set(ev.seq, ev); }));
  offs.push(
    secure.on('message', (m) => {
      if (!forCase(m)) return;
      const who = m.from === 'contact' ? 'Young person:' : 'Counsellor:';
      const what = m.card ? `(safety card: ${m.card})` : m.consent ? `(consent question) ${consentWords(m.consent)}` : m.answer ? `(answer to the consent question of seq ${m.answer.question}) ${CONSENT_ANSWER[m.answer.answer] ?? m.answer.answer}`
        : m.hashes ? `(hash report, fingerprints only${m.hashes.age_band ? `, age band ${m.hashes.age_band}` : ''}) ${m.hashes.items.map((x) => `${x.kind} ${x.type}: SHA-256 ${x.sha256}, MD5 ${x.md5}${x.pdq ? `, PDQ ${x.pdq} (quality ${x.quality})` : ''}`).join('; ')}` : m.text;
      open.msgs.set(m.seq, { who, what, at: m.at, consent: m.consent, answer: m.answer, hashes: m.hashes });
      line(`${who} ${what}${m.at ? ` · ${timeOf(m.at)}` : ''}`, m.from === 'contact' ? 'theirs' : 'mine', m.seq);
    }),
    secure.on('note', (m) => {
      if (!forCase(m)) return;
      const what = { note: 'Note', transfer: 'Handover note', wrapup: 'Wrap-up notes' }[m.kind] ?? 'Note';
      const text = `${what} (staff only): ${m.text === null ? '(no key for it on this browser)' : m.text || '(empty)'}`;
      const li = line(text, 'note', m.seq);
      if (li && m.text !== null) li.textContent = text;
    }),
    secure.on('system', (m) => { if (forCase(m)) line(SYSTEM[m.text] ?? m.text.replace(/_/g, ' '), 'system', m.seq); }),
    secure.on('tag', (m) => { if (forCase(m)) line(`Tags set: ${m.tags.join(', ') || 'none'}`, 'system', m.seq); }),
    secure.on('undecryptable', (m) => {
      if (!forCase(m) || open.bySeq.has(m.seq)) return;
      const li = line('A message this browser has no keys for (yet): the counsellor\'s browser shares them when it is online.', 'system placeholder', m.seq);
      if (li) li.dataset.placeholder = '1';
    }));

  function showCase(id, focus = true) {
    const e = all.get(id);
    if (!e) return;
    if (open?.id !== id) { stopReading(); open?.referral?.unmount(); }
    const conv = String(e.conversation);
    open = open?.id === id ? open : { id, conv, list: null, bySeq: new Map(), joined: false, read: false, events: new Map(), msgs: new Map(), bundle: null, referral: null };
    const note = openSealed(secure, conv, e.note);
    // The transcript survives a re-render of the same case (a push).
    open.list ??= el('ol', { class: 'messages', id: 'esc-messages', tabindex: '0', 'aria-label': `Messages of chat ${conv}`, 'aria-live': 'polite' });
    const decided = e.state === 'decided';
    const decision = el('form', { id: 'esc-decide', hidden: decided },
      el('fieldset', {}, el('legend', { text: 'Decision' }),
        Object.entries(DECISIONS).map(([v, label]) => el('label', { class: 'inline', for: `esc-d-${v}` },
          el('input', { type: 'radio', name: 'esc-decision', id: `esc-d-${v}`, value: v, required: true }), label))),
      el('label', { for: 'esc-reasons', text: 'Reasons (encrypted, staff only)' }),
      el('textarea', { id: 'esc-reasons', rows: '4', maxlength: '8000' }),
      el('p', { class: 'actions' }, el('button', { type: 'submit', id: 'esc-decide-go', text: 'Record the decision' })));
    decision.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const v = decision.querySelector('input[name="esc-decision"]:checked')?.value;
      if (!v) { ctx.toast('Choose a decision first.', 'error'); return; }
      const text = document.getElementById('esc-reasons').value.trim();
      try {
        const bytes = text ? await secure.sealNote(conv, text) : undefined;
        const got = await client.decideEscalation(id, v, bytes);
        all.set(got.escalation, got);
        render();
        ctx.toast(`Decision recorded: ${DECISIONS[v]}.`);
        showCase(id);
      } catch (x) { fail(x); }
    });
    const noteBox = el('textarea', { id: 'esc-note', rows: '3', maxlength: '8000' });
    const noteForm = el('form', { id: 'esc-note-form', hidden: !open.read },
      el('label', { for: 'esc-note', text: 'Note on this chat (encrypted, staff only)' }), noteBox,
      el('p', { class: 'actions' }, el('button', { type: 'submit', class: 'secondary', id: 'esc-note-go', text: 'Add note' })));
    noteForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = noteBox.value.trim();
      if (!text) return;
      try {
        const ack = await secure.note(conv, text);
        noteBox.value = '';
        line(`Note (staff only): ${text}`, 'note', ack.seq);
      } catch (x) { fail(x); }
    });
    const canJoin = !decided && e.conversation_state === 'active';
    // The referral form is kept across re-renders (pushes), with what was typed.
    if (e.decision !== 'no_further_action') open.referral ??= referralSection(ctx, referralHooks(id));
    open.referral?.update();
    casePanel.hidden = false;
    casePanel.replaceChildren(
      el('h2', { id: 'esc-case-title', tabindex: '-1', text: `Chat ${conv}: ${REASONS[e.reason] ?? e.reason}` }),
      el('dl', { class: 'esc-facts' },
        el('dt', { text: 'Urgency' }), el('dd', { text: URGENCIES[e.urgency] ?? e.urgency }),
        el('dt', { text: 'Raised by' }), el('dd', { text: `${e.raised_by_name ?? `#${e.raised_by}`} at ${timeOf(e.raised_at)}` }),
        el('dt', { text: 'Counsellor\'s note' }), el('dd', { id: 'esc-note-text', text: note === null ? '(sealed: this browser has no key for it yet — read the chat first)' : note || '(none)' }),
        el('dt', { text: 'State' }), el('dd', { id: 'esc-state', text: decided ? `Decided: ${DECISIONS[e.decision] ?? e.decision}` : STATES[e.state] ?? e.state }),
        decided ? el('dt', { text: 'Reasons' }) : null,
        decided ? el('dd', { id: 'esc-reasons-text', text: (() => { const r = openSealed(secure, conv, e.reasons); return r === null ? '(sealed)' : r || '(none)'; })() }) : null),
      el('p', { class: 'actions' },
        el('button', { type: 'button', id: 'esc-read', text: open.read ? 'Reload the chat' : 'Read the chat', onclick: () => read(e) }),
        canJoin ? el('button', { type: 'button', class: 'secondary', id: 'esc-join', text: open.joined ? 'Joined' : 'Join the live chat', disabled: open.joined, onclick: () => join(e) }) : null),
      el('p', { class: 'muted', text: 'Reading and joining ask for a fresh authenticator code. Every read, key fetch and join is recorded in the audit log. The young person is not told that you joined.' }),
      open.list, noteForm, evidenceBox(e), decision, e.decision !== 'no_further_action' ? open.referral.el : null);
    if (focus) casePanel.querySelector('h2').focus({ preventScroll: true });
  }

  // ---- the evidence bundle ------------------------------------------------------

  // Choose the messages to disclose (only what the referral needs: the
  // others keep only their hash), then build the bundle here, have the
  // service countersign it, and save the file and its readable summary.
  function evidenceBox(e) {
    const listBox = el('ul', { id: 'esc-evidence-list', class: 'esc-evidence-list', 'aria-label': 'Messages to disclose' });
    const status = el('p', { id: 'esc-evidence-status', role: 'status' });
    const go = el('button', { type: 'button', id: 'esc-bundle-go', text: 'Build and save the evidence bundle', hidden: true, onclick: () => buildBundle(e, listBox, status, go) });
    const choose = el('button', { type: 'button', class: 'secondary', id: 'esc-evidence-choose', text: 'Choose messages for an evidence bundle', onclick: async () => {
      await settled();
      if (!open?.read) { ctx.toast('Read the chat first.', 'error'); return; }
      listBox.replaceChildren(...[...open.msgs].sort((a, b) => a[0] - b[0]).map(([seq, m]) => el('li', {},
        el('label', { class: 'inline', for: `esc-ev-${seq}` }, el('input', { type: 'checkbox', id: `esc-ev-${seq}`, value: String(seq) }),
          `#${seq} ${m.who} ${m.what.length > 120 ? `${m.what.slice(0, 117)}…` : m.what}`))));
      if (!listBox.children.length) { status.textContent = 'There are no messages in this chat to disclose.'; return; }
      go.hidden = false;
      all.hidden = false;
      status.textContent = 'Tick only the messages the referral needs.';
    } });
    const all = el('button', { type: 'button', class: 'secondary', id: 'esc-evidence-all', text: 'Tick every message', hidden: true, onclick: () => { for (const b of listBox.querySelectorAll('input')) b.checked = true; } });
    return el('fieldset', { id: 'esc-evidence' }, el('legend', { text: 'Evidence bundle' }),
      el('p', { class: 'muted', text: 'A file a police officer or court can check offline (helplinectl verify-bundle): the messages you choose with the keys that prove them, every other event by its hash only, the signed chain and checkpoints, the certificates and this escalation\'s audit entries, signed by this browser and by the service.' }),
      el('p', { class: 'actions' }, choose, all), listBox, el('p', { class: 'actions' }, go), status);
  }

  // The consent questions asked in the open case and their answers, as read.
  function consents() {
    if (!open) return [];
    const qs = new Map();
    for (const [seq, m] of [...open.msgs].sort((a, b) => a[0] - b[0])) {
      if (m.consent) qs.set(seq, { seq, question: m.consent, answer: qs.get(seq)?.answer ?? null, answer_seq: qs.get(seq)?.answer_seq ?? null });
      else if (m.answer) qs.set(m.answer.question, { seq: m.answer.question, question: qs.get(m.answer.question)?.question ?? null, answer: m.answer.answer, answer_seq: seq });
    }
    return [...qs.values()];
  }

  function referralHooks(id) {
    return {
      escalation: () => all.get(id),
      consents,
      consentWords,
      // The chat's hash reports, as hash lists (docs/hashing.md), for the
      // referral document: fingerprints only.
      hashLists: () => (open?.id === id ? [...open.msgs].filter(([, m]) => m.hashes).map(([seq, m]) => ({
        format: 'helpline-hash-list-v1', conversation: String(all.get(id).conversation), seq, reported_at: new Date(m.at).toISOString(), referral: null, age_band: m.hashes.age_band,
        hashes: m.hashes.items.flatMap((x, file) => [
          { hash_type: 'sha256', value: x.sha256, file, media_type: x.type, size: x.size },
          { hash_type: 'md5', value: x.md5, file, media_type: x.type, size: x.size },
          ...(x.pdq ? [{ hash_type: 'pdq', value: x.pdq, quality: x.quality, file, media_type: x.type, size: x.size }] : []),
        ]),
      })) : []),
      bundle: () => (open?.id === id ? open.bundle : null),
      // A bundle of the messages ticked in the evidence section.
      buildBundle: async () => {
        const listBox = document.getElementById('esc-evidence-list');
        const select = [...(listBox?.querySelectorAll('input:checked') ?? [])].map((b) => Number(b.value));
        if (!select.length) {
          if (!listBox?.children.length) document.getElementById('esc-evidence-choose')?.click();
          throw Object.assign(new Error('A police referral needs the evidence bundle: tick the messages it needs in "Evidence bundle" above (read the chat first), then save again.'), { code: 'choose' });
        }
        const signed = await makeBundle(all.get(id), select);
        document.getElementById('esc-evidence-status').textContent = `Built the bundle for the referral. Digest ${E.hex(signed.digest)}.`;
        return signed;
      },
    };
  }

  // Builds the bundle of the open case with the messages in select, has the
  // service countersign it and keeps it for the referral.
  async function makeBundle(e, select) {
    await settled();
    const conv = String(e.conversation);
    const B = await import('./bundle.js');
    const signed = await fresh(async () => {
      const [org, rev, mat] = await Promise.all([client.request({ type: 'e2e.org' }), client.revocations(), client.evidenceMaterial(conv)]);
      const consent = [...open.msgs].filter(([, m]) => m.consent || m.answer).map(([seq, m]) => (m.consent ? { seq, question: m.consent } : { seq, answer: m.answer }));
      const referral = { escalation: e.escalation, reason: e.reason, urgency: e.urgency, decision: e.decision ?? null, consent };
      const built = B.buildBundle({
        conversation: Number(conv), events: [...open.events.values()], select, epochs: secure.session(conv).epochs,
        checkpoints: mat.checkpoints, audit: mat.audit, rootPk: org.root_pk, stampCert: org.stamp_cert, evidenceCert: org.evidence_cert,
        signer: { cert: ctx.device.cert, issuer: ctx.device.issuer, keys: ctx.device.keys }, revocations: rev, referral,
      });
      const r = await client.signEvidence(conv, built.text);
      return { ...B.withServiceSignature(built.bundle, r.sig), checks: built.checks, digest: r.digest };
    });
    if (open?.id === e.escalation) { open.bundle = { text: signed.text, digest: signed.digest, select }; open.referral?.update(); }
    return signed;
  }

  async function buildBundle(e, listBox, status, go) {
    const conv = String(e.conversation);
    const select = [...listBox.querySelectorAll('input:checked')].map((b) => Number(b.value));
    if (!select.length) { ctx.toast('Tick at least one message.', 'error'); return; }
    go.disabled = true;
    status.textContent = 'Building the bundle…';
    try {
      const B = await import('./bundle.js');
      const signed = await makeBundle(e, select);
      const name = `helpline-evidence-conversation-${conv}-${E.hex(signed.digest).slice(0, 12)}`;
      saveFile(el, `${name}.json`, signed.text, 'application/json');
      saveFile(el, `${name}.html`, B.summaryHtml(signed.bundle, { checks: signed.checks }), 'text/html');
      status.textContent = `Saved ${name}.json and its summary (.html). Digest ${E.hex(signed.digest)}.`;
    } catch (x) {
      const why = { not_checkpointed: 'The newest of those messages are not yet under a signed checkpoint (one is made every few dozen events and when the chat ends). Choose earlier messages, or wait.', no_keys: 'This browser has no keys for some of those messages yet: the counsellor\'s browser shares them when it is online.' }[x.code];
      status.textContent = x.code === 'cancelled' ? '' : `The bundle was not made: ${why ?? ctx.explain(x)}`;
    } finally { go.disabled = false; }
  }

  // A read or join in progress: choosing messages and building waits for it
  // (the transcript is replayed from the start).
  const settled = () => open?.reading ?? Promise.resolve();
  function read(e) { const p = readNow(e); if (open) open.reading = p; return p; }
  function join(e) { const p = joinNow(e); if (open) open.reading = p; return p; }

  // Reads conv again from the start: a fresh session (each message key
  // opens once, so a second reading starts again from the wrapped roots), a
  // cleared transcript, then start() (chat.sync, or chat.join) replays it.
  async function replay(conv, start) {
    secure.sessions.delete(conv);
    await secure.loadWraps(conv);
    open.read = true;
    open.list.replaceChildren();
    open.bySeq.clear();
    open.events.clear();
    open.msgs.clear();
    client.streams.delete(conv);
    await start();
  }

  async function readNow(e) {
    const conv = String(e.conversation);
    try {
      await fresh(() => replay(conv, () => client.sync(conv)));
      document.getElementById('esc-note-form').hidden = false;
      document.getElementById('esc-read').textContent = 'Reload the chat';
      const note = openSealed(secure, conv, e.note);
      if (note !== null) document.getElementById('esc-note-text').textContent = note || '(none)';
      if (!open.list.children.length) line('Nothing in this chat yet.', 'system');
      open.referral?.update(); // the consent record as read
      if (!open.joined && e.conversation_state !== 'active') client.streams.delete(conv); // not live: nothing more will come
    } catch (x) { if (x.code !== 'cancelled') fail(x); }
  }

  async function joinNow(e) {
    const conv = String(e.conversation);
    try {
      await fresh(() => replay(conv, () => client.join(conv)));
      open.joined = true;
      const b = document.getElementById('esc-join');
      if (b) { b.textContent = 'Joined'; b.disabled = true; }
      document.getElementById('esc-note-form').hidden = false;
      ctx.toast(`You joined chat ${conv}. You see it live; the counsellor has been told, the young person has not.`);
    } catch (x) { if (x.code !== 'cancelled') fail(x); }
  }

  function stopReading() {
    if (open && !open.joined) client.streams.delete(open.conv);
  }

  offs.push(client.on('escalation', (m) => {
    const e = m.escalation;
    all.set(e.escalation, e);
    render();
    if (m.alert) chime(ctx);
    if (open?.id === e.escalation && (m.why === 'decided' || m.why === 'claimed')) showCase(e.escalation, false);
  }));
  offs.push(client.on('online', () => load()));

  load();
  const timer = setInterval(tick, 1000);
  return { unmount: () => { clearInterval(timer); stopReading(); for (const u of offs) u(); open?.referral?.unmount(); open = null; } };
}
