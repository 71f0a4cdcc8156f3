-- `search` was a stored generated column. PostgreSQL computes such columns again on every
-- update of a table that has a BEFORE UPDATE row trigger (products has one, for final prices),
-- whatever the update changes: each stock-level update of a product ran four text-search
-- parsers. It is now written by a trigger, only when a column it is made of is written.
ALTER TABLE products ALTER COLUMN search DROP EXPRESSION;

CREATE FUNCTION products_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search :=
        to_tsvector('simple', NEW.name_en || ' ' || NEW.name_ar || ' ' || NEW.name_fr || ' ' || coalesce(NEW.sku, ''))
        || to_tsvector('english', NEW.name_en || ' ' || NEW.description_en)
        || to_tsvector('arabic', NEW.name_ar || ' ' || NEW.description_ar)
        || to_tsvector('french', NEW.name_fr || ' ' || NEW.description_fr);
    RETURN NEW;
END
$$;
CREATE TRIGGER products_search
    BEFORE INSERT OR UPDATE OF name_en, name_ar, name_fr, sku, description_en, description_ar,
        description_fr, search
    ON products FOR EACH ROW EXECUTE FUNCTION products_search();

-- Room on each page for a row's next version, so that stock and price updates (no indexed
-- column changes) stay on the page and touch no index.
ALTER TABLE products SET (fillfactor = 90);
