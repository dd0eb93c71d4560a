// console-referral.js: the referral screens of the staff console
// (docs/escalation.md "Referrals", protocol.md §5.15). For the supervisor who
// claimed an escalation, a form in the case view: kind, legal basis, urgency,
// the consent record (from the chat's consent question and answer), the
// people reported (modelled on NCMEC CyberTipline's personOrUserReported),
// triage tags, whether the child's identity is included and why, a summary,
// and the evidence bundle. This browser builds the referral document, seals
// the package (document + bundle) to the partner's key with crypto_box_seal
// and a staff copy of the document with the chat's note key; the server
// gets only the two ciphertexts and the coded fields it checks. For both
// people who must approve (the counsellor and the claimer), a review dialog
// that opens the staff copy on this device and shows what is approved, then
// asks for a fresh authenticator code. The live state of each referral
// (draft, approved, sent, acknowledged, failed, with attempts and the
// partner's reason), retry and download. Nothing is stored in the browser;
// text goes in with textContent only.
import * as E from './e2e.js';

export const KINDS = { police: 'Police', safeguarding: 'Safeguarding (children\'s social care)' };
export const LEGAL_BASES = {
  consent: 'The young person\'s consent',
  vital_interests: 'Vital interests: to protect someone\'s life',
  legal_obligation: 'A legal obligation',
  public_task: 'A public task',
  legitimate_interests: 'Legitimate interests',
};
export const CONSENT_ANSWERS = { yes: 'Yes', no: 'No', not_sure: 'Not sure', no_answer: 'No answer' };
export const IDENTITY_IN = { consent: 'The young person consented', life_at_risk: 'Their life is at risk' };
export const IDENTITY_OUT = { not_needed: 'Not needed for this referral', no_consent: 'They did not consent', not_known: 'We do not know who they are' };
export const REF_STATES = {
  draft: 'Draft: waiting for both approvals',
  approved: 'Approved: being sent (or ready to download)',
  sent: 'Sent: waiting for the partner to acknowledge it',
  acknowledged: 'Acknowledged by the partner',
  failed: 'Delivery failed',
};
// The fields of a person reported, in NCMEC personOrUserReported's terms.
export const PERSON_FIELDS = [
  ['espService', 'Platform or service', 'text'],
  ['screenName', 'Screen name or username', 'text'],
  ['profileUrl', 'Profile link', 'url'],
  ['displayName', 'Display name', 'text'],
  ['email', 'Email address', 'email'],
  ['phone', 'Phone number', 'tel'],
  ['reportedAt', 'When seen (date and time)', 'datetime-local'],
];
const IDENTITY_FIELDS = [['name', 'Name'], ['age', 'Age'], ['contact', 'Contact details'], ['location', 'Where they are'], ['other', 'Anything else that identifies them']];
const FORMAT_PACKAGE = 'helpline-referral-v1';
const FORMAT_DOCUMENT = 'helpline-referral-document-v1';

const timeOf = (ms) => new Date(ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });

/** A key's fingerprint for people to compare: 32 hex digits of its hash, in groups of four. */
export function fingerprint(pk) {
  return E.hex(E.H(pk).slice(0, 16)).match(/.{4}/g).join(' ');
}

/** The referral package sealed to the partner's X25519 key (crypto_box_seal). */
export async function sealPackage(document, bundleText, partnerPk) {
  const sodium = await E.ready();
  return sodium.crypto_box_seal(E.utf8(JSON.stringify({ format: FORMAT_PACKAGE, referral: document, bundle: bundleText ?? null })), partnerPk);
}

/** The state of a referral in words, with its delivery. */
export function stateText(r) {
  const d = r.delivery ?? {};
  const parts = [REF_STATES[r.state] ?? r.state];
  if (d.attempts) parts.push(`${d.attempts} ${d.attempts === 1 ? 'attempt' : 'attempts'}`);
  if (r.state === 'sent' && d.next_attempt_at && d.last_error) parts.push(`next try at ${timeOf(d.next_attempt_at)}`);
  if (d.ack_id) parts.push(`partner's reference ${d.ack_id}`);
  if (d.last_error && r.state !== 'acknowledged') parts.push(`last error: ${d.last_error}`);
  return parts.join(' · ');
}

export function approvalsText(r, me) {
  const side = (a, who) => (a ? `${who} approved${a.by === me ? ' (you)' : ''} at ${timeOf(a.at)}` : `${who}: not yet`);
  return `${side(r.approvals?.counsellor, 'Counsellor')}; ${side(r.approvals?.supervisor, 'Supervisor')}`;
}

/** Where this member of staff stands: 'counsellor', 'supervisor' or null. */
export function sideOf(r, me) {
  if (r.claimed_by === me) return 'supervisor';
  if (r.counsellor === me || r.raised_by === me) return 'counsellor';
  return null;
}

