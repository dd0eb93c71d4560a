// console-chat.js: the counsellor's workspace in the console: offers (with
// their timer, a sound and a flash), the queue with triage tags, risk and
// wait (take next, pick), the chats held, in tabs with unread counts, each
// with its messages and their states (sending, sent, delivered, read),
// typing, safety cards, canned responses ("/" to search), tags, encrypted
// notes, transfer to a colleague, end and wrap-up. The workspace lives as
// long as the login: switching views keeps drafts and chats, and so does a
// lost connection (helpline.js resends and resyncs). Which chats this tab
// holds (ids and triage, no content) is kept in sessionStorage so that a
// reload picks them up again; their history comes back from the server and
// their keys from this device's key wraps.
import { CARDS } from './cards.js';
import { t } from './i18n.js';
import { REASONS, URGENCIES, DECISIONS, CONSENT_WITH, CONSENT_SHARE, CONSENT_ANSWER, consentWords } from './console-escalation.js';
import { review, referralItem, awaitsMe, sideOf, saveFile } from './console-referral.js';

const HELD_KEY = 'helpline.console.chats';
const RISK = ['standard', 'elevated', 'high', 'immediate'];
const AGE = { u13: 'under 13', '13_15': '13–15', '16_17': '16–17', '18p': '18+' };

// Canned responses: short, warm, and safe for a frightened young person.
export const CANNED = [
  ['hello', 'Hi, I\'m a counsellor at Helpline. Thank you for getting in touch. What would you like to talk about?'],
  ['take your time', 'Take your time. I\'m here and I\'m listening.'],
  ['not to blame', 'What is happening is not your fault. The person doing this is the one in the wrong, and you did the right thing by telling someone.'],
  ['do not pay', 'Please don\'t pay them or send anything else. Paying rarely makes it stop, and they often ask for more.'],
  ['keep evidence', 'Don\'t delete the messages yet. If you can, save their username, profile link and screenshots of what they sent. Then block and report them.'],
  ['safe now', 'Are you safe right now?'],
  ['emergency', 'If you are in danger right now, please call 999. You can keep talking to me as well.'],
  ['trusted adult', 'Is there an adult you trust, like a parent, carer or teacher, who you could tell about this? I can help you think about how to say it.'],
  ['take it down', 'There are services that can help get an image taken down and stop it being shared. Would you like me to explain how?'],
  ['still there', 'Are you still there? Take your time — I\'ll wait.'],
  ['closing', 'Thank you for talking to me today. You can come back any time you need to.'],
];

