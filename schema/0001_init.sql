-- 0001_init: the store's own bookkeeping.
-- meta: small key/value facts about this database (instance id, creation time).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
