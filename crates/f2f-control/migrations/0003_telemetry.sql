-- Telemetry from agents. Batches are recorded so a retried one counts once.
CREATE TABLE telemetry_batches (
    agent  BLOB NOT NULL,
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
);

-- Billing: bytes per agent, window and swarm; a window reported again adds up.
CREATE TABLE billing (
    agent           BLOB NOT NULL,
    window          INTEGER NOT NULL,
    swarm           BLOB NOT NULL,
    stream          TEXT NOT NULL,
    cdn_bytes       INTEGER NOT NULL,
    p2p_bytes       INTEGER NOT NULL,
    uploaded_bytes  INTEGER NOT NULL,
    PRIMARY KEY (agent, window, swarm)
);

-- Verified delivery receipts: each (uploader, receiver, window, swarm) counts once.
CREATE TABLE receipts (
    uploader  BLOB NOT NULL,
    receiver  BLOB NOT NULL,
    window    INTEGER NOT NULL,
    swarm     BLOB NOT NULL,
    bytes     INTEGER NOT NULL,
    segments  INTEGER NOT NULL,
    PRIMARY KEY (uploader, receiver, window, swarm)
);

-- Health: per agent, window and swarm.
CREATE TABLE health (
    agent        BLOB NOT NULL,
    window       INTEGER NOT NULL,
    swarm        BLOB NOT NULL,
    connections  INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    bans         INTEGER NOT NULL,
    peers        INTEGER NOT NULL,
    neighbours   TEXT NOT NULL,      -- JSON list of hex peer ids, as of the window's end
    PRIMARY KEY (agent, window, swarm)
);
