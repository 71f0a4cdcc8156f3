-- Tokenised payment methods (contract billing.md §5) and user subscriptions (§7). Card data is
-- never stored beyond the last four digits, the brand and the expiry.

CREATE TABLE payment_methods (
    id                        BIGSERIAL PRIMARY KEY,
    project_id                BIGINT      NOT NULL,
    customer_id               BIGINT      NOT NULL,
    payment_type              TEXT        NOT NULL
                              CHECK (payment_type IN ('credit_card', 'debit_card', 'bank_account', 'wallet', 'cash')),
    card_last_four            TEXT,
    card_brand                TEXT,
    card_expiry_month         INT CHECK (card_expiry_month BETWEEN 1 AND 12),
    card_expiry_year          INT,
    bank_name                 TEXT,
    account_last_four         TEXT,
    billing_address           TEXT        NOT NULL DEFAULT '',
    is_default                BOOLEAN     NOT NULL DEFAULT false,
    is_verified               BOOLEAN     NOT NULL DEFAULT false,
    is_active                 BOOLEAN     NOT NULL DEFAULT true,
    gateway_customer_id       TEXT,
    gateway_payment_method_id TEXT,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by                BIGINT,
    updated_by                BIGINT,
    deleted_at                TIMESTAMPTZ,
    deleted_by                BIGINT
);
-- At most one default per customer.
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (project_id, customer_id)
    WHERE is_default AND deleted_at IS NULL;
CREATE INDEX payment_methods_project_idx ON payment_methods (project_id, customer_id);

CREATE TABLE user_subscriptions (
    id                   BIGSERIAL PRIMARY KEY,
    project_id           BIGINT        NOT NULL,
    user_id              BIGINT        NOT NULL,
    catalog_item_id      TEXT          NOT NULL,
    catalog_item_name    TEXT          NOT NULL,
    catalog_item_type    TEXT          NOT NULL DEFAULT '',
    subscription_status  TEXT          NOT NULL DEFAULT 'pending'
                         CHECK (subscription_status IN ('pending', 'active', 'paused', 'cancelled', 'expired')),
    renewal_period       TEXT          NOT NULL DEFAULT 'monthly'
                         CHECK (renewal_period IN ('monthly', 'quarterly', 'yearly', 'lifetime')),
    price                NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (price >= 0),
    currency             TEXT          NOT NULL DEFAULT 'USD',
    start_date           TIMESTAMPTZ   NOT NULL,
    end_date             TIMESTAMPTZ,
    next_billing_date    TIMESTAMPTZ,
    last_invoice_id      BIGINT,
    notes                TEXT          NOT NULL DEFAULT '',
    configuration        JSONB         NOT NULL DEFAULT '{}'::jsonb,
    auto_renew           BOOLEAN       NOT NULL DEFAULT true,
    cancel_at_period_end BOOLEAN       NOT NULL DEFAULT false,
    cancelled_at         TIMESTAMPTZ,
    cancel_reason        TEXT          NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by           BIGINT,
    updated_by           BIGINT,
    deleted_at           TIMESTAMPTZ,
    deleted_by           BIGINT,
    CHECK (end_date IS NULL OR end_date >= start_date)
);
CREATE INDEX user_subscriptions_project_idx ON user_subscriptions (project_id, user_id);
