-- PostgreSQL only (../0021_contacts_keys.sql is empty): fewer foreign-key checks per contact.
-- PostgreSQL checks each foreign key with a query of its own per inserted row; on an import
-- of a million contacts the three checks were half of the server's time.
--
-- A contact's task and campaign are checked together, by one composite key onto tasks (a
-- contact's task is also of its campaign, which the two separate keys never said). Deleting
-- a campaign deletes its contacts first (Store::delete_campaign), then its tasks by cascade;
-- a task that holds contacts still cannot be deleted.
ALTER TABLE tasks ADD CONSTRAINT tasks_id_campaign_key UNIQUE (id, campaign_id);
ALTER TABLE contacts DROP CONSTRAINT contacts_campaign_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_task_id_fkey;
ALTER TABLE contacts ADD CONSTRAINT contacts_task_campaign_fkey
    FOREIGN KEY (task_id, campaign_id) REFERENCES tasks (id, campaign_id);

-- A contact's numbers are written only with it, in the same statement or transaction; they
-- go with it through a trigger per deleting statement instead of a key checked per number.
ALTER TABLE contact_phones DROP CONSTRAINT contact_phones_new_contact_id_fkey;
CREATE FUNCTION contact_phones_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- = ANY over an array: an index look-up per contact, whatever the planner guesses of
    -- the transition table's size.
    DELETE FROM contact_phones WHERE contact_id = ANY (ARRAY(SELECT id FROM gone));
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_take_their_phones AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION contact_phones_follow();
