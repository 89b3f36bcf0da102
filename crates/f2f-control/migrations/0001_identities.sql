-- Peer identities the control plane certified, and what it revoked.
CREATE TABLE identities (
    public_key  BLOB PRIMARY KEY,    -- 48-byte compressed BLS key
    session     TEXT NOT NULL,       -- the viewer session id from the CDN token
    swarm       BLOB NOT NULL,       -- 32-byte swarm id the certificate is scoped to
    issued_at   INTEGER NOT NULL,    -- Unix seconds, first issue
    not_after   INTEGER NOT NULL     -- Unix seconds, latest certificate's expiry
);
CREATE INDEX identities_by_session ON identities (session);

CREATE TABLE revocations (
    serial  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL CHECK (kind IN ('session', 'key')),
    value   BLOB NOT NULL,           -- 16-byte certificate session id, or 48-byte key
    at      INTEGER NOT NULL
);
