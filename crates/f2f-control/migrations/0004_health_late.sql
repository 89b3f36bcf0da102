-- Late segment loads (rebuffers for a player without a buffer) per health window.
ALTER TABLE health ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
