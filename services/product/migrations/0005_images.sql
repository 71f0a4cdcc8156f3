-- Product images (contract product.md §2.4): files are project attachments; a row links one to a
-- product (and optionally a variant) with its alt text, order and the primary flag.

CREATE TABLE product_images (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT      NOT NULL,
    product         BIGINT      NOT NULL REFERENCES products (id),
    variant         BIGINT      REFERENCES variants (id),
    attachment_id   BIGINT,
    -- The attachment was uploaded for this image (deleting the image deletes the file).
    owns_attachment BOOLEAN     NOT NULL DEFAULT false,
    url             TEXT        NOT NULL,
    alt_text        TEXT        NOT NULL DEFAULT '',
    is_primary      BOOLEAN     NOT NULL DEFAULT false,
    position        INT         NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT,
    updated_by      BIGINT,
    deleted_at      TIMESTAMPTZ,
    deleted_by      BIGINT
);
CREATE INDEX product_images_product_idx ON product_images (product, position, id) WHERE deleted_at IS NULL;
-- One primary image per product.
CREATE UNIQUE INDEX product_images_one_primary ON product_images (product)
    WHERE is_primary AND deleted_at IS NULL;
