-- PostgreSQL spelling of ../0013_inbound.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- Inbound callbacks: what a line does with people who call it back, and what an inbound call
-- leaves on its call record. Portable as 0001 explains.

ALTER TABLE lines ADD COLUMN inbound_policy TEXT NOT NULL DEFAULT 'route';
ALTER TABLE lines ADD COLUMN max_wait_seconds BIGINT NOT NULL DEFAULT 60;
ALTER TABLE lines ADD COLUMN waiting_audio TEXT NOT NULL DEFAULT 'ringback';
ALTER TABLE lines ADD COLUMN missed_calls_task BIGINT;

ALTER TABLE calls ADD COLUMN line_id BIGINT;
ALTER TABLE calls ADD COLUMN contact_id BIGINT;
ALTER TABLE calls ADD COLUMN waited_ms BIGINT;
