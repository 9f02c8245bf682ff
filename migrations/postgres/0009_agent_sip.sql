-- PostgreSQL spelling of ../0009_agent_sip.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- Agents' SIP logins and the call tasks (queues) they may serve. A SIP password is kept only
-- as the digest HA1s over `username:realm:password` (MD5 and SHA-256), with the realm they were
-- computed for: the registrar needs nothing else, and a stolen database reveals no password.
-- `digest` is the one algorithm the account is challenged with (`md5` or `sha-256`). Portable
-- to PostgreSQL as 0001 explains.

CREATE TABLE sip_accounts (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    username TEXT NOT NULL UNIQUE,
    realm TEXT NOT NULL,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE agent_tasks (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, task_id)
);

CREATE INDEX agent_tasks_by_task ON agent_tasks (task_id);
