-- Final prices kept on the row (product.md §2.3): written when a price, a category or a
-- discount rule changes, read without computing. A discount that starts or ends later changes
-- prices without any write, so each row also keeps `final_price_until`, the next time a
-- discount of its project starts or ends; after it, readers compute the price (the function
-- below) until the next write refreshes the row.
ALTER TABLE products
    ADD COLUMN final_price       NUMERIC(16,4),
    ADD COLUMN final_price_until TIMESTAMPTZ;

-- product_best_discount with the product's project and category given: a BEFORE trigger sees
-- the row being written before it is stored.
CREATE FUNCTION product_best_discount_for(p_project BIGINT, p_product BIGINT, p_category BIGINT,
                                          p_unit NUMERIC, OUT final NUMERIC, OUT discount_id BIGINT)
LANGUAGE sql STABLE AS $$
    SELECT GREATEST(p_unit - r.reduction, 0), r.id
    FROM (
        SELECT d.id, d.priority,
               CASE d.discount_type WHEN 'percentage' THEN round(p_unit * d.value / 100, 2)
                                    ELSE d.value END AS reduction
        FROM discounts d
        WHERE d.project_id = p_project
          AND d.deleted_at IS NULL AND d.is_active
          AND (d.starts_at IS NULL OR d.starts_at <= now())
          AND (d.ends_at IS NULL OR d.ends_at > now())
          AND (d.applies_to = 'all'
               OR (d.applies_to = 'products' AND EXISTS (
                     SELECT 1 FROM product_discounts pd
                     WHERE pd.discount = d.id AND pd.product = p_product AND pd.deleted_at IS NULL))
               OR (d.applies_to = 'categories' AND p_category IS NOT NULL AND EXISTS (
                     WITH RECURSIVE up(id, parent, depth) AS (
                         SELECT c.id, c.parent, 0 FROM categories c WHERE c.id = p_category
                         UNION ALL
                         SELECT c.id, c.parent, up.depth + 1 FROM categories c
                         JOIN up ON c.id = up.parent WHERE up.depth < 20)
                     SELECT 1 FROM up WHERE d.category_ids @> to_jsonb(up.id)))
               OR (d.applies_to = 'collections' AND EXISTS (
                     SELECT 1 FROM product_collections pc
                     WHERE pc.product = p_product AND pc.deleted_at IS NULL
                       AND d.collection_ids @> to_jsonb(pc.collection))))
    ) r
    ORDER BY r.reduction DESC, r.priority DESC, r.id
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION product_best_discount(p_product BIGINT, p_unit NUMERIC,
                                                 OUT final NUMERIC, OUT discount_id BIGINT)
LANGUAGE sql STABLE AS $$
    SELECT f.final, f.discount_id
    FROM products p, product_best_discount_for(p.project_id, p.id, p.category, p_unit) f
    WHERE p.id = p_product
$$;

-- The next time a discount of the project starts or ends (NULL: none is planned).
CREATE FUNCTION discounts_change_at(p_project BIGINT) RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE AS $$
    SELECT min(v.at)
    FROM discounts d CROSS JOIN LATERAL (VALUES (d.starts_at), (d.ends_at)) v(at)
    WHERE d.project_id = p_project AND d.deleted_at IS NULL AND d.is_active AND v.at > now()
$$;

-- A product written with a new price or category carries its final price.
CREATE FUNCTION products_final_price() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.final_price := COALESCE(
        (SELECT f.final FROM product_best_discount_for(NEW.project_id, NEW.id, NEW.category, NEW.price) f),
        NEW.price);
    NEW.final_price_until := discounts_change_at(NEW.project_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER products_final_price BEFORE INSERT OR UPDATE OF price, category, project_id
    ON products FOR EACH ROW EXECUTE FUNCTION products_final_price();

-- Every product of a project priced again: one statement.
CREATE FUNCTION refresh_final_prices(p_project BIGINT) RETURNS void
LANGUAGE sql AS $$
    WITH next AS (SELECT discounts_change_at(p_project) AS at)
    UPDATE products p
    SET final_price = COALESCE(
            (SELECT f.final FROM product_best_discount_for(p.project_id, p.id, p.category, p.price) f),
            p.price),
        final_price_until = next.at
    FROM next
    WHERE p.project_id = p_project
$$;

-- A change to the rules (discounts, their products, collection membership, the category
-- tree) prices the projects it touched again, in the writing transaction.
CREATE FUNCTION reprice_changed_projects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM refresh_final_prices(x.project_id) FROM (SELECT DISTINCT project_id FROM changed) x;
    RETURN NULL;
END
$$;
DO $$
DECLARE
    tbl TEXT;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['discounts', 'product_discounts', 'product_collections'] LOOP
        EXECUTE format('CREATE TRIGGER %1$s_reprice_insert AFTER INSERT ON %1$I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION reprice_changed_projects()', tbl);
        EXECUTE format('CREATE TRIGGER %1$s_reprice_update AFTER UPDATE ON %1$I REFERENCING NEW TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION reprice_changed_projects()', tbl);
        EXECUTE format('CREATE TRIGGER %1$s_reprice_delete AFTER DELETE ON %1$I REFERENCING OLD TABLE AS changed '
                       'FOR EACH STATEMENT EXECUTE FUNCTION reprice_changed_projects()', tbl);
    END LOOP;
END
$$;
CREATE TRIGGER categories_reprice_update AFTER UPDATE ON categories
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION reprice_changed_projects();

-- Rows written before this migration.
SELECT refresh_final_prices(x.project_id) FROM (SELECT DISTINCT project_id FROM products) x;
