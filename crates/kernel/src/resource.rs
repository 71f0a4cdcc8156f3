//! Simple resources (DESIGN §4): a resource is its fields, table, permissions and allow-lists;
//! this module does the rest — list (DRF pages, filters, ordering, full-text search), retrieve,
//! create, partial update, soft delete, trash and restore, audit fields, translations
//! (`x`, `x_en`, `x_ar`, `x_fr`), tenant scope, public reads and permission checks.
//!
//! Every table of a resource has the standard columns `id, project_id, created_at, updated_at,
//! created_by, updated_by, deleted_at, deleted_by`; a translated field `name` is stored as
//! `name_en`, `name_ar`, `name_fr`. Rows are read column by column and decoded by field kind
//! (`resource_row`, decimals as text) and shaped here, so a resource needs no row struct.

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::auth::{ProjectScope, ReadScope};
use crate::db::{map_db_error, ConstraintField};
use crate::error::{ApiError, FieldErrors};
use crate::lang::SUPPORTED;
use crate::list::{ListQuery, ListSpec};
use crate::rbac::Grants;
pub use crate::resource_row::Row;
use crate::resource_row::{object, Columns, Key, Pairs};
use crate::service::ServiceContext;

/// What a field holds and how input is checked.
#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    Text {
        max: usize,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// Money and other exact numbers: decimal strings with `scale` digits after the point on
    /// the wire (`"99.90"`), `NUMERIC` in SQL; more digits in input are refused.
    Decimal {
        min: Option<i64>,
        max: Option<i64>,
        scale: u32,
    },
    /// A JSON number that is a measure, not money (weight, length).
    Number {
        min: Option<f64>,
    },
    Bool,
    Json {
        max_bytes: usize,
    },
    /// One of the given values (input case-insensitive, stored as given here).
    Choice(&'static [&'static str]),
    /// `#RRGGBB`.
    Color,
    /// A live row of `table` in the same project.
    Ref {
        table: &'static str,
    },
    DateTime,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

impl FieldKind {
    /// A count stored as `INT`: at least `min`, at most `i32::MAX`.
    pub const fn int_from(min: i64) -> Self {
        Self::Int {
            min: Some(min),
            max: Some(i32::MAX as i64),
        }
    }
}

/// One writable (or read-only) field of a resource.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    /// Stored as `{name}_en/_ar/_fr`.
    pub translated: bool,
    pub required: bool,
    /// Other input spellings (`parent_id` for `parent`).
    pub aliases: &'static [&'static str],
    /// Null for anonymous readers and non-members.
    pub members_only: bool,
    /// Shown, never written by clients.
    pub read_only: bool,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            kind,
            translated: false,
            required: false,
            aliases: &[],
            members_only: false,
            read_only: false,
        }
    }
    pub const fn text(name: &'static str, max: usize) -> Self {
        Self::new(name, FieldKind::Text { max })
    }
    pub const fn translated(mut self) -> Self {
        self.translated = true;
        self
    }
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    pub const fn members_only(mut self) -> Self {
        self.members_only = true;
        self
    }
    pub const fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

/// A value ready to bind.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Null,
    Text(String),
    Int(i64),
    Decimal(Decimal),
    Float(f64),
    Bool(bool),
    Json(Value),
    DateTime(DateTime<Utc>),
    Date(chrono::NaiveDate),
}

impl Bind {
    fn push(self, qb: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Bind::Null => qb.push("NULL"),
            Bind::Text(v) => qb.push_bind(v),
            Bind::Int(v) => qb.push_bind(v),
            Bind::Decimal(v) => qb.push_bind(v),
            Bind::Float(v) => qb.push_bind(v),
            Bind::Bool(v) => qb.push_bind(v),
            Bind::Json(v) => qb.push_bind(v),
            Bind::DateTime(v) => qb.push_bind(v),
            Bind::Date(v) => qb.push_bind(v),
        };
    }
}

/// Column → value, as a write will store them (hooks may read and change them).
pub type Values = BTreeMap<String, Bind>;

/// What kind of write a hook sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Create,
    Update,
    Delete,
    Restore,
}

/// Resource-specific rules around the generic operations, inside their transaction. `body` is
/// the request body (for inputs that are not columns, like a product's tag names).
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Checks and adjusts values before they are stored (`id` is `None` on create).
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: Option<i64>,
        _body: &Value,
        _values: &mut Values,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Refuses or prepares a delete (422 `protected` when something depends on the row).
    async fn before_delete(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _id: i64,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Resolves a key of the item routes that is not an id (an order's number) to the id of
    /// a row of `project_id`; `None` when the resource has no such key.
    async fn lookup(
        &self,
        _ctx: &ServiceContext,
        _project_id: i64,
        _key: &str,
    ) -> Result<Option<i64>, ApiError> {
        Ok(None)
    }

    /// After the row is written (related rows and events go here, in the same transaction).
    async fn after_write(
        &self,
        _ctx: &ServiceContext,
        _tx: &mut PgConnection,
        _scope: &ProjectScope,
        _written: Written<'_>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

/// What [`Hooks::after_write`] sees: the kind of write, the request body, the row as it was
/// (updates, deletes, restores) and as it is now (raw, before shaping).
pub struct Written<'a> {
    pub write: Write,
    pub body: &'a Value,
    pub before: Option<&'a Value>,
    pub row: &'a Value,
}

/// A resource: everything the generic operations need.
pub struct Resource {
    /// Codename prefix: `product`.
    pub service: &'static str,
    /// Codename model: `tag` → `product.view_tag`.
    pub model: &'static str,
    /// For messages: `Tag`.
    pub label: &'static str,
    pub table: &'static str,
    pub fields: &'static [Field],
    /// The (translated or plain) field a slug is made from; the table then has `slug`.
    pub slug_from: Option<&'static str>,
    /// Read-only values computed in SQL over the row alias `t`: (name, expression).
    pub computed: &'static [(&'static str, &'static str)],
    pub list: ListSpec,
    /// A `tsvector` column for `search` (plus substring matches on `list.search`).
    pub search_vector: Option<&'static str>,
    /// Anonymous and non-member reads allowed (with `X-Project-ID`).
    pub public_read: bool,
    /// Rows the public may see (SQL over `t`), e.g. `t.is_active`.
    pub public_filter: Option<&'static str>,
    pub grants: Grants,
    /// Unique constraints and the field error each stands for.
    pub unique: &'static [ConstraintField],
    pub hooks: Option<&'static dyn Hooks>,
    /// Applies the convenience parameters of `list.extra_params` (`min_price=`, `tags=`…):
    /// pushes ` AND (…)` with bound values, or refuses the value.
    pub params: Option<ParamFilter>,
    /// Rows no one reads through the resource (SQL over `t`), e.g. orders still being placed.
    pub hidden: Option<&'static str>,
    /// Relations shown in the row, read without a sub-select per row: see [`Related`].
    pub related: &'static [Related],
}

/// A relation a row shows, named like a computed value (and, like one, read only when
/// GraphQL selects it).
pub enum Related {
    /// A to-one row joined to the page (`join`: `LEFT JOIN table alias ON …`), shown as an
    /// object of `columns` (translated `name_en/_ar/_fr` become one `name` in the reader's
    /// language), or null.
    One {
        name: &'static str,
        join: &'static str,
        alias: &'static str,
        columns: &'static [&'static str],
    },
    /// Values read for the whole page in one statement: `sql` gets the page's ids as `$1`
    /// (bigint[]) and returns rows `(row id, one value per name…)` in the order shown; each
    /// name becomes the array of its values.
    Many {
        names: &'static [&'static str],
        sql: &'static str,
    },
}

