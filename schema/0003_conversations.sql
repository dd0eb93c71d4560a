-- 0003_conversations: the chat core's storage: conversations, their events,
-- the anonymous resume sessions of young people, and the out-of-hours inbox.
-- Nothing here identifies a young person: no IP address, no user agent, no
-- name, no account. Message bodies are stored only as ciphertext the server
-- cannot read (end-to-end encryption, DESIGN §5). Times are unix
-- milliseconds. The rules these tables rely on are enforced in
-- service/conversation.c, which is the only writer; the CHECKs below are the
-- last line of defence, not the validation.

-- One chat between a young person and the service.
--
-- state follows the lifecycle (service/conversation.h has the exact rules):
--   queued  -> offered  (offered to a counsellor)
--   offered -> active   (the counsellor accepted)
--   offered -> queued   (the offer timed out)
--   active  -> queued   (the counsellor was lost: disconnect, logout)
--   queued | offered | active -> ended
--   ended   -> wrapped  (the counsellor finished the wrap-up)
-- Events are numbered per conversation: last_seq is the highest seq in
-- event for this conversation (0 before the first), kept here so an append
-- costs one primary-key update instead of a MAX() scan.
CREATE TABLE conversation (
    id              INTEGER PRIMARY KEY,           -- the conversation id used everywhere
    created_at      INTEGER NOT NULL,              -- unix ms: when the young person started; the queue's waiting time counts from here
    ended_at        INTEGER,                       -- unix ms: when it ended; NULL while open
    state           TEXT NOT NULL
                    CHECK (state IN ('queued', 'offered', 'active', 'ended', 'wrapped')),
    state_at        INTEGER NOT NULL,              -- unix ms: last change of state (offer timeouts and the watchdog after a restart)
    risk            INTEGER NOT NULL DEFAULT 0
                    CHECK (risk BETWEEN 0 AND 3),  -- risk class: 0 standard, 1 elevated, 2 high, 3 immediate; the queue orders by it first
    topics          TEXT NOT NULL DEFAULT ''
                    CHECK (length(topics) <= 256), -- intake: comma-separated triage tag ids ('' = none given), e.g. 'sextortion,bullying'
    age_band        TEXT
                    CHECK (age_band IN ('u13', '13_15', '16_17', '18p')), -- intake: NULL = not given
    danger_now      INTEGER NOT NULL DEFAULT 0
                    CHECK (danger_now IN (0, 1)),  -- intake: 1 = "I'm in danger right now"
    language        TEXT
                    CHECK (length(language) <= 16), -- intake: language tag, e.g. 'en' or 'pt-BR'; NULL = not given
    counsellor_id   INTEGER REFERENCES staff(id),  -- the counsellor it is offered to or held by; NULL while queued and if never taken. Staff rows are disabled, never deleted.
    last_seq        INTEGER NOT NULL DEFAULT 0
                    CHECK (last_seq >= 0),         -- highest event.seq of this conversation (0: no events yet)
    outcome         TEXT
                    CHECK (length(outcome) <= 32), -- wrap-up: outcome code chosen by the counsellor; NULL until wrapped
    tags            TEXT
                    CHECK (length(tags) <= 256)    -- wrap-up: comma-separated triage tag ids; NULL until wrapped
) STRICT;

-- The open conversations in the order they arrived: rebuilding the
-- in-memory queue after a restart reads only these (hl_conv_each_open).
CREATE INDEX conversation_open ON conversation(created_at, id)
    WHERE state IN ('queued', 'offered', 'active');

