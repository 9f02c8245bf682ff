-- The nodes that are up: one row per node name, held by one running instance of dialerd (a
-- random id drawn at its start) that renews it every few seconds until expires_ms (epoch
-- milliseconds on that node's clock) and deletes it at a clean stop. A second daemon started
-- with a name whose row is unexpired and another instance's refuses to start: two daemons of
-- one name would share that name's task and contact leases. Portable as 0001 explains.

CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
