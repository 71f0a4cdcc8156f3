CREATE TABLE profiles (
    id              BIGSERIAL PRIMARY KEY,
    user_id         BIGINT      NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    bio             TEXT        NOT NULL DEFAULT '',
    phone           TEXT        NOT NULL DEFAULT '' CHECK (char_length(phone) <= 32),
    birth_date      DATE,
    gender          TEXT        NOT NULL DEFAULT ''
        CHECK (gender IN ('', 'male', 'female', 'other', 'prefer_not_to_say')),
    company_name    TEXT        NOT NULL DEFAULT '',
    position_title  TEXT        NOT NULL DEFAULT '',
    profile_picture TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE addresses (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address_type     TEXT        NOT NULL DEFAULT 'home' CHECK (address_type IN ('home', 'work', 'other')),
    street_address   TEXT        NOT NULL DEFAULT '',
    address_line2    TEXT        NOT NULL DEFAULT '',
    city             TEXT        NOT NULL DEFAULT '',
    governorate      BIGINT,
    region           TEXT        NOT NULL DEFAULT '',
    country          TEXT        NOT NULL DEFAULT 'Jordan',
    postal_code      TEXT        NOT NULL DEFAULT '',
    nearest_landmark TEXT        NOT NULL DEFAULT '',
    phone            TEXT        NOT NULL DEFAULT '',
    is_default       BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX addresses_user_idx ON addresses (user_id);
-- At most one default address per user.
CREATE UNIQUE INDEX addresses_one_default ON addresses (user_id) WHERE is_default;
