-- Coupons and their redemptions (contract billing.md §6). `used_count` counts live
-- redemptions; it moves only with them, under the coupon's row lock, and never passes the limit.

CREATE TABLE coupons (
    id                       BIGSERIAL PRIMARY KEY,
    project_id               BIGINT        NOT NULL,
    code                     TEXT          NOT NULL,
    description              TEXT          NOT NULL DEFAULT '',
    discount_type            TEXT          NOT NULL CHECK (discount_type IN ('percentage', 'fixed')),
    discount_value           NUMERIC(19,4) NOT NULL CHECK (discount_value > 0),
    valid_from               TIMESTAMPTZ,
    valid_until              TIMESTAMPTZ,
    usage_limit              INT           DEFAULT 1 CHECK (usage_limit IS NULL OR usage_limit >= 1),
    usage_limit_per_customer INT           DEFAULT 1 CHECK (usage_limit_per_customer IS NULL OR usage_limit_per_customer >= 1),
    used_count               INT           NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    is_active                BOOLEAN       NOT NULL DEFAULT true,
    min_order_amount         NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (min_order_amount >= 0),
    max_discount_amount      NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (max_discount_amount >= 0),
    created_at               TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by               BIGINT,
    updated_by               BIGINT,
    deleted_at               TIMESTAMPTZ,
    deleted_by               BIGINT,
    CHECK (usage_limit IS NULL OR used_count <= usage_limit),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until >= valid_from)
);
-- Codes are unique per project among live coupons, whatever their case.
CREATE UNIQUE INDEX coupons_code_unique ON coupons (project_id, lower(code)) WHERE deleted_at IS NULL;
CREATE INDEX coupons_project_idx ON coupons (project_id, created_at);

CREATE TABLE coupon_redemptions (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT        NOT NULL,
    coupon_id       BIGINT        NOT NULL REFERENCES coupons (id),
    customer_id     BIGINT,
    source_type     TEXT          NOT NULL,
    source_id       BIGINT        NOT NULL,
    order_amount    NUMERIC(19,4) NOT NULL,
    discount_amount NUMERIC(19,4) NOT NULL CHECK (discount_amount >= 0),
    created_at      TIMESTAMPTZ   NOT NULL DEFAULT now(),
    created_by      BIGINT,
    released_at     TIMESTAMPTZ
);
-- One live use per (coupon, source): a replayed redeem finds it.
CREATE UNIQUE INDEX coupon_redemptions_source ON coupon_redemptions (coupon_id, source_type, source_id)
    WHERE released_at IS NULL;
CREATE INDEX coupon_redemptions_customer ON coupon_redemptions (coupon_id, customer_id)
    WHERE released_at IS NULL;
