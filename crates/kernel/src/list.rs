//! List queries (conventions.md §5–6): one filter language behind REST parameters and the
//! GraphQL `filter`/`where`/`orderBy` arguments, checked against per-resource allow-lists and
//! rendered as bound SQL.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use sqlx::{Postgres, QueryBuilder};

use crate::error::{ApiError, FieldErrors};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Decimal,
    Text,
    Bool,
    Date,
    DateTime,
}

/// A filterable or orderable field: its public name and the SQL expression behind it.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub column: &'static str,
    pub kind: Kind,
}

impl Field {
    /// `name` in the query string, read from the SQL `column`.
    pub const fn new(name: &'static str, column: &'static str, kind: Kind) -> Self {
        Self { name, column, kind }
    }
}

/// What a resource allows in its list queries.
#[derive(Debug)]
pub struct ListSpec {
    pub filters: &'static [Field],
    pub ordering: &'static [Field],
    /// Text columns searched by `search` (every term must hit one of them).
    pub search: &'static [&'static str],
    /// e.g. `-created_at`; `id` is always appended for stable pages.
    pub default_ordering: &'static str,
    /// Convenience parameters the resource interprets itself (`min_price`, `low_stock`…).
    pub extra_params: &'static [&'static str],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Exact,
    Ne,
    In,
    Nin,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    StartsWith,
    EndsWith,
    IsNull,
    Range,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "exact" | "eq" | "equals" => Op::Exact,
            "ne" | "not" | "notequals" => Op::Ne,
            "in" => Op::In,
            "nin" | "notin" => Op::Nin,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "contains" | "icontains" | "like" => Op::Contains,
            "startswith" | "istartswith" => Op::StartsWith,
            "endswith" | "iendswith" => Op::EndsWith,
            "isnull" => Op::IsNull,
            "range" => Op::Range,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Decimal(Decimal),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Null,
}

#[derive(Debug, PartialEq)]
pub struct Condition {
    pub column: &'static str,
    pub kind: Kind,
    pub op: Op,
    pub values: Vec<Value>,
    /// A date-only upper bound covers the whole day.
    pub whole_day: bool,
}

#[derive(Debug, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Cond(Condition),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// 1-based page number; `None` = `last`, resolved once the count is known.
    Number {
        page: Option<i64>,
        size: i64,
    },
    Offset {
        limit: i64,
        offset: i64,
    },
}

#[derive(Debug)]
pub struct ListQuery {
    pub page: Page,
    pub filter: Filter,
    pub ordering: Vec<(&'static str, bool)>,
    pub search: Vec<String>,
    /// The resource's own convenience parameters, as given.
    pub extra: Vec<(String, String)>,
    /// Whether the caller chose the ordering (else relevance may order search results).
    pub explicit_ordering: bool,
    /// The computed values to read (`None`: all of them); GraphQL asks only for those its
    /// selection uses.
    pub computed: Option<Vec<String>>,
    /// The fields to read (`None`: all of them); GraphQL asks only for those its selection
    /// uses. The standard columns (`id`, `project_id`, times, `created_by`) are always read.
    pub fields: Option<Vec<String>>,
}

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;
const RESERVED: &[&str] = &["format", "lang", "cursor"];

/// `createdAt` → `created_at`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn find<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    let snake = snake_case(name);
    fields.iter().find(|f| f.name == snake)
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(FieldErrors::single(param, message))
}

fn parse_value(kind: Kind, raw: &str, param: &str) -> Result<(Value, bool), ApiError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("null") {
        return Ok((Value::Null, false));
    }
    let invalid = |what: &str| bad(param, format!("Enter a valid {what}."));
    Ok(match kind {
        Kind::Int => (
            Value::Int(raw.parse().map_err(|_| invalid("integer"))?),
            false,
        ),
        Kind::Decimal => (
            Value::Decimal(raw.parse().map_err(|_| invalid("number"))?),
            false,
        ),
        Kind::Text => (Value::Text(raw.to_owned()), false),
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" => (Value::Bool(true), false),
            "false" | "0" => (Value::Bool(false), false),
            _ => return Err(invalid("boolean")),
        },
        Kind::Date => (
            Value::Date(raw.parse().map_err(|_| invalid("date"))?),
            false,
        ),
        Kind::DateTime => match DateTime::parse_from_rfc3339(raw) {
            Ok(t) => (Value::DateTime(t.with_timezone(&Utc)), false),
            Err(_) => {
                let date: NaiveDate = raw.parse().map_err(|_| invalid("date/time"))?;
                let start = date
                    .and_hms_opt(0, 0, 0)
                    .map(|d| d.and_utc())
                    .ok_or_else(|| invalid("date"))?;
                (Value::DateTime(start), true)
            }
        },
    })
}

