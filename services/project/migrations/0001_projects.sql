-- Projects (tenants), their groups and members, invitations, settings and features.

CREATE TABLE projects (
    id                     BIGSERIAL PRIMARY KEY,
    title                  TEXT        NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    description            TEXT        NOT NULL DEFAULT '',
    username               TEXT        NOT NULL,
    unique_identifier      TEXT        NOT NULL,
    template               TEXT        NOT NULL DEFAULT 'default' CHECK (length(template) <= 50),
    owner_id               BIGINT      NOT NULL,
    logo_attachment_id     BIGINT,
    supported_languages    JSONB       NOT NULL DEFAULT '[{"code":"en","name":"English"}]',
    default_language       TEXT        NOT NULL DEFAULT 'en',
    is_active              BOOLEAN     NOT NULL DEFAULT true,
    storage_quota_bytes    BIGINT      NOT NULL,
    storage_used_bytes     BIGINT      NOT NULL DEFAULT 0 CHECK (storage_used_bytes >= 0),
    storage_reserved_bytes BIGINT      NOT NULL DEFAULT 0 CHECK (storage_reserved_bytes >= 0),
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at             TIMESTAMPTZ
);
-- Unique including soft-deleted projects: a deleted project's name is held.
CREATE UNIQUE INDEX projects_username_key ON projects (username);
CREATE UNIQUE INDEX projects_unique_identifier_key ON projects (unique_identifier);
CREATE INDEX projects_owner_idx ON projects (owner_id);

CREATE TABLE project_groups (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    UNIQUE (project_id, role)
);

CREATE TABLE memberships (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT      NOT NULL REFERENCES projects (id),
    user_id    BIGINT      NOT NULL,
    role       TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    invited_by BIGINT,
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    username   TEXT        NOT NULL DEFAULT '',
    email      TEXT        NOT NULL DEFAULT '',
    first_name TEXT        NOT NULL DEFAULT '',
    last_name  TEXT        NOT NULL DEFAULT '',
    CONSTRAINT memberships_project_user_key UNIQUE (project_id, user_id)
);
CREATE UNIQUE INDEX memberships_one_owner ON memberships (project_id) WHERE role = 'owner';
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE invitations (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT      NOT NULL REFERENCES projects (id),
    email               TEXT        NOT NULL,
    role                TEXT        NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    status              TEXT        NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    message             TEXT        NOT NULL DEFAULT '',
    token_hash          BYTEA       NOT NULL UNIQUE,
    invited_by_id       BIGINT      NOT NULL,
    invited_by_username TEXT        NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    accepted_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX invitations_one_pending ON invitations (project_id, lower(email))
    WHERE status = 'pending';

CREATE TABLE project_settings (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT      NOT NULL REFERENCES projects (id),
    key         TEXT        NOT NULL,
    value       JSONB       NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT project_settings_key UNIQUE (project_id, key)
);

CREATE TABLE features (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT  NOT NULL UNIQUE,
    type           TEXT  NOT NULL,
    title          TEXT  NOT NULL,
    description    TEXT  NOT NULL DEFAULT '',
    default_fields JSONB NOT NULL DEFAULT '{}'
);
INSERT INTO features (name, type, title, description, default_fields) VALUES
    ('ecommerce', 'ecommerce', 'E-commerce', 'Products, orders and payments.', '{"products": true, "orders": true, "payments": true}'),
    ('blog', 'blog', 'Blog', 'Posts, categories and tags.', '{"posts": true, "categories": true, "tags": true}'),
    ('inventory', 'inventory', 'Inventory', 'Warehouses, stock and movements.', '{}'),
    ('pos', 'pos', 'Point of sale', 'Registers, shifts and sales.', '{}'),
    ('billing', 'billing', 'Billing', 'Invoices and payments.', '{}'),
    ('debt', 'debt', 'Debt', 'Customer credit and instalments.', '{}'),
    ('repair', 'repair', 'Repair', 'Repair tickets and technicians.', '{}'),
    ('crm', 'crm', 'CRM', 'Customers and interactions.', '{}'),
    ('marketplace', 'marketplace', 'Marketplace', 'Public listings and auctions.', '{}');

CREATE TABLE project_features (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    feature_id BIGINT NOT NULL REFERENCES features (id),
    PRIMARY KEY (project_id, feature_id)
);

CREATE TABLE attachments (
    id                   BIGSERIAL PRIMARY KEY,
    project_id           BIGINT      NOT NULL REFERENCES projects (id),
    original_name        TEXT        NOT NULL,
    category             TEXT        NOT NULL,
    mime_type            TEXT        NOT NULL,
    size                 BIGINT      NOT NULL CHECK (size >= 0),
    storage_key          TEXT        NOT NULL UNIQUE,
    upload_status        TEXT        NOT NULL CHECK (upload_status IN ('pending', 'completed', 'failed')),
    visibility           TEXT        NOT NULL CHECK (visibility IN ('public', 'private')),
    entity_type          TEXT        NOT NULL,
    entity_id            TEXT,
    description          TEXT        NOT NULL DEFAULT '',
    checksum_sha256      TEXT,
    width                INT,
    height               INT,
    uploaded_by_id       BIGINT      NOT NULL,
    uploaded_by_username TEXT        NOT NULL,
    uploaded_at          TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at           TIMESTAMPTZ
);
CREATE INDEX attachments_project_idx ON attachments (project_id, created_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX attachments_entity_idx ON attachments (project_id, entity_type, entity_id) WHERE deleted_at IS NULL;