impl Related {
    /// The names this relation shows.
    pub fn names(&self) -> &[&'static str] {
        match self {
            Related::One { name, .. } => std::slice::from_ref(name),
            Related::Many { names, .. } => names,
        }
    }
}

/// See [`Resource::params`]: (parameter, value, query being built).
pub type ParamFilter = fn(&str, &str, &mut QueryBuilder<'_, Postgres>) -> Result<(), ApiError>;

/// The largest magnitude a `Number` field takes.
pub const MAX_MEASURE: f64 = 1e12;

const STANDARD: &[&str] = &[
    "id",
    "project_id",
    "created_at",
    "updated_at",
    "created_by",
    "deleted_at",
];

/// The columns a field is stored in (`name`, or `name_en`, `name_ar`, `name_fr`).
pub(crate) fn columns_of(field: &Field) -> Vec<String> {
    if field.translated {
        SUPPORTED
            .iter()
            .map(|l| format!("{}_{l}", field.name))
            .collect()
    } else {
        vec![field.name.to_owned()]
    }
}

impl Resource {
    pub fn codename(&self, action: &str) -> String {
        format!("{}.{action}_{}", self.service, self.model)
    }

    /// The columns a read selects (every computed value and field, or those `query` names).
    fn columns(&self, query: Option<&ListQuery>) -> Columns {
        Columns::of(
            self,
            query.and_then(|q| q.computed.as_deref()),
            query.and_then(|q| q.fields.as_deref()),
        )
    }

    fn from(&self) -> String {
        format!("FROM {} t WHERE t.project_id = ", self.table)
    }

    /// [`Resource::from`] with the joins of `columns`.
    fn joined_from(&self, columns: &Columns) -> String {
        format!(
            "FROM {} t{} WHERE t.project_id = ",
            self.table,
            columns.joins()
        )
    }

    /// The names of the computed values and relations a row shows.
    pub fn derived(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.computed
            .iter()
            .map(|(name, _)| *name)
            .chain(self.related.iter().flat_map(|r| r.names().iter().copied()))
    }

    fn is_member(scope: &ReadScope) -> bool {
        matches!(scope, ReadScope::Member(_))
    }

    /// Output shape: standard fields, each field (translated ones resolved in `lang` plus their
    /// `_en/_ar/_fr` twins), the slug and the computed values and relations.
    pub fn shape(&self, raw: &Value, lang: &str, member: bool) -> Value {
        self.shape_owned(raw.clone(), lang, member)
    }

    /// [`Resource::shape`] of a row that is not needed afterwards.
    pub fn shape_owned(&self, raw: Value, lang: &str, member: bool) -> Value {
        let pairs = match raw {
            Value::Object(map) => map.into_iter().map(|(k, v)| (Key::from(k), v)).collect(),
            _ => Vec::new(),
        };
        self.shape_pairs(pairs, lang, member)
    }

    /// [`Resource::shape`] of a decoded row, as a JSON object.
    pub(crate) fn shape_pairs(&self, pairs: Pairs, lang: &str, member: bool) -> Value {
        self.shape_row(pairs, lang, member, None).into_value()
    }

    /// [`Resource::shape`] of a decoded row: values and keys move into the output, and are
    /// found where the select list put them. Every key appears once: a field shown as a
    /// relation under its own name is left out, and translated twins are `{field}_{lang}`.
    /// Only `fields` are shown when given (the others were not read).
    fn shape_row(&self, pairs: Pairs, lang: &str, member: bool, fields: Option<&[String]>) -> Row {
        let mut row = Taker::new(pairs);
        let mut out = Row::with_capacity(row.len() + self.fields.len());
        for k in STANDARD {
            let (key, v) = row.take(k);
            // Who wrote a row is the project's business: the public view never names them.
            if !member && *k == "created_by" {
                continue;
            }
            out.push(key, normalise_time(v));
        }
        if self.slug_from.is_some() {
            let (key, v) = row.take("slug");
            out.push(key, v);
        }
        for f in self.fields {
            // A relation shown under the field's own name replaces the bare id.
            if self.derived().any(|name| name == f.name)
                || fields.is_some_and(|fields| !fields.iter().any(|n| n == f.name))
            {
                continue;
            }
            let hidden = f.members_only && !member;
            if !f.translated {
                let (key, v) = row.take(f.name);
                let v = match f.kind {
                    FieldKind::DateTime => normalise_time(v),
                    _ => v,
                };
                out.push(key, if hidden { Value::Null } else { v });
                continue;
            }
            let mut values: Vec<(&str, Key, Value)> = Vec::with_capacity(SUPPORTED.len());
            for l in SUPPORTED {
                let (key, v) = row.take_translation(f.name, l);
                let v = match v {
                    Value::String(text) if text.is_empty() => Value::Null,
                    _ if hidden => Value::Null,
                    v => v,
                };
                values.push((l, key, v));
            }
            let pick = |l: &str| {
                values
                    .iter()
                    .find(|(code, _, v)| *code == l && !v.is_null())
                    .map(|(_, _, v)| v)
            };
            let resolved = pick(lang)
                .or_else(|| pick("en"))
                .or_else(|| values.iter().map(|(_, _, v)| v).find(|v| !v.is_null()))
                .cloned()
                .unwrap_or(Value::Null);
            out.push(Key::Static(f.name), resolved);
            for (_, key, v) in values {
                out.push(key, v);
            }
        }
        for name in self.derived() {
            let (key, v) = row.take(name);
            out.push(key, localise(v, lang));
        }
        debug_assert!(
            out.keys_distinct(),
            "{}: a key twice in {out:?}",
            self.table
        );
        out
    }

    /// Parses and checks a body against the fields: `partial` (PATCH) skips absent required
    /// fields. `lang` is where a plain translated field is written.
    pub fn values(&self, body: &Value, partial: bool, lang: &str) -> Result<Values, ApiError> {
        let map = body.as_object().ok_or_else(ApiError::not_a_dictionary)?;
        let mut errors = FieldErrors::new();
        let mut values = Values::new();
        fn find<'a>(
            map: &'a Map<String, Value>,
            names: &[&'static str],
        ) -> Option<(&'static str, &'a Value)> {
            names.iter().find_map(|n| map.get(*n).map(|v| (*n, v)))
        }
        for f in self.fields.iter().filter(|f| !f.read_only) {
            if f.translated {
                // Given at all (a refused value has its own error, not also "required").
                let mut given = false;
                let mut names = vec![f.name];
                names.extend_from_slice(f.aliases);
                if let Some((name, v)) = find(map, &names) {
                    given = true;
                    match parse(f, name, v) {
                        Ok(b) => {
                            values.insert(format!("{}_{lang}", f.name), b);
                        }
                        Err(m) => errors.add(name, m),
                    }
                }
                for l in SUPPORTED {
                    let name = format!("{}_{l}", f.name);
                    if let Some(v) = map.get(&name) {
                        given = true;
                        match parse(f, &name, v) {
                            Ok(b) => {
                                values.insert(name, b);
                            }
                            Err(m) => errors.add(name, m),
                        }
                    }
                }
                if !given && f.required && !partial {
                    errors.required(f.name);
                }
                continue;
            }
            let mut names = vec![f.name];
            names.extend_from_slice(f.aliases);
            match find(map, &names) {
                Some((name, v)) => match parse(f, name, v) {
                    Ok(Bind::Null) if f.required => {
                        errors.add(f.name, "This field may not be null.")
                    }
                    Ok(Bind::Text(t)) if f.required && t.is_empty() => {
                        errors.add(f.name, "This field may not be blank.")
                    }
                    Ok(b) => {
                        values.insert(f.name.to_owned(), b);
                    }
                    Err(m) => errors.add(f.name, m),
                },
                None if f.required && !partial => errors.required(f.name),
                None => {}
            }
        }
        if self.slug_from.is_some() {
            if let Some(v) = map.get("slug") {
                match v {
                    Value::String(s) if !s.trim().is_empty() => {
                        let slug = slugify(s);
                        if slug.is_empty() {
                            errors.add("slug", "Enter a valid slug.");
                        } else {
                            values.insert("slug".into(), Bind::Text(slug));
                        }
                    }
                    Value::Null | Value::String(_) => {}
                    _ => errors.add("slug", "Not a valid string."),
                }
            }
        }
        // A required translated field may not be emptied.
        for f in self.fields.iter().filter(|f| f.translated && f.required) {
            let cols = columns_of(f);
            let given: Vec<&Bind> = cols.iter().filter_map(|c| values.get(c)).collect();
            if !given.is_empty()
                && given
                    .iter()
                    .all(|b| matches!(b, Bind::Null) || **b == Bind::Text(String::new()))
                && (!partial || given.len() == cols.len())
            {
                errors.add(f.name, "This field may not be blank.");
            }
        }
        errors.into_result()?;
        Ok(values)
    }
}

/// Takes the values of a decoded row by key, looking first where the last one was found:
/// shaping reads the row in the order it was selected, so each take is one comparison.
struct Taker {
    pairs: Vec<Option<(Key, Value)>>,
    next: usize,
}

impl Taker {
    fn new(pairs: Pairs) -> Self {
        Self {
            pairs: pairs.into_iter().map(Some).collect(),
            next: 0,
        }
    }

    fn len(&self) -> usize {
        self.pairs.len()
    }

    /// The value under `key` (with its key, so the output reuses it), or null.
    fn take(&mut self, key: &'static str) -> (Key, Value) {
        self.take_where(|k| k == key)
            .unwrap_or((Key::Static(key), Value::Null))
    }

    /// The value of `field` in `lang` (the column `{field}_{lang}`), or null.
    fn take_translation(&mut self, field: &str, lang: &str) -> (Key, Value) {
        let is = |k: &str| {
            k.len() == field.len() + 1 + lang.len()
                && k.starts_with(field)
                && k[field.len()..].starts_with('_')
                && k.ends_with(lang)
        };
        self.take_where(is)
            .unwrap_or_else(|| (Key::from(format!("{field}_{lang}")), Value::Null))
    }

    fn take_where(&mut self, is: impl Fn(&str) -> bool) -> Option<(Key, Value)> {
        let n = self.pairs.len();
        let found = (self.next..n)
            .chain(0..self.next.min(n))
            .find(|&i| self.pairs[i].as_ref().is_some_and(|(k, _)| is(k.as_str())))?;
        self.next = found + 1;
        self.pairs[found].take()
    }
}

/// Related rows in computed values carry their translations as `name_en`, `name_ar`,
/// `name_fr`: each such group becomes one `name` in `lang` (else English, else any), so that a
/// product's `category` reads `{id, name, slug}` in the request's language.
fn localise(v: Value, lang: &str) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(|i| localise(i, lang)).collect()),
        Value::Object(mut map) => {
            let bases: Vec<String> = map
                .keys()
                .filter_map(|k| k.strip_suffix("_en"))
                .filter(|base| {
                    SUPPORTED
                        .iter()
                        .all(|l| map.contains_key(&format!("{base}_{l}")))
                })
                .map(str::to_owned)
                .collect();
            for base in bases {
                let mut texts: Vec<(&str, Value)> = SUPPORTED
                    .iter()
                    .map(|l| {
                        (
                            *l,
                            map.remove(&format!("{base}_{l}")).unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                let filled = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
                let pick = texts
                    .iter()
                    .position(|(l, v)| *l == lang && filled(v))
                    .or_else(|| texts.iter().position(|(l, v)| *l == "en" && filled(v)))
                    .or_else(|| texts.iter().position(|(_, v)| filled(v)));
                let name = pick.map_or(Value::Null, |i| texts.swap_remove(i).1);
                map.insert(base, name);
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// Timestamps in RFC 3339 UTC with `Z` (fraction only when non-zero).
fn normalise_time(v: Value) -> Value {
    // What the row decoder writes is already in this form.
    if v.as_str().is_some_and(|s| s.ends_with('Z')) {
        return v;
    }
    match v
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => Value::String(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
        None => v,
    }
}

fn parse(f: &Field, name: &str, v: &Value) -> Result<Bind, String> {
    if v.is_null() {
        return Ok(Bind::Null);
    }
    let int = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| "A valid integer is required.".to_owned())
    };
    match f.kind {
        FieldKind::Text { max } => match v {
            Value::String(s) if s.chars().count() <= max => Ok(Bind::Text(s.trim().to_owned())),
            Value::String(_) => Err(format!(
                "Ensure this field has no more than {max} characters."
            )),
            _ => Err("Not a valid string.".into()),
        },
        FieldKind::Int { min, max } => {
            let n = int(v)?;
            if min.is_some_and(|m| n < m) {
                return Err(format!(
                    "Ensure this value is greater than or equal to {}.",
                    min.unwrap_or(0)
                ));
            }
            if max.is_some_and(|m| n > m) {
                return Err(format!(
                    "Ensure this value is less than or equal to {}.",
                    max.unwrap_or(0)
                ));
            }
            Ok(Bind::Int(n))
        }
        FieldKind::Decimal { min, max, scale } => {
            let text = match v {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => return Err("A valid number is required.".into()),
            };
            let d: Decimal = text
                .parse()
                .map_err(|_| "A valid number is required.".to_owned())?;
            let d = d.normalize();
            if d.scale() > scale || d.abs() >= Decimal::from(1_000_000_000_000i64) {
                return Err(format!(
                    "Ensure that there are no more than 12 digits before and {scale} after the decimal point."
                ));
            }
            if min.is_some_and(|m| d < Decimal::from(m)) {
                return Err(format!(
                    "Ensure this value is greater than or equal to {}.",
                    min.unwrap_or(0)
                ));
            }
            if max.is_some_and(|m| d > Decimal::from(m)) {
                return Err(format!(
                    "Ensure this value is less than or equal to {}.",
                    max.unwrap_or(0)
                ));
            }
            Ok(Bind::Decimal(d))
        }
        FieldKind::Number { min } => {
            let n = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| "A valid number is required.".to_owned())?;
            if min.is_some_and(|m| n < m) {
                return Err(format!(
                    "Ensure this value is greater than or equal to {}.",
                    min.unwrap_or(0.0)
                ));
            }
            // A measure past this is a typo; near a double's limit it cannot be read back.
            if n.abs() > MAX_MEASURE {
                return Err(format!(
                    "Ensure this value is less than or equal to {MAX_MEASURE}."
                ));
            }
            Ok(Bind::Float(n))
        }
        FieldKind::Bool => match v {
            Value::Bool(b) => Ok(Bind::Bool(*b)),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Bind::Bool(true)),
                "false" | "0" => Ok(Bind::Bool(false)),
                _ => Err("Must be a valid boolean.".into()),
            },
            Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Bind::Bool(n.as_i64() == Some(1)))
            }
            _ => Err("Must be a valid boolean.".into()),
        },
        FieldKind::Json { max_bytes } => {
            if v.to_string().len() > max_bytes {
                Err(format!("Ensure this value has at most {max_bytes} bytes."))
            } else {
                Ok(Bind::Json(v.clone()))
            }
        }
        FieldKind::Choice(options) => {
            let s = v
                .as_str()
                .map(|s| s.trim().to_ascii_lowercase())
                .unwrap_or_default();
            options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(&s))
                .map(|o| Bind::Text((*o).to_owned()))
                .ok_or_else(|| {
                    format!(
                        "\"{}\" is not a valid choice.",
                        v.as_str().unwrap_or(&v.to_string())
                    )
                })
        }
        FieldKind::Color => match v.as_str() {
            Some(s)
                if s.len() == 7
                    && s.starts_with('#')
                    && s[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Bind::Text(s.to_ascii_uppercase()))
            }
            _ => Err("Enter a color as #RRGGBB.".into()),
        },
        FieldKind::Ref { .. } => int(v).map(Bind::Int).map_err(|_| {
            format!(
                "Incorrect type. Expected pk value, received {}.",
                json_type(v)
            )
        }),
        FieldKind::Date => v
            .as_str()
            .and_then(|s| chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
            .map(Bind::Date)
            .ok_or_else(|| "Date has wrong format. Use YYYY-MM-DD.".to_owned()),
        FieldKind::DateTime => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|t| Bind::DateTime(t.with_timezone(&Utc)))
            .ok_or_else(|| {
                let _ = name;
                "Datetime has wrong format. Use RFC 3339.".to_owned()
            }),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
        _ => "number",
    }
}