/** Does r wait for an approval by me? */
export const awaitsMe = (r, me) => r.state === 'draft' && !!sideOf(r, me) && !r.approvals?.[sideOf(r, me)]
  && r.approvals?.counsellor?.by !== me && r.approvals?.supervisor?.by !== me;

/** The note key to seal the staff copy with: the one the counsellor sealed
 * the escalation's note with when this browser has it (so the counsellor
 * can open the copy), else the session's. */
export function staffCopyKey(secure, conv, escalationNote) {
  const s = secure.session(conv);
  if (escalationNote) {
    try {
      const k = s.noteKeys.get(E.hex(E.noteKid(E.unb64(escalationNote))));
      if (k) return k;
    } catch { /* not a sealed note: the session's key */ }
  }
  return s.noteKey ?? s.noteKeys.values().next().value ?? null;
}

/** Opens a staff copy (bytes) with conv's note keys on this device: the
 * document, or null when this device has no key for it. */
export function openStaffCopy(secure, conv, bytes) {
  if (!bytes) return null;
  try {
    const key = secure.session(conv).noteKeys.get(E.hex(E.noteKid(bytes)));
    if (!key) return null;
    return JSON.parse(E.openNote({ conv: Number(conv), bytes, key }));
  } catch { return null; }
}

/** The document as a definition list: what the partner gets, in words. */
export function documentView(el, doc, { consentWords, tagLabel = (x) => x } = {}) {
  const c = doc.consent ?? {}, id = doc.child_identity ?? {};
  const people = doc.personOrUserReported ?? [];
  const row = (dt, dd, ddId) => [el('dt', { text: dt }), el('dd', { text: dd, id: ddId })];
  return el('dl', { class: 'ref-doc' },
    row('Kind', KINDS[doc.kind] ?? doc.kind, 'ref-doc-kind'),
    row('Legal basis', `${LEGAL_BASES[doc.legal_basis] ?? doc.legal_basis}${doc.legal_basis_text ? `: ${doc.legal_basis_text}` : ''}`),
    row('Urgency', doc.urgency),
    row('Consent', c.asked ? `Asked (chat seq ${c.seq}${c.question && consentWords ? `: "${consentWords(c.question)}"` : ''}); answer: ${CONSENT_ANSWERS[c.answer] ?? c.answer}${c.answer_seq ? ` (seq ${c.answer_seq})` : ''}` : 'Not asked', 'ref-doc-consent'),
    row('The child\'s identity', id.included
      ? `Included (${IDENTITY_IN[id.reason] ?? id.reason}): ${IDENTITY_FIELDS.filter(([k]) => id[k]).map(([k, label]) => `${label}: ${id[k]}`).join('; ') || 'no details given'}`
      : `Not included (${IDENTITY_OUT[id.reason] ?? id.reason})`, 'ref-doc-identity'),
    el('dt', { text: 'People reported' }),
    el('dd', { id: 'ref-doc-people' }, people.length ? el('ul', {}, people.map((p) => el('li', {
      text: PERSON_FIELDS.filter(([k]) => p[k]).map(([k, label]) => `${label}: ${p[k]}`).join('; '),
    }))) : 'None'),
    row('Triage tags', (doc.triage_tags ?? []).map(tagLabel).join(', ') || 'None'),
    row('Summary', doc.summary || '(none)', 'ref-doc-summary'),
    row('Hash lists', (doc.hash_lists ?? []).length ? (doc.hash_lists ?? []).map((l) => `chat seq ${l.seq}: ${l.hashes.map((h) => `${h.hash_type} ${h.value}`).join(', ')}`).join('; ') : 'None', 'ref-doc-hashes'),
    row('Evidence bundle', doc.bundle_digest ? `digest ${doc.bundle_digest}` : 'None', 'ref-doc-bundle'));
}

// What the staff copy says against what the server holds (the coded
// fields it checks): differences are shown, so nobody approves a copy that
// is not the referral.
function mismatches(doc, r) {
  const out = [];
  if (doc.kind !== r.kind) out.push('kind');
  if (doc.legal_basis !== r.legal_basis) out.push('legal basis');
  if (doc.urgency !== r.urgency) out.push('urgency');
  if (!!doc.consent?.asked !== !!r.consent?.asked || (r.consent?.asked && (doc.consent.answer !== r.consent.answer || doc.consent.seq !== r.consent.seq))) out.push('consent record');
  if (!!doc.child_identity?.included !== !!r.identity?.included || doc.child_identity?.reason !== r.identity?.reason) out.push('child\'s identity');
  const tags = (x) => (typeof x === 'string' ? x.split(',') : x ?? []).filter(Boolean).sort().join(',');
  if (tags(doc.triage_tags) !== tags(r.tags)) out.push('tags');
  if ((doc.bundle_digest ?? null) !== (r.bundle_digest ? E.hex(E.unb64(r.bundle_digest)) : null)) out.push('evidence bundle');
  return out;
}

