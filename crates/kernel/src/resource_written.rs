//! The representation of a row computed by the statement that writes it: a write that ends
//! with `SELECT {select list} FROM {cte} t` answers as a read of the row would, without
//! reading it back. The statement's snapshot does not see its own writes, so the child tables
//! the computed values read (an order's lines, its history) are read from the statement's
//! CTEs that return their new rows instead.

use serde_json::Value;
use sqlx::postgres::PgRow;

use crate::error::ApiError;
use crate::resource::Resource;
use crate::resource_row::Columns;

/// The select list of `resource`'s representation over `t`, the written row, with each
/// `(table, cte)` of `sources` read from `cte` where a computed value reads `table`.
pub struct WrittenRow {
    resource: &'static Resource,
    columns: Columns,
    select: String,
}

impl WrittenRow {
    /// `None` for a resource with relations, which are read by statements of their own.
    pub fn of(resource: &'static Resource, sources: &[(&str, &str)]) -> Option<Self> {
        if !resource.related.is_empty() {
            return None;
        }
        let columns = Columns::of(resource, None, None);
        let mut select = columns.sql();
        for (table, cte) in sources {
            for keyword in ["FROM", "JOIN"] {
                select =
                    select.replace(&format!("{keyword} {table} "), &format!("{keyword} {cte} "));
            }
        }
        Some(Self {
            resource,
            columns,
            select,
        })
    }

    /// The select list, to follow `SELECT` in the writing statement (its row aliased `t`).
    pub fn select_list(&self) -> &str {
        &self.select
    }

    /// The row the statement returned, shaped as a read of it by a member in `lang`.
    pub fn shape(&self, row: &PgRow, lang: &str) -> Result<Value, ApiError> {
        let pairs = self.columns.decode(row, 0)?;
        Ok(self.resource.shape_pairs(pairs, lang, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::ListSpec;
    use crate::rbac::Grants;
    use crate::resource::Field;

    static PARENT: Resource = Resource {
        service: "shop",
        model: "box",
        label: "Box",
        table: "boxes",
        fields: &[Field::text("name", 20)],
        slug_from: None,
        computed: &[(
            "parts",
            "(SELECT count(*) FROM parts p WHERE p.box_id = t.id) + \
             (SELECT count(*) FROM spare_parts s JOIN parts q ON q.id = s.part_id)",
        )],
        list: ListSpec {
            filters: &[],
            ordering: &[],
            search: &[],
            default_ordering: "-created_at",
            extra_params: &[],
        },
        search_vector: None,
        public_read: false,
        public_filter: None,
        grants: Grants {
            editor_extra: &[],
            editor_writes: None,
        },
        unique: &[],
        hooks: None,
        params: None,
        hidden: None,
        related: &[],
    };

    #[test]
    fn computed_values_read_the_written_children() {
        let written = WrittenRow::of(&PARENT, &[("parts", "new_parts")]).expect("no relations");
        let select = written.select_list();
        assert!(
            select.contains("FROM new_parts p WHERE p.box_id = t.id"),
            "{select}"
        );
        assert!(select.contains("JOIN new_parts q"), "{select}");
        assert!(select.contains("FROM spare_parts s"), "{select}");
        assert!(!select.contains("FROM parts "), "{select}");
    }
}
