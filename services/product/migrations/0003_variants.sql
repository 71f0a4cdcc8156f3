-- Variant schemas, variants, barcodes and shipping profiles.

CREATE TABLE variant_schemas (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    name_en        TEXT        NOT NULL DEFAULT '',
    name_ar        TEXT        NOT NULL DEFAULT '',
    name_fr        TEXT        NOT NULL DEFAULT '',
    description_en TEXT        NOT NULL DEFAULT '',
    description_ar TEXT        NOT NULL DEFAULT '',
    description_fr TEXT        NOT NULL DEFAULT '',
    attributes     JSONB       NOT NULL DEFAULT '[]',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);
CREATE INDEX variant_schemas_project_idx ON variant_schemas (project_id) WHERE deleted_at IS NULL;

CREATE TABLE shipping (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT      NOT NULL,
    product        BIGINT      REFERENCES products (id),
    name           TEXT,
    length         DOUBLE PRECISION CHECK (length >= 0),
    width          DOUBLE PRECISION CHECK (width >= 0),
    height         DOUBLE PRECISION CHECK (height >= 0),
    dimension_unit TEXT        NOT NULL DEFAULT 'cm' CHECK (dimension_unit IN ('cm', 'm', 'in', 'ft')),
    weight         DOUBLE PRECISION CHECK (weight >= 0),
    weight_unit    TEXT        NOT NULL DEFAULT 'kg' CHECK (weight_unit IN ('kg', 'g', 'lb', 'oz')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);
CREATE INDEX shipping_product_idx ON shipping (project_id, product) WHERE deleted_at IS NULL;

ALTER TABLE products
    ADD COLUMN schema   BIGINT REFERENCES variant_schemas (id),
    ADD COLUMN shipping BIGINT REFERENCES shipping (id);

CREATE TABLE variants (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT        NOT NULL,
    product          BIGINT        NOT NULL REFERENCES products (id),
    sku              TEXT,
    name_en          TEXT          NOT NULL DEFAULT '',
    name_ar          TEXT          NOT NULL DEFAULT '',
    name_fr          TEXT          NOT NULL DEFAULT '',
    selling_price    NUMERIC(16,4) CHECK (selling_price >= 0),
    cost_price       NUMERIC(16,4) CHECK (cost_price >= 0),
    compare_at_price NUMERIC(16,4) CHECK (compare_at_price >= 0),
    attributes       JSONB         NOT NULL DEFAULT '{}',
    is_active        BOOLEAN       NOT NULL DEFAULT true,
    position         INT           NOT NULL DEFAULT 0,
    weight           DOUBLE PRECISION CHECK (weight >= 0),
    image_id         BIGINT,
    stock_quantity   INT           NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by       BIGINT,
    updated_by       BIGINT,
    deleted_at       TIMESTAMPTZ,
    deleted_by       BIGINT
);
CREATE UNIQUE INDEX variants_sku_live ON variants (project_id, lower(sku))
    WHERE deleted_at IS NULL AND sku IS NOT NULL;
CREATE INDEX variants_product_idx ON variants (project_id, product) WHERE deleted_at IS NULL;

CREATE TABLE barcodes (
    id           BIGSERIAL PRIMARY KEY,
    project_id   BIGINT      NOT NULL,
    product      BIGINT      NOT NULL REFERENCES products (id),
    variant      BIGINT      REFERENCES variants (id),
    barcode      TEXT        NOT NULL,
    barcode_type TEXT        NOT NULL,
    is_primary   BOOLEAN     NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   BIGINT,
    updated_by   BIGINT,
    deleted_at   TIMESTAMPTZ,
    deleted_by   BIGINT
);
CREATE UNIQUE INDEX barcodes_live ON barcodes (project_id, barcode) WHERE deleted_at IS NULL;
CREATE INDEX barcodes_product_idx ON barcodes (project_id, product) WHERE deleted_at IS NULL;
