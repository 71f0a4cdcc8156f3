-- The least SQL that reserves one unit of each of three products, as a placement's reservation
-- does: the three stock rows locked in id order and their held units raised only where they
-- are covered, the reservation with its lines and their allocations, and the four events
-- (three `inventory.stock_changed`, one `inventory.reservation_created`) in the outbox. One
-- transaction of two statements. bench/orders.sh runs it with pgbench (prepared) against the
-- inventory database: -D first=<first stock row> -D project=<id> -D envelope=<an event's JSON>.
-- Its outbox rows go to bench_outbox (zv_outbox's shape and indexes, not relayed).
\set a :first + random(0, 332)
\set b :first + random(333, 665)
\set c :first + random(666, 998)
BEGIN;
WITH rows AS (
  SELECT id FROM stock_items WHERE id IN (:a, :b, :c)
  ORDER BY id FOR UPDATE),
held AS (
  UPDATE stock_items s SET reserved_quantity = s.reserved_quantity + 1,
    version = s.version + 1, updated_at = now()
  FROM rows WHERE s.id = rows.id AND s.reserved_quantity + 1 <= s.quantity
  RETURNING s.id, s.product_id, s.warehouse),
n AS (SELECT nextval(pg_get_serial_sequence('reservations', 'id')) AS id),
r AS (
  INSERT INTO reservations (id, project_id, reservation_number, order_id, expires_at, lines_key,
    created_by, updated_by, performed_by)
  SELECT n.id, :project, document_number('RES', n.id), 'pgbench-' || n.id, now() + interval '1 hour',
    'lines', 1, 1, 'bench' FROM n),
lines AS (
  SELECT nextval(pg_get_serial_sequence('reservation_items', 'id')) AS item, held.* FROM held),
items AS (
  INSERT INTO reservation_items (id, reservation_id, product_id, product_name, quantity, tracked)
  SELECT lines.item, n.id, lines.product_id, 'Product', 1, true FROM lines, n)
INSERT INTO reservation_allocations (item_id, inventory_id, warehouse_id, quantity)
SELECT item, id, warehouse, 1 FROM lines;
INSERT INTO bench_outbox (event_id, event_type, project_id, envelope)
SELECT gen_random_uuid(), t, :project, :envelope::jsonb
FROM unnest(ARRAY['inventory.stock_changed', 'inventory.stock_changed',
                  'inventory.stock_changed', 'inventory.reservation_created']) AS t;
COMMIT;
