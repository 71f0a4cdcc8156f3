-- Shipping methods, tags, notes and custom statuses (contract order.md §3.3, §8).

CREATE TABLE shipping_methods (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT        NOT NULL,
    code           TEXT          NOT NULL,
    name           TEXT          NOT NULL DEFAULT '',
    description    TEXT          NOT NULL DEFAULT '',
    cost           NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    estimated_days INT           NOT NULL DEFAULT 0 CHECK (estimated_days >= 0),
    is_active      BOOLEAN       NOT NULL DEFAULT true,
    -- Free at or above this subtotal (none when null).
    free_over      NUMERIC(19,4) CHECK (free_over >= 0),
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by     BIGINT,
    updated_by     BIGINT,
    deleted_at     TIMESTAMPTZ,
    deleted_by     BIGINT
);
CREATE UNIQUE INDEX shipping_methods_code ON shipping_methods (project_id, code) WHERE deleted_at IS NULL;

CREATE TABLE tags (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT      NOT NULL,
    name       TEXT        NOT NULL,
    color      TEXT        NOT NULL DEFAULT '#FFFFFF',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT,
    updated_by BIGINT,
    deleted_at TIMESTAMPTZ,
    deleted_by BIGINT
);
CREATE UNIQUE INDEX tags_name ON tags (project_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE order_tags (
    order_id BIGINT NOT NULL REFERENCES orders (id),
    tag_id   BIGINT NOT NULL REFERENCES tags (id),
    PRIMARY KEY (order_id, tag_id)
);

CREATE TABLE order_notes (
    id                 BIGSERIAL PRIMARY KEY,
    order_id           BIGINT      NOT NULL REFERENCES orders (id),
    note               TEXT        NOT NULL,
    is_internal        BOOLEAN     NOT NULL DEFAULT false,
    created_by         BIGINT,
    created_by_display TEXT        NOT NULL DEFAULT '',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_notes_order_idx ON order_notes (order_id, id);

CREATE TABLE statuses (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT      NOT NULL,
    name                TEXT        NOT NULL,
    description         TEXT        NOT NULL DEFAULT '',
    main_status         TEXT        NOT NULL DEFAULT 'pending' CHECK (main_status IN ('pending_payment',
                          'pending', 'confirmed', 'processing', 'shipped', 'delivered', 'completed',
                          'cancelled', 'returned')),
    is_active           BOOLEAN     NOT NULL DEFAULT true,
    is_customer_visible BOOLEAN     NOT NULL DEFAULT true,
    sort_order          INT         NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by          BIGINT,
    updated_by          BIGINT,
    deleted_at          TIMESTAMPTZ,
    deleted_by          BIGINT
);
CREATE INDEX statuses_project_idx ON statuses (project_id, sort_order);

ALTER TABLE orders ADD COLUMN status_id BIGINT REFERENCES statuses (id);
