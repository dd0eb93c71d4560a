-- 0002_staff: staff accounts, their sessions, the audit chain and the
-- organisation's keys. No password, TOTP secret or session token is ever
-- stored in the clear: see docs/auth.md.

-- One member of staff. roles is a bit set: 1 counsellor, 2 supervisor,
-- 4 admin. state: 'pending' until enrolment is finished, then 'active';
-- 'disabled' locks the account out at once.
CREATE TABLE staff (
    id              INTEGER PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,          -- lower-case [a-z0-9._-], 3..32
    display_name    TEXT NOT NULL,
    roles           INTEGER NOT NULL CHECK (roles BETWEEN 1 AND 7),
    languages       TEXT NOT NULL DEFAULT '',      -- comma-separated tags, e.g. 'en,cy'
    skills          TEXT NOT NULL DEFAULT '',      -- comma-separated, e.g. 'online_exploitation'
    capacity        INTEGER NOT NULL DEFAULT 2 CHECK (capacity BETWEEN 0 AND 20),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'active', 'disabled')),
    pw_hash         TEXT,                          -- crypto_pwhash_str (Argon2id); NULL until enrolled
    totp_sealed     BLOB,                          -- TOTP secret sealed under the server key (keys.h)
    totp_last_step  INTEGER NOT NULL DEFAULT 0,    -- last accepted RFC 6238 step: never accepted twice
    enrol_hash      BLOB,                          -- keyed hash of the one-time enrolment code
    enrol_expires   INTEGER NOT NULL DEFAULT 0,    -- unix seconds
    failed_logins   INTEGER NOT NULL DEFAULT 0,    -- consecutive failures
    locked_until    INTEGER NOT NULL DEFAULT 0,    -- unix seconds; 0 = not locked
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- A login session. The 32-byte token is given to the client once; only its
-- keyed BLAKE2b hash is kept.
CREATE TABLE staff_session (
    token_hash      BLOB PRIMARY KEY,
    staff_id        INTEGER NOT NULL REFERENCES staff(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,              -- for the idle timeout
    expires_at      INTEGER NOT NULL,              -- absolute timeout
    reauth_at       INTEGER NOT NULL DEFAULT 0     -- last TOTP re-entry
) STRICT, WITHOUT ROWID;
CREATE INDEX staff_session_by_staff ON staff_session(staff_id);

-- Append-only audit log. entry_hash = BLAKE2b-256(prev_hash || encoding of
-- the row); see service/audit.h. Rows are never updated or deleted.
CREATE TABLE audit (
    seq             INTEGER PRIMARY KEY,           -- 1, 2, 3, ... without gaps
    at              INTEGER NOT NULL,              -- unix milliseconds
    actor           INTEGER,                       -- staff id, NULL for the system/anonymous
    action          TEXT NOT NULL,                 -- e.g. 'login.ok', 'staff.disable'
    target          INTEGER,                       -- staff id acted on, if any
    detail          TEXT NOT NULL DEFAULT '',      -- short JSON; never secrets or message text
    prev_hash       BLOB NOT NULL,
    entry_hash      BLOB NOT NULL
) STRICT;

-- The organisation's public keys and certificates, and the service's own
-- sealed private keys. name: 'root_pk', 'stamp_pk', 'stamp_sk_sealed',
-- 'stamp_cert'.
CREATE TABLE org_key (
    name            TEXT PRIMARY KEY,
    value           BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
