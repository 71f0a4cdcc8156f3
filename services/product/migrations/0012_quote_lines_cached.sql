-- quote_lines in PL/pgSQL: a SQL function that is not inlined is parsed and planned again at
-- every call (with its SET clause applied and undone around it), while a PL/pgSQL function
-- keeps its plan for the connection's life. It is never inlined either, so the quote still
-- keeps its generic plan (see 0011).
CREATE OR REPLACE FUNCTION quote_lines(products BIGINT[], variants BIGINT[])
RETURNS TABLE (product_id BIGINT, variant_id BIGINT)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE ROWS 3
AS $$
BEGIN
    RETURN QUERY SELECT * FROM unnest(products, variants);
END
$$;
ALTER FUNCTION quote_lines(BIGINT[], BIGINT[]) RESET ALL;
