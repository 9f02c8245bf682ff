-- PostgreSQL spelling of ../0006_forms.sql (identity keys, BIGINT integers, DOUBLE
-- PRECISION, BYTEA); keep the two in step.
-- Agent forms, questionnaires with their answers, and per-campaign permissions.
--
-- Portable to PostgreSQL as 0001 explains; forms and questionnaires are JSON documents (TEXT)
-- checked by the store layer.

-- The ordered fields an agent sees on a contact of the campaign.
CREATE TABLE forms (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    fields TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- The ordered questions of the campaign's questionnaire; retired ones stay for their answers.
CREATE TABLE questionnaires (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    questions TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- A contact's answers ({question id: value}), who gave them and when.
CREATE TABLE answers (
    contact_id BIGINT PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    answers TEXT NOT NULL,
    respondent TEXT NOT NULL,
    respondent_name TEXT,
    answered_ms BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_ms BIGINT NOT NULL
);
CREATE INDEX answers_campaign ON answers (campaign_id, contact_id);

-- Grants per campaign and user. A campaign with no rows keeps the roles' behaviour; once it
-- has one, only users granted `edit` change it and only users granted `export` download it.
CREATE TABLE campaign_permissions (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    can_edit BIGINT NOT NULL,
    can_export BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX campaign_permissions_user ON campaign_permissions (user_id);
