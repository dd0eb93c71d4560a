-- 0004_routing: what routing, receipts, transfers, supervisors, wrap-up,
-- shifts, alerts and statistics need. Still nothing that identifies a young
-- person. Times are unix milliseconds.

-- When a counsellor first accepted the conversation (NULL until then): the
-- wait a young person had is accepted_at - created_at, the handling time
-- ended_at - accepted_at. Statistics use only these and the intake columns.
ALTER TABLE conversation ADD COLUMN accepted_at INTEGER;
-- When the wrap-up was recorded (NULL until then).
ALTER TABLE conversation ADD COLUMN wrapped_at INTEGER;
-- How many times it was transferred between counsellors.
ALTER TABLE conversation ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0
    CHECK (transfers >= 0);
-- A supervisor who joined as a third party (NULL: none). Internal: the
-- young person is never told.
ALTER TABLE conversation ADD COLUMN supervisor_id INTEGER REFERENCES staff(id);
-- Receipts, as high-water marks of seq (never lowered): what the young
-- person's device confirmed receiving and reading, and the same for staff.
ALTER TABLE conversation ADD COLUMN contact_delivered INTEGER NOT NULL DEFAULT 0
    CHECK (contact_delivered >= 0);
ALTER TABLE conversation ADD COLUMN contact_read INTEGER NOT NULL DEFAULT 0
    CHECK (contact_read >= 0);
ALTER TABLE conversation ADD COLUMN staff_delivered INTEGER NOT NULL DEFAULT 0
    CHECK (staff_delivered >= 0);
ALTER TABLE conversation ADD COLUMN staff_read INTEGER NOT NULL DEFAULT 0
    CHECK (staff_read >= 0);

-- Statistics read conversations by the day they started.
CREATE INDEX conversation_by_created ON conversation(created_at);

-- A member of staff's shift: clocked in at started_at, out at ended_at
-- (NULL while on shift). Only counsellors on shift receive offers.
CREATE TABLE shift (
    id          INTEGER PRIMARY KEY,
    staff_id    INTEGER NOT NULL REFERENCES staff(id),
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
-- At most one open shift per member of staff.
CREATE UNIQUE INDEX shift_open ON shift(staff_id) WHERE ended_at IS NULL;
CREATE INDEX shift_by_start ON shift(started_at);

-- Alerts raised for supervisors (an offer nobody accepted, ...). kind is a
-- code ('offer_timeout', ...); staff_id and conversation_id say what it was
-- about; resolved_at is set when a supervisor dealt with it.
CREATE TABLE alert (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 32),
    staff_id        INTEGER REFERENCES staff(id),
    conversation_id INTEGER REFERENCES conversation(id) ON DELETE SET NULL,
    resolved_at     INTEGER
) STRICT;
CREATE INDEX alert_open ON alert(at) WHERE resolved_at IS NULL;