/// A slug: lowercase letters and digits of any script, other runs become `-`.
pub fn slugify(text: &str) -> String {
    let mut slug = String::new();
    for c in text.trim().to_lowercase().chars() {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-')
        .chars()
        .take(100)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// The list's conditions over the table alias and the caller's view (public rows, trash).
fn push_scope(qb: &mut QueryBuilder<'_, Postgres>, r: &Resource, scope: &ReadScope, trashed: bool) {
    qb.push_bind(scope.project_id());
    qb.push(if trashed {
        " AND t.deleted_at IS NOT NULL"
    } else {
        " AND t.deleted_at IS NULL"
    });
    if let Some(hidden) = r.hidden {
        qb.push(format!(" AND NOT ({hidden})"));
    }
    if !Resource::is_member(scope) {
        if let Some(filter) = r.public_filter {
            qb.push(format!(" AND ({filter})"));
        }
    }
}

fn check_read(r: &Resource, scope: &ReadScope) -> Result<(), ApiError> {
    match scope {
        ReadScope::Member(s) => s.require(&r.codename("view"), &r.grants),
        ReadScope::Public { .. } if r.public_read => Ok(()),
        ReadScope::Public {
            viewer: Some(_), ..
        } => Err(ApiError::not_project_member()),
        ReadScope::Public { viewer: None, .. } => Err(ApiError::not_found()),
    }
}

/// One page of the resource (or of its trash): the total and the shaped rows, to serialise
/// (what the REST page sends) or to read as JSON objects ([`Row::into_value`]).
pub async fn list(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ReadScope,
    query: &ListQuery,
    lang: &str,
    trashed: bool,
) -> Result<(i64, Vec<Row>), ApiError> {
    if trashed {
        match scope {
            ReadScope::Member(s) => s.require(&r.codename("delete"), &r.grants)?,
            ReadScope::Public { .. } => return Err(ApiError::not_authenticated()),
        }
    } else {
        check_read(r, scope)?;
    }
    let build = |select: &str, from: &str| {
        let mut qb = QueryBuilder::new(format!("SELECT {select} {from}"));
        push_scope(&mut qb, r, scope, trashed);
        query.push_filters(&mut qb);
        push_search(&mut qb, r, query);
        qb
    };
    // Convenience parameters are checked once, before any query runs.
    if let Some(params) = r.params {
        let mut probe = QueryBuilder::<Postgres>::new("");
        for (k, v) in &query.extra {
            params(k, v, &mut probe)?;
        }
    }
    let build = |select: &str, from: &str| {
        let mut qb = build(select, from);
        if let Some(params) = r.params {
            for (k, v) in &query.extra {
                // Checked above.
                let _ = params(k, v, &mut qb);
            }
        }
        qb
    };
    let mut db = ctx.pool.acquire().await?;
    let total: i64 = build("count(*)", &r.from())
        .build_query_scalar()
        .fetch_one(&mut *db)
        .await?;
    let (limit, offset, _) = query.window(total)?;
    let columns = r.columns(Some(query));
    let mut rows = build(&columns.sql(), &r.joined_from(&columns));
    match (
        &r.search_vector,
        query.search.is_empty(),
        query.explicit_ordering,
    ) {
        (Some(vector), false, false) => {
            rows.push(format!(" ORDER BY ts_rank(t.{vector}, "));
            push_tsquery(&mut rows, &query.search.join(" "));
            rows.push(") DESC, t.id");
        }
        _ => query.push_order_by(&mut rows, "t.id"),
    }
    // The window is written in, not bound: with a bound LIMIT the server plans every
    // execution again (its generic plan assumes a tenth of the table), which cost more than
    // the page's execution.
    rows.push(format!(" LIMIT {limit} OFFSET {offset}"));
    let mut raw = Vec::new();
    for row in rows.build().fetch_all(&mut *db).await? {
        raw.push(columns.decode(&row, 0)?);
    }
    columns.attach_many(&mut db, &mut raw).await?;
    let member = Resource::is_member(scope);
    Ok((
        total,
        raw.into_iter()
            .map(|v| r.shape_row(v, lang, member, query.fields.as_deref()))
            .collect(),
    ))
}

/// Rows of `r` whose `foreign_key` column is one of `ids` (has-many relations of a page), in
/// the resource's default order, as (parent id, shaped row); the reader's view applies.
pub async fn rows_of(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ReadScope,
    foreign_key: &str,
    ids: &[i64],
    query: &ListQuery,
    lang: &str,
) -> Result<Vec<(i64, Value)>, ApiError> {
    check_read(r, scope)?;
    let columns = r.columns(Some(query));
    let mut qb = QueryBuilder::new(format!(
        "SELECT t.\"{foreign_key}\", {} {}",
        columns.sql(),
        r.joined_from(&columns)
    ));
    push_scope(&mut qb, r, scope, false);
    qb.push(format!(" AND t.\"{foreign_key}\" = ANY("))
        .push_bind(ids.to_vec())
        .push(")");
    query.push_order_by(&mut qb, "t.id");
    let mut db = ctx.pool.acquire().await?;
    let mut parents = Vec::new();
    let mut raw = Vec::new();
    for row in qb.build().fetch_all(&mut *db).await? {
        parents.push(sqlx::Row::try_get::<i64, _>(&row, 0)?);
        raw.push(columns.decode(&row, 1)?);
    }
    columns.attach_many(&mut db, &mut raw).await?;
    let member = Resource::is_member(scope);
    let mut out = Vec::new();
    for (parent, row) in parents.into_iter().zip(raw) {
        let row = r.shape_row(row, lang, member, query.fields.as_deref());
        out.push((parent, row.into_value()));
    }
    Ok(out)
}

/// The search terms: every term must match the text vector (English, Arabic, French and
/// unstemmed) or be a substring of a searchable column.
fn push_search(qb: &mut QueryBuilder<'_, Postgres>, r: &Resource, query: &ListQuery) {
    for term in &query.search {
        qb.push(" AND (FALSE");
        if let Some(vector) = r.search_vector {
            qb.push(format!(" OR t.{vector} @@ "));
            push_tsquery(qb, term);
        }
        let pattern = format!("%{}%", crate::list::escape_like(term));
        for column in r.list.search {
            qb.push(format!(" OR {column}::text ILIKE "));
            qb.push_bind(pattern.clone());
        }
        qb.push(")");
    }
}

fn push_tsquery(qb: &mut QueryBuilder<'_, Postgres>, text: &str) {
    qb.push("(");
    for (i, config) in ["simple", "english", "arabic", "french"].iter().enumerate() {
        if i > 0 {
            qb.push(" || ");
        }
        qb.push(format!("plainto_tsquery('{config}', "));
        qb.push_bind(text.to_owned());
        qb.push(")");
    }
    qb.push(")");
}

/// One row of `r` in the caller's view, chosen by `key` (which pushes ` AND …`), decoded with
/// its relations.
async fn read_row(
    db: &mut PgConnection,
    r: &Resource,
    scope: &ReadScope,
    trashed: bool,
    key: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) -> Result<Pairs, ApiError> {
    let columns = r.columns(None);
    let mut qb = QueryBuilder::new(format!(
        "SELECT {} {}",
        columns.sql(),
        r.joined_from(&columns)
    ));
    push_scope(&mut qb, r, scope, trashed);
    key(&mut qb);
    let row = qb
        .build()
        .fetch_optional(&mut *db)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut raw = [columns.decode(&row, 0)?];
    columns.attach_many(db, &mut raw).await?;
    let [raw] = raw;
    Ok(raw)
}

fn by_id(id: i64) -> impl FnOnce(&mut QueryBuilder<'_, Postgres>) {
    move |qb| {
        qb.push(" AND t.id = ").push_bind(id);
    }
}

/// The row as hooks and the write paths read it.
async fn fetch(
    db: &mut PgConnection,
    r: &Resource,
    scope: &ReadScope,
    id: i64,
    trashed: bool,
) -> Result<Value, ApiError> {
    Ok(object(read_row(db, r, scope, trashed, by_id(id)).await?))
}

pub async fn retrieve(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ReadScope,
    id: i64,
    lang: &str,
) -> Result<Value, ApiError> {
    check_read(r, scope)?;
    let mut conn = ctx.pool.acquire().await?;
    let raw = read_row(&mut conn, r, scope, false, by_id(id)).await?;
    Ok(r.shape_pairs(raw, lang, Resource::is_member(scope)))
}

/// A live row by its slug (`product(slug:)`), as the caller may read it.
pub async fn retrieve_by_slug(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ReadScope,
    slug: &str,
    lang: &str,
) -> Result<Value, ApiError> {
    check_read(r, scope)?;
    if r.slug_from.is_none() {
        return Err(ApiError::not_found());
    }
    let slug = slug.to_owned();
    let mut conn = ctx.pool.acquire().await?;
    let raw = read_row(&mut conn, r, scope, false, move |qb| {
        qb.push(" AND t.slug = ").push_bind(slug);
    })
    .await?;
    Ok(r.shape_pairs(raw, lang, Resource::is_member(scope)))
}

/// A row of a tree table (a `parent` column) and its ancestors, nearest first, as (id, depth
/// from `row`): what a tree resource checks before moving a node (no cycles, depth limits).
/// Stops after 50 levels.
pub async fn ancestors(
    tx: &mut PgConnection,
    table: &str,
    row: i64,
) -> Result<Vec<(i64, i32)>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "WITH RECURSIVE up(id, parent, depth) AS ( \
           SELECT id, parent, 0 FROM {table} WHERE id = $1 \
           UNION ALL SELECT c.id, c.parent, up.depth + 1 FROM {table} c \
           JOIN up ON c.id = up.parent WHERE up.depth < 50) \
         SELECT id, depth FROM up ORDER BY depth"
    ))
    .bind(row)
    .fetch_all(&mut *tx)
    .await?)
}