/// Builds one condition from a field, an operator and raw text values.
fn condition(field: &Field, op: Op, raws: &[String], param: &str) -> Result<Condition, ApiError> {
    let list: Vec<&str> = raws
        .iter()
        .flat_map(|r| r.split(','))
        .filter(|s| !s.is_empty())
        .collect();
    let mut whole_day = false;
    let values = match op {
        Op::IsNull => {
            let (v, _) = parse_value(Kind::Bool, raws.first().map_or("", String::as_str), param)?;
            vec![v]
        }
        Op::In | Op::Nin | Op::Range => {
            let values = list
                .iter()
                .map(|r| {
                    parse_value(field.kind, r, param).map(|(v, d)| {
                        whole_day |= d;
                        v
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if op == Op::Range && values.len() != 2 {
                return Err(bad(param, "A range needs two values."));
            }
            if values.is_empty() {
                return Err(bad(param, "Enter a list of values."));
            }
            values
        }
        _ => {
            let raw = raws.first().map_or("", String::as_str);
            let (v, d) = parse_value(field.kind, raw, param)?;
            whole_day = d;
            vec![v]
        }
    };
    if matches!(op, Op::Contains | Op::StartsWith | Op::EndsWith) && field.kind != Kind::Text {
        return Err(bad(param, "This lookup applies to text fields only."));
    }
    Ok(Condition {
        column: field.column,
        kind: field.kind,
        op,
        values,
        whole_day,
    })
}

/// Splits `field__op` (the whole key is tried as a field first).
fn split_key<'a>(fields: &'a [Field], key: &str) -> Option<(&'a Field, Op)> {
    if let Some(f) = find(fields, key) {
        return Some((f, Op::Exact));
    }
    let (name, op) = key.rsplit_once("__").or_else(|| key.rsplit_once('_'))?;
    Some((find(fields, name)?, Op::parse(op)?))
}

fn page_number(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None => Ok(Some(1)),
        Some("last") => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(http::StatusCode::NOT_FOUND, "not_found", "Invalid page.")
            }),
    }
}

fn size(param: &str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| n.min(MAX_PAGE_SIZE))
        .ok_or_else(|| bad(param, "A valid positive integer is required."))
}

/// Parses `ordering=a,-b` against the allow-list.
pub fn parse_ordering(
    spec: &ListSpec,
    raw: &str,
    param: &str,
) -> Result<Vec<(&'static str, bool)>, ApiError> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (desc, name) = match item.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, item.strip_prefix('+').unwrap_or(item)),
        };
        let field = find(spec.ordering, name)
            .ok_or_else(|| bad(param, format!("\"{name}\" is not a valid ordering field.")))?;
        out.push((field.column, desc));
    }
    Ok(out)
}

