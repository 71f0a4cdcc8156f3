//! How a resource's rows are read: the columns its output has, selected one by one and decoded
//! by their kind in Rust. Neither the whole row (`to_jsonb(t)`, its search vector turned into
//! text and back) nor a JSON document per row is built in the database. Computed values, which
//! are expressions of any type, arrive as `jsonb`; relations are joined (to-one) or read for the
//! whole page in one statement (has-many), never by a sub-select per row.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Column as _, PgConnection, Row as _, TypeInfo};

use crate::lang::SUPPORTED;
use crate::resource::{FieldKind, Related, Resource};

/// How one selected column becomes JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Decode {
    Int,
    Float,
    Text,
    Time,
    Json,
    /// By the type the database reports (text fields stored in other types).
    Any,
}

/// One selected column: the key the shaping reads, its SQL over the alias `t`, its decoding.
#[derive(Clone, Debug)]
struct Column {
    key: Key,
    sql: String,
    decode: Decode,
}

/// A to-one relation joined to the row: its columns follow the row's.
struct Joined {
    name: &'static str,
    alias: &'static str,
    columns: &'static [&'static str],
}

/// What a read of `r` selects and reads beside: its columns, the joined relations and the
/// has-many values read per page, restricted to the computed values and relations named in
/// `only` and to the fields named in `fields` (all of them when `None`).
pub(crate) struct Columns {
    plain: Vec<Column>,
    joined: Vec<Joined>,
    joins: String,
    many: Vec<(&'static [&'static str], &'static str)>,
}

const STANDARD: &[(&str, Decode)] = &[
    ("id", Decode::Int),
    ("project_id", Decode::Int),
    ("created_at", Decode::Time),
    ("updated_at", Decode::Time),
    ("created_by", Decode::Int),
    ("deleted_at", Decode::Time),
];

fn column(key: impl Into<Key>, sql: impl Into<String>, decode: Decode) -> Column {
    Column {
        key: key.into(),
        sql: sql.into(),
        decode,
    }
}

fn field_columns(r: &Resource, fields: Option<&[String]>) -> Vec<Column> {
    let mut out = Vec::new();
    for f in r.fields {
        if fields.is_some_and(|fields| !fields.iter().any(|n| n == f.name)) {
            continue;
        }
        if f.translated {
            for l in SUPPORTED {
                let name = format!("{}_{l}", f.name);
                let sql = format!("t.\"{name}\"");
                out.push(column(Key::from(name), sql, Decode::Text));
            }
            continue;
        }
        let c = format!("t.\"{}\"", f.name);
        let (sql, decode) = match f.kind {
            FieldKind::Int { .. } => (format!("{c}::int8"), Decode::Int),

            FieldKind::Decimal { scale, .. } => {
                (format!("round({c}, {scale})::text"), Decode::Text)
            }
            FieldKind::Number { .. } => (format!("{c}::float8"), Decode::Float),
            FieldKind::Date => (format!("{c}::text"), Decode::Text),
            // Decoded by the column's own type: a field may be stored in another type than
            // its kind suggests (a text field in a timestamp column), as `to_jsonb` would.
            FieldKind::Ref { .. }
            | FieldKind::Bool
            | FieldKind::Json { .. }
            | FieldKind::DateTime
            | FieldKind::Text { .. }
            | FieldKind::Choice(_)
            | FieldKind::Color => (c, Decode::Any),
        };
        out.push(column(f.name, sql, decode));
    }
    out
}