/// References must name live rows of the same project.
async fn check_refs(
    tx: &mut PgConnection,
    r: &Resource,
    scope: &ProjectScope,
    values: &Values,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::new();
    for f in r.fields {
        let FieldKind::Ref { table } = f.kind else {
            continue;
        };
        let Some(Bind::Int(id)) = values.get(f.name) else {
            continue;
        };
        let exists: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL)"
        ))
        .bind(id)
        .bind(scope.project_id())
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            errors.add(
                f.name,
                format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
    }
    errors.into_result()
}

/// `base`, or `base-2`, `base-3`… : the first slug no live row of the project's `table` uses.
pub async fn free_slug(
    tx: &mut PgConnection,
    table: &str,
    project_id: i64,
    base: &str,
) -> Result<String, ApiError> {
    let existing: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT slug FROM {table} WHERE project_id = $1 AND deleted_at IS NULL AND (slug = $2 OR slug LIKE $3)"
    ))
    .bind(project_id)
    .bind(base)
    .bind(format!("{}-%", crate::list::escape_like(base)))
    .fetch_all(&mut *tx)
    .await?;
    let mut slug = base.to_owned();
    let mut n = 2;
    while existing.contains(&slug) {
        slug = format!("{base}-{n}");
        n += 1;
    }
    Ok(slug)
}

