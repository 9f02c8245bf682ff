-- PostgreSQL spelling of ../0019_import_indexes.sql (the same); keep the two in step.
-- Fewer and smaller contacts indexes, so that a large import maintains less per row.
-- Portable as 0001 explains.
--
-- contacts_callable (0002) now holds follow-ups only: never-called contacts are in
-- contacts_fresh (0014), so a new contact no longer enters it. As for the index it replaces,
-- its WHERE must appear literally in queries (SQLite uses a partial index only then).
DROP INDEX contacts_callable;
CREATE INDEX contacts_callable ON contacts (task_id, time_zone, follow_up_ms, attempts)
    WHERE status = 'open' AND dnc < 2 AND follow_up_ms IS NOT NULL;

-- Listing in due order reads contacts with a follow-up by time; the rest are read by id
-- (contacts_campaign). Queries by time name `follow_up_ms IS NOT NULL`.
DROP INDEX contacts_due;
CREATE INDEX contacts_due ON contacts (campaign_id, follow_up_ms) WHERE follow_up_ms IS NOT NULL;

-- The undo of a failed import finds its contacts by their id range (the primary key); no
-- query looks contacts up by import any more.
DROP INDEX contacts_import;

-- A task's contacts by status: counting them (deleting a task, the contacts gauge) and the
-- foreign-key check when a task is deleted. The follow-up time it also held served no query,
-- and, once SQLite has statistics (an ANALYZE), let it take this index for the never-called
-- zones' lookup, reading every never-called contact, where contacts_fresh answers at once.
DROP INDEX contacts_task;
CREATE INDEX contacts_task ON contacts (task_id, status);
