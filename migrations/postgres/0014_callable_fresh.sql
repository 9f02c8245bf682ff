-- PostgreSQL spelling of ../0014_callable_fresh.sql (the same); keep the two in step.
-- Never-called contacts in id order, per task and zone: the dialer takes the first few of
-- them, and on a task of millions this index hands them over without sorting. The WHERE must
-- appear literally in queries, as for contacts_callable (0002). Portable as 0001 explains.

CREATE INDEX contacts_fresh ON contacts (task_id, time_zone, id)
    WHERE status = 'open' AND dnc < 2 AND follow_up_ms IS NULL AND attempts = 0;
