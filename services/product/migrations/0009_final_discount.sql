-- The discount that gives a product its final price is kept on the row beside it, so a price
-- quote reads both without evaluating the discount rules (product_best_discount) while the
-- row's final price is current.
ALTER TABLE products ADD COLUMN final_discount_id BIGINT;

CREATE OR REPLACE FUNCTION products_final_price() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    best RECORD;
BEGIN
    SELECT f.final, f.discount_id INTO best
    FROM product_best_discount_for(NEW.project_id, NEW.id, NEW.category, NEW.price) f;
    NEW.final_price := COALESCE(best.final, NEW.price);
    NEW.final_discount_id := best.discount_id;
    NEW.final_price_until := discounts_change_at(NEW.project_id);
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION refresh_final_prices(p_project BIGINT) RETURNS void
LANGUAGE sql AS $$
    WITH next AS (SELECT discounts_change_at(p_project) AS at)
    UPDATE products p
    SET final_price = COALESCE(best.final, p.price),
        final_discount_id = best.discount_id,
        final_price_until = next.at
    FROM next, products q
    LEFT JOIN LATERAL product_best_discount_for(q.project_id, q.id, q.category, q.price) best ON true
    WHERE p.project_id = p_project AND q.id = p.id
$$;

SELECT refresh_final_prices(project_id) FROM (SELECT DISTINCT project_id FROM products) x;
