-- Discounts (automatic price rules), their products, and collection membership.

CREATE TABLE discounts (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT        NOT NULL,
    name_en        TEXT          NOT NULL DEFAULT '',
    name_ar        TEXT          NOT NULL DEFAULT '',
    name_fr        TEXT          NOT NULL DEFAULT '',
    description_en TEXT          NOT NULL DEFAULT '',
    description_ar TEXT          NOT NULL DEFAULT '',
    description_fr TEXT          NOT NULL DEFAULT '',
    code           TEXT,
    discount_type  TEXT          NOT NULL CHECK (discount_type IN ('percentage', 'fixed')),
    value          NUMERIC(16,4) NOT NULL CHECK (value > 0),
    applies_to     TEXT          NOT NULL DEFAULT 'products'
                   CHECK (applies_to IN ('products', 'categories', 'collections', 'all')),
    category_ids   JSONB         NOT NULL DEFAULT '[]',
    collection_ids JSONB         NOT NULL DEFAULT '[]',
    starts_at      TIMESTAMPTZ,
    ends_at        TIMESTAMPTZ,
    is_active      BOOLEAN       NOT NULL DEFAULT true,
    priority       INT           NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT,
    CHECK (discount_type <> 'percentage' OR value <= 100),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX discounts_project_idx ON discounts (project_id) WHERE deleted_at IS NULL AND is_active;

CREATE TABLE product_discounts (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT      NOT NULL,
    product    BIGINT      NOT NULL REFERENCES products (id),
    discount   BIGINT      NOT NULL REFERENCES discounts (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT,
    updated_by BIGINT,
    deleted_at TIMESTAMPTZ,
    deleted_by BIGINT
);
CREATE UNIQUE INDEX product_discounts_pair ON product_discounts (product, discount) WHERE deleted_at IS NULL;

CREATE TABLE product_collections (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT      NOT NULL,
    product    BIGINT      NOT NULL REFERENCES products (id),
    collection BIGINT      NOT NULL REFERENCES collections (id),
    position   INT         NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT,
    updated_by BIGINT,
    deleted_at TIMESTAMPTZ,
    deleted_by BIGINT
);
CREATE UNIQUE INDEX product_collections_pair ON product_collections (product, collection) WHERE deleted_at IS NULL;
CREATE INDEX product_collections_collection_idx ON product_collections (collection, position) WHERE deleted_at IS NULL;

-- The best active discount for a product at a unit price (product.md §2.3): the largest
-- reduction (tie: higher priority, then lower id), never below zero, no stacking.
CREATE FUNCTION product_best_discount(p_product BIGINT, p_unit NUMERIC,
                                      OUT final NUMERIC, OUT discount_id BIGINT)
LANGUAGE sql STABLE AS $$
    SELECT GREATEST(p_unit - r.reduction, 0), r.id
    FROM (
        SELECT d.id, d.priority,
               CASE d.discount_type WHEN 'percentage' THEN round(p_unit * d.value / 100, 2)
                                    ELSE d.value END AS reduction
        FROM products p
        JOIN discounts d ON d.project_id = p.project_id
        WHERE p.id = p_product
          AND d.deleted_at IS NULL AND d.is_active
          AND (d.starts_at IS NULL OR d.starts_at <= now())
          AND (d.ends_at IS NULL OR d.ends_at > now())
          AND (d.applies_to = 'all'
               OR (d.applies_to = 'products' AND EXISTS (
                     SELECT 1 FROM product_discounts pd
                     WHERE pd.discount = d.id AND pd.product = p.id AND pd.deleted_at IS NULL))
               OR (d.applies_to = 'categories' AND p.category IS NOT NULL AND EXISTS (
                     WITH RECURSIVE up(id, parent, depth) AS (
                         SELECT c.id, c.parent, 0 FROM categories c WHERE c.id = p.category
                         UNION ALL
                         SELECT c.id, c.parent, up.depth + 1 FROM categories c
                         JOIN up ON c.id = up.parent WHERE up.depth < 20)
                     SELECT 1 FROM up WHERE d.category_ids @> to_jsonb(up.id)))
               OR (d.applies_to = 'collections' AND EXISTS (
                     SELECT 1 FROM product_collections pc
                     WHERE pc.product = p.id AND pc.deleted_at IS NULL
                       AND d.collection_ids @> to_jsonb(pc.collection))))
    ) r
    ORDER BY r.reduction DESC, r.priority DESC, r.id
    LIMIT 1
$$;
