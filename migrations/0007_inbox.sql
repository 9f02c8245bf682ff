-- Drop-folder imports: the import settings a campaign's folder uses, and every file taken
-- from a folder (name, size, modification time, SHA-256), so that none is imported twice,
-- also across restarts. Times are epoch milliseconds. Portable to PostgreSQL as 0001 explains.

CREATE TABLE import_settings (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- outcome: 'importing' while it runs (left so by a crash: never retried), 'done', 'failed'.
CREATE TABLE inbox_files (
    id INTEGER PRIMARY KEY,
    campaign_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ms BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    outcome TEXT NOT NULL,
    import_id BIGINT,
    reason TEXT,
    taken_ms BIGINT NOT NULL
);
CREATE INDEX inbox_files_seen ON inbox_files (campaign_id, sha256);
