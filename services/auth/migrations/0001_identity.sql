-- Users, sessions (refresh families), refresh tokens, one-time codes.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT        NOT NULL,
    email         TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    first_name    TEXT        NOT NULL DEFAULT '',
    last_name     TEXT        NOT NULL DEFAULT '',
    is_active     BOOLEAN     NOT NULL DEFAULT FALSE,
    is_verified   BOOLEAN     NOT NULL DEFAULT FALSE,
    is_staff      BOOLEAN     NOT NULL DEFAULT FALSE,
    is_superuser  BOOLEAN     NOT NULL DEFAULT FALSE,
    date_joined   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_username_length CHECK (char_length(username) BETWEEN 1 AND 150),
    CONSTRAINT users_email_length CHECK (char_length(email) BETWEEN 3 AND 254)
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE sessions (
    sid          UUID PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- One row per refresh token ever issued (simplejwt's outstanding list). A rotated token keeps
-- its successor pair for the short reuse grace window, then the pair is cleared.
CREATE TABLE refresh_tokens (
    jti               TEXT PRIMARY KEY,
    sid               UUID        NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
    expires_at        TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    rotated_at        TIMESTAMPTZ,
    replaced_by       TEXT,
    successor_access  TEXT,
    successor_refresh TEXT,
    revoked_at        TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_sid_idx ON refresh_tokens (sid);

CREATE TABLE otp_codes (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT        NOT NULL,
    purpose    TEXT        NOT NULL CHECK (purpose IN ('verify', 'reset')),
    salt       TEXT        NOT NULL,
    code_hash  TEXT        NOT NULL,
    attempts   INT         NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX otp_codes_email_idx ON otp_codes (lower(email), created_at DESC);

-- Projection of the project service's memberships (filled from its events).
CREATE TABLE projects (
    id         BIGINT PRIMARY KEY,
    owner_id   BIGINT      NOT NULL,
    deleted_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    project_id BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    role       TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);
