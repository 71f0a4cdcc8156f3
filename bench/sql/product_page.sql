-- The least SQL that answers a member's first page of products as the REST list shows it:
-- the count, the 20 newest live rows with the columns the response has (the final price is
-- on the row) joined to their category and brand, with their images and variant count, then
-- the tags of those rows. This is the limit bench/product.sh measures the endpoint against
-- (pgbench, prepared, -D project=ID); written by hand on the service's schema, it does not
-- move when the endpoint's own SQL changes.
SELECT count(*) FROM products WHERE project_id = :project AND deleted_at IS NULL;
SELECT p.id, p.project_id, p.created_at, p.updated_at, p.created_by, p.deleted_at, p.slug,
       p.name_en, p.name_ar, p.name_fr, p.description_en, p.description_ar, p.description_fr,
       p.sku, p.status, p.is_active, p.track_inventory, p.price, p.compare_at_price,
       p.cost_price, p.category, p.brand, p.schema, p.shipping, p.group_id, p.reorder,
       p.stock_quantity, p.low_stock_threshold, p.weight, p.weight_unit, p.additional_data,
       p.final_price,
       c.id, c.name_en, c.name_ar, c.name_fr, c.slug,
       b.id, b.name_en, b.name_ar, b.name_fr, b.slug,
       ARRAY(SELECT i.url FROM product_images i
             WHERE i.product = p.id AND i.deleted_at IS NULL ORDER BY i.position, i.id) AS images,
       (SELECT count(*) FROM variants v WHERE v.product = p.id AND v.deleted_at IS NULL) AS variants
FROM products p
LEFT JOIN categories c ON c.id = p.category AND c.deleted_at IS NULL
LEFT JOIN brands b ON b.id = p.brand AND b.deleted_at IS NULL
WHERE p.project_id = :project AND p.deleted_at IS NULL
ORDER BY p.created_at DESC, p.id DESC
LIMIT 20;
SELECT pt.product_id, g.id, g.name
FROM (SELECT id FROM products WHERE project_id = :project AND deleted_at IS NULL
      ORDER BY created_at DESC, id DESC LIMIT 20) p
JOIN product_tags pt ON pt.product_id = p.id
JOIN tags g ON g.id = pt.tag_id AND g.deleted_at IS NULL;