impl ListQuery {
    /// REST: `page`, `page_size`/`limit`, `offset`, `ordering`, `search`, filters.
    pub fn from_query(spec: &ListSpec, query: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let limit = get("limit");
        let page = match (limit, get("offset")) {
            (Some(limit), Some(offset)) => Page::Offset {
                limit: size("limit", limit)?,
                offset: offset
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|o| *o >= 0)
                    .ok_or_else(|| bad("offset", "A valid non-negative integer is required."))?,
            },
            _ => Page::Number {
                page: page_number(get("page"))?,
                size: match get("page_size").or(limit) {
                    Some(raw) => size(
                        if get("page_size").is_some() {
                            "page_size"
                        } else {
                            "limit"
                        },
                        raw,
                    )?,
                    None => DEFAULT_PAGE_SIZE,
                },
            },
        };
        let explicit_ordering = get("ordering").is_some_and(|o| !o.trim().is_empty());
        let ordering = match get("ordering").filter(|o| !o.trim().is_empty()) {
            Some(raw) => parse_ordering(spec, raw, "ordering")?,
            None => parse_ordering(spec, spec.default_ordering, "ordering").unwrap_or_default(),
        };
        let search = get("search")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut conditions = Vec::new();
        let mut extra = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (key, _) in &pairs {
            let reserved = matches!(
                key.as_str(),
                "page" | "page_size" | "limit" | "offset" | "ordering" | "search"
            ) || RESERVED.contains(&key.as_str())
                || key.starts_with('_');
            if reserved || seen.contains(&key.as_str()) {
                continue;
            }
            seen.push(key);
            if spec.extra_params.contains(&key.as_str()) {
                extra.extend(pairs.iter().filter(|(k, _)| k == key).cloned());
                continue;
            }
            let (field, op) =
                split_key(spec.filters, key).ok_or_else(|| bad(key, "Unknown filter."))?;
            let raws: Vec<String> = pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect();
            conditions.push(Filter::Cond(condition(field, op, &raws, key)?));
        }
        Ok(Self {
            page,
            filter: Filter::All(conditions),
            ordering,
            search,
            extra,
            explicit_ordering,
            computed: None,
            fields: None,
        })
    }

    /// Limit and offset for a total of `count` rows; 404 `Invalid page.` past the end.
    pub fn window(&self, count: i64) -> Result<(i64, i64, i64), ApiError> {
        match self.page {
            Page::Offset { limit, offset } => Ok((limit, offset, 0)),
            Page::Number { page, size } => {
                let last = ((count + size - 1) / size).max(1);
                let page = page.unwrap_or(last);
                if page > last {
                    return Err(ApiError::new(
                        http::StatusCode::NOT_FOUND,
                        "not_found",
                        "Invalid page.",
                    ));
                }
                Ok((size, (page - 1) * size, page))
            }
        }
    }

    /// Appends ` AND (…)` for the filter only (the caller handles `search`).
    pub fn push_filters(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        qb.push(" AND ");
        push_filter(qb, &self.filter);
    }

    /// Appends ` AND (…)` for the filter and the search terms.
    pub fn push_where(&self, qb: &mut QueryBuilder<'_, Postgres>, search_columns: &[&str]) {
        self.push_filters(qb);
        for term in &self.search {
            qb.push(" AND (FALSE");
            let pattern = format!("%{}%", escape_like(term));
            for column in search_columns {
                qb.push(format!(" OR {column}::text ILIKE "));
                qb.push_bind(pattern.clone());
            }
            qb.push(")");
        }
    }

    /// Appends ` ORDER BY …, id`.
    pub fn push_order(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        self.push_order_by(qb, "id");
    }

    /// Appends ` ORDER BY …, {id}` (`id`: the id column, qualified when the query joins).
    pub fn push_order_by(&self, qb: &mut QueryBuilder<'_, Postgres>, id: &str) {
        qb.push(" ORDER BY ");
        for (column, desc) in &self.ordering {
            qb.push(format!("{column} {}, ", if *desc { "DESC" } else { "ASC" }));
        }
        // The tie-breaker follows the last key's direction, so that an index on
        // (project_id, created_at DESC, id DESC) serves the default `-created_at` page.
        let last_desc = self.ordering.last().is_some_and(|(_, desc)| *desc);
        qb.push(id);
        if last_desc {
            qb.push(" DESC");
        }
    }
}

/// One page of a list: `SELECT count(*) {from}` for the total, then the rows of the requested
/// window in the requested order. `from` ends where `scope` appends the fixed condition (the
/// tenant's project, usually: `FROM t WHERE project_id = ` and a bind).
pub async fn fetch_page<T>(
    db: &sqlx::PgPool,
    columns: &str,
    from: &str,
    scope: impl Fn(&mut QueryBuilder<'_, Postgres>),
    query: &ListQuery,
    search: &[&str],
) -> Result<(i64, Vec<T>), ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let build = |select: &str| {
        let mut qb = QueryBuilder::new(format!("SELECT {select} {from}"));
        scope(&mut qb);
        query.push_where(&mut qb, search);
        qb
    };
    let total: i64 = build("count(*)").build_query_scalar().fetch_one(db).await?;
    let (limit, offset, _) = query.window(total)?;
    let mut rows = build(columns);
    query.push_order(&mut rows);
    rows.push(" LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
    Ok((total, rows.build_query_as().fetch_all(db).await?))
}

/// Escapes `%`, `_` and `\\` for a LIKE pattern.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_value(qb: &mut QueryBuilder<'_, Postgres>, value: &Value) {
    match value.clone() {
        Value::Int(v) => qb.push_bind(v),
        Value::Decimal(v) => qb.push_bind(v),
        Value::Text(v) => qb.push_bind(v),
        Value::Bool(v) => qb.push_bind(v),
        Value::Date(v) => qb.push_bind(v),
        Value::DateTime(v) => qb.push_bind(v),
        Value::Null => qb.push("NULL"),
    };
}

fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, filter: &Filter) {
    match filter {
        Filter::All(items) | Filter::Any(items) if items.is_empty() => {
            qb.push(if matches!(filter, Filter::All(_)) {
                "TRUE"
            } else {
                "FALSE"
            });
        }
        Filter::All(items) | Filter::Any(items) => {
            let joiner = if matches!(filter, Filter::All(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_filter(qb, item);
            }
            qb.push(")");
        }
        Filter::Not(inner) => {
            qb.push("NOT (");
            push_filter(qb, inner);
            qb.push(")");
        }
        Filter::Cond(c) => push_condition(qb, c),
    }
}

fn push_condition(qb: &mut QueryBuilder<'_, Postgres>, c: &Condition) {
    let col = c.column;
    let first = c.values.first().cloned().unwrap_or(Value::Null);
    let is_text = c.kind == Kind::Text;
    let cmp = |qb: &mut QueryBuilder<'_, Postgres>, op: &str, v: &Value| {
        if is_text {
            qb.push(format!("lower({col}) {op} lower("));
            push_value(qb, v);
            qb.push(")");
        } else {
            qb.push(format!("{col} {op} "));
            push_value(qb, v);
        }
    };
    // A whole-day upper bound: `< next day`.
    let next_day = |v: &Value| match v {
        Value::DateTime(t) => Value::DateTime(*t + chrono::Duration::days(1)),
        other => other.clone(),
    };
    match c.op {
        Op::Exact if first == Value::Null => {
            qb.push(format!("{col} IS NULL"));
        }
        Op::Ne if first == Value::Null => {
            qb.push(format!("{col} IS NOT NULL"));
        }
        Op::Exact if c.whole_day => {
            qb.push("(");
            cmp(qb, ">=", &first);
            qb.push(" AND ");
            cmp(qb, "<", &next_day(&first));
            qb.push(")");
        }
        Op::Exact => cmp(qb, "=", &first),
        Op::Ne => {
            qb.push("(");
            cmp(qb, "IS DISTINCT FROM", &first);
            qb.push(")");
        }
        Op::Gt if c.whole_day => cmp(qb, ">=", &next_day(&first)),
        Op::Gt => cmp(qb, ">", &first),
        Op::Gte => cmp(qb, ">=", &first),
        Op::Lt => cmp(qb, "<", &first),
        Op::Lte if c.whole_day => cmp(qb, "<", &next_day(&first)),
        Op::Lte => cmp(qb, "<=", &first),
        Op::In | Op::Nin => {
            qb.push(if c.op == Op::In { "(FALSE" } else { "(TRUE" });
            for v in &c.values {
                qb.push(if c.op == Op::In { " OR " } else { " AND NOT " });
                qb.push("(");
                cmp(qb, "=", v);
                qb.push(")");
            }
            qb.push(")");
        }
        Op::Range => {
            let upper = c.values.get(1).cloned().unwrap_or(Value::Null);
            qb.push("(");
            cmp(qb, ">=", &first);
            qb.push(" AND ");
            if c.whole_day {
                cmp(qb, "<", &next_day(&upper));
            } else {
                cmp(qb, "<=", &upper);
            }
            qb.push(")");
        }
        Op::Contains | Op::StartsWith | Op::EndsWith => {
            let text = match &first {
                Value::Text(t) => escape_like(t),
                _ => String::new(),
            };
            let pattern = match c.op {
                Op::Contains => format!("%{text}%"),
                Op::StartsWith => format!("{text}%"),
                _ => format!("%{text}"),
            };
            qb.push(format!("{col} ILIKE "));
            qb.push_bind(pattern);
        }
        Op::IsNull => {
            let yes = first == Value::Bool(true);
            qb.push(format!("{col} IS {}NULL", if yes { "" } else { "NOT " }));
        }
    }
}

