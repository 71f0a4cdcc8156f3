-- The ids of a placement's lines, taken before the order is written (src/placing.rs). As a
-- function that returns them as one array, the statement that takes them costs the same
-- whatever the number of lines, so PostgreSQL keeps one plan for it; with the lines' count in
-- the statement itself it planned it again at every execution. `SET` keeps it from being
-- inlined.
CREATE FUNCTION order_item_ids(lines INT) RETURNS BIGINT[]
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('order_items', 'id'))
                 FROM generate_series(1, lines))
$$;
