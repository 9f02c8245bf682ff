-- PostgreSQL spelling of ../0011_campaign_prompts.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- Recordings a campaign plays to its callers (the safe-harbour message of an abandoned call),
-- kept converted: 8 kHz mono 16-bit little-endian samples. `BLOB` is PostgreSQL's `BYTEA`;
-- otherwise portable as 0001 explains.

CREATE TABLE campaign_prompts (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    audio BYTEA NOT NULL,
    samples BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (campaign_id, name)
);
