-- Orders and their lines (contract order.md §2–§7). Money is NUMERIC(19,4); prices are
-- snapshots taken from the product service at placement and never change afterwards.

-- `ORD-{YYYY}-{NNNNNN}` from the row id: at least six digits, never cut (gaps allowed).
CREATE FUNCTION order_number(id BIGINT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT 'ORD-' || to_char(now(), 'YYYY') || '-' ||
           CASE WHEN id < 1000000 THEN lpad(id::text, 6, '0') ELSE id::text END
$$;

CREATE TABLE orders (
    id                  BIGSERIAL PRIMARY KEY,
    project_id          BIGINT        NOT NULL,
    order_number        TEXT          NOT NULL,
    -- `placing` and `failed` are internal: never listed.
    status              TEXT          NOT NULL DEFAULT 'placing' CHECK (status IN ('placing', 'failed',
                          'pending_payment', 'pending', 'confirmed', 'processing', 'shipped',
                          'delivered', 'completed', 'cancelled', 'returned')),
    payment_status      TEXT          NOT NULL DEFAULT 'pending',
    fulfillment_status  TEXT          NOT NULL DEFAULT 'unfulfilled',
    customer_id         BIGINT,
    customer_email      TEXT          NOT NULL DEFAULT '',
    customer_phone      TEXT          NOT NULL DEFAULT '',
    customer_name       TEXT          NOT NULL DEFAULT '',
    shipping_address    JSONB,
    billing_address     JSONB,
    currency            TEXT          NOT NULL,
    subtotal            NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
    discount_amount     NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (discount_amount >= 0),
    tax_amount          NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (tax_amount >= 0),
    shipping_cost       NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (shipping_cost >= 0),
    total               NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (total >= 0),
    amount_paid         NUMERIC(19,4) NOT NULL DEFAULT 0,
    amount_refunded     NUMERIC(19,4) NOT NULL DEFAULT 0,
    shipping_method     TEXT          NOT NULL DEFAULT '',
    payment_method      TEXT          NOT NULL DEFAULT '',
    tracking_number     TEXT          NOT NULL DEFAULT '',
    carrier             TEXT          NOT NULL DEFAULT '',
    notes               TEXT          NOT NULL DEFAULT '',
    reference           TEXT,
    source              TEXT          NOT NULL DEFAULT 'api',
    reservation_id      TEXT,
    invoice_id          BIGINT,
    cancellation_reason TEXT          NOT NULL DEFAULT '',
    cancelled_at        TIMESTAMPTZ,
    confirmed_at        TIMESTAMPTZ,
    shipped_at          TIMESTAMPTZ,
    delivered_at        TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    created_at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by          BIGINT,
    updated_by          BIGINT,
    deleted_at          TIMESTAMPTZ,
    deleted_by          BIGINT,
    UNIQUE (project_id, order_number)
);
-- An external reference (`auction:{id}`) places one order.
CREATE UNIQUE INDEX orders_reference ON orders (project_id, reference)
    WHERE reference IS NOT NULL AND status <> 'failed';
CREATE INDEX orders_project_idx ON orders (project_id, created_at);
CREATE INDEX orders_placing_idx ON orders (created_at) WHERE status = 'placing';

CREATE TABLE order_items (
    id                 BIGSERIAL PRIMARY KEY,
    order_id           BIGINT        NOT NULL REFERENCES orders (id),
    product_id         BIGINT        NOT NULL,
    variant_id         BIGINT,
    inventory_id       BIGINT,
    product_name       TEXT          NOT NULL DEFAULT '',
    variant_name       TEXT,
    sku                TEXT,
    image_url          TEXT,
    quantity           INT           NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price         NUMERIC(19,4) NOT NULL CHECK (unit_price >= 0),
    list_price         NUMERIC(19,4),
    price_overridden   BOOLEAN       NOT NULL DEFAULT false,
    discount           NUMERIC(19,4) NOT NULL DEFAULT 0,
    tax_amount         NUMERIC(19,4) NOT NULL DEFAULT 0,
    total_price        NUMERIC(19,4) NOT NULL,
    tracked            BOOLEAN       NOT NULL DEFAULT true,
    fulfilled_quantity INT           NOT NULL DEFAULT 0,
    returned_quantity  INT           NOT NULL DEFAULT 0
);
CREATE INDEX order_items_order_idx ON order_items (order_id);

-- Append-only: every status change and effect, who and when.
CREATE TABLE order_history (
    id           BIGSERIAL PRIMARY KEY,
    order_id     BIGINT      NOT NULL REFERENCES orders (id),
    event        TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    notes        TEXT        NOT NULL DEFAULT '',
    performed_by BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order_idx ON order_history (order_id, id);

CREATE TABLE fulfillments (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT      NOT NULL,
    order_id        BIGINT      NOT NULL REFERENCES orders (id),
    status          TEXT        NOT NULL DEFAULT 'shipped' CHECK (status IN ('shipped', 'delivered')),
    items           JSONB       NOT NULL,
    carrier         TEXT        NOT NULL DEFAULT '',
    tracking_number TEXT        NOT NULL DEFAULT '',
    tracking_url    TEXT        NOT NULL DEFAULT '',
    shipping_method TEXT        NOT NULL DEFAULT '',
    notes           TEXT        NOT NULL DEFAULT '',
    shipped_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT,
    updated_by      BIGINT,
    deleted_at      TIMESTAMPTZ,
    deleted_by      BIGINT
);
-- One shipment of all remaining units per order (partial shipments are LATER).
CREATE UNIQUE INDEX fulfillments_one_per_order ON fulfillments (order_id) WHERE deleted_at IS NULL;
