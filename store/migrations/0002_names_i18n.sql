-- +goose Up
-- Product and category names in other languages than English, by BCP 47
-- code ({"zh-CN": "…"}), so that the admin can show them.
ALTER TABLE products
    ADD COLUMN name_i18n     jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN category_i18n jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE products DROP COLUMN name_i18n, DROP COLUMN category_i18n;
