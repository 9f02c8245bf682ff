-- Nothing on SQLite: postgres/0021_contacts_keys.sql trades PostgreSQL's per-row foreign-key
-- queries for a composite key and a trigger; SQLite checks its keys inside the engine, and
-- cannot drop a constraint without building the table anew.
SELECT 1;
