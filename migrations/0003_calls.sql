-- One row per call at its end: who, when, how it ended, its recording and its audio quality.
-- Side A is the customer (relay: the caller), side B the agent (relay: the called number);
-- quality is of what dialerd received from each side. Times are epoch milliseconds.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    route          TEXT NOT NULL,
    a_number       TEXT NOT NULL,
    b_number       TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    answered_at    INTEGER,
    ended_at       INTEGER NOT NULL,
    end_reason     TEXT NOT NULL,
    recording_path TEXT,
    a_loss         REAL,
    a_jitter_s     REAL,
    a_mos          REAL,
    b_loss         REAL,
    b_jitter_s     REAL,
    b_mos          REAL
);
CREATE INDEX calls_by_start ON calls (started_at DESC, id);
