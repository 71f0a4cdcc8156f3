-- The catalogue's reference data: categories (a tree), tags, brands, collections.
-- Every table has the standard columns of kernel::resource; translated fields are stored as
-- name_en/name_ar/name_fr, and `search` is the full-text vector over them.

CREATE TABLE categories (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    slug           TEXT        NOT NULL,
    parent         BIGINT      REFERENCES categories (id),
    image          TEXT,
    featured       BOOLEAN     NOT NULL DEFAULT false,
    "order"        INT         NOT NULL DEFAULT 0,
    is_active      BOOLEAN     NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT,
    search         tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name_en || ' ' || name_ar || ' ' || name_fr || ' ' ||
                              description_en || ' ' || description_ar || ' ' || description_fr)
        || to_tsvector('english', name_en || ' ' || description_en)
        || to_tsvector('arabic', name_ar || ' ' || description_ar)
        || to_tsvector('french', name_fr || ' ' || description_fr)) STORED,
    CHECK (parent IS DISTINCT FROM id)
);
CREATE UNIQUE INDEX categories_slug_live ON categories (project_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX categories_project_idx ON categories (project_id, parent) WHERE deleted_at IS NULL;
CREATE INDEX categories_search_idx ON categories USING gin (search);

CREATE TABLE tags (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT      NOT NULL,
    name       TEXT        NOT NULL,
    slug       TEXT        NOT NULL,
    color      TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT,
    updated_by BIGINT,
    deleted_at TIMESTAMPTZ,
    deleted_by BIGINT
);
CREATE UNIQUE INDEX tags_name_live ON tags (project_id, lower(name)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX tags_slug_live ON tags (project_id, slug) WHERE deleted_at IS NULL;

CREATE TABLE brands (
    id                 BIGSERIAL PRIMARY KEY,
    project_id         BIGINT      NOT NULL,
    name_en            TEXT        NOT NULL DEFAULT '',
    name_ar            TEXT        NOT NULL DEFAULT '',
    name_fr            TEXT        NOT NULL DEFAULT '',
    description_en     TEXT        NOT NULL DEFAULT '',
    description_ar     TEXT        NOT NULL DEFAULT '',
    description_fr     TEXT        NOT NULL DEFAULT '',
    slug               TEXT        NOT NULL,
    logo               TEXT,
    logo_attachment_id BIGINT,
    featured           BOOLEAN     NOT NULL DEFAULT false,
    "order"            INT         NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by         BIGINT,
    updated_by         BIGINT,
    deleted_at         TIMESTAMPTZ,
    deleted_by         BIGINT,
    search             tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name_en || ' ' || name_ar || ' ' || name_fr)
        || to_tsvector('english', name_en || ' ' || description_en)
        || to_tsvector('arabic', name_ar || ' ' || description_ar)
        || to_tsvector('french', name_fr || ' ' || description_fr)) STORED
);
CREATE UNIQUE INDEX brands_slug_live ON brands (project_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX brands_search_idx ON brands USING gin (search);

CREATE TABLE collections (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    slug           TEXT        NOT NULL,
    image          TEXT,
    is_active      BOOLEAN     NOT NULL DEFAULT true,
    featured       BOOLEAN     NOT NULL DEFAULT false,
    "order"        INT         NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT,
    search         tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name_en || ' ' || name_ar || ' ' || name_fr)
        || to_tsvector('english', name_en || ' ' || description_en)
        || to_tsvector('arabic', name_ar || ' ' || description_ar)
        || to_tsvector('french', name_fr || ' ' || description_fr)) STORED
);
CREATE UNIQUE INDEX collections_slug_live ON collections (project_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX collections_search_idx ON collections USING gin (search);
