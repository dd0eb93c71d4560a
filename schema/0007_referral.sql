-- 0007_referral: police and safeguarding referrals of an escalated
-- conversation, their two-person approval and their delivery to the
-- partner endpoint (docs/escalation.md, docs/protocol.md §5.15).
--
-- What a referral says about people — the offender identifiers staff typed,
-- the child's identity when it is included, the free-text legal basis and
-- notes — and the evidence bundle (which discloses chat messages) are never
-- stored here in plaintext: the supervisor's or counsellor's browser seals
-- the referral package to the partner's public key (crypto_box_seal,
-- `sealed`) and, for staff to read it back, seals its own copy with the
-- conversation's note key (`staff_copy`). The server keeps only the
-- ciphertexts and the fields it enforces rules on: kind, legal-basis code,
-- urgency, the consent record (asked, answer, which chat seq), whether the
-- child's identity is included and why (a code), triage tag ids and the
-- bundle's digest. service/referral.c is the only writer; every change is
-- audited in the same transaction.
--
-- state:  draft    -> approved   (the counsellor and the claiming supervisor
--                                 both approved this revision)
--         approved -> sent       (the first delivery attempt began)
--         sent     -> acknowledged (the partner answered 2xx with an ack id)
--                  -> failed     (a permanent 4xx, or attempts used up)
--         failed   -> sent       (referral.retry)
-- Any edit of a draft makes a new revision and clears both approvals.
CREATE TABLE referral (
    id                INTEGER PRIMARY KEY,
    escalation_id     INTEGER NOT NULL REFERENCES escalation(id) ON DELETE CASCADE,
    conversation_id   INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL CHECK (kind IN ('police', 'safeguarding')),
    state             TEXT NOT NULL DEFAULT 'draft'
                      CHECK (state IN ('draft', 'approved', 'sent',
                                       'acknowledged', 'failed')),
    revision          INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
    legal_basis       TEXT NOT NULL
                      CHECK (legal_basis IN ('consent', 'vital_interests',
                                             'legal_obligation', 'public_task',
                                             'legitimate_interests')),
    urgency           TEXT NOT NULL
                      CHECK (urgency IN ('immediate', 'urgent', 'routine')),
    consent_asked     INTEGER NOT NULL CHECK (consent_asked IN (0, 1)),
    consent_answer    TEXT CHECK (consent_answer IN ('yes', 'no', 'not_sure', 'no_answer')),
    consent_seq       INTEGER CHECK (consent_seq >= 1),
    identity_included INTEGER NOT NULL CHECK (identity_included IN (0, 1)),
    identity_reason   TEXT NOT NULL
                      CHECK (identity_reason IN ('consent', 'life_at_risk',
                                                 'no_consent', 'not_needed',
                                                 'not_known')),
    tags              TEXT NOT NULL DEFAULT '',                  -- taxonomy tag ids, comma-separated
    bundle_digest     BLOB CHECK (bundle_digest IS NULL OR length(bundle_digest) = 32),
    sealed            BLOB,                                      -- crypto_box_seal to the partner key
    sealed_to         BLOB CHECK (sealed_to IS NULL OR length(sealed_to) = 32),
    staff_copy        BLOB CHECK (staff_copy IS NULL OR length(staff_copy) <= 65536),
    created_by        INTEGER NOT NULL REFERENCES staff(id),
    created_at        INTEGER NOT NULL,                          -- unix ms
    updated_at        INTEGER NOT NULL,
    counsellor_ok_by  INTEGER REFERENCES staff(id),              -- the counsellor's approval
    counsellor_ok_at  INTEGER,
    supervisor_ok_by  INTEGER REFERENCES staff(id),              -- the claimer's approval
    supervisor_ok_at  INTEGER,
    approved_at       INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,                -- delivery attempts begun
    next_attempt_at   INTEGER,                                   -- when delivery is due (pending states)
    sent_at           INTEGER,                                   -- first attempt
    last_error        TEXT CHECK (last_error IS NULL OR length(last_error) <= 300),
    ack_id            TEXT CHECK (ack_id IS NULL OR length(ack_id) <= 128),
    acked_at          INTEGER,
    CHECK (consent_asked = 1 OR (consent_answer IS NULL AND consent_seq IS NULL)),
    CHECK (identity_included = 0 OR identity_reason IN ('consent', 'life_at_risk')),
    CHECK (identity_reason != 'consent' OR consent_answer = 'yes'),
    CHECK (counsellor_ok_by IS NULL OR counsellor_ok_by IS NOT supervisor_ok_by),
    CHECK (state = 'draft' OR (counsellor_ok_by IS NOT NULL AND supervisor_ok_by IS NOT NULL
                               AND sealed IS NOT NULL)),
    CHECK ((state = 'acknowledged') = (ack_id IS NOT NULL))
) STRICT;

CREATE INDEX referral_escalation ON referral(escalation_id);
CREATE INDEX referral_pending ON referral(next_attempt_at) WHERE state IN ('approved', 'sent');
