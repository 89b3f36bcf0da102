-- Signed versions of the remote configuration, newest last.
CREATE TABLE config_versions (
    version    INTEGER PRIMARY KEY,
    body       TEXT NOT NULL,       -- the RemoteConfig's JSON, exactly as signed
    signature  BLOB NOT NULL,       -- the operator's 96-byte signature over body
    at         INTEGER NOT NULL     -- Unix seconds
);