/// The DRF page: `{count, next, previous, results}`.
#[derive(Debug, Serialize)]
pub struct PageBody<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// The DRF page body; `base` is the request URL without its query, `query` its parameters.
pub fn page_body<T: Serialize>(
    base: &str,
    query: Option<&str>,
    count: i64,
    list: &ListQuery,
    results: Vec<T>,
) -> PageBody<T> {
    let link = |page: i64| {
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        pairs.push(("page".into(), page.to_string()));
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Some(format!("{base}?{q}"))
    };
    let (next, previous) = match list.page {
        Page::Number { size, .. } => {
            let page = list.window(count).map_or(1, |(_, _, p)| p);
            let last = ((count + size - 1) / size).max(1);
            (
                if page < last { link(page + 1) } else { None },
                if page > 1 { link(page - 1) } else { None },
            )
        }
        Page::Offset { .. } => (None, None),
    };
    PageBody {
        count,
        next,
        previous,
        results,
    }
}

/// GraphQL `filter`/`where`: a JSON object or JSON text, with `AND`/`OR`/`NOT`, operator
/// objects and `field_op`/`field__op` keys. Depth ≤ 5, ≤ 50 conditions.
pub fn parse_graphql_filter(spec: &ListSpec, input: &Json) -> Result<Filter, ApiError> {
    let parsed;
    let object = match input {
        Json::String(text) => {
            parsed = serde_json::from_str::<Json>(text)
                .map_err(|_| bad("filter", "Enter valid JSON."))?;
            &parsed
        }
        other => other,
    };
    let mut budget = 50;
    graphql_object(spec, object, 0, &mut budget)
}

fn graphql_object(
    spec: &ListSpec,
    value: &Json,
    depth: usize,
    budget: &mut i32,
) -> Result<Filter, ApiError> {
    if depth > 5 {
        return Err(bad("filter", "The filter is nested too deeply."));
    }
    let map: &Map<String, Json> = value
        .as_object()
        .ok_or_else(|| bad("filter", "Expected an object."))?;
    let mut all = Vec::new();
    for (key, value) in map {
        match key.as_str() {
            "AND" | "and" | "OR" | "or" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| bad(key, "Expected a list."))?;
                let parts = items
                    .iter()
                    .map(|item| graphql_object(spec, item, depth + 1, budget))
                    .collect::<Result<Vec<_>, _>>()?;
                all.push(if key.eq_ignore_ascii_case("and") {
                    Filter::All(parts)
                } else {
                    Filter::Any(parts)
                });
            }
            "NOT" | "not" => all.push(Filter::Not(Box::new(graphql_object(
                spec,
                value,
                depth + 1,
                budget,
            )?))),
            _ => {
                let (field, key_op) =
                    split_key(spec.filters, key).ok_or_else(|| bad(key, "Unknown filter."))?;
                match value {
                    Json::Object(ops) if key_op == Op::Exact => {
                        for (op_name, operand) in ops {
                            let op = Op::parse(op_name).ok_or_else(|| {
                                bad(key, format!("Unknown operator \"{op_name}\"."))
                            })?;
                            all.push(graphql_condition(field, op, operand, key, budget)?);
                        }
                    }
                    Json::Array(_) if key_op == Op::Exact => {
                        all.push(graphql_condition(field, Op::In, value, key, budget)?)
                    }
                    _ => all.push(graphql_condition(field, key_op, value, key, budget)?),
                }
            }
        }
    }
    Ok(Filter::All(all))
}

fn graphql_condition(
    field: &Field,
    op: Op,
    operand: &Json,
    key: &str,
    budget: &mut i32,
) -> Result<Filter, ApiError> {
    *budget -= 1;
    if *budget < 0 {
        return Err(bad("filter", "The filter has too many conditions."));
    }
    let text = |v: &Json| match v {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Null => Ok("null".to_owned()),
        _ => Err(bad(key, "Expected a scalar value.")),
    };
    let raws = match operand {
        Json::Array(items) => items.iter().map(text).collect::<Result<Vec<_>, _>>()?,
        other => vec![text(other)?],
    };
    // Lists are passed whole: commas inside a value must not split it.
    let cond = match op {
        Op::In | Op::Nin | Op::Range => {
            let mut values = Vec::new();
            let mut whole_day = false;
            for raw in &raws {
                let (v, d) = parse_value(field.kind, raw, key)?;
                whole_day |= d;
                values.push(v);
            }
            if op == Op::Range && values.len() != 2 {
                return Err(bad(key, "A range needs two values."));
            }
            Condition {
                column: field.column,
                kind: field.kind,
                op,
                values,
                whole_day,
            }
        }
        _ => condition(field, op, &raws[..raws.len().min(1)], key)?,
    };
    Ok(Filter::Cond(cond))
}

