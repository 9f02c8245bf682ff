-- contact_phones without its foreign key on campaign_id: each number is written with its
-- contact's campaign, which the contact's own key already checks, and the check cost a query
-- per number on every import (PostgreSQL runs one per row). The numbers still go with their
-- contact (ON DELETE CASCADE on contact_id), and with it with a deleted campaign.
-- SQLite cannot drop a constraint, so the table is built anew. Portable as 0001 explains.

CREATE TABLE contact_phones_new (
    campaign_id INTEGER NOT NULL,
    phone TEXT NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, phone)
);
INSERT INTO contact_phones_new (campaign_id, phone, contact_id)
    SELECT campaign_id, phone, contact_id FROM contact_phones;
DROP TABLE contact_phones;
ALTER TABLE contact_phones_new RENAME TO contact_phones;
CREATE INDEX contact_phones_contact ON contact_phones (contact_id);
CREATE INDEX contact_phones_phone ON contact_phones (phone);