impl Columns {
    pub(crate) fn of(r: &Resource, only: Option<&[String]>, fields: Option<&[String]>) -> Self {
        let wanted = |name: &str| only.is_none_or(|only| only.iter().any(|o| o == name));
        let mut plain: Vec<Column> = STANDARD
            .iter()
            .map(|(name, decode)| column(*name, format!("t.{name}"), *decode))
            .collect();
        if r.slug_from.is_some() {
            plain.push(column("slug", "t.slug", Decode::Text));
        }
        // A field a joined relation shows under its own name is read as that relation.
        let joined = |name: &str| {
            r.related
                .iter()
                .any(|rel| matches!(rel, Related::One { name: n, .. } if *n == name && wanted(n)))
        };
        plain.extend(
            field_columns(r, fields)
                .into_iter()
                .filter(|c| !joined(c.key.as_str())),
        );
        for (name, expr) in r.computed {
            if wanted(name) {
                plain.push(column(*name, format!("to_jsonb({expr})"), Decode::Json));
            }
        }
        let mut out = Self {
            plain,
            joined: Vec::new(),
            joins: String::new(),
            many: Vec::new(),
        };
        for rel in r.related {
            match rel {
                Related::One {
                    name,
                    join,
                    alias,
                    columns,
                } if wanted(name) => {
                    out.joins.push(' ');
                    out.joins.push_str(join);
                    out.joined.push(Joined {
                        name,
                        alias,
                        columns,
                    });
                }
                Related::Many { names, sql } if names.iter().any(|n| wanted(n)) => {
                    out.many.push((names, sql));
                }
                _ => {}
            }
        }
        out
    }

    /// The select list (over `t` and the joined aliases).
    pub(crate) fn sql(&self) -> String {
        let mut parts: Vec<String> = self.plain.iter().map(|c| c.sql.clone()).collect();
        for j in &self.joined {
            parts.extend(j.columns.iter().map(|c| format!("{}.\"{c}\"", j.alias)));
        }
        parts.join(", ")
    }

    /// The joins to append after `FROM table t`.
    pub(crate) fn joins(&self) -> &str {
        &self.joins
    }

    /// The row (from column `first` on) as (key, value) pairs in the order
    /// `Resource::shape_pairs` reads them.
    pub(crate) fn decode(&self, row: &PgRow, first: usize) -> Result<Pairs, sqlx::Error> {
        let mut out = Vec::with_capacity(self.plain.len() + self.joined.len() + 2);
        for (i, c) in self.plain.iter().enumerate() {
            let at = first + i;
            let v = match c.decode {
                Decode::Int => row.try_get::<Option<i64>, _>(at)?.map(Value::from),
                Decode::Float => row.try_get::<Option<f64>, _>(at)?.map(number),
                Decode::Text => row.try_get::<Option<String>, _>(at)?.map(Value::from),
                Decode::Time => row.try_get::<Option<DateTime<Utc>>, _>(at)?.map(time),
                Decode::Json => row.try_get::<Option<Value>, _>(at)?,
                Decode::Any => Some(any(row, at)?),
            };
            // The key is shared with the column (no copy per row).
            out.push((c.key.clone(), v.unwrap_or(Value::Null)));
        }
        let mut at = first + self.plain.len();
        for j in &self.joined {
            let mut related = Map::new();
            for c in j.columns {
                related.insert((*c).to_owned(), any(row, at)?);
                at += 1;
            }
            let present = related.get("id").is_some_and(|id| !id.is_null());
            out.push((
                Key::Static(j.name),
                if present {
                    Value::Object(related)
                } else {
                    Value::Null
                },
            ));
        }
        Ok(out)
    }

    /// Reads the has-many values of `rows`, one statement per relation for all of them, and
    /// appends each name with an array (empty when a row has none).
    pub(crate) async fn attach_many(
        &self,
        db: &mut PgConnection,
        rows: &mut [Pairs],
    ) -> Result<(), sqlx::Error> {
        if self.many.is_empty() || rows.is_empty() {
            return Ok(());
        }
        let id_of = |row: &Pairs| {
            row.iter()
                .find(|(k, _)| k.as_str() == "id")
                .and_then(|(_, v)| v.as_i64())
        };
        let ids: Vec<i64> = rows.iter().filter_map(id_of).collect();
        for (names, sql) in &self.many {
            let mut found: HashMap<i64, Vec<Vec<Value>>> = HashMap::new();
            for row in sqlx::query(sql).bind(&ids).fetch_all(&mut *db).await? {
                let owner: i64 = row.try_get(0)?;
                let lists = found
                    .entry(owner)
                    .or_insert_with(|| vec![Vec::new(); names.len()]);
                for (i, list) in lists.iter_mut().enumerate() {
                    list.push(any(&row, i + 1)?);
                }
            }
            for row in rows.iter_mut() {
                let lists = id_of(row)
                    .and_then(|id| found.remove(&id))
                    .unwrap_or_else(|| vec![Vec::new(); names.len()]);
                for (name, list) in names.iter().zip(lists) {
                    row.push((Key::Static(name), Value::Array(list)));
                }
            }
        }
        Ok(())
    }
}