const ago = (s) => (s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`);
const timeOf = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** One conversation held by this counsellor. */
class Chat {
  constructor(conv, meta) {
    this.conv = conv; this.meta = meta;
    this.state = meta.state ?? 'active'; // active | ended
    this.unread = 0; this.draft = ''; this.secured = false;
    this.bySeq = new Map(); // seq -> li (rendered events)
    this.pending = []; // own messages awaiting their ack: {text, li, status}
    this.mine = new Map(); // seq -> status span of own messages
    this.lastTheirs = 0;
  }
}

// A hash report (docs/hashing.md): only fingerprints, never the picture.
export function hashReportText(r) {
  const age = r.age_band ? `, age ${AGE[r.age_band] ?? r.age_band}` : '';
  return `Hash report${age} (the young person's device hashed ${r.items.length === 1 ? 'a file' : `${r.items.length} files`}; no picture was sent): ${r.items.map((x) =>
    `${x.kind} ${x.type}, ${Math.max(1, Math.round(x.size / 1024))} KB — SHA-256 ${x.sha256}, MD5 ${x.md5}${x.pdq ? `, PDQ ${x.pdq} (quality ${x.quality}${x.quality < 50 ? ', low: may not match changed copies' : ''})` : ''}`).join('; ')}`;
}

/** The hash list for hash-sharing partners (docs/hashing.md "Hash list"). */
export function hashList(conv, r, referral = null) {
  const reportedAt = new Date(r.at).toISOString();
  return {
    format: 'helpline-hash-list-v1', conversation: String(conv), seq: r.seq, reported_at: reportedAt, referral, age_band: r.age_band,
    hashes: r.items.flatMap((x, file) => [
      { hash_type: 'sha256', value: x.sha256, file, media_type: x.type, size: x.size },
      { hash_type: 'md5', value: x.md5, file, media_type: x.type, size: x.size },
      ...(x.pdq ? [{ hash_type: 'pdq', value: x.pdq, quality: x.quality, file, media_type: x.type, size: x.size }] : []),
    ]),
  };
}

function saveHashList(el, conv, r) {
  saveFile(el, `helpline-hashes-conversation-${conv}-seq-${r.seq}.json`, `${JSON.stringify(hashList(conv, r), null, 2)}\n`, 'application/json');
}

export class Workspace {
  /** app: {client, secure, me, taxonomy, el, toast, explain, notify(text)} */
  constructor(app) {
    this.a = app;
    this.el = app.el;
    this.chats = new Map();
    this.offers = new Map(); // conv -> {offer, card, timer}
    this.selected = null;
    this.sound = true;
    this.root = null;
    this.tags = new Map(app.taxonomy.groups.flatMap((g) => g.tags.map((x) => [x.id, x.label])));
    this.shared = new Set(); // escalation ids whose claimer this page wrapped the keys to
    this.referrals = new Map(); // referral id -> referral object (of chats this counsellor had)
    this.#wire();
  }

  // ---- events -------------------------------------------------------------------

  #wire() {
    const { client, secure } = this.a;
    secure.on('message', (m) => this.#message(m));
    secure.on('note', (m) => this.#note(m));
    secure.on('tag', (m) => this.#tagLine(m.conversation, m.seq, m.tags));
    secure.on('system', (m) => this.#system(m));
    secure.on('secured', (m) => { const c = this.chats.get(m.conversation); if (c) { c.secured = true; this.#head(c); } });
    secure.on('security', (m) => this.#line(m.conversation, null, `Security warning: ${m.message} (${m.code}). Do not trust this chat until a supervisor has looked at it.`, 'warning'));
    secure.on('undecryptable', (m) => {
      if (this.chats.get(m.conversation)?.bySeq.has(m.seq)) return;
      const li = this.#line(m.conversation, m.seq, 'A message this browser has no keys for (yet).', 'system');
      if (li) li.dataset.placeholder = '1';
    });
    client.on('offer', (o) => this.#offer(o));
    client.on('offer.expired', (o) => { this.#dropOffer(o.conversation); this.a.toast('An offer timed out, so your status is now Away. Set it back to Available when you are ready.', 'error'); });
    client.on('offer.withdrawn', (o) => { this.#dropOffer(o.conversation); this.a.toast(o.reason === 'left' ? 'The young person left the queue before you answered.' : 'An offer was withdrawn.'); });
    client.on('assigned', (m) => {
      this.#add(m.conversation, { risk: m.risk, topics: m.topics, age_band: m.age_band, danger_now: m.danger_now, language: m.language, waited_s: m.waited_s, from: m.from });
      this.a.toast(`Chat ${m.conversation} was handed over to you. Read the handover note first.`);
      this.a.notify?.(`Chat ${m.conversation} was handed over to you.`);
    });
    client.on('receipt', (m) => {
      const c = this.chats.get(m.conversation);
      if (!c || m.from !== 'contact') return;
      for (const [seq, st] of c.mine) if (seq <= m.seq && st.dataset.state !== 'read') { st.textContent = m.kind === 'read' ? 'Read' : 'Delivered'; st.dataset.state = m.kind; }
    });
    client.on('typing', (m) => {
      const c = this.chats.get(m.conversation);
      if (!c?.typing || m.from !== 'contact') return;
      c.typing.textContent = 'The young person is typing…';
      clearTimeout(c.typingTimer);
      c.typingTimer = setTimeout(() => { c.typing.textContent = ''; }, 4000);
    });
    client.on('escalation', (m) => this.#escalation(m.escalation));
    client.on('referral', (m) => this.#referral(m.referral, m.why));
    client.on('online', () => {
      this.refreshQueue();
      this.#catchUpEscalations();
      this.#loadReferrals();
      for (const c of [...this.chats.values()]) {
        // resumeSession drops the streams of chats this counsellor no longer
        // holds (gone back to the queue after the grace period).
        if (c.state === 'active' && !client.streams.has(c.conv)) {
          this.a.toast(`Chat ${c.conv} went back to the queue while you were away.`, 'error');
          this.#close(c.conv);
        } else this.a.secure.loadWraps(c.conv).catch(() => {});
      }
    });
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && this.selected) this.#markRead(this.chats.get(this.selected)); });
  }

  #message(m) {
    const c = this.chats.get(m.conversation);
    if (!c) return;
    const held = c.bySeq.get(m.seq);
    if (held && !held.dataset.placeholder) return;
    if (held) { c.bySeq.delete(m.seq); c.at = held; } // opened now: the bubble takes its place
    if (m.mine) {
      // A replay of our own message (after a reload or a resync): adopt the
      // bubble still waiting for its ack, if it is this one.
      const i = c.pending.findIndex((p) => p.text === m.text);
      if (i >= 0) {
        const p = c.pending.splice(i, 1)[0];
        this.#acked(c, p, m.seq, m.at);
        if (c.at) { c.early = c.early?.filter((x) => x !== c.at) ?? null; c.at.remove(); c.at = null; }
        return;
      }
      if (m.consent) this.#consentAsked(c, m.seq, m.consent);
      const li = this.#bubble(c, m.card ? this.#cardText(m.card) : m.consent ? `Consent question: ${consentWords(m.consent)}` : m.text, m.consent ? 'mine consent' : 'mine', m.at);
      const st = this.el('span', { class: 'status', text: 'Sent', 'data-state': 'sent' });
      li.append(st);
      c.mine.set(m.seq, st);
      c.bySeq.set(m.seq, li);
      return;
    }
    if (m.answer) this.#consentAnswered(c, m.answer, m.seq);
    const li = this.#bubble(c, m.answer ? this.#answerText(c, m.answer) : m.hashes ? hashReportText(m.hashes) : m.text, m.answer ? 'theirs consent' : m.hashes ? 'theirs hashes' : 'theirs', m.at);
    li.dataset.seq = m.seq;
    if (m.hashes) {
      (c.hashReports ??= new Map()).set(m.seq, { ...m.hashes, seq: m.seq, at: m.at });
      li.append(this.el('button', { type: 'button', class: 'small secondary', id: `hash-export-${c.conv}-${m.seq}`, text: 'Export hash list', onclick: () => saveHashList(this.el, c.conv, c.hashReports.get(m.seq)) }));
    }
    c.bySeq.set(m.seq, li);
    c.lastTheirs = Math.max(c.lastTheirs, m.seq);
    if (c.typing) c.typing.textContent = '';
    this.a.client.delivered(c.conv, m.seq);
    if (this.#visible(c)) this.#markRead(c); else { c.unread++; this.#tabs(); }
  }

  // A note is shown at once; one whose key arrives later (a handover's
  // wraps load after its history) is filled in when it opens.
  #note(m) {
    const c = this.chats.get(m.conversation);
    if (!c) return;
    const who = m.from === `staff:${this.a.me.id}` ? 'you' : 'a colleague';
    const what = { note: 'Note', transfer: 'Handover note', wrapup: 'Wrap-up notes' }[m.kind] ?? 'Note';
    const text = `${what} by ${who}, staff only: ${m.text === null ? '(this browser has no key for it yet)' : m.text || '(empty)'}`;
    const old = c.bySeq.get(m.seq);
    if (old) { if (m.text !== null && old.classList.contains('note')) old.textContent = text; return; }
    this.#line(c.conv, m.seq, text, 'note');
  }

  #tagLine(conv, seq, tags) {
    if (this.chats.get(conv)?.bySeq.has(seq)) return;
    this.#line(conv, seq, `Tags set (staff only): ${tags.map((x) => this.tags.get(x) ?? x).join(', ') || 'none'}`, 'system');
  }

  #system(m) {
    const c = this.chats.get(m.conversation);
    if (!c) return;
    const words = {
      joined: 'You joined the chat. The young person has been told.',
      ended_by_contact: 'The young person ended the chat.',
      ended_by_counsellor: 'The chat was ended by the counsellor.',
      counsellor_lost: 'The counsellor lost their connection; the chat went back to the queue.',
      transferred: 'The chat was handed over.',
      supervisor_joined: 'A supervisor joined the chat (the young person is not told).',
    };
    this.#line(c.conv, m.seq, words[m.text] ?? m.text, 'system');
    if (m.seq <= (c.meta.seq ?? 0)) return; // history from before this counsellor had it
    if (m.text.startsWith('ended') && c.state !== 'ended') { c.state = 'ended'; this.#save(); this.#render(c); }
  }

  // ---- consent ------------------------------------------------------------------------

  #consentAsked(c, seq, q) {
    c.consents ??= new Map();
    if (!c.consents.has(seq)) c.consents.set(seq, { question: q, asked_seq: seq, answer: null, answer_seq: null });
    this.#consentBox(c);
  }

  #consentAnswered(c, a, seq) {
    c.consents ??= new Map();
    const r = c.consents.get(a.question) ?? { question: null, asked_seq: a.question };
    c.consents.set(a.question, { ...r, answer: a.answer, answer_seq: seq });
    this.#consentBox(c);
  }

  #answerText(c, a) {
    const q = c.consents?.get(a.question)?.question;
    return `Answer to the consent question${q ? ` "${consentWords(q)}"` : ` (seq ${a.question})`}: ${CONSENT_ANSWER[a.answer] ?? a.answer}`;
  }

  /** The consent questions asked in conv and their answers (for a referral). */
  consents(conv) { return [...(this.chats.get(conv)?.consents?.values() ?? [])]; }

  #consentBox(c) {
    if (!c.consentBox) return;
    const el = this.el;
    const withSel = el('select', { id: `consent-with-${c.conv}` }, Object.entries(CONSENT_WITH).map(([v, label]) => el('option', { value: v, text: label })));
    const boxes = Object.entries(CONSENT_SHARE).map(([v, label]) => el('label', { class: 'inline', for: `consent-${c.conv}-${v}` },
      el('input', { type: 'checkbox', id: `consent-${c.conv}-${v}`, value: v, checked: v === 'what_happened' }), label));
    const go = el('button', { type: 'button', class: 'secondary', id: `consent-ask-${c.conv}`, text: 'Ask the young person' });
    go.addEventListener('click', async () => {
      const share = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      if (!share.length) { this.a.toast('Choose what you would share.', 'error'); return; }
      go.disabled = true;
      const q = { share, with: withSel.value };
      const li = this.#bubble(c, `Consent question: ${consentWords(q)}`, 'mine consent');
      const status = this.el('span', { class: 'status', text: 'Sending…', 'data-state': 'sending' });
      li.append(status);
      try {
        const ack = await this.a.secure.askConsent(c.conv, q);
        this.#acked(c, { li, status }, ack.seq, ack.at);
        this.#consentAsked(c, ack.seq, q);
      } catch (x) { status.textContent = `Not sent: ${this.a.explain(x)}`; go.disabled = false; }
    });
    const asked = [...(c.consents?.values() ?? [])];
    c.consentBox.replaceChildren(el('legend', { text: 'Ask for consent' }),
      el('p', { class: 'muted', text: 'The young person sees the question in their language with Yes, No and Not sure. Their answer is kept in the chat, encrypted, for a referral.' }),
      el('label', { for: `consent-with-${c.conv}`, text: 'Share with' }), withSel,
      el('div', { class: 'consent-share', role: 'group', 'aria-label': 'What to share' }, boxes),
      el('p', { class: 'actions' }, go),
      ...asked.map((r) => el('p', { class: 'consent-record', 'data-question': String(r.asked_seq) },
        r.question ? consentWords(r.question) : `Question seq ${r.asked_seq}`, ' ',
        el('strong', { text: r.answer ? `Answer: ${CONSENT_ANSWER[r.answer] ?? r.answer}` : 'No answer yet' }))));
  }

  // ---- escalations -------------------------------------------------------------------

  #escalation(e) {
    const c = this.chats.get(String(e.conversation));
    if (c) {
      const before = c.escalation;
      c.escalation = e;
      this.#escBox(c);
      if (before?.state !== e.state) {
        if (e.state === 'claimed') this.#line(c.conv, null, `${e.claimed_by_name ?? 'A supervisor'} claimed the escalation.`, 'system');
        if (e.state === 'decided') this.#line(c.conv, null, `The escalation was decided: ${DECISIONS[e.decision] ?? e.decision}.`, 'system');
      }
    }
    const mine = e.raised_by === this.a.me.id || e.counsellor === this.a.me.id;
    if (mine && e.state === 'claimed' && e.claimed_by !== this.a.me.id) this.#share(e);
  }

  // The claimer gets the chat's keys: their devices' certificates are
  // checked here against the root (SecureStaff.wrapToSupervisor).
  async #share(e) {
    if (this.shared.has(e.escalation)) return;
    this.shared.add(e.escalation);
    const conv = String(e.conversation);
    try {
      if (!this.a.secure.session(conv).epochs.size) await this.a.secure.loadWraps(conv);
      const n = await this.a.secure.wrapToSupervisor(conv, e.claimed_by, e.escalation);
      const who = e.claimed_by_name ?? 'The supervisor';
      this.#line(conv, null, `${who} can now read this chat: its keys were sealed to their ${n === 1 ? 'device' : `${n} devices`}, each certificate checked by this browser.`, 'system');
      this.a.toast(`${who} can now read chat ${conv}.`);
    } catch (x) {
      this.shared.delete(e.escalation);
      this.a.toast(`The chat's keys could not be shared with the supervisor: ${this.a.explain(x)}`, 'error');
    }
  }

  // Escalations this counsellor raised or holds: shows them, and wraps to
  // claimers this page has not wrapped to (claimed while it was away).
  async #catchUpEscalations() {
    try {
      for (const e of await this.a.client.escalations()) if (e.state !== 'decided' || this.chats.has(String(e.conversation))) this.#escalation(e);
    } catch { /* offline: the next reconnect does it */ }
  }

  // ---- referrals ----------------------------------------------------------------------

  // What the review dialog needs (console-referral.js).
  #refApp() {
    const a = this.a;
    return { client: a.client, secure: a.secure, me: a.me, el: this.el, toast: a.toast, explain: a.explain, reauth: a.reauth, consentWords, tagLabel: (x) => this.tags.get(x) ?? x };
  }

  async #loadReferrals() {
    try {
      for (const r of await this.a.client.referrals()) this.referrals.set(r.referral, r);
    } catch { return; /* offline: the next reconnect does it */ }
    this.#refSide();
    for (const c of this.chats.values()) this.#escBox(c);
  }

  #referral(r, why) {
    const before = this.referrals.get(r.referral);
    this.referrals.set(r.referral, r);
    const c = this.chats.get(String(r.conversation));
    if (c) {
      this.#escBox(c);
      if (!before && why === 'created') this.#line(c.conv, null, `A ${r.kind} referral (#${r.referral}) was drafted. It needs your approval before it is sent.`, 'system');
      if (before && before.state !== r.state && ['acknowledged', 'failed'].includes(r.state)) this.#line(c.conv, null, `Referral #${r.referral}: ${r.state === 'acknowledged' ? 'the partner acknowledged it' : `delivery failed (${r.delivery?.last_error ?? 'no reason given'})`}.`, 'system');
    }
    if (awaitsMe(r, this.a.me.id) && sideOf(r, this.a.me.id) === 'counsellor' && !awaitsMe(before ?? { state: 'x' }, this.a.me.id)) this.a.notify?.(`Referral #${r.referral} (chat ${r.conversation}) awaits your approval.`);
    this.#refSide();
  }

  // The side panel's "Referrals awaiting your approval": also of chats
  // already wrapped up.
  #refSide() {
    if (!this.refList?.isConnected) return;
    const me = this.a.me.id;
    const waiting = [...this.referrals.values()].filter((r) => awaitsMe(r, me) && sideOf(r, me) === 'counsellor').sort((a, b) => a.referral - b.referral);
    this.refList.replaceChildren(...waiting.map((r) => referralItem(this.#refApp(), r)));
    this.refBox.hidden = !waiting.length;
  }

  #escBox(c) {
    if (!c.escBox) return;
    const el = this.el, e = c.escalation;
    const me = this.a.me.id;
    const refs = [...this.referrals.values()].filter((r) => String(r.conversation) === c.conv).sort((a, b) => b.referral - a.referral);
    const refList = refs.length ? [el('h3', { text: 'Referrals' }),
      el('p', { class: 'muted', text: 'A referral is sent only when you and the supervisor have both approved it, each after a fresh authenticator code.' }),
      el('ul', { class: 'ref-list', id: `ref-list-${c.conv}`, 'aria-label': `Referrals of chat ${c.conv}` }, refs.map((r) => referralItem(this.#refApp(), r)))] : [];
    if (refs.some((r) => awaitsMe(r, me))) refList.splice(1, 0, el('p', { class: 'ref-awaits', id: `ref-awaits-${c.conv}`, text: 'A referral awaits your approval: read it first.' }));
    if (e && e.state !== 'decided') {
      const st = e.state === 'open' ? 'waiting for a supervisor to claim it' : `claimed by ${e.claimed_by_name ?? 'a supervisor'}`;
      c.escBox.replaceChildren(el('legend', { text: 'Escalation' }),
        el('p', { id: `esc-status-${c.conv}`, role: 'status', text: `Escalated (${REASONS[e.reason] ?? e.reason}; ${URGENCIES[e.urgency] ?? e.urgency}): ${st}.` }), ...refList);
      return;
    }
    const reason = el('select', { id: `esc-reason-${c.conv}`, required: true },
      el('option', { value: '', text: 'Choose a reason…' }), Object.entries(REASONS).map(([v, label]) => el('option', { value: v, text: label })));
    const urgency = el('select', { id: `esc-urgency-${c.conv}` }, Object.entries(URGENCIES).map(([v, label]) => el('option', { value: v, text: label, selected: v === 'urgent' })));
    const note = el('textarea', { id: `esc-note-${c.conv}`, rows: '3', maxlength: '8000' });
    const go = el('button', { type: 'button', class: 'danger', id: `escalate-${c.conv}`, text: 'Escalate to a supervisor' });
    go.addEventListener('click', async () => {
      if (!reason.value) { this.a.toast('Choose a reason first.', 'error'); reason.focus(); return; }
      go.disabled = true;
      try {
        const text = note.value.trim();
        const bytes = text ? await this.a.secure.sealNote(c.conv, text) : undefined;
        const got = await this.a.client.raiseEscalation(c.conv, reason.value, urgency.value, bytes);
        this.#line(c.conv, null, `You escalated this chat: ${REASONS[got.reason]} (${URGENCIES[got.urgency]}). Supervisors on shift are alerted.`, 'system');
        this.#escalation(got);
        this.a.toast('Escalated: supervisors on shift are alerted.');
      } catch (x) { go.disabled = false; this.a.toast(this.a.explain(x), 'error'); }
    });
    c.escBox.replaceChildren(...[el('legend', { text: 'Escalate' }),
      e ? el('p', { class: 'muted', text: `An earlier escalation was decided: ${DECISIONS[e.decision] ?? e.decision}.` }) : null,
      el('label', { for: `esc-reason-${c.conv}`, text: 'Reason' }), reason,
      el('label', { for: `esc-urgency-${c.conv}`, text: 'Urgency' }), urgency,
      el('label', { for: `esc-note-${c.conv}`, text: 'Note for the supervisor (encrypted, staff only)' }), note,
      el('p', { class: 'actions' }, go), ...refList].filter(Boolean));
  }

  // ---- offers and the queue --------------------------------------------------------

  #offer(o) {
    this.#dropOffer(o.conversation);
    const left = this.el('span', { class: 'timer' });
    const card = this.el('div', { class: 'offer flash', id: `offer-${o.conversation}`, role: 'alert' },
      this.el('strong', { text: 'A young person needs you now' }),
      this.el('p', {}, this.#riskBadge(o.risk, o.danger_now), ' ', this.#triage(o)),
      this.el('p', {}, 'Waiting ', ago(o.waited_s), '. Answer within ', left, '.'),
      this.el('p', { class: 'actions' },
        this.el('button', { type: 'button', id: `accept-${o.conversation}`, text: 'Accept', onclick: () => this.#accept(o.conversation) }),
        this.el('button', { type: 'button', class: 'secondary', id: `decline-${o.conversation}`, text: 'Decline', onclick: () => this.#decline(o.conversation) })));
    const tick = () => { left.textContent = `${Math.max(0, Math.ceil((o.expires_at - Date.now()) / 1000))} s`; };
    tick();
    const timer = setInterval(tick, 500);
    this.offers.set(o.conversation, { offer: o, card, timer });
    this.offerBox?.prepend(card);
    this.#beep();
    this.#title();
    this.a.notify?.(`A chat is offered to you (${RISK[o.risk]} risk). Answer within ${Math.ceil((o.expires_at - Date.now()) / 1000)} s.`);
  }

  #dropOffer(conv) {
    const o = this.offers.get(conv);
    if (!o) return;
    clearInterval(o.timer);
    o.card.remove();
    this.offers.delete(conv);
    this.#title();
  }

  async #accept(conv) {
    try {
      const r = await this.a.secure.accept(conv);
      this.#dropOffer(conv);
      this.#add(r.conversation, r);
    } catch (x) { this.#dropOffer(conv); this.a.toast(this.a.explain(x), 'error'); }
  }

  async #decline(conv) {
    try { await this.a.client.decline(conv); } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
    this.#dropOffer(conv);
  }

  acceptOffer() { const first = this.offers.keys().next(); if (!first.done) this.#accept(first.value); }
  declineOffer() { const first = this.offers.keys().next(); if (!first.done) this.#decline(first.value); }

  async takeNext() {
    try {
      const r = await this.a.secure.take();
      this.#add(r.conversation, r);
      this.refreshQueue();
    } catch (x) { this.a.toast(x.code === 'not_found' ? 'Nobody you can help is waiting right now.' : this.a.explain(x), x.code === 'not_found' ? 'ok' : 'error'); }
  }

  async #pick(conv) {
    try {
      const r = await this.a.secure.pick(conv);
      this.#add(r.conversation, r);
      this.refreshQueue();
    } catch (x) { this.a.toast(this.a.explain(x), 'error'); this.refreshQueue(); }
  }

  async refreshQueue() {
    if (!this.queueList?.isConnected) return;
    try {
      const q = await this.a.client.queueList();
      this.queueCount.textContent = q.waiting === 1 ? '1 young person waiting' : `${q.waiting} young people waiting`;
      this.queueList.replaceChildren(...q.entries.map((x) => this.el('li', { class: 'entry', 'data-conversation': x.conversation },
        this.el('div', {}, this.#riskBadge(x.risk, x.danger_now), ' ', this.el('strong', { text: `#${x.position}` }), ` · waiting ${ago(x.waited_s)}`),
        this.el('div', { class: 'meta' }, this.#triage(x)),
        x.offered ? this.el('div', { class: 'meta', text: 'Being offered to a counsellor' })
          : this.el('button', { type: 'button', class: 'small secondary', text: 'Pick', 'aria-label': `Pick chat ${x.conversation}`, onclick: () => this.#pick(x.conversation) }))));
    } catch { /* offline: the next refresh will do */ }
  }

  // ---- chats ------------------------------------------------------------------------

  #add(conv, meta) {
    if (!this.chats.has(conv)) this.chats.set(conv, new Chat(conv, { risk: meta.risk, topics: meta.topics, age_band: meta.age_band, danger_now: meta.danger_now, language: meta.language, waited_s: meta.waited_s, from: meta.from, seq: meta.seq }));
    this.#save();
    this.select(conv);
  }

  #close(conv) {
    this.chats.delete(conv);
    if (this.selected === conv) this.selected = this.chats.keys().next().value ?? null;
    this.#save();
    this.#tabs();
    this.#show();
  }

  busy() { return [...this.chats.values()].some((c) => c.state === 'active'); }
  forget() { sessionStorage.removeItem(HELD_KEY); }

  #save() {
    sessionStorage.setItem(HELD_KEY, JSON.stringify([...this.chats.values()].map((c) => ({ conv: c.conv, meta: { ...c.meta, state: c.state } }))));
  }

  /** After a reload: the chats this tab held, their history and keys again. */
  async restore() {
    let held = [];
    try { held = JSON.parse(sessionStorage.getItem(HELD_KEY) ?? '[]'); } catch { /* start empty */ }
    for (const h of held) {
      if (typeof h?.conv !== 'string') continue;
      this.chats.set(h.conv, new Chat(h.conv, h.meta ?? {}));
      try {
        await this.a.secure.loadWraps(h.conv);
        this.a.client.stream(h.conv);
        await this.a.client.sync(h.conv);
      } catch (x) {
        if (x.code === 'forbidden') this.chats.delete(h.conv); // handed over or returned to the queue meanwhile
      }
    }
    this.selected = this.chats.keys().next().value ?? null;
    this.#save();
    this.#catchUpEscalations();
    this.#loadReferrals();
  }

  select(conv) {
    this.selected = conv;
    this.#tabs();
    this.#show();
  }

  selectTab(i) { const conv = [...this.chats.keys()][i]; if (conv) this.select(conv); }
  focusCompose() { this.chats.get(this.selected)?.box?.focus(); }

  #visible(c) { return this.root?.isConnected && this.selected === c.conv && document.visibilityState === 'visible'; }

  #markRead(c) {
    if (!c) return;
    if (c.lastTheirs) this.a.client.read(c.conv, c.lastTheirs);
    if (c.unread) { c.unread = 0; this.#tabs(); }
    this.#title();
  }

  #title() {
    const unread = [...this.chats.values()].reduce((n, c) => n + c.unread, 0);
    document.title = this.offers.size ? '(!) Chat offered · Helpline console' : unread ? `(${unread}) Helpline console` : 'Helpline console';
  }

  #beep() {
    if (!this.sound) return;
    try {
      this.audio ??= new AudioContext();
      const o = this.audio.createOscillator(), g = this.audio.createGain();
      o.frequency.value = 660;
      g.gain.setValueAtTime(0.15, this.audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.001, this.audio.currentTime + 0.6);
      o.connect(g).connect(this.audio.destination);
      o.start();
      o.stop(this.audio.currentTime + 0.6);
    } catch { /* no sound here: the card still flashes */ }
  }

  #riskBadge(risk, danger) {
    return this.el('span', { class: `risk risk-${risk}`, text: `${RISK[risk] ?? risk}${danger ? ' · in danger now' : ''}` });
  }

  #triage(x) {
    const topics = (x.topics ?? '').split(',').filter(Boolean).map((id) => this.tags.get(id) ?? id);
    return [topics.length ? topics.join('; ') : 'No topic given', x.age_band ? ` · ${AGE[x.age_band] ?? x.age_band}` : '', x.language ? ` · ${x.language}` : ''].join('');
  }

  #cardText(id) { return `Safety card sent: ${t(`card.${id}.title`)}`; }

  // ---- rendering ---------------------------------------------------------------------

  /** Shows the workspace in root (a view section); returns {unmount}. */
  mount(root) {
    const el = this.el;
    this.root = root;
    this.offerBox = el('div', { id: 'offers', 'aria-live': 'assertive' });
    for (const o of this.offers.values()) this.offerBox.append(o.card);
    this.queueCount = el('p', { id: 'queue-count', class: 'muted' });
    this.queueList = el('ol', { id: 'queue-list', 'aria-label': 'Young people waiting' });
    const sound = el('input', { type: 'checkbox', id: 'sound', checked: this.sound });
    sound.addEventListener('change', () => { this.sound = sound.checked; });
    this.tabBar = el('div', { class: 'tabs', role: 'tablist', id: 'chat-tabs', 'aria-label': 'Your chats' });
    this.panel = el('div', { id: 'chat-panel' });
    this.noChats = el('p', { class: 'muted', id: 'no-chats', text: 'No chats yet. Accept an offer, take the next chat, or pick someone from the queue.' });
    this.refList = el('ul', { class: 'ref-list', id: 'ref-awaiting-list', 'aria-labelledby': 'h-ref-awaiting' });
    this.refBox = el('section', { id: 'ref-awaiting', class: 'ref-awaiting', 'aria-labelledby': 'h-ref-awaiting', hidden: true },
      el('h2', { id: 'h-ref-awaiting', text: 'Referrals awaiting your approval' }), this.refList);
    root.append(el('h1', { class: 'visually-hidden', id: 'h-chats', text: 'Chats' }),
      el('div', { class: 'workspace' },
        el('aside', { class: 'side', 'aria-label': 'Offers and queue' },
          this.offerBox,
          el('p', { class: 'actions' }, el('button', { type: 'button', id: 'take-next', text: 'Take next chat', onclick: () => this.takeNext() })),
          this.refBox,
          el('h2', { text: 'Waiting' }), this.queueCount, this.queueList,
          el('p', {}, el('label', { class: 'inline', for: 'sound' }, sound, 'Sound for offers'))),
        el('div', {}, this.noChats, this.tabBar, this.panel)));
    this.#tabs();
    this.#show();
    this.refreshQueue();
    this.#refSide();
    const timer = setInterval(() => this.refreshQueue(), 3000);
    return { unmount: () => { clearInterval(timer); this.root = null; } };
  }

  #tabs() {
    if (!this.tabBar) return;
    const el = this.el;
    this.tabBar.replaceChildren(...[...this.chats.values()].map((c, i) => {
      const b = el('button', { type: 'button', role: 'tab', id: `tab-${c.conv}`, 'aria-selected': c.conv === this.selected ? 'true' : 'false', 'aria-controls': 'chat-panel', title: i < 9 ? `Alt+${i + 1}` : null, onclick: () => this.select(c.conv) },
        `Chat ${c.conv}`, c.state === 'ended' ? ' (ended)' : '',
        c.unread ? el('span', { class: 'unread', 'aria-label': `${c.unread} unread`, text: String(c.unread) }) : null);
      return b;
    }));
    this.tabBar.hidden = !this.chats.size;
    this.noChats.hidden = !!this.chats.size;
  }

  #show() {
    if (!this.panel) return;
    const c = this.chats.get(this.selected);
    if (!c) { this.panel.replaceChildren(); return; }
    if (!c.view) this.#build(c);
    this.panel.replaceChildren(c.view);
    c.list.scrollTop = c.list.scrollHeight;
    this.#markRead(c);
  }

  // Builds a chat's panel once; it is kept (with its draft) while the chat is held.
  #build(c) {
    const el = this.el;
    c.headBox = el('div', { class: 'chat-head' });
    // Focusable so the history can be scrolled from the keyboard.
    c.list = el('ol', { class: 'messages', id: `messages-${c.conv}`, tabindex: '0', 'aria-label': `Messages of chat ${c.conv}`, 'aria-live': 'polite' });
    for (const li of c.early ?? []) c.list.append(li);
    c.early = null;
    c.typing = el('p', { class: 'typing', 'aria-live': 'polite' });
    c.box = el('textarea', { id: `compose-${c.conv}`, rows: '2', maxlength: '4000', 'aria-label': 'Message to the young person', placeholder: 'Write a message · / for canned responses' });
    c.box.value = c.draft;
    const canned = el('ul', { class: 'canned', role: 'listbox', id: `canned-${c.conv}`, 'aria-label': 'Canned responses', hidden: true });
    c.box.addEventListener('input', () => {
      c.draft = c.box.value;
      this.#cannedFilter(c, canned);
      const now = Date.now();
      if (now - (c.lastTyping ?? 0) > 3000) { c.lastTyping = now; this.a.client.typing(c.conv); }
    });
    c.box.addEventListener('keydown', (e) => {
      if (!canned.hidden) {
        const items = [...canned.children];
        let i = items.findIndex((x) => x.getAttribute('aria-selected') === 'true');
        if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
          e.preventDefault();
          i = (i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
          items.forEach((x, j) => x.setAttribute('aria-selected', j === i ? 'true' : 'false'));
          c.box.setAttribute('aria-activedescendant', items[i].id);
          return;
        }
        if (e.key === 'Enter' && i >= 0) { e.preventDefault(); this.#useCanned(c, canned, items[i].dataset.text); return; }
        if (e.key === 'Escape') { e.preventDefault(); canned.hidden = true; return; }
      }
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    const form = el('form', { class: 'compose', id: `compose-form-${c.conv}` }, canned, c.box, el('button', { type: 'submit', id: `send-${c.conv}`, text: 'Send' }));
    form.addEventListener('submit', (e) => { e.preventDefault(); const v = c.box.value.trim(); if (v) { c.box.value = ''; c.draft = ''; canned.hidden = true; this.#send(c, v); } });
    c.tools = el('aside', { class: 'tools', 'aria-label': `Tools for chat ${c.conv}` });
    c.view = el('div', { class: 'chat', 'data-conversation': c.conv },
      el('div', {}, c.headBox, c.list, c.typing, form),
      c.tools);
    this.#head(c);
    this.#render(c);
  }

  #head(c) {
    if (!c.headBox) return;
    const el = this.el, m = c.meta;
    c.headBox.replaceChildren(el('h2', { text: `Chat ${c.conv}` }), this.#riskBadge(m.risk ?? 0, m.danger_now),
      el('span', { class: 'muted', text: this.#triage(m) }),
      m.waited_s !== undefined ? el('span', { class: 'muted', text: `waited ${ago(m.waited_s)}` }) : null,
      el('span', { class: c.secured ? '' : 'muted', id: `secured-${c.conv}`, text: c.secured ? 'End-to-end encrypted' : 'Securing the chat…' }));
  }

  // The tools beside the chat: while active, cards, tags, notes, transfer
  // and end; once ended, the wrap-up.
  #render(c) {
    if (!c.tools) return;
    const el = this.el;
    const tagBoxes = (prefix) => {
      const chosen = new Set((c.chosenTags ?? (c.meta.topics ?? '').split(',')).filter(Boolean));
      return el('div', { class: 'tags' }, this.a.taxonomy.groups.map((g) => el('div', {}, el('h3', { text: g.label }),
        g.tags.map((x) => el('label', { class: 'inline', for: `${prefix}-${c.conv}-${x.id}` },
          el('input', { type: 'checkbox', id: `${prefix}-${c.conv}-${x.id}`, value: x.id, checked: chosen.has(x.id), onchange: (e) => {
            const s = new Set(c.chosenTags ?? (c.meta.topics ?? '').split(',').filter(Boolean));
            if (e.target.checked) s.add(x.id); else s.delete(x.id);
            c.chosenTags = [...s];
          } }), x.label)))));
    };
    const chosen = () => (c.chosenTags ?? (c.meta.topics ?? '').split(',')).filter(Boolean);
    if (c.state === 'ended') {
      const outcome = el('select', { id: `outcome-${c.conv}`, required: true },
        el('option', { value: '', text: 'Choose the outcome…' }),
        this.a.taxonomy.outcomes.map((o) => el('option', { value: o.id, text: o.label })));
      const notes = el('textarea', { id: `wrapup-notes-${c.conv}`, rows: '4', maxlength: '8000' });
      const form = el('form', { id: `wrapup-${c.conv}` },
        el('h2', { text: 'Wrap-up' }),
        el('label', { for: `outcome-${c.conv}`, text: 'Outcome' }), outcome,
        el('fieldset', {}, el('legend', { text: 'Final tags' }), tagBoxes('wtag')),
        el('label', { for: `wrapup-notes-${c.conv}`, text: 'Notes (encrypted, staff only)' }), notes,
        el('p', { class: 'actions' }, el('button', { type: 'submit', id: `wrapup-go-${c.conv}`, text: 'Finish wrap-up' })));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!outcome.value) { this.a.toast('Choose an outcome first.', 'error'); outcome.focus(); return; }
        try {
          await this.a.secure.wrapup(c.conv, outcome.value, chosen(), notes.value.trim());
          this.a.toast(`Chat ${c.conv} wrapped up.`);
          this.#close(c.conv);
        } catch (x) {
          if (x.code === 'conflict') { this.#close(c.conv); return; }
          this.a.toast(this.a.explain(x), 'error');
        }
      });
      c.escBox = el('fieldset', { id: `esc-box-${c.conv}` });
      this.#escBox(c);
      c.tools.replaceChildren(form, c.escBox);
      if (c.box) { c.box.disabled = true; c.box.placeholder = 'The chat has ended.'; }
      return;
    }
    const note = el('textarea', { id: `note-${c.conv}`, rows: '3', maxlength: '8000' });
    const colleague = el('select', { id: `transfer-to-${c.conv}` }, el('option', { value: '', text: 'Choose a colleague…' }));
    const handover = el('textarea', { id: `handover-${c.conv}`, rows: '3', maxlength: '8000' });
    const loadColleagues = async () => {
      try {
        const list = this.a.client.colleagues ? await this.a.client.colleagues() : (await this.a.client.request({ type: 'staff.colleagues' })).staff;
        colleague.replaceChildren(el('option', { value: '', text: list.length ? 'Choose a colleague…' : 'Nobody else is on shift' }),
          ...list.map((s) => el('option', { value: String(s.staff_id), disabled: !s.can_take, text: `${s.display_name} · ${s.presence} · ${s.chats}/${s.capacity} chats${s.can_take ? '' : ' (cannot take it now)'}` })));
      } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
    };
    colleague.addEventListener('focus', loadColleagues, { once: true });
    c.escBox = el('fieldset', { id: `esc-box-${c.conv}` });
    this.#escBox(c);
    c.consentBox = el('fieldset', { id: `consent-box-${c.conv}` });
    this.#consentBox(c);
    c.tools.replaceChildren(
      el('fieldset', {}, el('legend', { text: 'Safety cards' }),
        el('p', { class: 'actions' }, Object.keys(CARDS).map((id) => el('button', { type: 'button', class: 'secondary', id: `card-${c.conv}-${id}`, text: t(`card.${id}.title`), onclick: () => this.#sendCard(c, id) })))),
      el('fieldset', {}, el('legend', { text: 'Tags' }), tagBoxes('tag'),
        el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: `tags-save-${c.conv}`, text: 'Save tags', onclick: async () => {
          try {
            const tags = chosen(), ack = await this.a.client.tag(c.conv, tags);
            this.#tagLine(c.conv, ack.seq, tags);
          } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
        } }))),
      el('fieldset', {}, el('legend', { text: 'Note' }),
        el('label', { for: `note-${c.conv}`, text: 'Note (encrypted, staff only)' }), note,
        el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: `note-save-${c.conv}`, text: 'Add note', onclick: async () => {
          const text = note.value.trim();
          if (!text) return;
          try {
            const ack = await this.a.secure.note(c.conv, text);
            note.value = '';
            this.#note({ conversation: c.conv, seq: ack.seq, at: ack.at, from: `staff:${this.a.me.id}`, kind: 'note', text });
          } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
        } }))),
      el('fieldset', {}, el('legend', { text: 'Hand over' }),
        el('label', { for: `transfer-to-${c.conv}`, text: 'To' }), colleague,
        el('label', { for: `handover-${c.conv}`, text: 'Handover note (encrypted, staff only)' }), handover,
        el('p', { class: 'actions' },
          el('button', { type: 'button', class: 'secondary', text: 'Refresh list', onclick: loadColleagues }),
          el('button', { type: 'button', class: 'secondary', id: `transfer-${c.conv}`, text: 'Hand over', onclick: async () => {
            if (!colleague.value) { this.a.toast('Choose a colleague first.', 'error'); colleague.focus(); return; }
            try {
              await this.a.secure.transfer(c.conv, Number(colleague.value), handover.value.trim());
              this.a.toast(`Chat ${c.conv} handed over.`);
              this.#close(c.conv);
            } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
          } }))),
      c.consentBox,
      c.escBox,
      el('p', { class: 'actions' }, el('button', { type: 'button', class: 'danger', id: `end-${c.conv}`, text: 'End chat', onclick: async () => {
        if (!window.confirm('End this chat? The young person will be told it has ended.')) return;
        try { await this.a.client.end(c.conv); c.state = 'ended'; this.#save(); this.#render(c); } catch (x) { this.a.toast(this.a.explain(x), 'error'); }
      } })));
  }

  #cannedFilter(c, list) {
    const v = c.box.value;
    if (!v.startsWith('/')) { list.hidden = true; c.box.removeAttribute('aria-activedescendant'); return; }
    const q = v.slice(1).toLowerCase();
    const hits = CANNED.filter(([k, text]) => k.includes(q) || text.toLowerCase().includes(q));
    list.replaceChildren(...hits.map(([k, text], i) => this.el('li', { role: 'option', id: `canned-${c.conv}-${i}`, 'aria-selected': i === 0 ? 'true' : 'false', 'data-text': text, onmousedown: (e) => { e.preventDefault(); this.#useCanned(c, list, text); } },
      this.el('strong', { text: `${k}: ` }), text)));
    list.hidden = !hits.length;
    if (hits.length) c.box.setAttribute('aria-activedescendant', `canned-${c.conv}-0`);
  }

  #useCanned(c, list, text) {
    c.box.value = text;
    c.draft = text;
    list.hidden = true;
    c.box.removeAttribute('aria-activedescendant');
    c.box.focus();
  }

  #bubble(c, text, cls, at) {
    const el = this.el;
    const li = el('li', { class: cls },
      el('span', { class: 'who', text: cls === 'mine' ? 'You:' : 'Young person:' }), el('span', { class: 'text', text }),
      at ? el('span', { class: 'time', text: timeOf(at) }) : null);
    this.#append(c, li);
    return li;
  }

  // A line in a chat that may not be built yet (events of a restored chat
  // arrive before its panel exists): kept and put in when it is.
  #line(conv, seq, text, cls) {
    const c = this.chats.get(conv);
    if (!c) return null;
    const li = this.el('li', { class: cls, text });
    if (seq) c.bySeq.set(seq, li);
    this.#append(c, li);
    return li;
  }

  #append(c, li) {
    const at = c.at;
    c.at = null;
    if (at) { // in the place of a message that had no keys yet
      if (c.early?.includes(at)) c.early[c.early.indexOf(at)] = li; else at.replaceWith(li);
      return;
    }
    if (c.list) { c.list.append(li); if (this.#visible(c)) c.list.scrollTop = c.list.scrollHeight; } else (c.early ??= []).push(li);
  }

  #acked(c, p, seq, at) {
    if (at) p.status.before(this.el('span', { class: 'time', text: timeOf(at) }));
    p.status.textContent = 'Sent';
    p.status.dataset.state = 'sent';
    p.li.dataset.seq = seq;
    c.mine.set(seq, p.status);
    c.bySeq.set(seq, p.li);
  }

  #send(c, text) {
    const li = this.#bubble(c, text, 'mine');
    const status = this.el('span', { class: 'status', text: 'Sending…', 'data-state': 'sending' });
    li.append(status);
    const p = { text, li, status };
    c.pending.push(p);
    this.a.secure.send(c.conv, text).then((ack) => {
      const i = c.pending.indexOf(p);
      if (i < 0) return; // adopted by the replay already
      c.pending.splice(i, 1);
      this.#acked(c, p, ack.seq, ack.at);
    }, (x) => {
      const i = c.pending.indexOf(p);
      if (i >= 0) c.pending.splice(i, 1);
      status.textContent = `Not sent: ${this.a.explain(x)}`;
      status.dataset.state = 'failed';
      li.append(this.el('button', { type: 'button', class: 'small secondary', text: 'Try again', onclick: () => { li.remove(); this.#send(c, text); } }));
    });
  }

  #sendCard(c, id) {
    const li = this.#bubble(c, this.#cardText(id), 'mine');
    const status = this.el('span', { class: 'status', text: 'Sending…', 'data-state': 'sending' });
    li.append(status);
    this.a.secure.sendCard(c.conv, id).then((ack) => this.#acked(c, { li, status }, ack.seq, ack.at),
      (x) => { status.textContent = `Not sent: ${this.a.explain(x)}`; });
  }
}
