-- Caller-ID lines and every verification attempt (the audit trail).
--
-- The code of a pending verification is kept only as a salted SHA-256; times are epoch
-- milliseconds. Portable to PostgreSQL as 0001 explains.

CREATE TABLE lines (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    language TEXT NOT NULL,
    callback_mode TEXT NOT NULL,
    status TEXT NOT NULL,
    last_outcome TEXT,
    last_sip_code INTEGER,
    last_attempt_ms BIGINT,
    verified_ms BIGINT,
    code_hash TEXT,
    code_salt TEXT,
    code_expires_ms BIGINT,
    code_tries INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE line_verifications (
    id INTEGER PRIMARY KEY,
    line_id BIGINT REFERENCES lines (id) ON DELETE SET NULL,
    number TEXT NOT NULL,
    mode TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    outcome TEXT,
    sip_code INTEGER,
    finished_ms BIGINT
);

-- The rate limit counts a number's recent attempts.
CREATE INDEX line_verifications_number ON line_verifications (number, requested_ms);