/// A key of a decoded or shaped row: a name written in the resource, or one made for it once
/// per read (a translated column's `name_en`) and shared by every row of that read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Key {
    pub fn as_str(&self) -> &str {
        match self {
            Key::Static(s) => s,
            Key::Shared(s) => s,
        }
    }
}

impl From<&'static str> for Key {
    fn from(s: &'static str) -> Self {
        Key::Static(s)
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::Shared(s.into())
    }
}

/// A decoded row: (key, value) in the order of the select list.
pub(crate) type Pairs = Vec<(Key, Value)>;

/// Pairs as the JSON object hooks and services read (a later key wins, as in the row).
pub(crate) fn object(pairs: Pairs) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
    )
}

/// A shaped row, serialised as a JSON object in the order its keys were given, without a map
/// per row: the keys of a shape are distinct by construction
/// ([`crate::resource::Resource::shape_row`]).
#[derive(Debug, Default)]
pub struct Row(Vec<(Key, Value)>);

impl Row {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub(crate) fn push(&mut self, key: Key, value: Value) {
        self.0.push((key, value));
    }

    /// No key given twice (what [`Row`]'s serialisation relies on).
    pub(crate) fn keys_distinct(&self) -> bool {
        let mut keys: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.windows(2).all(|w| w[0] != w[1])
    }

    /// The row as a JSON object (for hooks, GraphQL and services).
    pub fn into_value(self) -> Value {
        object(self.0)
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_str(), v)?;
        }
        map.end()
    }
}

/// A column of any common type, by the type the database reports, as `to_jsonb` writes it.
fn any(row: &PgRow, at: usize) -> Result<Value, sqlx::Error> {
    let v = match row.column(at).type_info().name() {
        "INT2" => row.try_get::<Option<i16>, _>(at)?.map(Value::from),
        "INT4" => row.try_get::<Option<i32>, _>(at)?.map(Value::from),
        "INT8" => row.try_get::<Option<i64>, _>(at)?.map(Value::from),
        "FLOAT4" => row
            .try_get::<Option<f32>, _>(at)?
            .map(|v| number(f64::from(v))),
        "FLOAT8" => row.try_get::<Option<f64>, _>(at)?.map(number),
        "BOOL" => row.try_get::<Option<bool>, _>(at)?.map(Value::from),
        "NUMERIC" => row
            .try_get::<Option<Decimal>, _>(at)?
            .and_then(|d| d.to_string().parse::<serde_json::Number>().ok())
            .map(Value::Number),
        "JSON" | "JSONB" => row.try_get::<Option<Value>, _>(at)?,
        "TIMESTAMPTZ" => row.try_get::<Option<DateTime<Utc>>, _>(at)?.map(json_time),
        "DATE" => row
            .try_get::<Option<NaiveDate>, _>(at)?
            .map(|d| Value::from(d.to_string())),
        _ => row.try_get::<Option<String>, _>(at)?.map(Value::from),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Timestamps in RFC 3339 UTC with `Z` (fraction only when non-zero).
fn time(t: DateTime<Utc>) -> Value {
    Value::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// A timestamp as `to_jsonb` writes it in a UTC session: `2026-01-02T03:04:05.5+00:00`.
fn json_time(t: DateTime<Utc>) -> Value {
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    let micros = t.timestamp_subsec_micros();
    Value::from(if micros == 0 {
        format!("{base}+00:00")
    } else {
        let fraction = format!("{micros:06}");
        format!("{base}.{}+00:00", fraction.trim_end_matches('0'))
    })
}

/// A double as PostgreSQL's JSON writes it: whole values without a fraction (`2`, not `2.0`).
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}