/// A slug from the source field when none was given, `-2`, `-3`… on clashes with live rows.
async fn fill_slug(
    tx: &mut PgConnection,
    r: &Resource,
    scope: &ProjectScope,
    id: Option<i64>,
    values: &mut Values,
) -> Result<(), ApiError> {
    let Some(source) = r.slug_from else {
        return Ok(());
    };
    if let Some(Bind::Text(slug)) = values.get("slug") {
        let taken: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE project_id = $1 AND slug = $2 AND deleted_at IS NULL AND id IS DISTINCT FROM $3)",
            r.table
        ))
        .bind(scope.project_id())
        .bind(slug)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if taken {
            return Err(ApiError::field(
                "slug",
                format!("{} with this slug already exists.", r.label),
            ));
        }
        return Ok(());
    }
    if id.is_some() {
        return Ok(());
    }
    let text = SUPPORTED
        .iter()
        .map(|l| format!("{source}_{l}"))
        .chain([source.to_owned()])
        .find_map(|c| match values.get(&c) {
            Some(Bind::Text(t)) if !t.is_empty() => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let base = match slugify(&text) {
        s if s.is_empty() => r.model.to_owned(),
        s => s,
    };
    let slug = free_slug(tx, r.table, scope.project_id(), &base).await?;
    values.insert("slug".into(), Bind::Text(slug));
    Ok(())
}

/// Serialises writes of one project's rows of a table, so slug and uniqueness checks and hooks
/// see each other's results.
async fn lock_table_for_project(
    tx: &mut PgConnection,
    r: &Resource,
    scope: &ProjectScope,
) -> Result<(), ApiError> {
    lock_project_table(tx, r.table, scope.project_id()).await
}

/// The transaction-scoped lock the generic writes of `table` take for one project (take it
/// too when writing such rows outside them, e.g. tags created from a product).
pub async fn lock_project_table(
    tx: &mut PgConnection,
    table: &str,
    project_id: i64,
) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), $2::int)")
        .bind(table)
        .bind((project_id % i64::from(i32::MAX)) as i32)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn create(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ProjectScope,
    body: &Value,
    lang: &str,
) -> Result<Value, ApiError> {
    scope.require(&r.codename("add"), &r.grants)?;
    let mut values = r.values(body, false, lang)?;
    let mut tx = ctx.pool.begin().await?;
    lock_table_for_project(&mut tx, r, scope).await?;
    check_refs(&mut tx, r, scope, &values).await?;
    fill_slug(&mut tx, r, scope, None, &mut values).await?;
    if let Some(h) = r.hooks {
        h.before_write(ctx, &mut tx, scope, None, body, &mut values)
            .await?;
    }
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO {} (project_id, created_by, updated_by",
        r.table
    ));
    for column in values.keys() {
        qb.push(format!(", \"{column}\""));
    }
    qb.push(") VALUES (").push_bind(scope.project_id());
    qb.push(", ").push_bind(scope.user_id());
    qb.push(", ").push_bind(scope.user_id());
    for value in values.into_values() {
        qb.push(", ");
        value.push(&mut qb);
    }
    qb.push(") RETURNING id");
    let id: i64 = qb
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_db_error(e, r.unique))?;
    let view = ReadScope::Member(scope.clone());
    let raw = fetch(&mut tx, r, &view, id, false).await?;
    let written = Written {
        write: Write::Create,
        body,
        before: None,
        row: &raw,
    };
    let raw = finish(ctx, r, scope, tx, id, written).await?;
    Ok(r.shape_owned(raw, lang, true))
}

