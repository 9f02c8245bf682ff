-- PostgreSQL spelling of ../0012_contact_leases.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- Contacts the live dialer holds for a call in flight: one row per contact, so no contact is
-- dialled twice at once, across call tasks and across restarts (a row left by a stopped
-- daemon is turned into an `$interrupted` attempt at the next start). Portable as 0001
-- explains.

CREATE TABLE contact_leases (
    contact_id BIGINT PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL,
    task_id BIGINT NOT NULL,
    owner TEXT NOT NULL,
    leased_ms BIGINT NOT NULL
);

CREATE INDEX contact_leases_task ON contact_leases (task_id);
