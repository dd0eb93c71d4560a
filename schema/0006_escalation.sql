-- 0006_escalation: a counsellor's escalation of a conversation to a
-- supervisor (docs/escalation.md). The written parts a counsellor or a
-- supervisor types (the escalation note, the decision's reasons) are sealed
-- on their devices with the conversation's note key (docs/crypto.md, "Staff
-- notes"): the server stores them as ciphertext it cannot read, like every
-- other note. service/escalation.c is the only writer; every change is
-- audited in the same transaction.
--
-- state:  open     -> claimed   (a supervisor took it: they alone may read)
--         claimed  -> decided   (the claimer recorded the decision)
-- At most one escalation per conversation is undecided at a time.
CREATE TABLE escalation (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    reason          TEXT NOT NULL
                    CHECK (reason IN ('life_at_risk', 'sextortion_threat',
                                      'position_of_trust', 'harming_others',
                                      'asks_for_police')),
    urgency         TEXT NOT NULL
                    CHECK (urgency IN ('immediate', 'urgent', 'routine')),
    state           TEXT NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'claimed', 'decided')),
    raised_by       INTEGER NOT NULL REFERENCES staff(id), -- the counsellor
    raised_at       INTEGER NOT NULL,                       -- unix ms
    note            BLOB CHECK (note IS NULL OR length(note) <= 65536), -- sealed note, opaque
    claimed_by      INTEGER REFERENCES staff(id),           -- the supervisor
    claimed_at      INTEGER,
    decision        TEXT
                    CHECK (decision IN ('no_further_action',
                                        'safeguarding_referral',
                                        'police_referral')),
    reasons         BLOB CHECK (reasons IS NULL OR length(reasons) <= 65536), -- sealed, opaque
    decided_at      INTEGER,
    CHECK ((state = 'open') = (claimed_by IS NULL)),
    CHECK ((state = 'decided') = (decision IS NOT NULL))
) STRICT;

CREATE INDEX escalation_conversation ON escalation(conversation_id);
CREATE UNIQUE INDEX escalation_one_undecided ON escalation(conversation_id)
    WHERE state != 'decided';
CREATE INDEX escalation_undecided ON escalation(raised_at) WHERE state != 'decided';
