-- A statement's own check of what it could only know at its end: raises serialization_failure
-- (40001) unless `ok`, so the whole statement, every table it wrote included, is undone and
-- its caller retries (a reservation written at once, without row locks, whose rows changed
-- between the read and the write).
CREATE FUNCTION zv_require(ok BOOLEAN) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'the rows changed since they were read' USING ERRCODE = '40001';
    END IF;
    RETURN true;
END
$$;

-- The (product, variant) pairs a reservation asks for, in the order given. A statement reads
-- them through this function rather than an inline unnest of its parameter arrays, so it is
-- planned once: PostgreSQL planned such a statement again at every execution (a custom plan
-- that knows the arrays' lengths always looks cheaper than the generic one). A function with
-- a SET clause is never inlined, and its ROWS estimate is the same in both plans.
CREATE FUNCTION wanted_lines(products BIGINT[], variants BIGINT[])
RETURNS TABLE (product_id BIGINT, variant_id BIGINT)
LANGUAGE sql IMMUTABLE PARALLEL SAFE ROWS 3
SET search_path = pg_catalog
AS 'SELECT * FROM unnest(products, variants)';
