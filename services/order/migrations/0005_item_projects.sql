-- Order lines carry their project, so they are a resource of their own (`order-products/`).
ALTER TABLE order_items ADD COLUMN project_id BIGINT;
UPDATE order_items i SET project_id = o.project_id FROM orders o WHERE o.id = i.order_id;
ALTER TABLE order_items ALTER COLUMN project_id SET NOT NULL;
ALTER TABLE order_items ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE order_items ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE order_items ADD COLUMN created_by BIGINT;
ALTER TABLE order_items ADD COLUMN updated_by BIGINT;
ALTER TABLE order_items ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE order_items ADD COLUMN deleted_by BIGINT;
CREATE INDEX order_items_project_idx ON order_items (project_id, product_id);
