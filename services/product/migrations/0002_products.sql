-- Products, their tags and their price history.

CREATE TABLE products (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT        NOT NULL,
    name_en             TEXT          NOT NULL DEFAULT '',
    name_ar             TEXT          NOT NULL DEFAULT '',
    name_fr             TEXT          NOT NULL DEFAULT '',
    description_en      TEXT          NOT NULL DEFAULT '',
    description_ar      TEXT          NOT NULL DEFAULT '',
    description_fr      TEXT          NOT NULL DEFAULT '',
    slug                TEXT          NOT NULL,
    sku                 TEXT,
    status              TEXT          NOT NULL DEFAULT 'created'
                        CHECK (status IN ('created', 'draft', 'active', 'published', 'inactive', 'archived')),
    is_active           BOOLEAN       NOT NULL DEFAULT true,
    track_inventory     BOOLEAN       NOT NULL DEFAULT true,
    price               NUMERIC(16,4) NOT NULL DEFAULT 0 CHECK (price >= 0),
    compare_at_price    NUMERIC(16,4) CHECK (compare_at_price >= 0),
    cost_price          NUMERIC(16,4) CHECK (cost_price >= 0),
    category            BIGINT        REFERENCES categories (id),
    brand               BIGINT        REFERENCES brands (id),
    group_id            BIGINT,
    reorder             INT,
    stock_quantity      INT           NOT NULL DEFAULT 0,
    low_stock_threshold INT           CHECK (low_stock_threshold >= 0),
    weight              DOUBLE PRECISION CHECK (weight >= 0),
    weight_unit         TEXT          NOT NULL DEFAULT 'kg' CHECK (weight_unit IN ('kg', 'g', 'lb', 'oz')),
    additional_data     JSONB,
    created_at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by          BIGINT,
    updated_by          BIGINT,
    deleted_at          TIMESTAMPTZ,
    deleted_by          BIGINT,
    search              tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name_en || ' ' || name_ar || ' ' || name_fr || ' ' || coalesce(sku, ''))
        || to_tsvector('english', name_en || ' ' || description_en)
        || to_tsvector('arabic', name_ar || ' ' || description_ar)
        || to_tsvector('french', name_fr || ' ' || description_fr)) STORED
);
CREATE UNIQUE INDEX products_slug_live ON products (project_id, slug) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_sku_live ON products (project_id, lower(sku))
    WHERE deleted_at IS NULL AND sku IS NOT NULL;
CREATE INDEX products_list_idx ON products (project_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX products_category_idx ON products (project_id, category) WHERE deleted_at IS NULL;
CREATE INDEX products_search_idx ON products USING gin (search);

CREATE TABLE product_tags (
    product_id BIGINT NOT NULL REFERENCES products (id),
    tag_id     BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY (product_id, tag_id)
);
CREATE INDEX product_tags_tag_idx ON product_tags (tag_id);

CREATE TABLE price_history (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT        NOT NULL,
    product_id BIGINT        NOT NULL REFERENCES products (id),
    variant_id BIGINT,
    old_price  NUMERIC(16,4),
    new_price  NUMERIC(16,4) NOT NULL,
    changed_at TIMESTAMPTZ   NOT NULL DEFAULT now(),
    changed_by BIGINT,
    changed_by_username TEXT NOT NULL DEFAULT ''
);
CREATE INDEX price_history_product_idx ON price_history (project_id, product_id, changed_at DESC);
