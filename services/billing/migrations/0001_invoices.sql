-- Invoices and the transaction ledger (contract billing.md §3, §4). Balances are derived from
-- completed transactions only; amounts are NUMERIC(19,4).

-- Per project and year: the last invoice number issued. Locked by the create transaction, so
-- numbers are gapless under concurrency (a rolled-back create gives its number back).
CREATE TABLE invoice_counters (
    project_id BIGINT NOT NULL,
    year       INT    NOT NULL,
    last       BIGINT NOT NULL,
    PRIMARY KEY (project_id, year)
);

CREATE TABLE invoices (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT        NOT NULL,
    invoice_number  TEXT          NOT NULL,
    customer_id     BIGINT,
    customer_type   TEXT          NOT NULL DEFAULT 'user',
    customer        JSONB         NOT NULL DEFAULT '{}'::jsonb,
    order_id        BIGINT,
    source_type     TEXT          NOT NULL DEFAULT 'manual',
    source_id       BIGINT,
    status          TEXT          NOT NULL DEFAULT 'sent'
                    CHECK (status IN ('draft', 'sent', 'partially_paid', 'paid', 'refunded', 'cancelled')),
    subtotal        NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
    discount_amount NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (discount_amount >= 0),
    tax_amount      NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (tax_amount >= 0),
    shipping_amount NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (shipping_amount >= 0),
    total_amount    NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (total_amount >= 0),
    amount_paid     NUMERIC(19,4) NOT NULL DEFAULT 0,
    amount_refunded NUMERIC(19,4) NOT NULL DEFAULT 0,
    currency        TEXT          NOT NULL,
    due_date        DATE,
    paid_date       DATE,
    sent_at         TIMESTAMPTZ,
    cancelled_at    TIMESTAMPTZ,
    cancel_reason   TEXT          NOT NULL DEFAULT '',
    notes           TEXT          NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by      BIGINT,
    updated_by      BIGINT,
    deleted_at      TIMESTAMPTZ,
    deleted_by      BIGINT,
    UNIQUE (project_id, invoice_number),
    CHECK (amount_paid - amount_refunded >= 0),
    CHECK (amount_paid - amount_refunded <= total_amount)
);
-- One invoice per source (an order, a repair…): a replay finds it.
CREATE UNIQUE INDEX invoices_source ON invoices (project_id, source_type, source_id)
    WHERE source_type <> 'manual' AND source_id IS NOT NULL;
CREATE INDEX invoices_project_idx ON invoices (project_id, created_at);

CREATE TABLE invoice_items (
    id          BIGSERIAL PRIMARY KEY,
    invoice_id  BIGINT        NOT NULL REFERENCES invoices (id),
    description TEXT          NOT NULL,
    product_id  BIGINT,
    variant_id  BIGINT,
    quantity    NUMERIC(19,4) NOT NULL CHECK (quantity > 0),
    unit_price  NUMERIC(19,4) NOT NULL CHECK (unit_price >= 0),
    discount    NUMERIC(19,4) NOT NULL DEFAULT 0,
    tax_rate    NUMERIC(7,4)  NOT NULL DEFAULT 0,
    tax_amount  NUMERIC(19,4) NOT NULL DEFAULT 0,
    total       NUMERIC(19,4) NOT NULL,
    position    INT           NOT NULL DEFAULT 0
);
CREATE INDEX invoice_items_invoice_idx ON invoice_items (invoice_id);

CREATE TABLE transactions (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT        NOT NULL,
    transaction_id   TEXT          NOT NULL,
    transaction_type TEXT          NOT NULL CHECK (transaction_type IN ('payment', 'refund')),
    amount           NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    currency         TEXT          NOT NULL,
    status           TEXT          NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    invoice_id       BIGINT        NOT NULL REFERENCES invoices (id),
    method           TEXT          NOT NULL DEFAULT 'cash',
    gateway_name     TEXT          NOT NULL DEFAULT 'manual',
    gateway_transaction_id TEXT,
    description      TEXT          NOT NULL DEFAULT '',
    refund_of_id     BIGINT REFERENCES transactions (id),
    transaction_date TIMESTAMPTZ   NOT NULL DEFAULT now(),
    processed_date   TIMESTAMPTZ,
    created_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by       BIGINT,
    updated_by       BIGINT,
    deleted_at       TIMESTAMPTZ,
    deleted_by       BIGINT,
    UNIQUE (project_id, transaction_id)
);
CREATE INDEX transactions_invoice_idx ON transactions (invoice_id);