/// The end of a create, update or restore: the hooks' `after_write`, the row as the response
/// shows it (read again when hooks ran: they may write related rows, like a product's tags),
/// commit, then the public cache's invalidation and the delivery of the events.
async fn finish(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ProjectScope,
    mut tx: sqlx::Transaction<'_, Postgres>,
    id: i64,
    written: Written<'_>,
) -> Result<Value, ApiError> {
    let raw = match r.hooks {
        Some(h) => {
            h.after_write(ctx, &mut tx, scope, written).await?;
            let view = ReadScope::Member(scope.clone());
            fetch(&mut tx, r, &view, id, false).await?
        }
        None => written.row.clone(),
    };
    tx.commit().await?;
    public_cache::invalidate(ctx, r.service, scope.project_id()).await;
    ctx.outbox.flush().await;
    Ok(raw)
}

/// PATCH (`partial`) or PUT: absent fields stay as they are; PUT needs the required ones.
pub async fn update(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
    partial: bool,
    lang: &str,
) -> Result<Value, ApiError> {
    let view = ReadScope::Member(scope.clone());
    let mut tx = ctx.pool.begin().await?;
    lock_table_for_project(&mut tx, r, scope).await?;
    let before = fetch(&mut tx, r, &view, id, false).await?;
    scope.require(&r.codename("change"), &r.grants)?;
    let mut values = r.values(body, partial, lang)?;
    check_refs(&mut tx, r, scope, &values).await?;
    fill_slug(&mut tx, r, scope, Some(id), &mut values).await?;
    if let Some(h) = r.hooks {
        h.before_write(ctx, &mut tx, scope, Some(id), body, &mut values)
            .await?;
    }
    let mut qb = QueryBuilder::new(format!(
        "UPDATE {} SET updated_at = now(), updated_by = ",
        r.table
    ));
    qb.push_bind(scope.user_id());
    for (column, value) in values {
        qb.push(format!(", \"{column}\" = "));
        value.push(&mut qb);
    }
    qb.push(" WHERE id = ").push_bind(id);
    qb.push(" AND project_id = ").push_bind(scope.project_id());
    qb.build()
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db_error(e, r.unique))?;
    let raw = fetch(&mut tx, r, &view, id, false).await?;
    let written = Written {
        write: Write::Update,
        body,
        before: Some(&before),
        row: &raw,
    };
    let raw = finish(ctx, r, scope, tx, id, written).await?;
    Ok(r.shape_owned(raw, lang, true))
}

/// Soft delete: the row leaves lists, getters and uniqueness.
pub async fn delete(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ProjectScope,
    id: i64,
) -> Result<(), ApiError> {
    let view = ReadScope::Member(scope.clone());
    let mut tx = ctx.pool.begin().await?;
    let before = fetch(&mut tx, r, &view, id, false).await?;
    scope.require(&r.codename("delete"), &r.grants)?;
    if let Some(h) = r.hooks {
        h.before_delete(ctx, &mut tx, scope, id).await?;
    }
    let raw: Value = sqlx::query_scalar(&format!(
        "UPDATE {} t SET deleted_at = now(), deleted_by = $3, updated_at = now() \
         WHERE id = $1 AND project_id = $2 RETURNING to_jsonb(t)",
        r.table
    ))
    .bind(id)
    .bind(scope.project_id())
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(h) = r.hooks {
        h.after_write(
            ctx,
            &mut tx,
            scope,
            Written {
                write: Write::Delete,
                body: &Value::Null,
                before: Some(&before),
                row: &raw,
            },
        )
        .await?;
    }
    tx.commit().await?;
    public_cache::invalidate(ctx, r.service, scope.project_id()).await;
    ctx.outbox.flush().await;
    Ok(())
}

/// Restore from the trash: a live row is a no-op 200; a uniqueness clash is 409.
pub async fn restore(
    ctx: &ServiceContext,
    r: &Resource,
    scope: &ProjectScope,
    id: i64,
    lang: &str,
) -> Result<Value, ApiError> {
    let view = ReadScope::Member(scope.clone());
    scope.require(&r.codename("delete"), &r.grants)?;
    let mut tx = ctx.pool.begin().await?;
    lock_table_for_project(&mut tx, r, scope).await?;
    if let Ok(raw) = fetch(&mut tx, r, &view, id, false).await {
        return Ok(r.shape_owned(raw, lang, true));
    }
    let before = fetch(&mut tx, r, &view, id, true).await?;
    if r.slug_from.is_some() {
        let clash: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {0} a JOIN {0} b ON b.project_id = a.project_id AND b.slug = a.slug \
             AND b.deleted_at IS NULL AND b.id <> a.id WHERE a.id = $1)",
            r.table
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if clash {
            return Err(restore_conflict(r));
        }
    }
    sqlx::query(&format!(
        "UPDATE {} SET deleted_at = NULL, deleted_by = NULL, updated_at = now() WHERE id = $1 AND project_id = $2",
        r.table
    ))
    .bind(id)
    .bind(scope.project_id())
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => restore_conflict(r),
        _ => map_db_error(e, r.unique),
    })?;
    let raw = fetch(&mut tx, r, &view, id, false).await?;
    let written = Written {
        write: Write::Restore,
        body: &Value::Null,
        before: Some(&before),
        row: &raw,
    };
    let raw = finish(ctx, r, scope, tx, id, written).await?;
    Ok(r.shape_owned(raw, lang, true))
}