/// GraphQL ordering: `"created_at:DESC"`, `"-quantity"`, `"a,-b"`, `{firstName: ASC}`,
/// `{field, order}`, or a list of those.
pub fn parse_graphql_order(
    spec: &ListSpec,
    input: &Json,
) -> Result<Vec<(&'static str, bool)>, ApiError> {
    let mut out = Vec::new();
    let mut push = |name: &str, desc: bool| -> Result<(), ApiError> {
        let field = find(spec.ordering, name).ok_or_else(|| {
            bad(
                "orderBy",
                format!("\"{name}\" is not a valid ordering field."),
            )
        })?;
        out.push((field.column, desc));
        Ok(())
    };
    let direction = |d: &str| -> Result<bool, ApiError> {
        match d.to_ascii_lowercase().as_str() {
            "desc" => Ok(true),
            "asc" => Ok(false),
            other => Err(bad("orderBy", format!("\"{other}\" is not ASC or DESC."))),
        }
    };
    let items: Vec<&Json> = match input {
        Json::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match item {
            Json::String(s) => {
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part.split_once(':') {
                        Some((name, dir)) => push(name.trim(), direction(dir.trim())?)?,
                        None => match part.strip_prefix('-') {
                            Some(name) => push(name, true)?,
                            None => push(part, false)?,
                        },
                    }
                }
            }
            Json::Object(map) if map.contains_key("field") => {
                let name = map.get("field").and_then(Json::as_str).unwrap_or("");
                let dir = map.get("order").and_then(Json::as_str).unwrap_or("ASC");
                push(name, direction(dir)?)?;
            }
            Json::Object(map) => {
                for (name, dir) in map {
                    push(name, direction(dir.as_str().unwrap_or(""))?)?;
                }
            }
            _ => return Err(bad("orderBy", "Expected a string, an object or a list.")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static SPEC: ListSpec = ListSpec {
        filters: &[
            Field {
                name: "status",
                column: "status",
                kind: Kind::Text,
            },
            Field {
                name: "price",
                column: "price",
                kind: Kind::Decimal,
            },
            Field {
                name: "created_at",
                column: "created_at",
                kind: Kind::DateTime,
            },
            Field {
                name: "category__slug",
                column: "c.slug",
                kind: Kind::Text,
            },
            Field {
                name: "is_active",
                column: "is_active",
                kind: Kind::Bool,
            },
        ],
        ordering: &[
            Field {
                name: "created_at",
                column: "created_at",
                kind: Kind::DateTime,
            },
            Field {
                name: "price",
                column: "price",
                kind: Kind::Decimal,
            },
        ],
        search: &["name"],
        default_ordering: "-created_at",
        extra_params: &["min_price"],
    };

    fn sql(list: &ListQuery) -> String {
        let mut qb = QueryBuilder::new("SELECT * FROM t WHERE project_id = 1");
        list.push_where(&mut qb, SPEC.search);
        list.push_order(&mut qb);
        qb.into_sql()
    }

    #[test]
    fn rest_parameters_become_bound_sql() {
        let list = ListQuery::from_query(
            &SPEC,
            Some("page=2&page_size=1000&status__in=active,draft&price__gte=9.99&createdAt__lte=2024-01-15&search=red%20shoe&ordering=-price&category__slug=shoes"),
        )
        .expect("parses");
        assert_eq!(
            list.page,
            Page::Number {
                page: Some(2),
                size: 100
            },
            "page size clamped"
        );
        let sql = sql(&list);
        assert!(sql.contains("lower(status) = lower($1)"), "{sql}");
        assert!(sql.contains("price >= $3"), "{sql}");
        assert!(sql.contains("created_at < $4"), "whole-day bound: {sql}");
        assert!(sql.contains("lower(c.slug) = lower($5)"), "{sql}");
        assert!(
            sql.contains("name::text ILIKE $6") && sql.contains("name::text ILIKE $7"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY price DESC, id DESC"), "{sql}");
    }

    #[test]
    fn hostile_parameters_are_rejected() {
        for (query, param) in [
            ("nosuch=1", "nosuch"),
            ("status__regex=x", "status__regex"),
            ("price=1;DROP TABLE t", "price"),
            ("ordering=password", "ordering"),
            ("page_size=0", "page_size"),
            ("is_active=maybe", "is_active"),
            ("price__contains=1", "price__contains"),
        ] {
            let err = ListQuery::from_query(&SPEC, Some(query))
                .err()
                .map(|e| e.body());
            assert!(
                err.as_ref().is_some_and(|b| b.get(param).is_some()),
                "{query}: {err:?}"
            );
        }
        let err = ListQuery::from_query(&SPEC, Some("page=x"))
            .err()
            .map(|e| e.detail().to_owned());
        assert_eq!(err.as_deref(), Some("Invalid page."));
    }

    #[test]
    fn reserved_and_extra_parameters_pass() {
        let list =
            ListQuery::from_query(&SPEC, Some("format=json&_=1&min_price=5&limit=5&offset=10"))
                .expect("ok");
        assert_eq!(
            list.page,
            Page::Offset {
                limit: 5,
                offset: 10
            }
        );
        assert_eq!(list.extra, vec![("min_price".to_owned(), "5".to_owned())]);
    }

    #[test]
    fn pages_past_the_end_and_last() {
        let list = ListQuery::from_query(&SPEC, Some("page=last&page_size=10")).expect("ok");
        assert_eq!(list.window(35).ok(), Some((10, 30, 4)));
        let list = ListQuery::from_query(&SPEC, Some("page=5&page_size=10")).expect("ok");
        assert!(list.window(35).is_err());
        let body = page_body::<Json>(
            "http://x/api/v1/p/things/",
            Some("page_size=10&page=2"),
            35,
            &ListQuery::from_query(&SPEC, Some("page_size=10&page=2")).expect("ok"),
            vec![],
        );
        assert_eq!(
            body.next.as_deref(),
            Some("http://x/api/v1/p/things/?page_size=10&page=3")
        );
        assert_eq!(
            body.previous.as_deref(),
            Some("http://x/api/v1/p/things/?page_size=10&page=1")
        );
    }

    #[test]
    fn graphql_filters_and_orders() {
        let filter = parse_graphql_filter(
            &SPEC,
            &json!({"status": {"equals": "active"}, "OR": [{"price_gte": 100}, {"isActive": false}], "NOT": {"category__slug": ["a", "b"]}}),
        )
        .expect("filter");
        let list = ListQuery {
            page: Page::Offset {
                limit: 1,
                offset: 0,
            },
            filter,
            ordering: vec![],
            search: vec![],
            extra: vec![],
            explicit_ordering: false,
            computed: None,
            fields: None,
        };
        let sql = sql(&list);
        assert!(sql.contains("NOT (("), "{sql}");
        assert!(sql.contains(" OR "), "{sql}");
        assert!(parse_graphql_filter(&SPEC, &json!("{\"price__gte\": 100}")).is_ok());
        assert!(parse_graphql_filter(&SPEC, &json!({"nosuchfield": 1})).is_err());
        assert!(parse_graphql_filter(&SPEC, &json!({"status": {"regex": "x"}})).is_err());
        let deep = json!({"NOT": {"NOT": {"NOT": {"NOT": {"NOT": {"NOT": {"status": "a"}}}}}}});
        assert!(parse_graphql_filter(&SPEC, &deep).is_err());

        assert_eq!(
            parse_graphql_order(&SPEC, &json!("created_at:DESC")).ok(),
            Some(vec![("created_at", true)])
        );
        assert_eq!(
            parse_graphql_order(&SPEC, &json!("-createdAt,price")).ok(),
            Some(vec![("created_at", true), ("price", false)])
        );
        assert_eq!(
            parse_graphql_order(&SPEC, &json!({"createdAt": "ASC"})).ok(),
            Some(vec![("created_at", false)])
        );
        assert_eq!(
            parse_graphql_order(&SPEC, &json!([{"field": "price", "order": "desc"}])).ok(),
            Some(vec![("price", true)])
        );
        assert!(parse_graphql_order(&SPEC, &json!("password")).is_err());
    }
}
