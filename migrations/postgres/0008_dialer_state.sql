-- PostgreSQL spelling of ../0008_dialer_state.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- What a call task's dialer has learned and counted, kept across restarts: the abandon ledger
-- (24 h and 30 days) and the learned call statistics, as one JSON document per task
-- (`dialer::campaign::Persisted`). Times are epoch milliseconds. Portable to PostgreSQL as
-- 0001 explains.

CREATE TABLE dialer_state (
    task_id BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
