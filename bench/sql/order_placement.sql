-- The least SQL that records a placed three-line order, as a placement does in the order
-- database: the order with its number and totals, its three lines, its `placed` history row
-- and its `order.created` event in the outbox. One transaction of two statements.
-- bench/orders.sh runs it with pgbench (prepared) against the order database:
-- -D first=<first product id> -D project=<id> -D envelope=<an order.created JSON>. Its orders
-- have source 'pgbench' (the benchmark leaves them out of the invoice figures); its outbox rows
-- go to bench_outbox (zv_outbox's shape and indexes, not relayed).
\set a :first + random(0, 332)
\set b :first + random(333, 665)
\set c :first + random(666, 998)
BEGIN;
WITH n AS (SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id),
o AS (
  INSERT INTO orders (id, project_id, order_number, status, currency, source, reservation_id,
    subtotal, total, created_by, updated_by)
  SELECT n.id, :project, order_number(n.id), 'pending', 'USD', 'pgbench', 'RES-' || n.id,
    29.97, 29.97, 1, 1 FROM n),
h AS (
  INSERT INTO order_history (order_id, event, status, notes, performed_by)
  SELECT n.id, 'placed', 'pending', '', 1 FROM n)
INSERT INTO order_items (project_id, order_id, product_id, product_name, sku, quantity,
  unit_price, list_price, total_price, discount, tax_amount, created_by, updated_by)
SELECT :project, n.id, p, 'Product', 'SKU', 1, 9.99, 9.99, 9.99, 0, 0, 1, 1
FROM n, unnest(ARRAY[:a, :b, :c]::bigint[]) AS p;
INSERT INTO bench_outbox (event_id, event_type, project_id, envelope)
VALUES (gen_random_uuid(), 'order.created', :project, :envelope::jsonb);
COMMIT;