-- One event of a conversation: a message, a system notice, a receipt, a
-- staff-only note, tag or transfer. seq is 1, 2, 3, ... per conversation
-- with no gaps (assigned from conversation.last_seq in the same
-- transaction), so a client that has seq N asks for everything after N.
-- Rows are never updated; they go with their conversation at retention
-- (ON DELETE CASCADE).
--
-- A rowid table, not WITHOUT ROWID, although rows are always found by
-- (conversation_id, seq): rows here are a few hundred bytes (padded
-- ciphertext), above the ~1/20 of a page SQLite advises for WITHOUT ROWID,
-- and many conversations append at once. Clustered by (conversation_id,
-- seq), every append lands on its own conversation's leaf page, so a batch
-- dirties (and spills) one page per active conversation; as a rowid table
-- the rows go to the table's tail and only the small key entries scatter.
-- Measured through the store (group commit, 300-byte payloads, 1000
-- conversations): about 9k appends/s clustered against 28k/s as rowid
-- (10 conversations: 26k against 46k; 10,000: 18k against 42k), while
-- reading 50 events of history costs 2x more (19k against 9k reads/s):
-- messages are written far more often than history is read.
CREATE TABLE event (
    conversation_id INTEGER NOT NULL
                    REFERENCES conversation(id) ON DELETE CASCADE, -- the conversation it belongs to
    seq             INTEGER NOT NULL CHECK (seq >= 1),             -- position in the conversation: 1, 2, 3, ... without gaps
    at              INTEGER NOT NULL,                              -- unix ms: when the server stored it (server time, not the sender's)
    kind            TEXT NOT NULL
                    CHECK (length(kind) BETWEEN 1 AND 32),         -- what it is: 'msg', 'system', 'receipt', 'note', ...
    sender          TEXT NOT NULL
                    CHECK (length(sender) BETWEEN 1 AND 32),       -- 'contact' (the young person), 'staff:<staff id>' or 'system'
    visibility      TEXT NOT NULL
                    CHECK (visibility IN ('all', 'staff')),        -- 'all': the young person sees it too; 'staff': internal, never sent to a contact socket
    client_id       TEXT
                    CHECK (length(client_id) BETWEEN 1 AND 64),    -- the sender's request id, for idempotent retries; NULL when none (system events)
    payload         BLOB
                    CHECK (length(payload) <= 65536),              -- opaque ciphertext (the server cannot read it); NULL when empty
    PRIMARY KEY (conversation_id, seq)                             -- a unique index here: a conversation's events from a seq on
) STRICT;

-- A retried request (same sender, same client_id) never makes a second
-- event: the append finds the first one here and re-acknowledges it. Rows
-- without a client_id take no space in this index.
CREATE UNIQUE INDEX event_client_id ON event(conversation_id, sender, client_id)
    WHERE client_id IS NOT NULL;

-- A young person's way back into their conversation after a reload or a
-- dropped connection, without an account. Their device holds a random
-- 32-byte secret; the server keeps only its keyed BLAKE2b hash
-- (hl_keys_hash_token), so a copy of the database cannot be used to take
-- over a conversation. The secret itself is never stored or logged.
CREATE TABLE contact_session (
    resume_hash     BLOB PRIMARY KEY
                    CHECK (length(resume_hash) = 32),              -- keyed hash of the resume secret
    conversation_id INTEGER NOT NULL
                    REFERENCES conversation(id) ON DELETE CASCADE, -- the conversation it resumes
    created_at      INTEGER NOT NULL,                              -- unix ms
    last_seen       INTEGER NOT NULL,                              -- unix ms: last use (resume or activity)
    expires_at      INTEGER NOT NULL                               -- unix ms: unusable from this time on
) STRICT, WITHOUT ROWID;
CREATE INDEX contact_session_by_conversation ON contact_session(conversation_id);
CREATE INDEX contact_session_by_expiry ON contact_session(expires_at);

-- Out-of-hours messages (the storage only; no code writes it yet). A young
-- person who chose a return code writes while no counsellor is on shift.
-- Their device derives two key pairs from the code (DESIGN §5): a signing
-- pair, whose public key identifies the thread and whose secret key proves
-- possession (the server sends a one-time challenge), and a box pair, to
-- which the reply is sealed. The message is sealed to the team's inbox key
-- (crypto_box_seal), so the server holds no plaintext at all, and nothing
-- in a row says who wrote it.
CREATE TABLE inbox_message (
    id              INTEGER PRIMARY KEY,                           -- message id
    return_pk       BLOB NOT NULL
                    CHECK (length(return_pk) = 32),                -- the return code's Ed25519 public key: the thread it belongs to
    reply_box_pk    BLOB NOT NULL
                    CHECK (length(reply_box_pk) = 32),             -- the return code's X25519 public key the reply is sealed to
    created_at      INTEGER NOT NULL,                              -- unix ms
    sealed          BLOB NOT NULL
                    CHECK (length(sealed) BETWEEN 1 AND 65536),    -- the message, crypto_box_seal'ed to the team inbox key
    reply           BLOB
                    CHECK (length(reply) BETWEEN 1 AND 65536),     -- the counsellor's reply sealed to reply_box_pk; NULL until answered
    replied_at      INTEGER,                                       -- unix ms: when the reply was stored; NULL until answered
    read_at         INTEGER                                        -- unix ms: when a counsellor first opened it; NULL = unread
) STRICT;
-- A returning young person's thread, oldest first.
CREATE INDEX inbox_message_by_return_pk ON inbox_message(return_pk, id);
-- The team's unread messages, oldest first.
CREATE INDEX inbox_message_unread ON inbox_message(created_at)
    WHERE read_at IS NULL;
