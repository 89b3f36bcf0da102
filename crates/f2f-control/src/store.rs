//! The control plane's database: SQLite (embedded, one file; `:memory:` for tests), schema
//! migrations from `migrations/` applied in order on open and tracked in `user_version`.

use std::path::Path;
use std::sync::Mutex;

use f2f_core::id::SwarmId;

use crate::config::SignedConfig;
use crate::telemetry::Batch;
use f2f_core::identity::{PublicKey, SessionId};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema's migrations, in order; each runs once.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_identities.sql"),
    include_str!("../migrations/0002_config.sql"),
    include_str!("../migrations/0003_telemetry.sql"),
    include_str!("../migrations/0004_health_late.sql"),
];

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

/// What was revoked, for the signed revocation list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    /// The newest revocation's serial (0: none).
    pub serial: u64,
    /// Revoked certificate sessions.
    pub sessions: Vec<SessionId>,
    /// Revoked keys.
    pub keys: Vec<PublicKey>,
}

/// Billing totals of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamBilling {
    /// The stream's canonical URL.
    pub stream: String,
    /// Media bytes from the CDN.
    pub cdn_bytes: u64,
    /// Media bytes from peers.
    pub p2p_bytes: u64,
    /// Bytes uploaded to peers.
    pub uploaded_bytes: u64,
}

/// A verified receipt, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The uploader's id.
    pub uploader: [u8; 32],
    /// The receiver's id.
    pub receiver: [u8; 32],
    /// Receipt window.
    pub window: u64,
    /// Bytes vouched for.
    pub bytes: u64,
    /// Segments vouched for.
    pub segments: u32,
}

/// One agent's latest health in one swarm, with its billing totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentView {
    /// The agent's node id.
    pub agent: [u8; 32],
    /// The swarm.
    pub swarm: [u8; 32],
    /// The stream's canonical URL.
    pub stream: String,
    /// Start of its latest health window.
    pub window: u64,
    /// Its data neighbours then (hex ids).
    pub neighbours: Vec<String>,
    /// Peers connected then.
    pub peers: u64,
    /// Totals over every window: failed loads, bans, late loads.
    pub failures: u64,
    /// See `failures`.
    pub bans: u64,
    /// See `failures`.
    pub late: u64,
    /// Billing totals.
    pub cdn_bytes: u64,
    /// See `cdn_bytes`.
    pub p2p_bytes: u64,
    /// See `cdn_bytes`.
    pub uploaded_bytes: u64,
}

/// One swarm's bytes in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowBytes {
    /// The swarm.
    pub swarm: [u8; 32],
    /// Window start.
    pub window: u64,
    /// Media bytes from the CDN.
    pub cdn_bytes: u64,
    /// Media bytes from peers.
    pub p2p_bytes: u64,
}

