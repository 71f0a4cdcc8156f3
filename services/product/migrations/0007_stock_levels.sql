-- What the inventory service last said of each stock row (`inventory.stock_changed`), so that
-- `stock_quantity` of products and variants is the sum of their rows' available units whatever
-- order the events arrive in: a row's newer version always wins.
CREATE TABLE stock_levels (
    inventory_id BIGINT PRIMARY KEY,
    project_id   BIGINT NOT NULL,
    product_id   BIGINT NOT NULL,
    variant_id   BIGINT,
    available    INT    NOT NULL,
    version      BIGINT NOT NULL
);
CREATE INDEX stock_levels_product_idx ON stock_levels (product_id);
CREATE INDEX stock_levels_variant_idx ON stock_levels (variant_id) WHERE variant_id IS NOT NULL;
