-- Reference data for addresses: ISO 3166-1 countries and first-level subdivisions,
-- loaded from data/geo.json on start-up.
CREATE TABLE countries (
    id            BIGSERIAL PRIMARY KEY,
    code2         TEXT  NOT NULL UNIQUE,
    code3         TEXT  NOT NULL,
    numeric_code  TEXT  NOT NULL,
    name          TEXT  NOT NULL,
    name_ascii    TEXT  NOT NULL,
    slug          TEXT  NOT NULL UNIQUE,
    official_name TEXT  NOT NULL DEFAULT '',
    tld           TEXT  NOT NULL DEFAULT '',
    translations  JSONB NOT NULL DEFAULT '{}'
);

CREATE TABLE regions (
    id         BIGSERIAL PRIMARY KEY,
    country_id BIGINT NOT NULL REFERENCES countries (id) ON DELETE CASCADE,
    code       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    name_ascii TEXT   NOT NULL,
    slug       TEXT   NOT NULL,
    kind       TEXT   NOT NULL DEFAULT '',
    UNIQUE (country_id, code)
);
CREATE INDEX regions_country_name_idx ON regions (country_id, name);