/**
 * The review dialog: opens referral `id`'s staff copy on this device and
 * shows what would be approved; approving asks for a fresh authenticator
 * code each time. app: {client, secure, me, el, toast, explain, reauth?,
 * consentWords, tagLabel}. Resolves when the dialog closes, with the
 * referral object as it then is (or null).
 */
export async function review(app, id) {
  const { el, client, secure } = app;
  const reauth = app.reauth ?? (await import('./console.js')).reauth;
  const dlg = el('dialog', { id: 'ref-review', class: 'ref-review', 'aria-labelledby': 'ref-review-title' });
  const body = el('div', { id: 'ref-review-body' }, el('p', { role: 'status', text: 'Opening the referral…' }));
  const title = el('h2', { id: 'ref-review-title', text: `Referral #${id}` });
  const closeBtn = el('button', { type: 'button', class: 'secondary', id: 'ref-review-close', text: 'Close without approving' });
  dlg.append(title, body, el('p', { class: 'actions' }, closeBtn));
  document.body.append(dlg);
  let last = null;
  const done = new Promise((resolve) => dlg.addEventListener('close', () => { dlg.remove(); resolve(last); }));
  closeBtn.addEventListener('click', () => dlg.close());
  dlg.showModal();

  async function load() {
    const got = await client.getReferral(id);
    const r = got.referral;
    last = r;
    const conv = String(r.conversation);
    let doc = openStaffCopy(secure, conv, got.staffCopy);
    if (!doc && got.staffCopy) {
      // The chat's keys may not be on this page yet (a reload, a chat
      // wrapped up): fetch this device's wraps once.
      try { await secure.loadWraps(conv); } catch { /* shown below */ }
      doc = openStaffCopy(secure, conv, got.staffCopy);
    }
    const side = sideOf(r, app.me.id);
    title.textContent = `Referral #${r.referral} to ${r.kind === 'police' ? 'the police' : 'children\'s social care'}: chat ${conv}, revision ${r.revision}`;
    const facts = el('p', { id: 'ref-review-state', role: 'status', text: `${stateText(r)}. ${approvalsText(r, app.me.id)}.` });
    const parts = [facts];
    if (!doc) {
      parts.push(el('p', { class: 'error', id: 'ref-review-nokey', text: got.staffCopy
        ? 'This browser cannot open the staff copy of this referral (it has no key of this chat), so it cannot show you what you would approve. Open it on the device you used for the chat, or ask the supervisor.'
        : 'This referral has no staff copy, so there is nothing to show you: ask the supervisor to save it again.' }));
      body.replaceChildren(...parts);
      return;
    }
    const wrong = mismatches(doc, r);
    parts.push(el('h3', { text: 'What you approve' }),
      el('p', { class: 'muted', text: 'This is the staff copy, opened on this device. The partner receives the same document sealed to their key, with the evidence bundle.' }),
      documentView(el, doc, app));
    if (wrong.length) parts.push(el('p', { class: 'error', id: 'ref-review-mismatch', role: 'alert', text: `Warning: the staff copy does not match what the server holds for this referral (${wrong.join(', ')}). Do not approve it; tell the supervisor.` }));
    const err = el('p', { class: 'error', id: 'ref-review-error', role: 'alert' });
    if (r.state !== 'draft') {
      parts.push(el('p', { text: 'This referral is no longer a draft: there is nothing to approve.' }));
    } else if (!side) {
      parts.push(el('p', { text: 'Only the chat\'s counsellor and the supervisor who claimed the escalation approve a referral.' }));
    } else if (r.approvals[side] || r.approvals.counsellor?.by === app.me.id || r.approvals.supervisor?.by === app.me.id) {
      parts.push(el('p', { id: 'ref-review-done', text: 'You have approved this revision. It is sent when the other person approves it too.' }));
    } else if (!wrong.length) {
      const check = el('input', { type: 'checkbox', id: 'ref-review-confirm' });
      const go = el('button', { type: 'button', id: 'ref-review-approve', text: `Approve revision ${r.revision}` });
      go.addEventListener('click', async () => {
        err.textContent = '';
        if (!check.checked) { err.textContent = 'Tick the box first to confirm you have read it.'; check.focus(); return; }
        go.disabled = true;
        try {
          await reauth();
          last = await client.approveReferral(r.referral, r.revision);
          app.toast(last.state === 'draft' ? `You approved referral #${r.referral}. It is sent when the ${side === 'counsellor' ? 'supervisor' : 'counsellor'} approves it too.` : `Referral #${r.referral} is approved by both of you${last.state === 'approved' ? '' : ` and ${last.state}`}.`);
          dlg.close();
        } catch (x) {
          go.disabled = false;
          if (x.code === 'cancelled') return;
          err.textContent = x.code === 'conflict' && /revision/.test(x.message ?? '') ? `It was changed while you read it (${x.message}). Read it again.` : `Not approved: ${app.explain(x)}`;
          if (x.code === 'conflict') load().catch(() => {});
        }
      });
      parts.push(el('fieldset', { class: 'ref-approve' }, el('legend', { text: `Your approval as the ${side}` }),
        el('p', { text: `Two people must approve a referral: the counsellor and the supervisor. Approving asks for a fresh authenticator code. Any change to the referral makes a new revision that both of you approve again.` }),
        el('label', { class: 'inline', for: 'ref-review-confirm' }, check, `I have read revision ${r.revision} above and approve sending it to ${r.kind === 'police' ? 'the police' : 'children\'s social care'}.`),
        el('p', { class: 'actions' }, go), err));
    }
    parts.push(el('p', { class: 'muted', text: 'Not approving sends nothing. If something is wrong or missing, tell the supervisor.' }));
    body.replaceChildren(...parts);
  }
  load().catch((x) => body.replaceChildren(el('p', { class: 'error', role: 'alert', text: `The referral could not be opened: ${app.explain(x)}` })));
  return done;
}

