-- Inventory reference data (contract inventory.md §3, §7): warehouses, location types,
-- locations (a tree inside a warehouse), vendors and batches. Standard columns of
-- kernel::resource; translated fields as name_en/name_ar/name_fr.

CREATE TABLE warehouses (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    address        TEXT        NOT NULL DEFAULT '',
    code           TEXT,
    is_active      BOOLEAN     NOT NULL DEFAULT true,
    is_default     BOOLEAN     NOT NULL DEFAULT false,
    priority       INT         NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);
CREATE UNIQUE INDEX warehouses_code_live ON warehouses (project_id, lower(code))
    WHERE deleted_at IS NULL AND code IS NOT NULL;
-- One default warehouse per project.
CREATE UNIQUE INDEX warehouses_one_default ON warehouses (project_id)
    WHERE deleted_at IS NULL AND is_default;

CREATE TABLE location_types (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    warehouse      BIGINT      NOT NULL REFERENCES warehouses (id),
    "order"        INT         NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);

CREATE TABLE locations (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    warehouse      BIGINT      NOT NULL REFERENCES warehouses (id),
    location_type  BIGINT      REFERENCES location_types (id),
    parent         BIGINT      REFERENCES locations (id),
    capacity       INT         CHECK (capacity >= 0),
    code           TEXT,
    is_active      BOOLEAN     NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT,
    CHECK (parent IS DISTINCT FROM id)
);
CREATE INDEX locations_warehouse_idx ON locations (project_id, warehouse) WHERE deleted_at IS NULL;

CREATE TABLE vendors (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name           TEXT        NOT NULL,
    contact_person TEXT        NOT NULL DEFAULT '',
    email          TEXT        NOT NULL DEFAULT '',
    phone          TEXT        NOT NULL DEFAULT '',
    address        TEXT        NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);

CREATE TABLE batches (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT      NOT NULL,
    batch_number     TEXT        NOT NULL,
    quantity         INT         CHECK (quantity >= 0),
    expiry_date      DATE,
    manufacture_date DATE,
    vendor           BIGINT      REFERENCES vendors (id),
    product_id       BIGINT,
    warehouse        BIGINT      REFERENCES warehouses (id),
    notes            TEXT        NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by       BIGINT,
    updated_by       BIGINT,
    deleted_at       TIMESTAMPTZ,
    deleted_by       BIGINT
);
CREATE UNIQUE INDEX batches_number_live ON batches (project_id, batch_number) WHERE deleted_at IS NULL;