fn restore_conflict(r: &Resource) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "restore_conflict",
        format!(
            "A live {} has the same unique values; change it first.",
            r.label.to_lowercase()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static TAG: Resource = Resource {
        service: "product",
        model: "tag",
        label: "Tag",
        table: "tags",
        fields: &[
            Field::text("name", 100).translated().required(),
            Field::new("color", FieldKind::Color),
            Field::new(
                "price",
                FieldKind::Decimal {
                    min: Some(0),
                    max: None,
                    scale: 2,
                },
            ),
            Field::new("parent", FieldKind::Ref { table: "tags" }).aliases(&["parent_id"]),
            Field::new(
                "cost",
                FieldKind::Decimal {
                    min: Some(0),
                    max: None,
                    scale: 2,
                },
            )
            .members_only(),
        ],
        slug_from: Some("name"),
        computed: &[],
        list: ListSpec {
            filters: &[],
            ordering: &[],
            search: &[],
            default_ordering: "-created_at",
            extra_params: &[],
        },
        search_vector: None,
        public_read: true,
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
    fn input_is_checked_field_by_field() {
        let v = TAG
            .values(&json!({"name": "Sale", "name_ar": "تخفيض", "color": "#ff0000", "price": "9.90", "parent_id": "3"}), false, "fr")
            .expect("valid");
        assert_eq!(v.get("name_fr"), Some(&Bind::Text("Sale".into())));
        assert_eq!(v.get("name_ar"), Some(&Bind::Text("تخفيض".into())));
        assert_eq!(v.get("color"), Some(&Bind::Text("#FF0000".into())));
        assert_eq!(
            v.get("price"),
            Some(&Bind::Decimal("9.90".parse().expect("dec")))
        );
        assert_eq!(v.get("parent"), Some(&Bind::Int(3)));
        let err = TAG
            .values(
                &json!({"color": "red", "price": "-1", "parent": "x"}),
                false,
                "en",
            )
            .expect_err("invalid");
        let fields = err.field_errors().expect("field map");
        for f in ["name", "color", "price", "parent"] {
            assert!(fields.get(f).is_some(), "{f}: {:?}", err.body());
        }
        assert!(TAG.values(&json!({"price": 1e300}), true, "en").is_err());
        assert!(TAG.values(&json!({"price": "0.123"}), true, "en").is_err());
        assert!(
            TAG.values(&json!({"price": "0.120"}), true, "en").is_ok(),
            "trailing zeros are fine"
        );
        assert!(
            TAG.values(&json!({"name": ""}), false, "en").is_err(),
            "required may not be blank"
        );
        let cleared = json!({"name_en": "", "name_ar": null, "name_fr": ""});
        assert!(
            TAG.values(&cleared, true, "en").is_err(),
            "nor emptied in every language"
        );
        assert!(
            TAG.values(&json!({"name_fr": ""}), true, "en").is_ok(),
            "one language may go"
        );
        assert!(TAG.values(&json!([1]), true, "en").is_err());
    }

    #[test]
    fn output_resolves_the_language() {
        let raw = json!({"id": 1, "name_en": "Laptop", "name_ar": "حاسوب", "name_fr": "", "cost": "5.00",
                         "created_at": "2026-01-01T10:00:00+00:00", "slug": "laptop"});
        let ar = TAG.shape(&raw, "ar", false);
        assert_eq!(ar["name"], "حاسوب");
        assert_eq!(ar["name_fr"], Value::Null);
        assert_eq!(ar["cost"], Value::Null, "members only");
        assert_eq!(ar["created_at"], "2026-01-01T10:00:00Z");
        assert_eq!(
            TAG.shape(&raw, "fr", true)["name"],
            "Laptop",
            "falls back to English"
        );
        assert_eq!(TAG.shape(&raw, "fr", true)["cost"], "5.00");
    }

    #[test]
    fn slugs_keep_every_script() {
        assert_eq!(slugify("Hello, World!"), "hello-world");
        assert_eq!(slugify("حاسوب محمول"), "حاسوب-محمول");
        assert_eq!(slugify("  --  "), "");
    }
}

/// Public catalogue reads are cached (in-process, or Redis when configured) under a version
/// per (service, project); every write through this module moves the version after its commit,
/// so the next read misses and a write is always visible to the next read.
pub mod public_cache {
    use std::time::Duration;

    use crate::service::ServiceContext;

    const ENTRY_TTL: Duration = Duration::from_secs(60);
    const VERSION_TTL: Duration = Duration::from_secs(3600);

    fn version_key(service: &str, project_id: i64) -> String {
        format!("rcv:{service}:{project_id}")
    }

    /// The key of a public read, or `None` when the cache cannot be read (then: no caching).
    pub async fn key(
        ctx: &ServiceContext,
        service: &str,
        project_id: i64,
        request: &str,
    ) -> Option<String> {
        let version = match ctx
            .platform
            .cache()
            .get(&version_key(service, project_id))
            .await
        {
            Ok(v) => v.unwrap_or_else(|| "0".into()),
            Err(e) => {
                tracing::warn!(error = %e, "public cache unavailable");
                return None;
            }
        };
        Some(format!("rc:{service}:{project_id}:{version}:{request}"))
    }

    /// A JSON body as text: what the cache holds, sent as it is on a hit (never parsed).
    pub struct JsonText(pub String);

    impl axum::response::IntoResponse for JsonText {
        fn into_response(self) -> axum::response::Response {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                self.0,
            )
                .into_response()
        }
    }

    pub async fn get(ctx: &ServiceContext, key: &str) -> Option<JsonText> {
        ctx.platform.cache().get(key).await.ok()?.map(JsonText)
    }

    pub async fn put(ctx: &ServiceContext, key: &str, body: &str) {
        if let Err(e) = ctx.platform.cache().set(key, body, ENTRY_TTL).await {
            tracing::warn!(error = %e, "public cache write failed");
        }
    }

    /// A public read (`Some(project)`) answered from the cache or computed and stored; any other
    /// read (members, the trash: `None`) is computed every time.
    pub async fn read_through<F, Fut, T>(
        ctx: &ServiceContext,
        service: &str,
        public_project: Option<i64>,
        request: &str,
        compute: F,
    ) -> Result<JsonText, crate::ApiError>
    where
        F: FnOnce() -> Fut,
        T: serde::Serialize,
        Fut: std::future::Future<Output = Result<T, crate::ApiError>>,
    {
        let key = match public_project {
            Some(project_id) => key(ctx, service, project_id, request).await,
            None => None,
        };
        if let Some(k) = &key {
            if let Some(hit) = get(ctx, k).await {
                return Ok(hit);
            }
        }
        let body = serde_json::to_string(&compute().await?).map_err(crate::ApiError::internal)?;
        if let Some(k) = &key {
            put(ctx, k, &body).await;
        }
        Ok(JsonText(body))
    }

    pub async fn invalidate(ctx: &ServiceContext, service: &str, project_id: i64) {
        let version = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = ctx
            .platform
            .cache()
            .set(&version_key(service, project_id), &version, VERSION_TTL)
            .await
        {
            // Entries live one minute at most, so a failed bump is stale for that long.
            tracing::error!(error = %e, "public cache invalidation failed");
        }
    }
}

