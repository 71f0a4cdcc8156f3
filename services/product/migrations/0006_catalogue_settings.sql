-- What the catalogue keeps of each project's settings (from `project.settings_changed`): the
-- project currency prices are in (product.md §2.3). `changed_at` orders late events out.

CREATE TABLE catalogue_settings (
    project_id BIGINT PRIMARY KEY,
    currency   TEXT        NOT NULL DEFAULT 'USD',
    changed_at TIMESTAMPTZ NOT NULL
);
