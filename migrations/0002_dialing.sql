-- Callable-contact selection, do-not-call lists, task-flow moves and export files.
--
-- Portable to PostgreSQL as 0001 is; partial indexes exist in both.

-- How many of a contact's numbers are on a do-not-call list: 0 none, 1 some, 2 all (never
-- selected). Kept up to date when lists or numbers change, so selection needs no join.
ALTER TABLE contacts ADD COLUMN dnc INTEGER NOT NULL DEFAULT 0;
-- When the task's next step for the contact is due: a task-flow move (to move_to), a wait
-- ending, a webhook (re)try.
ALTER TABLE contacts ADD COLUMN action_ms BIGINT;
ALTER TABLE contacts ADD COLUMN move_to BIGINT;
-- Webhook deliveries tried for the contact in its current task.
ALTER TABLE contacts ADD COLUMN action_tries INTEGER NOT NULL DEFAULT 0;
-- Result of the last call (set by the call layer), exported with the contact.
ALTER TABLE contacts ADD COLUMN last_result TEXT;

-- What the dialer may call: per task and zone, overdue follow-ups by time, never-called by id.
-- The WHERE must appear literally in queries (`status = 'open' AND dnc < 2`) for SQLite to
-- use it.
CREATE INDEX contacts_callable ON contacts (task_id, time_zone, follow_up_ms, attempts)
    WHERE status = 'open' AND dnc < 2;
-- Listing in due order across a campaign.
CREATE INDEX contacts_due ON contacts (campaign_id, follow_up_ms);
-- Background work that is due.
CREATE INDEX contacts_action ON contacts (action_ms) WHERE action_ms IS NOT NULL;
-- A number across campaigns (the global do-not-call list).
CREATE INDEX contact_phones_phone ON contact_phones (phone);

CREATE TABLE dnc_global (
    phone TEXT PRIMARY KEY,
    added_ms BIGINT NOT NULL,
    added_by TEXT NOT NULL
);

CREATE TABLE dnc_campaign (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    added_ms BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (campaign_id, phone)
);

-- Files of an export task; at most one open (closed_ms NULL) per task.
CREATE TABLE export_files (
    id INTEGER PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    closed_ms BIGINT,
    downloads BIGINT NOT NULL DEFAULT 0,
    rows_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX export_files_task ON export_files (task_id, id);

-- The contacts of a file as they reached the export task (JSON), written out when it closes.
CREATE TABLE export_rows (
    id INTEGER PRIMARY KEY,
    file_id BIGINT NOT NULL REFERENCES export_files (id) ON DELETE CASCADE,
    data TEXT NOT NULL
);
CREATE INDEX export_rows_file ON export_rows (file_id, id);