/// REST adapter: `{path}/` (GET list, POST create), `{path}/trash/`, `{path}/{id}/` (GET, PATCH,
/// PUT, DELETE) and `{path}/{id}/restore/`, registered bare and under `/{alias}/`.
pub mod rest {
    use axum::extract::{OriginalUri, Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::Json as JsonOut;
    use serde_json::Value;

    use super::{public_cache, Resource};
    use crate::auth::{ProjectScope, ReadScope};
    use crate::extract::{path_id as id, Json};
    use crate::lang::Lang;
    use crate::list::{page_body, ListQuery};
    use crate::routing::{get, post, Endpoint, Routes};
    use crate::service::ServiceContext;
    use crate::ApiError;

    /// The id an item route names: an integer, else whatever the resource's hooks resolve.
    async fn key(
        ctx: &ServiceContext,
        r: &Resource,
        project_id: i64,
        raw: &str,
    ) -> Result<i64, ApiError> {
        match (id(raw), r.hooks) {
            (Ok(id), _) => Ok(id),
            (Err(e), Some(hooks)) => hooks.lookup(ctx, project_id, raw).await?.ok_or(e),
            (Err(e), None) => Err(e),
        }
    }

    /// Absolute page links from the public base URL (or the request's host).
    fn base_url(ctx: &ServiceContext, headers: &HeaderMap, uri: &axum::http::Uri) -> String {
        let origin = crate::service::public_origin(ctx.platform.config(), headers);
        format!("{origin}{}", uri.path())
    }

    async fn page(
        ctx: ServiceContext,
        r: &'static Resource,
        scope: ReadScope,
        lang: &str,
        uri: axum::http::Uri,
        headers: HeaderMap,
        trashed: bool,
    ) -> Result<public_cache::JsonText, ApiError> {
        if !trashed {
            super::check_read(r, &scope)?;
        }
        let base = base_url(&ctx, &headers, &uri);
        let public = match (&scope, trashed) {
            (ReadScope::Public { project_id, .. }, false) => Some(*project_id),
            _ => None,
        };
        let request = format!("{lang}:{base}?{}", uri.query().unwrap_or(""));
        public_cache::read_through(&ctx, r.service, public, &request, || async {
            let query = ListQuery::from_query(&r.list, uri.query())?;
            let (total, rows) = super::list(&ctx, r, &scope, &query, lang, trashed).await?;
            Ok(page_body(&base, uri.query(), total, &query, rows))
        })
        .await
    }

    impl Routes<ServiceContext> {
        /// Mounts `r`'s operations at each of `paths` (the first is the documented one) and
        /// documents them: list and create on the collection, the trash, the item (retrieve,
        /// update, delete) and restore.
        pub fn resource<P: AsRef<str>>(
            self,
            alias: &str,
            paths: &[P],
            r: &'static Resource,
        ) -> Self {
            self.resource_with(alias, paths, r, None)
        }

        /// [`Routes::resource`] with the service's own `POST` on the collection (a create that
        /// takes more than JSON, like a product with its image); the service documents it.
        pub fn resource_with<P: AsRef<str>>(
            self,
            alias: &str,
            paths: &[P],
            r: &'static Resource,
            create: Option<Endpoint<ServiceContext>>,
        ) -> Self {
            let first = paths.first().map_or("", AsRef::as_ref);
            let documented = crate::openapi::resource_paths(first, r, create.is_some());
            let [collection, trash, item, restore] = endpoints(r, create);
            let under = |suffix: &str| -> Vec<String> {
                paths
                    .iter()
                    .map(|p| format!("{}{suffix}", p.as_ref()))
                    .collect()
            };
            let (t, i, re) = (under("/trash"), under("/{id}"), under("/{id}/restore"));
            self.at(alias, paths, collection)
                .at(alias, &t, trash)
                .at(alias, &i, item)
                .at(alias, &re, restore)
                .document(documented)
        }
    }

    /// The four endpoints of a resource: collection, trash, item, restore.
    fn endpoints(
        r: &'static Resource,
        create: Option<Endpoint<ServiceContext>>,
    ) -> [Endpoint<ServiceContext>; 4] {
        let list = get(
            move |State(ctx): State<ServiceContext>,
                  scope: ReadScope,
                  Lang(lang): Lang,
                  OriginalUri(uri): OriginalUri,
                  headers: HeaderMap| async move {
                page(ctx, r, scope, lang, uri, headers, false).await
            },
        );
        let collection = match create {
            Some(custom) => list.merge(custom),
            None => list.post(
                move |State(ctx): State<ServiceContext>,
                      scope: ProjectScope,
                      Lang(lang): Lang,
                      Json(body): Json<Value>| async move {
                    let created = super::create(&ctx, r, &scope, &body, lang).await?;
                    Ok::<Response, ApiError>(
                        (StatusCode::CREATED, JsonOut(created)).into_response(),
                    )
                },
            ),
        };
        let trash = get(
            move |State(ctx): State<ServiceContext>,
                  scope: ProjectScope,
                  Lang(lang): Lang,
                  OriginalUri(uri): OriginalUri,
                  headers: HeaderMap| async move {
                page(ctx, r, ReadScope::Member(scope), lang, uri, headers, true).await
            },
        );
        let update = move |partial: bool| {
            move |State(ctx): State<ServiceContext>,
                  scope: ProjectScope,
                  Lang(lang): Lang,
                  Path(raw): Path<String>,
                  Json(body): Json<Value>| async move {
                let id = key(&ctx, r, scope.project_id(), &raw).await?;
                super::update(&ctx, r, &scope, id, &body, partial, lang)
                    .await
                    .map(JsonOut)
            }
        };
        let item = get(
            move |State(ctx): State<ServiceContext>,
                  scope: ReadScope,
                  Lang(lang): Lang,
                  Path(raw): Path<String>| async move {
                super::check_read(r, &scope)?;
                let id = key(&ctx, r, scope.project_id(), &raw).await?;
                let public = match &scope {
                    ReadScope::Public { project_id, .. } => Some(*project_id),
                    ReadScope::Member(_) => None,
                };
                let request = format!("{lang}:{}/{id}", r.table);
                public_cache::read_through(&ctx, r.service, public, &request, || {
                    super::retrieve(&ctx, r, &scope, id, lang)
                })
                .await
            },
        )
        .patch(update(true))
        .put(update(false))
        .delete(
            move |State(ctx): State<ServiceContext>,
                  scope: ProjectScope,
                  Path(raw): Path<String>| async move {
                let id = key(&ctx, r, scope.project_id(), &raw).await?;
                super::delete(&ctx, r, &scope, id).await?;
                Ok::<StatusCode, ApiError>(StatusCode::NO_CONTENT)
            },
        );
        let restore = post(
            move |State(ctx): State<ServiceContext>,
                  scope: ProjectScope,
                  Lang(lang): Lang,
                  Path(raw): Path<String>| async move {
                let id = key(&ctx, r, scope.project_id(), &raw).await?;
                super::restore(&ctx, r, &scope, id, lang).await.map(JsonOut)
            },
        );
        [collection, trash, item, restore]
    }
}
