-- Document numbers `{PREFIX}-{YYYY}-{NNNN}` from a row id: at least four digits, never cut
-- (`RES-2026-0042`, `RES-2026-12345`).
CREATE FUNCTION document_number(prefix TEXT, id BIGINT) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT prefix || '-' || to_char(now(), 'YYYY') || '-' ||
           CASE WHEN id < 10000 THEN lpad(id::text, 4, '0') ELSE id::text END
$$;