/** Saves text as a file (a download in the page). */
export function saveFile(el, name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** The state of one referral with its actions (review/approve, retry, download). */
export function referralItem(app, r, { onEdit } = {}) {
  const { el, client } = app;
  const me = app.me.id;
  const act = [];
  if (awaitsMe(r, me)) act.push(el('button', { type: 'button', id: `ref-approve-${r.referral}`, text: 'Review and approve', onclick: () => review(app, r.referral) }));
  else act.push(el('button', { type: 'button', class: 'secondary', id: `ref-view-${r.referral}`, text: 'Read it', onclick: () => review(app, r.referral) }));
  if (r.state === 'draft' && onEdit) act.push(el('button', { type: 'button', class: 'secondary', id: `ref-edit-${r.referral}`, text: 'Edit', onclick: () => onEdit(r) }));
  if (r.state === 'failed') act.push(el('button', { type: 'button', id: `ref-retry-${r.referral}`, text: 'Send again', onclick: async () => {
    try { await client.retryReferral(r.referral); app.toast(`Referral #${r.referral} is being sent again.`); } catch (x) { app.toast(app.explain(x), 'error'); }
  } }));
  if (r.state !== 'draft') act.push(el('button', { type: 'button', class: 'secondary', id: `ref-download-${r.referral}`, text: 'Download the sealed file', onclick: async () => {
    try {
      const d = await client.downloadReferral(r.referral);
      saveFile(el, d.name, d.text, 'application/json');
      app.toast(`Saved ${d.name}: sealed to the partner's key; only they can open it.`);
    } catch (x) { app.toast(app.explain(x), 'error'); }
  } }));
  return el('li', { class: `ref ref-${r.state}`, id: `ref-${r.referral}`, 'data-referral': String(r.referral), 'data-state': r.state },
    el('div', {}, el('strong', { text: `Referral #${r.referral}: ${KINDS[r.kind] ?? r.kind}` }), ` · chat ${r.conversation} · revision ${r.revision}`),
    el('div', { class: 'ref-state', id: `ref-state-${r.referral}`, text: stateText(r) }),
    el('div', { class: 'meta', id: `ref-approvals-${r.referral}`, text: approvalsText(r, me) }),
    el('p', { class: 'actions' }, act));
}

/**
 * The supervisor's referral section of an escalation's case. ctx: the
 * escalations view's (client, secure, me, el, toast, explain, taxonomy,
 * reauth); hooks: {escalation() (the object now), consents() ([{seq,
 * question, answer, answer_seq}] from the chat as read), bundle() (the
 * countersigned bundle built in this case: {text, digest} or null),
 * buildBundle() (builds one from the ticked messages, or throws with code
 * 'choose'), fresh(fn)}. Returns {el, update()} — the form keeps what was
 * typed across updates.
 */
export function referralSection(ctx, hooks) {
  const { el, client, secure } = ctx;
  const tagLabels = new Map(ctx.taxonomy.groups.flatMap((g) => g.tags.map((x) => [x.id, x.label])));
  const app = { ...ctx, consentWords: hooks.consentWords, tagLabel: (x) => tagLabels.get(x) ?? x };
  let editing = null; // {referral, revision} while editing a draft
  const list = el('ul', { id: 'ref-list', class: 'ref-list', 'aria-label': 'Referrals of this escalation' });
  const status = el('p', { id: 'ref-status', role: 'status' });
  const error = el('p', { id: 'ref-error', class: 'error', role: 'alert' });
  const formTitle = el('h3', { id: 'ref-form-title', text: 'New referral' });

  // ---- the form ----
  const radio = (name, v, label, checked) => el('label', { class: 'inline', for: `${name}-${v}` },
    el('input', { type: 'radio', name, id: `${name}-${v}`, value: v, checked }), label);
  const kind = el('fieldset', { id: 'ref-kind' }, el('legend', { text: 'Kind' }),
    Object.entries(KINDS).map(([v, label]) => radio('ref-kind', v, label, v === 'police')));
  const legal = el('select', { id: 'ref-legal', required: true }, el('option', { value: '', text: 'Choose the legal basis…' }),
    Object.entries(LEGAL_BASES).map(([v, label]) => el('option', { value: v, text: label })));
  const legalText = el('input', { id: 'ref-legal-text', maxlength: '500', 'aria-describedby': 'ref-legal-hint' });
  const urgency = el('select', { id: 'ref-urgency' }, ['immediate', 'urgent', 'routine'].map((v) => el('option', { value: v, text: v[0].toUpperCase() + v.slice(1) })));
  const consentSel = el('select', { id: 'ref-consent' });
  const consentAns = el('select', { id: 'ref-consent-answer' }, Object.entries(CONSENT_ANSWERS).map(([v, label]) => el('option', { value: v, text: label })));
  const consentBox = el('fieldset', { id: 'ref-consent-box' }, el('legend', { text: 'Consent record' }),
    el('p', { class: 'muted', id: 'ref-consent-hint', text: 'From the consent questions asked in the chat and the young person\'s answers (read the chat to see them). The seq names the question in the chat\'s hash chain.' }),
    el('label', { for: 'ref-consent', text: 'Consent question' }), consentSel,
    el('label', { for: 'ref-consent-answer', text: 'Their answer' }), consentAns);
  let consentChosen = false; // staff chose one: pushes keep it
  consentSel.addEventListener('input', () => { consentChosen = true; });
  consentSel.addEventListener('change', () => {
    const c = hooks.consents().find((x) => String(x.seq) === consentSel.value);
    consentAns.disabled = !c;
    if (c) consentAns.value = c.answer ?? 'no_answer';
  });
  const people = el('div', { id: 'ref-people' });
  let personN = 0;
  const addPerson = (p = {}) => {
    const n = ++personN;
    const row = el('fieldset', { class: 'ref-person', 'data-person': String(n) }, el('legend', { text: `Person reported ${people.children.length + 1}` }),
      PERSON_FIELDS.flatMap(([k, label, type]) => [el('label', { for: `ref-p${n}-${k}`, text: label }),
        el('input', { id: `ref-p${n}-${k}`, 'data-key': k, type, maxlength: '500', value: k === 'reportedAt' && p[k] ? p[k].slice(0, 16) : p[k] ?? '', autocomplete: 'off', spellcheck: 'false' })]),
      el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary small', id: `ref-p${n}-remove`, text: 'Remove this person', onclick: () => { row.remove(); renumber(); } })));
    people.append(row);
  };
  const renumber = () => [...people.children].forEach((f, i) => { f.querySelector('legend').textContent = `Person reported ${i + 1}`; });
  const peopleBox = el('fieldset', { id: 'ref-people-box' }, el('legend', { text: 'People reported (the other person: what staff know of them)' }),
    el('p', { class: 'muted', text: 'As the young person gave them: the platform, usernames, profile links. Typed here, they are sealed in this browser; the server never sees them.' }),
    people, el('p', { class: 'actions' }, el('button', { type: 'button', class: 'secondary', id: 'ref-person-add', text: 'Add a person', onclick: () => addPerson() })));
  const tagsBox = el('fieldset', { id: 'ref-tags' }, el('legend', { text: 'Triage tags' }),
    el('div', { class: 'tags' }, ctx.taxonomy.groups.map((g) => el('div', {}, el('h4', { text: g.label }),
      g.tags.map((x) => el('label', { class: 'inline', for: `ref-tag-${x.id}` }, el('input', { type: 'checkbox', id: `ref-tag-${x.id}`, value: x.id }), x.label))))));
  const idDetails = el('div', { id: 'ref-identity-details', hidden: true },
    IDENTITY_FIELDS.flatMap(([k, label]) => [el('label', { for: `ref-id-${k}`, text: label }), el('input', { id: `ref-id-${k}`, 'data-key': k, maxlength: '500', autocomplete: 'off' })]));
  const idReason = el('select', { id: 'ref-identity-reason' });
  const idHint = el('p', { id: 'ref-identity-hint', class: 'muted' });
  const identity = el('fieldset', { id: 'ref-identity' }, el('legend', { text: 'The child\'s identity' }),
    el('p', { text: 'Include who the young person is only with their consent (the consent record says asked, answer Yes) or when their life is at risk. The server refuses anything else, and the referral says which applies.' }),
    radio('ref-identity', 'no', 'Not included', true), radio('ref-identity', 'yes', 'Included', false),
    el('label', { for: 'ref-identity-reason', text: 'Why' }), idReason, idHint, idDetails);
  const fillReasons = () => {
    const inc = identity.querySelector('input[name="ref-identity"]:checked')?.value === 'yes';
    const old = idReason.value;
    idReason.replaceChildren(...Object.entries(inc ? IDENTITY_IN : IDENTITY_OUT).map(([v, label]) => el('option', { value: v, text: label, selected: v === old })));
    idDetails.hidden = !inc;
    idHint.textContent = inc ? 'Type only what the partner needs to find and protect them.' : '';
  };
  identity.addEventListener('change', (ev) => { if (ev.target.name === 'ref-identity') fillReasons(); });
  fillReasons();
  const summary = el('textarea', { id: 'ref-summary', rows: '5', maxlength: '20000' });
  const partner = el('input', { id: 'ref-partner-key', spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'ref-partner-fp' });
  const partnerFp = el('p', { id: 'ref-partner-fp', class: 'muted' });
  const showFp = () => {
    try { partnerFp.textContent = `Fingerprint ${fingerprint(E.unb64(partner.value.trim(), 32))}: compare it with the one the partner gave you (by phone or in person) before the first referral.`; } catch { partnerFp.textContent = partner.value.trim() ? 'Not a key: 43 characters of base64url.' : 'The partner\'s public key (base64url), as your administrator or the partner gave it to you.'; }
  };
  partner.addEventListener('input', showFp);
  const bundleLine = el('p', { id: 'ref-bundle' });
  const save = el('button', { type: 'submit', id: 'ref-save', text: 'Seal and save as a draft' });
  const cancelEdit = el('button', { type: 'button', class: 'secondary', id: 'ref-edit-cancel', text: 'Stop editing', hidden: true, onclick: () => { editing = null; formTitle.textContent = 'New referral'; cancelEdit.hidden = true; } });
  const form = el('form', { id: 'ref-form', novalidate: true }, formTitle, kind,
    el('label', { for: 'ref-legal', text: 'Legal basis' }), legal,
    el('label', { for: 'ref-legal-text', text: 'The legal basis in words (law, section)' }), el('p', { id: 'ref-legal-hint', class: 'hint muted', text: 'For example: Children Act 2004 s.11.' }), legalText,
    el('label', { for: 'ref-urgency', text: 'Urgency' }), urgency,
    consentBox, peopleBox, tagsBox, identity,
    el('label', { for: 'ref-summary', text: 'Summary for the partner (what happened, what is needed)' }), summary,
    el('fieldset', { id: 'ref-bundle-box' }, el('legend', { text: 'Evidence bundle' }), bundleLine),
    el('fieldset', { id: 'ref-partner' }, el('legend', { text: 'Sealed to the partner' }),
      el('label', { for: 'ref-partner-key', text: 'Partner\'s public key' }), partner, partnerFp),
    error, el('p', { class: 'actions' }, save, cancelEdit));

  const FIELD_BOX = { identity_reason: identity, identity_included: identity, consent_asked: consentBox, consent_answer: consentBox, consent_seq: consentBox,
    legal_basis: legal, urgency, tags: tagsBox, bundle_digest: bundleLine, sealed_to: partner, sealed: partner, kind };
  const clearInvalid = () => { for (const n of form.querySelectorAll('[aria-invalid]')) n.removeAttribute('aria-invalid'); form.querySelectorAll('.invalid').forEach((n) => n.classList.remove('invalid')); };
  const refuse = (text, field) => {
    error.textContent = text;
    const box = FIELD_BOX[field];
    if (box) {
      box.classList.add('invalid');
      if (/^(INPUT|SELECT|TEXTAREA)$/.test(box.tagName)) box.setAttribute('aria-invalid', 'true');
      box.setAttribute('aria-describedby', [box.getAttribute('aria-describedby'), 'ref-error'].filter(Boolean).join(' '));
    }
    error.focus?.();
  };
  error.tabIndex = -1;

  function fillConsents(keep) {
    const cs = hooks.consents();
    consentSel.replaceChildren(el('option', { value: '', text: 'No consent question was asked' }),
      ...cs.map((c) => el('option', { value: String(c.seq), text: `Seq ${c.seq}: ${c.question ? hooks.consentWords(c.question) : 'a consent question'} — ${c.answer ? `answered ${CONSENT_ANSWERS[c.answer] ?? c.answer}` : 'no answer'}` })));
    const want = keep ?? (cs.find((c) => c.answer === 'yes') ?? cs[cs.length - 1])?.seq;
    consentSel.value = want ? String(want) : '';
    consentSel.dispatchEvent(new Event('change'));
  }

  function showBundle() {
    const b = hooks.bundle();
    bundleLine.textContent = b ? `Attached: the bundle built above, digest ${E.hex(b.digest)}, countersigned by the service.`
      : 'None yet. A police referral needs one: choose the messages in "Evidence bundle" above; saving builds it from the ticked messages.';
  }

  function document_() {
    const e = hooks.escalation();
    const k = kind.querySelector('input:checked')?.value ?? 'police';
    const cs = hooks.consents().find((x) => String(x.seq) === consentSel.value);
    const inc = identity.querySelector('input[name="ref-identity"]:checked')?.value === 'yes';
    const ident = { included: inc, reason: idReason.value };
    if (inc) for (const i of idDetails.querySelectorAll('input')) if (i.value.trim()) ident[i.dataset.key] = i.value.trim();
    const persons = [...people.children].map((f) => {
      const p = {};
      for (const i of f.querySelectorAll('input')) {
        const v = i.value.trim();
        if (v) p[i.dataset.key] = i.dataset.key === 'reportedAt' ? new Date(v).toISOString() : v;
      }
      return p;
    }).filter((p) => Object.keys(p).length);
    return {
      format: FORMAT_DOCUMENT, kind: k, escalation: e.escalation, conversation: Number(e.conversation),
      legal_basis: legal.value, legal_basis_text: legalText.value.trim(), urgency: urgency.value,
      consent: cs ? { asked: true, seq: cs.seq, answer: consentAns.value, answer_seq: cs.answer_seq ?? null, question: cs.question ?? null } : { asked: false },
      child_identity: ident, personOrUserReported: persons,
      triage_tags: [...tagsBox.querySelectorAll('input:checked')].map((i) => i.value), summary: summary.value.trim(),
      hash_lists: hooks.hashLists?.() ?? [],
      bundle_digest: null, created_at: new Date().toISOString(),
    };
  }

  function fillFrom(doc) {
    for (const i of kind.querySelectorAll('input')) i.checked = i.value === doc.kind;
    legal.value = doc.legal_basis ?? '';
    legalText.value = doc.legal_basis_text ?? '';
    urgency.value = doc.urgency ?? 'urgent';
    fillConsents(doc.consent?.asked ? doc.consent.seq : 0);
    if (doc.consent?.asked) consentAns.value = doc.consent.answer;
    for (const i of identity.querySelectorAll('input[name="ref-identity"]')) i.checked = (i.value === 'yes') === !!doc.child_identity?.included;
    fillReasons();
    idReason.value = doc.child_identity?.reason ?? idReason.value;
    for (const i of idDetails.querySelectorAll('input')) i.value = doc.child_identity?.[i.dataset.key] ?? '';
    people.replaceChildren();
    for (const p of doc.personOrUserReported ?? []) addPerson(p);
    if (!people.children.length) addPerson();
    for (const i of tagsBox.querySelectorAll('input')) i.checked = (doc.triage_tags ?? []).includes(i.value);
    summary.value = doc.summary ?? '';
  }

  async function edit(r) {
    const got = await client.getReferral(r.referral);
    const doc = openStaffCopy(secure, String(r.conversation), got.staffCopy);
    if (!doc) { ctx.toast('This browser cannot open the staff copy of that referral: read the chat first.', 'error'); return; }
    fillFrom(doc);
    editing = { referral: r.referral, revision: got.referral.revision };
    formTitle.textContent = `Editing referral #${r.referral} (revision ${got.referral.revision}): saving makes a new revision and clears both approvals`;
    cancelEdit.hidden = false;
    formTitle.tabIndex = -1;
    formTitle.focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearInvalid();
    error.textContent = '';
    const e = hooks.escalation();
    const conv = String(e.conversation);
    let pk;
    try { pk = E.unb64(partner.value.trim(), 32); } catch { refuse('Enter the partner\'s public key (43 characters of base64url) first.', 'sealed_to'); return; }
    const doc = document_();
    if (!doc.legal_basis) { refuse('Choose the legal basis.', 'legal_basis'); return; }
    save.disabled = true;
    status.textContent = 'Sealing the referral…';
    try {
      let b = hooks.bundle();
      if (!b && doc.kind === 'police') {
        status.textContent = 'Building the evidence bundle from the ticked messages…';
        b = await hooks.buildBundle();
        showBundle();
      }
      doc.bundle_digest = b ? E.hex(b.digest) : null;
      const key = staffCopyKey(secure, conv, e.note);
      if (!key) throw Object.assign(new Error('this browser has no note key of this chat yet: read the chat first'), { code: 'no_keys' });
      const fields = {
        legal_basis: doc.legal_basis, urgency: doc.urgency,
        consent: doc.consent.asked ? { asked: true, answer: doc.consent.answer, seq: doc.consent.seq } : { asked: false },
        identity: { included: doc.child_identity.included, reason: doc.child_identity.reason }, tags: doc.triage_tags,
        bundleDigest: b?.digest, sealed: await sealPackage(doc, b?.text, pk), sealedTo: pk,
        staffCopy: E.sealNote({ conv: Number(conv), key, text: JSON.stringify(doc) }),
      };
      const r = editing ? await client.updateReferral(editing.referral, editing.revision, fields) : await client.createReferral(e.escalation, doc.kind, fields);
      status.textContent = editing ? `Referral #${r.referral} saved as revision ${r.revision}: both approvals are needed again.` : `Referral #${r.referral} saved as a draft. The counsellor and you each approve it before it is sent.`;
      editing = { referral: r.referral, revision: r.revision };
      formTitle.textContent = `Editing referral #${r.referral} (revision ${r.revision}): saving makes a new revision and clears both approvals`;
      cancelEdit.hidden = false;
      upsert(r);
    } catch (x) {
      status.textContent = '';
      if (x.code === 'cancelled') return;
      if (x.code === 'choose') { refuse(x.message, 'bundle_digest'); return; }
      const byServer = ['bad_field', 'bad_state', 'forbidden', 'conflict', 'not_found', 'reauth_required'].includes(x.code);
      if (!byServer) { refuse(`Not saved: ${x.code === 'no_keys' ? x.message : ctx.explain(x)}.`); return; }
      refuse(`The server refused the referral: ${x.message ?? ctx.explain(x)}${x.field ? ` (field ${x.field})` : ''}. Nothing was saved.`, x.field);
    } finally { save.disabled = false; }
  });

  // ---- the list ----
  const mine = new Map();
  function renderList() {
    const rs = [...mine.values()].sort((a, b) => b.referral - a.referral);
    list.replaceChildren(...rs.map((r) => referralItem(app, r, { onEdit: (x) => edit(x).catch((y) => ctx.toast(ctx.explain(y), 'error')) })));
    list.hidden = !rs.length;
  }
  function upsert(r) {
    if (r.escalation !== hooks.escalation().escalation) return;
    const old = mine.get(r.referral);
    mine.set(r.referral, r);
    renderList();
    if (old && old.state !== r.state) status.textContent = `Referral #${r.referral}: ${stateText(r)}.`;
    if (r.sealed_to && !partner.value) { partner.value = r.sealed_to; showFp(); }
    if (editing?.referral === r.referral && r.state !== 'draft') { editing = null; formTitle.textContent = 'New referral'; cancelEdit.hidden = true; }
    else if (editing?.referral === r.referral) editing.revision = r.revision;
  }
  const off = client.on('referral', (m) => upsert(m.referral));

  const section = el('section', { id: 'esc-referral', class: 'esc-referral', 'aria-labelledby': 'ref-title' },
    el('h2', { id: 'ref-title', text: 'Referral' }),
    el('p', { class: 'muted', text: 'A police or safeguarding referral: sealed in this browser to the partner\'s key, approved by the counsellor and by you (each with a fresh authenticator code), then sent to the partner. The server keeps only ciphertext and the coded fields it checks.' }),
    list, status, form);
  addPerson();

  async function init() {
    const e = hooks.escalation();
    urgency.value = e.urgency;
    for (const i of kind.querySelectorAll('input')) i.checked = i.value === (e.decision === 'safeguarding_referral' ? 'safeguarding' : 'police');
    for (const t of (e.topics ?? '').split(',').filter(Boolean)) { const b = tagsBox.querySelector(`#ref-tag-${CSS.escape(t)}`); if (b) b.checked = true; }
    showFp();
    try {
      const org = await client.request({ type: 'e2e.org' });
      const k = org.partner_key ?? org.referral_partner_key;
      if (k && !partner.value) { partner.value = k; showFp(); }
    } catch { /* typed by staff */ }
    try { for (const r of await client.referrals(e.escalation)) upsert(r); } catch (x) { status.textContent = `Could not load the referrals: ${ctx.explain(x)}`; }
  }
  init();
  return {
    el: section,
    update() { fillConsents(consentChosen || editing ? Number(consentSel.value || 0) : undefined); showBundle(); },
    edit,
    unmount: off,
  };
}
