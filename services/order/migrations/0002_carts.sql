-- Carts (contract order.md §11) and the project settings the order flow reads.

-- What the project service last said of the settings orders use (`project.settings_changed`):
-- `tax_rate`, `payment_window_minutes`, `reservation_ttl_hours`, `auto_confirm_paid_orders`.
CREATE TABLE order_settings (
    project_id BIGINT      NOT NULL,
    key        TEXT        NOT NULL,
    value      JSONB       NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE carts (
    id               TEXT        PRIMARY KEY,
    project_id       BIGINT      NOT NULL,
    -- The owner: an authenticated user (member or not), or the holder of a guest token.
    customer_id      BIGINT,
    guest_token_hash TEXT,
    status           TEXT        NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'converted', 'merged', 'expired')),
    currency         TEXT        NOT NULL,
    -- The applied coupon as billing validated it: {id, code, description, discount_type,
    -- discount_value, applied_at}.
    coupon           JSONB,
    shipping_address JSONB,
    billing_address  JSONB,
    shipping_method  TEXT        NOT NULL DEFAULT '',
    order_id         BIGINT,
    -- The checkout answer, replayed to a retried checkout of the converted cart.
    checkout         JSONB,
    -- A checkout in progress claims the cart (taken over after a minute if it died).
    checkout_started_at TIMESTAMPTZ,
    version          INT         NOT NULL DEFAULT 1,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (customer_id IS NOT NULL OR guest_token_hash IS NOT NULL)
);
-- One active cart per user and project; guests by token.
CREATE UNIQUE INDEX carts_active_user ON carts (project_id, customer_id)
    WHERE status = 'active' AND customer_id IS NOT NULL;
CREATE UNIQUE INDEX carts_guest_token ON carts (guest_token_hash) WHERE guest_token_hash IS NOT NULL;
CREATE INDEX carts_project_updated_idx ON carts (project_id, updated_at) WHERE status = 'active';

CREATE TABLE cart_items (
    id         TEXT          PRIMARY KEY,
    cart_id    TEXT          NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id BIGINT        NOT NULL,
    variant_id BIGINT,
    quantity   INT           NOT NULL CHECK (quantity BETWEEN 1 AND 9999),
    -- The price the shopper last saw, for the `price_changed` warning.
    seen_price NUMERIC(19,4),
    added_at   TIMESTAMPTZ   NOT NULL DEFAULT now()
);
-- The same product and variant is one line (quantities are summed).
CREATE UNIQUE INDEX cart_items_line ON cart_items (cart_id, product_id, COALESCE(variant_id, 0));

-- Order-level coupon and discount (order.md §2, §4).
ALTER TABLE orders ADD COLUMN coupon_code TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN coupon_redemption_id BIGINT;
ALTER TABLE orders ADD COLUMN cart_id TEXT;
