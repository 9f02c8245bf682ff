-- PostgreSQL spelling of ../0003_calls.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- One row per call at its end: who, when, how it ended, its recording and its audio quality.
-- Side A is the customer (relay: the caller), side B the agent (relay: the called number);
-- quality is of what dialerd received from each side. Times are epoch milliseconds.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    route          TEXT NOT NULL,
    a_number       TEXT NOT NULL,
    b_number       TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    answered_at    BIGINT,
    ended_at       BIGINT NOT NULL,
    end_reason     TEXT NOT NULL,
    recording_path TEXT,
    a_loss         DOUBLE PRECISION,
    a_jitter_s     DOUBLE PRECISION,
    a_mos          DOUBLE PRECISION,
    b_loss         DOUBLE PRECISION,
    b_jitter_s     DOUBLE PRECISION,
    b_mos          DOUBLE PRECISION
);
CREATE INDEX calls_by_start ON calls (started_at DESC, id);
