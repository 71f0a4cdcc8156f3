-- Order payments (order.md §6) and returns (§9).

CREATE TABLE payments (
    id                     BIGSERIAL PRIMARY KEY,
    project_id             BIGINT        NOT NULL,
    order_id               BIGINT        NOT NULL REFERENCES orders (id),
    payment_method         TEXT          NOT NULL,
    amount                 NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    status                 TEXT          NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'refunded')),
    transaction_reference  TEXT          NOT NULL DEFAULT '',
    payment_date           TIMESTAMPTZ,
    notes                  TEXT          NOT NULL DEFAULT '',
    -- The billing transaction that carries it (`ORD-{orderId}-{paymentId}`), and whether
    -- billing has booked it yet (`payment.success`).
    billing_transaction_id TEXT,
    acknowledged           BOOLEAN       NOT NULL DEFAULT false,
    created_at             TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by             BIGINT,
    updated_by             BIGINT,
    deleted_at             TIMESTAMPTZ,
    deleted_by             BIGINT
);
CREATE UNIQUE INDEX payments_billing_tx ON payments (project_id, billing_transaction_id)
    WHERE billing_transaction_id IS NOT NULL;
CREATE INDEX payments_order_idx ON payments (order_id);

-- Refunds the order asked billing for (once per key), and whether billing booked them.
CREATE TABLE order_refunds (
    id             BIGSERIAL PRIMARY KEY,
    project_id     BIGINT        NOT NULL,
    order_id       BIGINT        NOT NULL REFERENCES orders (id),
    transaction_id TEXT          NOT NULL,
    amount         NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    reason         TEXT          NOT NULL DEFAULT '',
    return_id      BIGINT,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    UNIQUE (project_id, transaction_id)
);

CREATE TABLE return_reasons (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT      NOT NULL,
    reason      TEXT        NOT NULL,
    name        TEXT        NOT NULL DEFAULT '',
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  BIGINT,
    updated_by  BIGINT,
    deleted_at  TIMESTAMPTZ,
    deleted_by  BIGINT
);
CREATE UNIQUE INDEX return_reasons_code ON return_reasons (project_id, reason) WHERE deleted_at IS NULL;

-- `RET-{YYYY}-{NNNNNN}` from the row id, like order numbers.
CREATE FUNCTION return_number(id BIGINT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT 'RET-' || to_char(now(), 'YYYY') || '-' ||
           CASE WHEN id < 1000000 THEN lpad(id::text, 6, '0') ELSE id::text END
$$;

CREATE TABLE order_returns (
    id            BIGSERIAL PRIMARY KEY,
    project_id    BIGINT        NOT NULL,
    order_id      BIGINT        NOT NULL REFERENCES orders (id),
    return_number TEXT          NOT NULL,
    return_type   TEXT          NOT NULL DEFAULT 'full' CHECK (return_type IN ('full', 'partial', 'store_credit')),
    status        TEXT          NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'completed', 'canceled')),
    reason_id     BIGINT        REFERENCES return_reasons (id),
    note          TEXT          NOT NULL DEFAULT '',
    refund_amount NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (refund_amount >= 0),
    refund_method TEXT          NOT NULL DEFAULT 'original' CHECK (refund_method IN ('original', 'none')),
    resolved_date TIMESTAMPTZ,
    restocked     BOOLEAN       NOT NULL DEFAULT false,
    created_at    TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by    BIGINT,
    updated_by    BIGINT,
    deleted_at    TIMESTAMPTZ,
    deleted_by    BIGINT,
    UNIQUE (project_id, return_number)
);
CREATE INDEX order_returns_order_idx ON order_returns (order_id);

CREATE TABLE return_items (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT  NOT NULL,
    order_return_id BIGINT  NOT NULL REFERENCES order_returns (id),
    order_item_id   BIGINT  NOT NULL REFERENCES order_items (id),
    product_id      BIGINT  NOT NULL,
    quantity        INT     NOT NULL CHECK (quantity >= 1),
    rating          INT     CHECK (rating BETWEEN 1 AND 5),
    is_damaged      BOOLEAN NOT NULL DEFAULT false,
    restock         BOOLEAN NOT NULL DEFAULT true,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT,
    updated_by      BIGINT,
    deleted_at      TIMESTAMPTZ,
    deleted_by      BIGINT
);
CREATE INDEX return_items_return_idx ON return_items (order_return_id);
