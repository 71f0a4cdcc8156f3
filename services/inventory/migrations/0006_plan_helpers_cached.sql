-- wanted_lines in PL/pgSQL: a SQL function that is not inlined is parsed and planned again at
-- every call (with its SET clause applied and undone around it), while a PL/pgSQL function
-- keeps its plan for the connection's life. It is never inlined either, so the statements
-- that read through it still keep one plan (see 0005).
CREATE OR REPLACE FUNCTION wanted_lines(products BIGINT[], variants BIGINT[])
RETURNS TABLE (product_id BIGINT, variant_id BIGINT)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 3
AS $$
BEGIN
    RETURN QUERY SELECT * FROM unnest(products, variants);
END
$$;
ALTER FUNCTION wanted_lines(BIGINT[], BIGINT[]) RESET ALL;
