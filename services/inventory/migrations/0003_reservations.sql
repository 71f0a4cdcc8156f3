-- The product replica, reservations, transfers, restocks (contract inventory.md §5, §6, §10).

-- Every change of a stock row bumps its version: consumers of `inventory.stock_changed` keep
-- the newest state of each row whatever order events arrive in.
ALTER TABLE stock_items ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- What the product service said last of each product and variant (product.*, variant.*
-- events, or a lookup when an id is not known yet).
CREATE TABLE catalog_products (
    product_id          BIGINT PRIMARY KEY,
    project_id          BIGINT      NOT NULL,
    name                TEXT        NOT NULL DEFAULT '',
    sku                 TEXT,
    price               TEXT,
    cost_price          TEXT,
    category_id         BIGINT,
    is_active           BOOLEAN     NOT NULL,
    track_inventory     BOOLEAN     NOT NULL,
    low_stock_threshold INT,
    deleted             BOOLEAN     NOT NULL DEFAULT false,
    as_of               TIMESTAMPTZ NOT NULL
);
CREATE TABLE catalog_variants (
    variant_id BIGINT PRIMARY KEY,
    project_id BIGINT      NOT NULL,
    product_id BIGINT      NOT NULL,
    name       TEXT        NOT NULL DEFAULT '',
    sku        TEXT,
    is_active  BOOLEAN     NOT NULL,
    deleted    BOOLEAN     NOT NULL DEFAULT false,
    as_of      TIMESTAMPTZ NOT NULL
);

CREATE TABLE reservations (
    id                 BIGSERIAL PRIMARY KEY,
    project_id         BIGINT      NOT NULL,
    reservation_number TEXT        NOT NULL,
    order_id           TEXT,
    reference          TEXT,
    status             TEXT        NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'confirmed', 'released', 'expired')),
    expires_at         TIMESTAMPTZ,
    confirmed_at       TIMESTAMPTZ,
    released_at        TIMESTAMPTZ,
    release_reason     TEXT,
    -- The lines as requested, normalised: a repeated create for the same order compares them.
    lines_key          TEXT        NOT NULL,
    created_by         BIGINT,
    performed_by       TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The standard columns of kernel::resource (reservations end, they are never deleted).
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by         BIGINT,
    deleted_at         TIMESTAMPTZ CHECK (deleted_at IS NULL),
    deleted_by         BIGINT,
    UNIQUE (project_id, reservation_number)
);
-- One active reservation per order: the database decides between concurrent creates.
CREATE UNIQUE INDEX reservations_active_order ON reservations (project_id, order_id)
    WHERE status = 'active' AND order_id IS NOT NULL;
CREATE INDEX reservations_due_idx ON reservations (expires_at) WHERE status = 'active';
CREATE INDEX reservations_project_idx ON reservations (project_id, created_at);

CREATE TABLE reservation_items (
    id                 BIGSERIAL PRIMARY KEY,
    reservation_id     BIGINT  NOT NULL REFERENCES reservations (id),
    product_id         BIGINT  NOT NULL,
    variant_id         BIGINT,
    product_name       TEXT    NOT NULL DEFAULT '',
    quantity           INT     NOT NULL CHECK (quantity > 0),
    confirmed_quantity INT     NOT NULL DEFAULT 0 CHECK (confirmed_quantity >= 0),
    warehouse_id       BIGINT,
    inventory_id       BIGINT,
    -- Stock is not tracked for this product: the line holds nothing.
    tracked            BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX reservation_items_reservation_idx ON reservation_items (reservation_id);

CREATE TABLE reservation_allocations (
    id           BIGSERIAL PRIMARY KEY,
    item_id      BIGINT NOT NULL REFERENCES reservation_items (id),
    inventory_id BIGINT NOT NULL REFERENCES stock_items (id),
    warehouse_id BIGINT NOT NULL,
    quantity     INT    NOT NULL CHECK (quantity > 0)
);
CREATE INDEX reservation_allocations_item_idx ON reservation_allocations (item_id);
CREATE INDEX reservation_allocations_row_idx ON reservation_allocations (inventory_id);

CREATE TABLE transfers (
    id                BIGSERIAL PRIMARY KEY,
    project_id        BIGINT      NOT NULL,
    transfer_number   TEXT        NOT NULL,
    reference         TEXT        NOT NULL,
    reason            TEXT        NOT NULL DEFAULT '',
    from_warehouse_id BIGINT      NOT NULL,
    to_warehouse_id   BIGINT      NOT NULL,
    from_location_id  BIGINT,
    to_location_id    BIGINT,
    status            TEXT        NOT NULL DEFAULT 'completed',
    items             JSONB       NOT NULL,
    created_by        BIGINT,
    performed_by      TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by        BIGINT,
    deleted_at        TIMESTAMPTZ CHECK (deleted_at IS NULL),
    deleted_by        BIGINT,
    UNIQUE (project_id, transfer_number)
);

CREATE TABLE restocks (
    id                 BIGSERIAL PRIMARY KEY,
    project_id         BIGINT      NOT NULL,
    restock_number     TEXT        NOT NULL,
    supplier           TEXT        NOT NULL DEFAULT '',
    vendor_id          BIGINT,
    supplier_reference TEXT        NOT NULL DEFAULT '',
    received_date      DATE,
    notes              TEXT        NOT NULL DEFAULT '',
    warehouse_id       BIGINT      NOT NULL,
    items              JSONB       NOT NULL,
    total_cost         NUMERIC(16,4),
    created_by         BIGINT,
    performed_by       TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by         BIGINT,
    deleted_at         TIMESTAMPTZ CHECK (deleted_at IS NULL),
    deleted_by         BIGINT,
    UNIQUE (project_id, restock_number)
);

ALTER TABLE movements
    ADD COLUMN transfer_id    BIGINT REFERENCES transfers (id),
    ADD COLUMN reservation_id BIGINT REFERENCES reservations (id),
    ADD COLUMN reversal_of    BIGINT REFERENCES movements (id);
-- A movement is reversed once.
CREATE UNIQUE INDEX movements_reversal_once ON movements (reversal_of) WHERE reversal_of IS NOT NULL;
CREATE INDEX movements_reservation_idx ON movements (reservation_id) WHERE reservation_id IS NOT NULL;
