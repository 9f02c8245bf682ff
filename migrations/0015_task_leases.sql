-- Which node dials a call task: one row per task held, by the node that holds it until
-- expires_ms (epoch milliseconds on that node's clock); the holder renews it every few
-- seconds, and another node may take it once it has expired (its holder stopped or died).
-- Contact leases (0012) name the node as their owner. Portable as 0001 explains.

CREATE TABLE task_leases (
    task_id BIGINT PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX contact_leases_owner ON contact_leases (owner);
