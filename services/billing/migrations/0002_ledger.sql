-- The whole transaction ledger (contract billing.md §4): adjustments and chargebacks, online
-- gateways (pending rows without an invoice yet, provider ids, next actions, failures) and the
-- invoice fields edited after creation (§3.1).

ALTER TABLE transactions DROP CONSTRAINT transactions_transaction_type_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_transaction_type_check
    CHECK (transaction_type IN ('payment', 'refund', 'adjustment', 'chargeback'));
-- The sign is carried by the type; only an adjustment is signed.
ALTER TABLE transactions DROP CONSTRAINT transactions_amount_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_amount_check
    CHECK (amount <> 0 AND (transaction_type = 'adjustment' OR amount > 0));
-- An online payment started before its invoice exists (checkout) names its source instead.
ALTER TABLE transactions ALTER COLUMN invoice_id DROP NOT NULL;
ALTER TABLE transactions
    ADD COLUMN payment_method_id BIGINT,
    ADD COLUMN customer_id       BIGINT,
    ADD COLUMN gateway_response  JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN metadata          JSONB NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN error_code        TEXT,
    ADD COLUMN error_message     TEXT,
    ADD COLUMN source_type       TEXT,
    ADD COLUMN source_id         BIGINT,
    ADD COLUMN next_action       JSONB,
    ADD COLUMN idempotency_key   TEXT;
-- A provider's id names one transaction of that provider (manual references are free text).
CREATE UNIQUE INDEX transactions_gateway_id ON transactions (gateway_name, gateway_transaction_id)
    WHERE gateway_name <> 'manual' AND gateway_transaction_id IS NOT NULL;
CREATE UNIQUE INDEX transactions_idempotency ON transactions (project_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX transactions_source_idx ON transactions (project_id, source_type, source_id)
    WHERE source_type IS NOT NULL;
CREATE INDEX transactions_project_idx ON transactions (project_id, transaction_date);
CREATE INDEX transactions_refund_of_idx ON transactions (refund_of_id) WHERE refund_of_id IS NOT NULL;

-- Provider notifications applied, by the provider's event id (a redelivery is a no-op).
CREATE TABLE gateway_events (
    gateway      TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, event_id)
);

ALTER TABLE invoices
    ADD COLUMN metadata    JSONB         NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN profit      NUMERIC(19,4) NOT NULL DEFAULT 0,
    ADD COLUMN coupon_code TEXT;
ALTER TABLE invoices ALTER COLUMN customer_type SET DEFAULT 'crm';
