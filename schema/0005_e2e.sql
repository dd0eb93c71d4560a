-- 0005_e2e: end-to-end encryption (docs/crypto.md). The server keeps only
-- public keys, certificates, ciphertext, commitments (inside the stored
-- envelopes), chain hashes, signed checkpoints and sealed key wraps. Times
-- are unix milliseconds unless said otherwise.

-- The hash chain over a conversation's events: the head after this event
-- (32 bytes). NULL for events stored before this migration: the chain of such
-- a conversation starts at its first event stored after it.
ALTER TABLE event ADD COLUMN chain BLOB CHECK (chain IS NULL OR length(chain) = 32);
-- The conversation's chain head (the last event's chain; NULL = none yet).
ALTER TABLE conversation ADD COLUMN chain_head BLOB
    CHECK (chain_head IS NULL OR length(chain_head) = 32);
-- The handshake: the seq of the young person's latest hello (0 = none), the
-- current epoch (the seq of the accept that started it; 0 = no keys yet) and
-- the next message counter in each direction within that epoch.
ALTER TABLE conversation ADD COLUMN e2e_hello INTEGER NOT NULL DEFAULT 0
    CHECK (e2e_hello >= 0);
ALTER TABLE conversation ADD COLUMN e2e_epoch INTEGER NOT NULL DEFAULT 0
    CHECK (e2e_epoch >= 0);
ALTER TABLE conversation ADD COLUMN e2e_next_contact INTEGER NOT NULL DEFAULT 0
    CHECK (e2e_next_contact BETWEEN 0 AND 4294967295);
ALTER TABLE conversation ADD COLUMN e2e_next_staff INTEGER NOT NULL DEFAULT 0
    CHECK (e2e_next_staff BETWEEN 0 AND 4294967295);

-- Staff devices: a member of staff's browser registers its public keys with
-- a proof of possession; an admin's device certifies them (cert + the
-- admin device's own cert as issuer); an admin device itself is certified
-- by the organisation root with `helplinectl certify-device`.
CREATE TABLE device (
    id           INTEGER PRIMARY KEY,                      -- device id
    staff_id     INTEGER NOT NULL REFERENCES staff(id),    -- whose device
    sign_pk      BLOB NOT NULL UNIQUE
                 CHECK (length(sign_pk) = 32),             -- Ed25519 public key
    box_pk       BLOB NOT NULL
                 CHECK (length(box_pk) = 32),              -- X25519 public key
    request_sig  BLOB NOT NULL
                 CHECK (length(request_sig) = 64),         -- proof of possession (docs/crypto.md)
    created_at   INTEGER NOT NULL,                         -- unix ms: registered
    cert         BLOB CHECK (cert IS NULL OR length(cert) BETWEEN 100 AND 300), -- the certificate; NULL until certified
    issuer       BLOB CHECK (issuer IS NULL OR length(issuer) BETWEEN 100 AND 300), -- the issuing admin device's certificate; NULL for one the root certified
    cert_hash    BLOB UNIQUE
                 CHECK (cert_hash IS NULL OR length(cert_hash) = 32), -- H(cert)
    certified_at INTEGER,                                  -- unix ms
    certified_by INTEGER REFERENCES staff(id),             -- the admin (NULL: the root, by helplinectl)
    revoked_at   INTEGER                                   -- unix ms; NULL = not revoked
) STRICT;
CREATE INDEX device_by_staff ON device(staff_id);

-- Signed revocations, as clients fetch them (docs/crypto.md): a certificate
-- hash, and the statement signed by an admin device (signer = that device's
-- certificate) or by the root (signer NULL).
CREATE TABLE revocation (
    cert_hash  BLOB PRIMARY KEY CHECK (length(cert_hash) = 32),
    statement  BLOB NOT NULL CHECK (length(statement) = 122),
    signer     BLOB CHECK (signer IS NULL OR length(signer) BETWEEN 100 AND 300),
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Checkpoints of a conversation's hash chain, signed with the STAMP key.
CREATE TABLE checkpoint (
    conversation_id INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL CHECK (seq >= 1),        -- the event the head is after
    at              INTEGER NOT NULL,                         -- unix ms: when signed
    head            BLOB NOT NULL CHECK (length(head) = 32),
    signature       BLOB NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (conversation_id, seq)
) STRICT, WITHOUT ROWID;

-- Key wraps: a conversation's chain roots sealed to one device (or to a
-- young person's return-code box key), with the wrapping device's signature.
CREATE TABLE key_wrap (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    to_device       INTEGER REFERENCES device(id),             -- recipient device; NULL = the young person's return key
    from_device     INTEGER REFERENCES device(id),             -- wrapping device; NULL = the young person
    created_at      INTEGER NOT NULL,
    sealed          BLOB NOT NULL CHECK (length(sealed) BETWEEN 48 AND 65536),
    signature       BLOB NOT NULL CHECK (length(signature) = 64)
) STRICT;
CREATE INDEX key_wrap_by_conversation ON key_wrap(conversation_id, to_device);

-- A young person's return code: the public keys derived from it (the code
-- itself never reaches the server).
ALTER TABLE conversation ADD COLUMN return_sign_pk BLOB
    CHECK (return_sign_pk IS NULL OR length(return_sign_pk) = 32);
ALTER TABLE conversation ADD COLUMN return_box_pk BLOB
    CHECK (return_box_pk IS NULL OR length(return_box_pk) = 32);
CREATE UNIQUE INDEX conversation_by_return ON conversation(return_sign_pk)
    WHERE return_sign_pk IS NOT NULL;
