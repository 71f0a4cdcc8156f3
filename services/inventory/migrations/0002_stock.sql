-- Stock rows and the movement ledger (contract inventory.md §2, §4, §5). The database keeps the
-- invariants: quantities never negative, never more reserved than held; `available_quantity` is
-- generated. Movements are the only writer of `quantity` and commit with the row they change,
-- so `quantity = Σ movements.quantity` per row always holds.

CREATE TABLE stock_items (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT      NOT NULL,
    product_id          BIGINT      NOT NULL,
    variant_id          BIGINT,
    warehouse           BIGINT      NOT NULL REFERENCES warehouses (id),
    location            BIGINT      REFERENCES locations (id),
    batch               BIGINT      REFERENCES batches (id),
    serial_number       TEXT,
    quantity            INT         NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    reserved_quantity   INT         NOT NULL DEFAULT 0 CHECK (reserved_quantity >= 0),
    available_quantity  INT         GENERATED ALWAYS AS (quantity - reserved_quantity) STORED,
    low_stock_threshold INT         NOT NULL DEFAULT 10 CHECK (low_stock_threshold >= 0),
    maximum_stock_level INT         NOT NULL DEFAULT 100 CHECK (maximum_stock_level >= 0),
    reorder_point       INT         CHECK (reorder_point >= 0),
    reorder_quantity    INT         CHECK (reorder_quantity >= 0),
    last_restocked_at   TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by          BIGINT,
    updated_by          BIGINT,
    deleted_at          TIMESTAMPTZ,
    deleted_by          BIGINT,
    CHECK (reserved_quantity <= quantity)
);
CREATE UNIQUE INDEX stock_items_key ON stock_items
    (project_id, product_id, variant_id, warehouse, location, batch, serial_number) NULLS NOT DISTINCT
    WHERE deleted_at IS NULL;
CREATE INDEX stock_items_product_idx ON stock_items (project_id, product_id, variant_id) WHERE deleted_at IS NULL;

CREATE TABLE movements (
    id                BIGSERIAL PRIMARY KEY,
    project_id        BIGINT      NOT NULL,
    inventory_id      BIGINT      NOT NULL REFERENCES stock_items (id),
    product_id        BIGINT      NOT NULL,
    variant_id        BIGINT,
    warehouse         BIGINT      NOT NULL,
    movement_type     TEXT        NOT NULL CHECK (movement_type IN ('IN', 'OUT', 'TRANSFER', 'ADJUSTMENT')),
    reason_code       TEXT        NOT NULL,
    quantity          INT         NOT NULL CHECK (quantity <> 0),
    previous_quantity INT         NOT NULL,
    new_quantity      INT         NOT NULL CHECK (new_quantity >= 0),
    reason            TEXT        NOT NULL DEFAULT '',
    reference         TEXT        NOT NULL DEFAULT '',
    notes             TEXT        NOT NULL DEFAULT '',
    unit_cost         NUMERIC(16,4),
    created_by        BIGINT,
    performed_by      TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The standard columns of kernel::resource (movements are never updated or deleted).
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by        BIGINT,
    deleted_at        TIMESTAMPTZ,
    deleted_by        BIGINT,
    CHECK (new_quantity = previous_quantity + quantity),
    CHECK (deleted_at IS NULL)
);
CREATE INDEX movements_item_idx ON movements (inventory_id, id);
CREATE INDEX movements_project_idx ON movements (project_id, created_at);
