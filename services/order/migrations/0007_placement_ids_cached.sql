-- order_item_ids in PL/pgSQL: a SQL function that is not inlined is parsed and planned again
-- at every call (with its SET clause applied and undone around it), while a PL/pgSQL function
-- keeps its plan for the connection's life. The statement that calls it still keeps one plan
-- (see 0006).
CREATE OR REPLACE FUNCTION order_item_ids(lines INT) RETURNS BIGINT[]
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN ARRAY(SELECT nextval(pg_get_serial_sequence('order_items', 'id'))
                 FROM generate_series(1, lines));
END
$$;
ALTER FUNCTION order_item_ids(INT) RESET ALL;