/// The database, behind one lock (requests are short; SQLite serialises writes anyway).
#[derive(Debug)]
pub struct Store(Mutex<Connection>);

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or a migration fails.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::migrate(Connection::open(path)?)
    }

    /// A database in memory, for tests and throwaway runs.
    ///
    /// # Errors
    ///
    /// A migration fails.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::migrate(Connection::open_in_memory()?)
    }

    fn migrate(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(done) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", n + 1)?;
            tx.commit()?;
        }
        Ok(Self(Mutex::new(conn)))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `key` as certified for `session` in `swarm` until `not_after`, unless the
    /// session already holds `limit` other keys. True if recorded.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn certify(
        &self,
        key: &PublicKey,
        session: &str,
        swarm: &SwarmId,
        now: u64,
        not_after: u64,
        limit: usize,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known: Option<String> = tx
            .query_row(
                "SELECT session FROM identities WHERE public_key = ?1",
                params![key.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            let held: usize = tx.query_row(
                "SELECT COUNT(*) FROM identities WHERE session = ?1",
                params![session],
                |r| r.get(0),
            )?;
            if held >= limit {
                return Ok(false);
            }
        } else if known.as_deref() != Some(session) {
            // A key belongs to the session that first certified it.
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO identities (public_key, session, swarm, issued_at, not_after)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (public_key) DO UPDATE SET not_after = excluded.not_after",
            params![
                key.as_bytes().as_slice(),
                session,
                swarm.as_bytes().as_slice(),
                now as i64,
                not_after as i64
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// The viewer session and swarm `key` was certified for, if it was.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn identity(&self, key: &PublicKey) -> Result<Option<(String, SwarmId)>, StoreError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT session, swarm FROM identities WHERE public_key = ?1",
                params![key.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(session, swarm)| {
            let swarm: [u8; 32] = swarm.try_into().ok()?;
            Some((session, SwarmId::from_bytes(swarm)))
        }))
    }

    /// Revokes a certificate session.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revoke_session(&self, session: &SessionId, now: u64) -> Result<(), StoreError> {
        self.revoke("session", &session.0, now)
    }

    /// Revokes a key.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revoke_key(&self, key: &PublicKey, now: u64) -> Result<(), StoreError> {
        self.revoke("key", key.as_bytes(), now)
    }

    fn revoke(&self, kind: &str, value: &[u8], now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO revocations (kind, value, at) VALUES (?1, ?2, ?3)",
            params![kind, value, now as i64],
        )?;
        Ok(())
    }

    /// Saves a signed config version.
    ///
    /// # Errors
    ///
    /// The database failed (or the version exists).
    pub fn save_config(
        &self,
        version: u64,
        config: &SignedConfig,
        now: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO config_versions (version, body, signature, at) VALUES (?1, ?2, ?3, ?4)",
            params![
                version as i64,
                config.body,
                config.signature.as_slice(),
                now as i64
            ],
        )?;
        Ok(())
    }

    /// The newest signed config version.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn latest_config(&self) -> Result<Option<SignedConfig>, StoreError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT body, signature FROM config_versions ORDER BY version DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(body, signature)| {
            Some(SignedConfig {
                body,
                signature: signature.try_into().ok()?,
            })
        }))
    }

    /// Records one telemetry batch: its billing and health rows and the receipts already
    /// verified from it, in one transaction. False (and nothing recorded) when the batch was
    /// recorded before (a retry).
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn record_batch(
        &self,
        batch: &Batch,
        receipts: &[(SwarmId, VerifiedReceipt)],
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let agent = batch.agent.0.as_slice();
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO telemetry_batches (agent, seq, at) VALUES (?1, ?2, ?3)",
            params![agent, batch.seq as i64, now as i64],
        )?;
        if fresh == 0 {
            return Ok(false);
        }
        for b in &batch.billing {
            tx.execute(
                "INSERT INTO billing (agent, window, swarm, stream, cdn_bytes, p2p_bytes, uploaded_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (agent, window, swarm) DO UPDATE SET
                   cdn_bytes = cdn_bytes + excluded.cdn_bytes,
                   p2p_bytes = p2p_bytes + excluded.p2p_bytes,
                   uploaded_bytes = uploaded_bytes + excluded.uploaded_bytes",
                params![
                    agent,
                    b.window as i64,
                    b.swarm.as_slice(),
                    b.stream,
                    b.cdn_bytes as i64,
                    b.p2p_bytes as i64,
                    b.uploaded_bytes as i64
                ],
            )?;
        }
        for h in &batch.health {
            let neighbours = serde_json::to_string(&h.neighbours).unwrap_or_default();
            tx.execute(
                "INSERT INTO health (agent, window, swarm, connections, failures, bans, peers, neighbours, late)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (agent, window, swarm) DO UPDATE SET
                   connections = connections + excluded.connections,
                   failures = failures + excluded.failures,
                   bans = bans + excluded.bans,
                   late = late + excluded.late,
                   peers = excluded.peers,
                   neighbours = excluded.neighbours",
                params![
                    agent,
                    h.window as i64,
                    h.swarm.as_slice(),
                    h.connections as i64,
                    h.failures as i64,
                    h.bans as i64,
                    h.peers as i64,
                    neighbours,
                    h.late as i64
                ],
            )?;
        }
        for (swarm, r) in receipts {
            tx.execute(
                "INSERT OR IGNORE INTO receipts (uploader, receiver, window, swarm, bytes, segments)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.uploader.as_slice(),
                    r.receiver.as_slice(),
                    r.window as i64,
                    swarm.as_bytes().as_slice(),
                    r.bytes as i64,
                    r.segments
                ],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Billing totals per stream.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn billing(&self) -> Result<Vec<StreamBilling>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT stream, SUM(cdn_bytes), SUM(p2p_bytes), SUM(uploaded_bytes)
             FROM billing GROUP BY stream ORDER BY stream",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StreamBilling {
                stream: r.get(0)?,
                cdn_bytes: r.get::<_, i64>(1)? as u64,
                p2p_bytes: r.get::<_, i64>(2)? as u64,
                uploaded_bytes: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Verified receipt bytes per uploader (`[u8; 32]` peer id).
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn receipt_bytes(&self) -> Result<Vec<([u8; 32], u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT uploader, SUM(bytes) FROM receipts GROUP BY uploader")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (uploader, bytes) = row?;
            if let Ok(uploader) = uploader.try_into() {
                out.push((uploader, bytes as u64));
            }
        }
        Ok(out)
    }

    /// Every agent heard from since `since` (Unix seconds), per swarm: its latest health and
    /// its totals.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn agents_since(&self, since: u64) -> Result<Vec<AgentView>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT h.agent, h.swarm, h.window, h.neighbours, h.peers,
                    (SELECT SUM(failures) FROM health WHERE agent = h.agent AND swarm = h.swarm),
                    (SELECT SUM(bans) FROM health WHERE agent = h.agent AND swarm = h.swarm),
                    (SELECT SUM(late) FROM health WHERE agent = h.agent AND swarm = h.swarm),
                    COALESCE((SELECT MAX(stream) FROM billing WHERE agent = h.agent AND swarm = h.swarm), ''),
                    COALESCE((SELECT SUM(cdn_bytes) FROM billing WHERE agent = h.agent AND swarm = h.swarm), 0),
                    COALESCE((SELECT SUM(p2p_bytes) FROM billing WHERE agent = h.agent AND swarm = h.swarm), 0),
                    COALESCE((SELECT SUM(uploaded_bytes) FROM billing WHERE agent = h.agent AND swarm = h.swarm), 0)
             FROM health h
             WHERE h.window >= ?1
               AND h.window = (SELECT MAX(window) FROM health WHERE agent = h.agent AND swarm = h.swarm)",
        )?;
        let rows = stmt.query_map(params![since as i64], |r| {
            let neighbours: String = r.get(3)?;
            Ok(AgentView {
                agent: r.get::<_, Vec<u8>>(0)?.try_into().unwrap_or_default(),
                swarm: r.get::<_, Vec<u8>>(1)?.try_into().unwrap_or_default(),
                window: r.get::<_, i64>(2)? as u64,
                neighbours: serde_json::from_str(&neighbours).unwrap_or_default(),
                peers: r.get::<_, i64>(4)? as u64,
                failures: r.get::<_, i64>(5)? as u64,
                bans: r.get::<_, i64>(6)? as u64,
                late: r.get::<_, i64>(7)? as u64,
                stream: r.get(8)?,
                cdn_bytes: r.get::<_, i64>(9)? as u64,
                p2p_bytes: r.get::<_, i64>(10)? as u64,
                uploaded_bytes: r.get::<_, i64>(11)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Bytes per swarm and window since `since`, oldest first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn windows_since(&self, since: u64) -> Result<Vec<WindowBytes>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT swarm, window, SUM(cdn_bytes), SUM(p2p_bytes) FROM billing
             WHERE window >= ?1 GROUP BY swarm, window ORDER BY window",
        )?;
        let rows = stmt.query_map(params![since as i64], |r| {
            Ok(WindowBytes {
                swarm: r.get::<_, Vec<u8>>(0)?.try_into().unwrap_or_default(),
                window: r.get::<_, i64>(1)? as u64,
                cdn_bytes: r.get::<_, i64>(2)? as u64,
                p2p_bytes: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Connections opened per swarm and window since `since` (all agents), oldest first.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn connections_since(&self, since: u64) -> Result<Vec<([u8; 32], u64, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT swarm, window, SUM(connections) FROM health
             WHERE window >= ?1 GROUP BY swarm, window ORDER BY window",
        )?;
        let rows = stmt.query_map(params![since as i64], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?.try_into().unwrap_or_default(),
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Everything revoked so far.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revoked(&self) -> Result<Revoked, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT serial, kind, value FROM revocations ORDER BY serial")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        let mut revoked = Revoked::default();
        for row in rows {
            let (serial, kind, value) = row?;
            revoked.serial = serial as u64;
            match (kind.as_str(), value.len()) {
                ("session", 16) => {
                    let mut id = [0; 16];
                    id.copy_from_slice(&value);
                    revoked.sessions.push(SessionId(id));
                }
                ("key", 48) => {
                    let mut key = [0; 48];
                    key.copy_from_slice(&value);
                    revoked.keys.push(PublicKey::from_bytes(key));
                }
                _ => {}
            }
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use f2f_core::identity::Keypair;

    #[test]
    fn a_session_holds_a_bounded_number_of_keys_and_keeps_them() {
        let store = Store::in_memory().unwrap();
        let swarm = SwarmId::from_bytes([1; 32]);
        let keys: Vec<PublicKey> = (0..4u8)
            .map(|i| Keypair::from_entropy(&[i; 32]).public())
            .collect();
        for key in &keys[..3] {
            assert!(store.certify(key, "s", &swarm, 0, 10, 3).unwrap());
        }
        assert!(!store.certify(&keys[3], "s", &swarm, 0, 10, 3).unwrap());
        // Renewing a key the session holds is not a new identity.
        assert!(store.certify(&keys[0], "s", &swarm, 5, 20, 3).unwrap());
        // Another session cannot take over a key.
        assert!(!store.certify(&keys[0], "t", &swarm, 5, 20, 3).unwrap());
        assert_eq!(store.identity(&keys[0]).unwrap(), Some(("s".into(), swarm)));
        store.revoke_key(&keys[1], 7).unwrap();
        store.revoke_session(&SessionId([9; 16]), 8).unwrap();
        let revoked = store.revoked().unwrap();
        assert_eq!(revoked.serial, 2);
        assert_eq!(revoked.keys, vec![keys[1]]);
        assert_eq!(revoked.sessions, vec![SessionId([9; 16])]);
    }

    #[test]
    fn the_schema_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("f2f-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.db");
        let key = Keypair::from_entropy(&[1; 32]).public();
        let swarm = SwarmId::from_bytes([1; 32]);
        Store::open(&path)
            .unwrap()
            .certify(&key, "s", &swarm, 0, 10, 3)
            .unwrap();
        let again = Store::open(&path).unwrap();
        assert_eq!(again.identity(&key).unwrap(), Some(("s".into(), swarm)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
