//! GraphQL adapter of `kernel::resource` (conventions.md §7): a dynamic schema generated from
//! the resources — `thing(id)`, `things(filter, where, search, orderBy, pagination, limit,
//! offset, first, after, last, before, trashed)`, `_thingsMeta`, and `createThing`,
//! `updateThing`, `deleteThing`, `restoreThing` — over the same functions as REST.
//!
//! List fields answer both documented shapes: a request whose selection uses `edges`,
//! `pageInfo` or `totalCount` runs against the connection variant of the schema, any other
//! against the flat variant (`things { id name }` → an array). Outputs are camelCase with
//! snake_case twins; translated fields add `xEn/xAr/xFr` (and `x_en`…). Has-many relations
//! (a product's variants) are loaded for a whole page in one query.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Object, ResolverContext, Scalar,
    Schema, TypeRef,
};
use axum::http::HeaderMap;
use serde_json::Value;

use crate::auth::{resolve_read_scope, AuthState, ReadScope};
use crate::error::ApiError;
use crate::graphql::{to_graphql_error, window, Executor, PageInfo, RequestLanguage, WindowArgs};
use crate::lang::SUPPORTED;
use crate::list::{parse_graphql_filter, parse_graphql_order, snake_case, ListQuery, Page};
use crate::platform::Platform;
use crate::resource::{self, FieldKind, Resource};
use crate::service::ServiceContext;

/// A child list of a resource, loaded for all parents of a page at once.
pub struct HasMany {
    pub field: &'static str,
    pub target: &'static GraphqlResource,
    /// The child's column naming its parent.
    pub foreign_key: &'static str,
}

/// A related row (or rows) named by a key of the row: `category` (an id, or the `{id, name,
/// slug}` REST shows) or `tag_ids` (a list of ids). Loaded for a whole page at once.
pub struct BelongsTo {
    pub field: &'static str,
    pub key: &'static str,
    pub target: &'static GraphqlResource,
    /// The key holds a list of ids.
    pub many: bool,
    /// What of the related rows the row already shows, so that a selection asking for no
    /// more is answered without reading them again.
    pub shown: Shown,
}

/// What a row shows of the rows a [`BelongsTo`] names.
#[derive(Clone, Copy)]
pub enum Shown {
    /// Only their ids: the rows are read.
    Ids,
    /// The key holds the related row itself (a joined `{id, name, slug}`) with these fields.
    Object(&'static [&'static str]),
    /// The row holds, under this name, the related rows' `name`s in the order of the key's
    /// ids (a product's `tags` beside its `tag_ids`).
    Names(&'static str),
}

impl BelongsTo {
    pub const fn one(field: &'static str, target: &'static GraphqlResource) -> Self {
        Self {
            field,
            key: field,
            target,
            many: false,
            shown: Shown::Ids,
        }
    }

    pub const fn many(
        field: &'static str,
        key: &'static str,
        target: &'static GraphqlResource,
    ) -> Self {
        Self {
            field,
            key,
            target,
            many: true,
            shown: Shown::Ids,
        }
    }

    /// The same relation, of which the row shows `shown`.
    pub const fn showing(self, shown: Shown) -> Self {
        Self { shown, ..self }
    }

    /// Whether the row shows all that `looks` select of the related rows.
    fn shows(&self, looks: &[async_graphql::Lookahead<'_>]) -> bool {
        let fields: &[&str] = match self.shown {
            Shown::Ids => return false,
            Shown::Object(fields) => fields,
            Shown::Names(_) => &["id", "name"],
        };
        asked(looks)
            .iter()
            .all(|name| *name == "__typename" || fields.contains(name))
    }

    /// The related rows as the row shows them (`None`: it does not).
    fn shown_in(&self, row: &Value) -> Option<Value> {
        match (self.shown, &row[self.key]) {
            (Shown::Object(_), v @ (Value::Object(_) | Value::Null)) => Some(v.clone()),
            (Shown::Names(names), Value::Array(ids)) => {
                let names = row[names].as_array()?;
                (ids.len() == names.len()).then(|| {
                    Value::Array(
                        ids.iter()
                            .zip(names)
                            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
                            .collect(),
                    )
                })
            }
            _ => None,
        }
    }
}

/// How a resource appears in GraphQL.
pub struct GraphqlResource {
    pub resource: &'static Resource,
    /// `Product`.
    pub type_name: &'static str,
    /// `product` / `products`.
    pub single: &'static str,
    pub plural: &'static str,
    /// GraphQL names of REST fields (`name` → `title`); both are served.
    pub renames: &'static [(&'static str, &'static str)],
    pub has_many: &'static [HasMany],
    pub belongs_to: &'static [BelongsTo],
    /// Inputs that are not columns (a product's `tags`, `tag_ids`): (snake_case name, type).
    pub extra_inputs: &'static [(&'static str, InputKind)],
    /// Root queries and the generic mutations (`false`: the type is only reached through a
    /// relation, and written by the service's own mutations).
    pub roots: bool,
    /// Other `(single, plural)` root names of the same queries (documented aliases such as
    /// `inventoryItem`/`inventoryItems` for `inventory`/`inventories`).
    pub aliases: &'static [(&'static str, &'static str)],
}

impl GraphqlResource {
    fn is_relation(&self, name: &str) -> bool {
        self.has_many.iter().any(|h| h.field == name)
            || self.belongs_to.iter().any(|b| b.field == name)
    }
}

/// The type of an extra input.
#[derive(Clone, Copy, Debug)]
pub enum InputKind {
    Strings,
    Ids,
    Json,
    Id,
    Int,
    Text,
}

/// The ids a row key holds: an id, an `{id, …}` object, or a list of either.
fn ids_in(v: &Value) -> Vec<i64> {
    match v {
        Value::Number(n) => n.as_i64().into_iter().collect(),
        Value::Object(m) => m.get("id").and_then(Value::as_i64).into_iter().collect(),
        Value::Array(items) => items.iter().flat_map(ids_in).collect(),
        _ => Vec::new(),
    }
}

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn gql(e: ApiError) -> async_graphql::Error {
    to_graphql_error(&e)
}

/// One output field: GraphQL name, JSON key of the shaped row, type, and whether the value is a
/// reference (an `{id, …}` object in the row is answered with its id).
struct Output {
    name: String,
    key: String,
    ty: TypeRef,
    reference: bool,
    translated: bool,
}

/// Every scalar output field of a resource: camelCase and snake_case twins, `xId` for each
/// reference, translations; relation fields are typed elsewhere.
fn outputs(g: &GraphqlResource) -> Vec<Output> {
    let r = g.resource;
    let mut out: Vec<Output> = Vec::new();
    let mut push = |name: String, key: &str, ty: TypeRef, reference: bool, translated: bool| {
        for n in [camel(&name), name.clone()] {
            if !g.is_relation(&n) && !out.iter().any(|o| o.name == n) {
                out.push(Output {
                    name: n,
                    key: key.to_owned(),
                    ty: ty.clone(),
                    reference,
                    translated,
                });
            }
        }
    };
    push(
        "id".into(),
        "id",
        TypeRef::named_nn(TypeRef::ID),
        false,
        false,
    );
    push(
        "project_id".into(),
        "project_id",
        TypeRef::named(TypeRef::INT),
        false,
        false,
    );
    for k in ["created_at", "updated_at", "deleted_at"] {
        push(k.into(), k, TypeRef::named("DateTime"), false, false);
    }
    push(
        "created_by".into(),
        "created_by",
        TypeRef::named(TypeRef::INT),
        false,
        false,
    );
    if r.slug_from.is_some() {
        push(
            "slug".into(),
            "slug",
            TypeRef::named(TypeRef::STRING),
            false,
            false,
        );
    }
    for f in r.fields {
        let ty = scalar_type(f.kind);
        let reference = matches!(f.kind, FieldKind::Ref { .. });
        let mut names = vec![f.name.to_owned()];
        if let Some((_, gql_name)) = g.renames.iter().find(|(rest, _)| *rest == f.name) {
            names.insert(0, (*gql_name).to_owned());
        }
        if reference {
            names.push(format!("{}_id", f.name));
        }
        for name in names {
            push(name.clone(), f.name, ty.clone(), reference, f.translated);
            if f.translated {
                for l in SUPPORTED {
                    push(
                        format!("{name}_{l}"),
                        &format!("{}_{l}", f.name),
                        ty.clone(),
                        false,
                        false,
                    );
                }
            }
        }
    }
    for name in r.derived() {
        // A renamed computed value is served under both names, like a renamed field.
        let renamed = g.renames.iter().find(|(rest, _)| *rest == name);
        for shown in renamed.map(|(_, n)| *n).into_iter().chain([name]) {
            push(shown.to_owned(), name, TypeRef::named("JSON"), false, false);
        }
    }
    out
}

fn scalar_type(kind: FieldKind) -> TypeRef {
    match kind {
        FieldKind::Int { .. } | FieldKind::Ref { .. } => TypeRef::named(TypeRef::INT),
        FieldKind::Number { .. } => TypeRef::named(TypeRef::FLOAT),
        FieldKind::Bool => TypeRef::named(TypeRef::BOOLEAN),
        FieldKind::Json { .. } => TypeRef::named("JSON"),
        FieldKind::DateTime => TypeRef::named("DateTime"),
        FieldKind::Decimal { .. } => TypeRef::named("Decimal"),
        _ => TypeRef::named(TypeRef::STRING),
    }
}

/// `<Type>Input`: every writable field (REST and GraphQL spellings, aliases, translations, in
/// camelCase and snake_case), all optional — create's required fields are checked by the
/// resource like REST's, as `VALIDATION_ERROR`.
fn input_object(g: &GraphqlResource) -> InputObject {
    let r = g.resource;
    let mut names: Vec<(String, TypeRef)> = Vec::new();
    let mut push = |name: &str, ty: TypeRef| {
        for n in [camel(name), name.to_owned()] {
            if !names.iter().any(|(existing, _)| *existing == n) {
                names.push((n, ty.clone()));
            }
        }
    };
    for f in r.fields.iter().filter(|f| !f.read_only) {
        let ty = match f.kind {
            FieldKind::Ref { .. } => TypeRef::named(TypeRef::ID),
            kind => scalar_type(kind),
        };
        let mut spellings = vec![f.name];
        spellings.extend(
            g.renames
                .iter()
                .filter(|(rest, _)| *rest == f.name)
                .map(|(_, n)| *n),
        );
        spellings.extend_from_slice(f.aliases);
        for name in spellings {
            push(name, ty.clone());
            if f.translated {
                for l in SUPPORTED {
                    push(&format!("{name}_{l}"), ty.clone());
                }
            }
        }
        if matches!(f.kind, FieldKind::Ref { .. }) {
            push(&format!("{}_id", f.name), ty.clone());
        }
    }
    if r.slug_from.is_some() {
        push("slug", TypeRef::named(TypeRef::STRING));
    }
    for (name, kind) in g.extra_inputs {
        let ty = match kind {
            InputKind::Strings => TypeRef::named_nn_list(TypeRef::STRING),
            InputKind::Ids => TypeRef::named_nn_list(TypeRef::ID),
            InputKind::Json => TypeRef::named("JSON"),
            InputKind::Id => TypeRef::named(TypeRef::ID),
            InputKind::Int => TypeRef::named(TypeRef::INT),
            InputKind::Text => TypeRef::named(TypeRef::STRING),
        };
        push(name, ty);
    }
    names.into_iter().fold(
        InputObject::new(format!("{}Input", g.type_name)),
        |o, (n, ty)| o.field(InputValue::new(n, ty)),
    )
}

/// `CreateProductInput` and `UpdateProductInput` (older clients' variable types) are the one
/// `ProductInput`: the document is read with those names replaced.
fn input_aliases(query: &str, types: &[&str]) -> Option<String> {
    if !query.contains("Input") {
        return None;
    }
    let mut out = query.to_owned();
    let mut changed = false;
    for t in types {
        for prefix in ["Create", "Update"] {
            let alias = format!("{prefix}{t}Input");
            let mut from = 0;
            while let Some(at) = out[from..].find(&alias).map(|i| i + from) {
                let end = at + alias.len();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if word(out[..at].chars().next_back()) || word(out[end..].chars().next()) {
                    from = end;
                    continue;
                }
                out.replace_range(at..end, &format!("{t}Input"));
                changed = true;
                from = at;
            }
        }
    }
    changed.then_some(out)
}

/// A root field's error nulls only that field (conventions §7): recorded with its path.
fn soft<'a>(
    ctx: &ResolverContext<'_>,
    out: async_graphql::Result<Option<FieldValue<'a>>>,
) -> Option<FieldValue<'a>> {
    match out {
        Ok(v) => v,
        Err(e) => {
            ctx.add_error(ctx.set_error_path(e.into_server_error(ctx.item.pos)));
            None
        }
    }
}

fn json_value(v: Value) -> async_graphql::Result<Option<FieldValue<'static>>> {
    if v.is_null() {
        return Ok(None);
    }
    Ok(Some(FieldValue::value(async_graphql::Value::from_json(v)?)))
}

/// The object type of a resource, with its relations.
fn object(g: &'static GraphqlResource, name: &str) -> Object {
    let mut obj = Object::new(name);
    for o in outputs(g) {
        let is_id = o.name == "id";
        let (reference, translated) = (o.reference, o.translated);
        let key: Arc<str> = o.key.into();
        let mut field = Field::new(o.name, o.ty, move |ctx| {
            let key = key.clone();
            FieldFuture::new(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                // `title(language: "ar")`: that translation, else the row's own choice.
                let asked = match ctx.args.get("language") {
                    Some(l) if translated => Some(l.string()?.to_owned()),
                    _ => None,
                };
                if let Some(l) = asked.filter(|l| SUPPORTED.contains(&l.as_str())) {
                    let text = parent.get(format!("{key}_{l}")).cloned();
                    if text
                        .as_ref()
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.is_empty())
                    {
                        return json_value(text.unwrap_or(Value::Null));
                    }
                }
                let v = parent.get(&*key).cloned().unwrap_or(Value::Null);
                match (is_id, reference, v) {
                    (true, _, Value::Number(n)) => json_value(Value::String(n.to_string())),
                    (_, true, Value::Object(m)) => {
                        json_value(m.get("id").cloned().unwrap_or(Value::Null))
                    }
                    (_, _, v) => json_value(v),
                }
            })
        });
        if translated {
            field = field.argument(InputValue::new("language", TypeRef::named(TypeRef::STRING)));
        }
        obj = obj.field(field);
    }
    for rel in g.has_many {
        let child_type = rel.target.type_name;
        obj = obj.field(Field::new(
            rel.field,
            TypeRef::named_nn_list_nn(child_type),
            move |ctx| {
                FieldFuture::new(async move {
                    let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                    if let Some(Value::Array(rows)) = parent.get(format!("__{}", rel.field)) {
                        // Read with the page: answered from the parent, not copied.
                        return Ok(Some(FieldValue::list(
                            rows.iter().map(|r| FieldValue::borrowed_any(r)),
                        )));
                    }
                    // Not prefetched (a single object): one query for it.
                    let id = parent["id"].as_i64().unwrap_or_default();
                    let (svc, scope, lang) = request(&ctx).await?;
                    let mut map = children(&svc, rel, &scope, &[id], lang, None)
                        .await
                        .map_err(gql)?;
                    let rows = map.remove(&id).unwrap_or_default();
                    Ok(Some(FieldValue::list(
                        rows.into_iter().map(FieldValue::owned_any),
                    )))
                })
            },
        ));
    }
    for rel in g.belongs_to {
        let ty = if rel.many {
            TypeRef::named_nn_list_nn(rel.target.type_name)
        } else {
            TypeRef::named(rel.target.type_name)
        };
        let prefetched: Arc<str> = format!("__{}", rel.field).into();
        obj = obj.field(Field::new(rel.field, ty, move |ctx| {
            let prefetched = prefetched.clone();
            FieldFuture::new(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                // Read with the page: answered from the parent, not copied.
                if let Some(found) = parent.get(&*prefetched) {
                    return Ok(match found {
                        Value::Array(rows) => Some(FieldValue::list(
                            rows.iter().map(|r| FieldValue::borrowed_any(r)),
                        )),
                        Value::Null => None,
                        row => Some(FieldValue::borrowed_any(row)),
                    });
                }
                let shown = rel
                    .shows(&[ctx.look_ahead()])
                    .then(|| rel.shown_in(parent))
                    .flatten();
                let found = match shown {
                    Some(v) => v,
                    None => {
                        // Not prefetched (a single object): one query for it.
                        let (svc, scope, lang) = request(&ctx).await?;
                        let mut row = parent.clone();
                        attach_related(
                            &svc,
                            rel,
                            &scope,
                            std::slice::from_mut(&mut row),
                            lang,
                            None,
                        )
                        .await
                        .map_err(gql)?;
                        row[&*prefetched].take()
                    }
                };
                Ok(match found {
                    Value::Array(rows) => Some(FieldValue::list(
                        rows.into_iter().map(FieldValue::owned_any),
                    )),
                    Value::Null => None,
                    row => Some(FieldValue::owned_any(row)),
                })
            })
        }));
    }
    obj
}

/// The computed values of `g` that `looks` select (directly, or as the key of a selected
/// relation, like a product's `tag_ids`): the others are not computed at all.
fn wanted(g: &GraphqlResource, looks: &[async_graphql::Lookahead<'_>]) -> Vec<String> {
    let selected = |name: &str| {
        looks
            .iter()
            .any(|l| l.field(name).exists() || l.field(&camel(name)).exists())
    };
    g.resource
        .derived()
        .filter(|name| {
            (!g.is_relation(name) && selected(name))
                || g.belongs_to.iter().any(|b| {
                    let shows = matches!(b.shown, Shown::Names(n) if n == *name);
                    (b.key == *name || shows) && selected(b.field)
                })
        })
        .map(str::to_owned)
        .collect()
}

/// The fields of `g` that `looks` select (under any of their names, or as the key of a
/// selected relation): the others are not read.
fn read_fields(
    g: &GraphqlResource,
    outputs: &[Output],
    looks: &[async_graphql::Lookahead<'_>],
) -> Vec<String> {
    let asked = asked(looks);
    let keys: Vec<&str> = outputs
        .iter()
        .filter(|o| asked.contains(&o.name.as_str()))
        .map(|o| o.key.as_str())
        .chain(
            g.belongs_to
                .iter()
                .filter(|b| asked.contains(&b.field))
                .map(|b| b.key),
        )
        .collect();
    g.resource
        .fields
        .iter()
        .filter(|f| {
            let columns = resource::columns_of(f);
            keys.iter()
                .any(|k| *k == f.name || columns.iter().any(|c| c == k))
        })
        .map(|f| f.name.to_owned())
        .collect()
}

/// The names of the fields `looks` select, one level down (fragments included).
fn asked<'a>(looks: &[async_graphql::Lookahead<'a>]) -> Vec<&'a str> {
    looks
        .iter()
        .flat_map(|l| l.selection_fields())
        .flat_map(|f| f.selection_set().map(|s| s.name()).collect::<Vec<_>>())
        .collect()
}

/// Loads the selected relations of `rows` (and theirs, recursively): one query per relation
/// and level, whatever the number of rows. `looks` are the selections the rows answer.
fn prefetch<'a>(
    svc: &'a ServiceContext,
    g: &'static GraphqlResource,
    scope: &'a ReadScope,
    rows: &'a mut [Value],
    looks: &'a [async_graphql::Lookahead<'a>],
    lang: &'a str,
) -> futures::future::BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        if rows.is_empty() {
            return Ok(());
        }
        let below = |field: &str| -> Vec<async_graphql::Lookahead<'a>> {
            looks
                .iter()
                .map(|l| l.field(field))
                .filter(|l| l.exists())
                .collect()
        };
        for rel in g.belongs_to {
            let sub = below(rel.field);
            if sub.is_empty() {
                continue;
            }
            let shown: Option<Vec<Value>> = if rel.shows(&sub) {
                rows.iter().map(|r| rel.shown_in(r)).collect()
            } else {
                None
            };
            let key = format!("__{}", rel.field);
            if let Some(shown) = shown {
                for (row, related) in rows.iter_mut().zip(shown) {
                    row[&key] = related;
                }
                continue;
            }
            attach_related(svc, rel, scope, rows, lang, Some(wanted(rel.target, &sub))).await?;
            // The related rows once each, their own relations loaded, then put back.
            let mut related: Vec<Value> = Vec::new();
            for row in rows.iter() {
                for r in match &row[&key] {
                    Value::Array(items) => items.clone(),
                    Value::Null => Vec::new(),
                    one => vec![one.clone()],
                } {
                    if !related.iter().any(|x| x["id"] == r["id"]) {
                        related.push(r);
                    }
                }
            }
            prefetch(svc, rel.target, scope, &mut related, &sub, lang).await?;
            let by_id: HashMap<String, Value> = related
                .into_iter()
                .map(|r| (r["id"].to_string(), r))
                .collect();
            let fresh = |v: &Value| {
                by_id
                    .get(&v["id"].to_string())
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            for row in rows.iter_mut() {
                row[&key] = match &row[&key] {
                    Value::Array(items) => Value::Array(items.iter().map(fresh).collect()),
                    Value::Null => Value::Null,
                    one => fresh(one),
                };
            }
        }
        for rel in g.has_many {
            let sub = below(rel.field);
            if sub.is_empty() {
                continue;
            }
            let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
            let map = children(svc, rel, scope, &ids, lang, Some(wanted(rel.target, &sub))).await?;
            let mut all: Vec<(i64, Value)> = map
                .into_iter()
                .flat_map(|(parent, kids)| kids.into_iter().map(move |k| (parent, k)))
                .collect();
            // Children keep their order within each parent.
            let mut kids: Vec<Value> = all.iter().map(|(_, k)| k.clone()).collect();
            prefetch(svc, rel.target, scope, &mut kids, &sub, lang).await?;
            for ((_, slot), kid) in all.iter_mut().zip(kids) {
                *slot = kid;
            }
            let key = format!("__{}", rel.field);
            for row in rows.iter_mut() {
                let id = row["id"].as_i64().unwrap_or_default();
                row[&key] = Value::Array(
                    all.iter()
                        .filter(|(parent, _)| *parent == id)
                        .map(|(_, k)| k.clone())
                        .collect(),
                );
            }
        }
        Ok(())
    })
}

/// Sets `__{field}` on each row to its related row(s), read in one query for all rows. Rows
/// the caller may not see (another project's, not public, a resource closed to them) are
/// absent: `null`, or left out of a list.
async fn attach_related(
    svc: &ServiceContext,
    rel: &BelongsTo,
    scope: &ReadScope,
    rows: &mut [Value],
    lang: &str,
    computed: Option<Vec<String>>,
) -> Result<(), ApiError> {
    let mut ids: Vec<i64> = rows.iter().flat_map(|r| ids_in(&r[rel.key])).collect();
    ids.sort_unstable();
    ids.dedup();
    let target = rel.target.resource;
    let found: HashMap<i64, Value> = if ids.is_empty() {
        HashMap::new()
    } else {
        let mut query = ListQuery::from_query(&target.list, None)?;
        query.computed = computed;
        match resource::rows_of(svc, target, scope, "id", &ids, &query, lang).await {
            Ok(found) => found.into_iter().collect(),
            Err(e) if e.status() == axum::http::StatusCode::FORBIDDEN => HashMap::new(),
            Err(e) => return Err(e),
        }
    };
    for row in rows.iter_mut() {
        let mine = ids_in(&row[rel.key]);
        row[format!("__{}", rel.field)] = if rel.many {
            Value::Array(
                mine.iter()
                    .filter_map(|id| found.get(id).cloned())
                    .collect(),
            )
        } else {
            mine.first()
                .and_then(|id| found.get(id).cloned())
                .unwrap_or(Value::Null)
        };
    }
    Ok(())
}

/// The child rows of `ids`, grouped by parent, in one query.
async fn children(
    svc: &ServiceContext,
    rel: &HasMany,
    scope: &ReadScope,
    ids: &[i64],
    lang: &str,
    computed: Option<Vec<String>>,
) -> Result<HashMap<i64, Vec<Value>>, ApiError> {
    let r = rel.target.resource;
    let mut query = ListQuery::from_query(&r.list, None)?;
    query.computed = computed;
    query.page = Page::Offset {
        limit: i64::MAX,
        offset: 0,
    };
    let rows = resource::rows_of(svc, r, scope, rel.foreign_key, ids, &query, lang).await?;
    let mut map: HashMap<i64, Vec<Value>> = HashMap::new();
    for (parent, row) in rows {
        map.entry(parent).or_default().push(row);
    }
    Ok(map)
}

/// The service, the caller's read scope and the language of a GraphQL request.
async fn request(
    ctx: &ResolverContext<'_>,
) -> async_graphql::Result<(ServiceContext, ReadScope, &'static str)> {
    let svc = ctx.data::<ServiceContext>()?.clone();
    let platform = ctx.data::<Platform>()?;
    let headers = ctx.data_opt::<HeaderMap>().cloned().unwrap_or_default();
    let principal = crate::graphql::maybe_principal(ctx)?;
    let scope = resolve_read_scope(platform, principal.as_ref(), &headers)
        .await
        .map_err(gql)?;
    let lang = match ctx.args.get("language") {
        Some(asked) if !asked.is_null() => {
            let asked = asked.string()?;
            SUPPORTED
                .iter()
                .copied()
                .find(|l| *l == asked)
                .ok_or_else(|| {
                    gql(ApiError::field(
                        "language",
                        format!("Use one of: {}.", SUPPORTED.join(", ")),
                    ))
                })?
        }
        _ => ctx.data_opt::<RequestLanguage>().map_or("en", |l| l.0),
    };
    Ok((svc, scope, lang))
}

async fn member(
    ctx: &ResolverContext<'_>,
) -> async_graphql::Result<(ServiceContext, crate::auth::ProjectScope, &'static str)> {
    if !matches!(
        ctx.data_opt::<AuthState>(),
        Some(AuthState::Authenticated(_))
    ) {
        return Err(gql(ApiError::not_authenticated()));
    }
    let (svc, scope, lang) = request(ctx).await?;
    match scope {
        ReadScope::Member(s) => Ok((svc, s, lang)),
        ReadScope::Public { .. } => Err(gql(match ctx.data_opt::<AuthState>() {
            Some(AuthState::Authenticated(_)) => ApiError::not_project_member(),
            _ => ApiError::not_authenticated(),
        })),
    }
}

fn json_arg(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<Value>> {
    match ctx.args.get(name) {
        Some(v) if !v.is_null() => Ok(Some(v.deserialize::<Value>()?)),
        _ => Ok(None),
    }
}

fn int_arg(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<i64>> {
    match ctx.args.get(name) {
        Some(v) if !v.is_null() => Ok(Some(v.i64()?)),
        _ => Ok(None),
    }
}

fn id_arg(ctx: &ResolverContext<'_>) -> async_graphql::Result<i64> {
    let raw = ctx
        .args
        .get("id")
        .filter(|v| !v.is_null())
        .ok_or_else(|| gql(ApiError::field("id", "This field is required.")))?;
    raw.string()
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| raw.i64().ok())
        .ok_or_else(|| gql(ApiError::field("id", "A valid id is required.")))
}

/// The list arguments of §7.1 → a list query and its window.
fn list_args(
    ctx: &ResolverContext<'_>,
    r: &Resource,
) -> async_graphql::Result<(ListQuery, crate::graphql::Window)> {
    let mut query = ListQuery::from_query(&r.list, None).map_err(gql)?;
    if let Some(filter) = json_arg(ctx, "filter")?.or(json_arg(ctx, "where")?) {
        query.filter = parse_graphql_filter(&r.list, &filter).map_err(gql)?;
    }
    if let Some(order) = json_arg(ctx, "orderBy")? {
        query.ordering = parse_graphql_order(&r.list, &order).map_err(gql)?;
        query.explicit_ordering = true;
    }
    if let Some(search) = ctx
        .args
        .get("search")
        .and_then(|s| s.string().ok().map(str::to_owned))
    {
        query.search = search.split_whitespace().map(str::to_owned).collect();
    }
    let pagination = json_arg(ctx, "pagination")?.unwrap_or(Value::Null);
    let args = WindowArgs {
        pagination_offset: pagination["offset"].as_i64(),
        pagination_limit: pagination["limit"].as_i64(),
        limit: int_arg(ctx, "limit")?,
        offset: int_arg(ctx, "offset")?,
        first: int_arg(ctx, "first")?,
        after: ctx
            .args
            .get("after")
            .and_then(|s| s.string().ok().map(str::to_owned)),
        last: int_arg(ctx, "last")?,
        before: ctx
            .args
            .get("before")
            .and_then(|s| s.string().ok().map(str::to_owned)),
    };
    let w = window(&args, 20, |_| None).map_err(gql)?;
    query.page = Page::Offset {
        limit: w.limit,
        offset: w.offset,
    };
    Ok((query, w))
}

fn list_field(g: &'static GraphqlResource, connection: bool, name: &'static str) -> Field {
    let outputs: Arc<Vec<Output>> = Arc::new(outputs(g));
    let ty = if connection {
        TypeRef::named(format!("{}Connection", g.type_name))
    } else {
        TypeRef::named_nn_list(g.type_name)
    };
    let field = Field::new(name, ty, move |ctx| {
        let outputs = outputs.clone();
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let (svc, scope, lang) = request(&ctx).await?;
                let (mut query, w) = list_args(&ctx, g.resource)?;
                let looks = vec![
                    ctx.look_ahead(),
                    ctx.look_ahead().field("edges"),
                    ctx.look_ahead().field("edges").field("node"),
                ];
                query.computed = Some(wanted(g, &looks));
                query.fields = Some(read_fields(g, &outputs, &looks));
                let trashed = ctx
                    .args
                    .get("trashed")
                    .and_then(|t| t.boolean().ok())
                    .unwrap_or(false);
                let (total, rows) = resource::list(&svc, g.resource, &scope, &query, lang, trashed)
                    .await
                    .map_err(gql)?;
                let mut rows: Vec<Value> =
                    rows.into_iter().map(resource::Row::into_value).collect();
                // Relations of the page, at every depth, in one query each when selected.
                prefetch(&svc, g, &scope, &mut rows, &looks, lang)
                    .await
                    .map_err(gql)?;
                if connection {
                    for (i, row) in rows.iter_mut().enumerate() {
                        row["__cursor"] =
                            Value::String(crate::graphql::encode_cursor(w.offset + i as i64));
                    }
                    Ok(Some(FieldValue::owned_any(Page2 {
                        rows,
                        window: w,
                        total,
                    })))
                } else {
                    Ok(Some(FieldValue::list(
                        rows.into_iter().map(FieldValue::owned_any),
                    )))
                }
            }
            .await;
            Ok(soft(&ctx, out))
        })
    });
    let field = field
        .argument(InputValue::new("filter", TypeRef::named("JSON")))
        .argument(InputValue::new("where", TypeRef::named("JSON")))
        .argument(InputValue::new("search", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("orderBy", TypeRef::named("JSON")))
        .argument(InputValue::new("pagination", TypeRef::named("JSON")))
        .argument(InputValue::new("trashed", TypeRef::named(TypeRef::BOOLEAN)))
        .argument(InputValue::new("language", TypeRef::named(TypeRef::STRING)));
    ["limit", "offset", "first", "last"]
        .into_iter()
        .fold(field, |f, a| {
            f.argument(InputValue::new(a, TypeRef::named(TypeRef::INT)))
        })
        .argument(InputValue::new("after", TypeRef::named(TypeRef::STRING)))
        .argument(InputValue::new("before", TypeRef::named(TypeRef::STRING)))
}

/// One page for the connection types.
struct Page2 {
    rows: Vec<Value>,
    window: crate::graphql::Window,
    total: i64,
}

fn connection_types(g: &'static GraphqlResource) -> (Object, Object) {
    let edge_name = format!("{}Edge", g.type_name);
    let mut edge = object(g, &edge_name);
    edge = edge
        .field(Field::new("node", TypeRef::named_nn(g.type_name), |ctx| {
            FieldFuture::new(async move {
                let row = ctx.parent_value.try_downcast_ref::<Value>()?;
                Ok(Some(FieldValue::owned_any(row.clone())))
            })
        }))
        .field(Field::new(
            "cursor",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| {
                FieldFuture::new(async move {
                    let row = ctx.parent_value.try_downcast_ref::<Value>()?;
                    json_value(row.get("__cursor").cloned().unwrap_or(Value::Null))
                })
            },
        ));
    let conn = Object::new(format!("{}Connection", g.type_name))
        .field(Field::new(
            "edges",
            TypeRef::named_nn_list_nn(edge_name),
            |ctx| {
                FieldFuture::new(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Page2>()?;
                    // The rows carry their cursors (set when the page was read).
                    let edges = page.rows.iter().map(|r| FieldValue::borrowed_any(r));
                    Ok(Some(FieldValue::list(edges)))
                })
            },
        ))
        .field(Field::new(
            "pageInfo",
            TypeRef::named_nn("PageInfo"),
            |ctx| {
                FieldFuture::new(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Page2>()?;
                    let info = PageInfo::of(page.window, page.rows.len() as i64, page.total);
                    Ok(Some(FieldValue::owned_any(info)))
                })
            },
        ))
        .field(Field::new(
            "totalCount",
            TypeRef::named_nn(TypeRef::INT),
            |ctx| {
                FieldFuture::new(async move {
                    let page = ctx.parent_value.try_downcast_ref::<Page2>()?;
                    Ok(Some(FieldValue::value(page.total)))
                })
            },
        ));
    (edge, conn)
}

fn page_info_type() -> Object {
    let field = |name: &'static str, ty: TypeRef, get: fn(&PageInfo) -> async_graphql::Value| {
        Field::new(name, ty, move |ctx| {
            FieldFuture::new(async move {
                let info = ctx.parent_value.try_downcast_ref::<PageInfo>()?;
                let v = get(info);
                Ok(if v == async_graphql::Value::Null {
                    None
                } else {
                    Some(FieldValue::value(v))
                })
            })
        })
    };
    Object::new("PageInfo")
        .field(field(
            "hasNextPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |i| i.has_next_page.into(),
        ))
        .field(field(
            "hasPreviousPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |i| i.has_previous_page.into(),
        ))
        .field(field("startCursor", TypeRef::named(TypeRef::STRING), |i| {
            i.start_cursor.clone().into()
        }))
        .field(field("endCursor", TypeRef::named(TypeRef::STRING), |i| {
            i.end_cursor.clone().into()
        }))
        .field(field("totalCount", TypeRef::named_nn(TypeRef::INT), |i| {
            i.total_count.into()
        }))
}

/// camelCase input → the snake_case body the resource reads.
fn input_body(ctx: &ResolverContext<'_>) -> async_graphql::Result<Value> {
    let input = json_arg(ctx, "input")?.unwrap_or(Value::Null);
    let Value::Object(map) = input else {
        return Err(gql(ApiError::field("input", "Give an input object.")));
    };
    Ok(Value::Object(
        map.into_iter().map(|(k, v)| (snake_case(&k), v)).collect(),
    ))
}

/// Service-specific fields beside the generic ones: given the `Query` and `Mutation` objects,
/// returns them with the new fields (a field of a generic name replaces the generic one) and
/// the types they need.
pub type Extend = fn(Object, Object) -> (Object, Object, Vec<async_graphql::dynamic::Type>);

fn build(
    resources: &'static [&'static GraphqlResource],
    svc: ServiceContext,
    connection: bool,
    extend: Option<Extend>,
    replaced: &[&str],
) -> anyhow::Result<Schema> {
    let mut query = Object::new("Query");
    let mut mutation = Object::new("Mutation");
    let mut schema = Schema::build("Query", Some("Mutation"), None)
        .register(Scalar::new("JSON"))
        .register(Scalar::new("DateTime"))
        .register(Scalar::new("Decimal"))
        .register(page_info_type())
        .register(Object::new("ListMeta").field(Field::new(
            "count",
            TypeRef::named_nn(TypeRef::INT),
            |ctx| {
                FieldFuture::new(async move {
                    let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                        Ok(Some(FieldValue::value(
                            *ctx.parent_value.try_downcast_ref::<i64>()?,
                        )))
                    }
                    .await;
                    Ok(soft(&ctx, out))
                })
            },
        )));
    for &g in resources {
        schema = schema.register(object(g, g.type_name));
        let (edge, conn) = connection_types(g);
        schema = schema.register(edge).register(conn);
        if !g.roots {
            continue;
        }
        schema = schema.register(input_object(g));
        let input_type = format!("{}Input", g.type_name);
        for &(single, plural) in std::iter::once(&(g.single, g.plural)).chain(g.aliases) {
            query = query.field(list_field(g, connection, plural));
            query = query.field(
                Field::new(single, TypeRef::named(g.type_name), move |ctx| {
                    FieldFuture::new(async move {
                        let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                            let (svc, scope, lang) = request(&ctx).await?;
                            let slug = ctx.args.get("slug").filter(|s| !s.is_null());
                            let row = match (slug, ctx.args.get("id").filter(|i| !i.is_null())) {
                                (Some(slug), None) => {
                                    resource::retrieve_by_slug(
                                        &svc,
                                        g.resource,
                                        &scope,
                                        slug.string()?,
                                        lang,
                                    )
                                    .await
                                }
                                _ => {
                                    resource::retrieve(
                                        &svc,
                                        g.resource,
                                        &scope,
                                        id_arg(&ctx)?,
                                        lang,
                                    )
                                    .await
                                }
                            }
                            .map_err(gql)?;
                            let mut row = row;
                            prefetch(
                                &svc,
                                g,
                                &scope,
                                std::slice::from_mut(&mut row),
                                &[ctx.look_ahead()],
                                lang,
                            )
                            .await
                            .map_err(gql)?;
                            Ok(Some(FieldValue::owned_any(row)))
                        }
                        .await;
                        Ok(soft(&ctx, out))
                    })
                })
                .argument(InputValue::new("id", TypeRef::named(TypeRef::ID)))
                .argument(InputValue::new("slug", TypeRef::named(TypeRef::STRING)))
                .argument(InputValue::new("language", TypeRef::named(TypeRef::STRING))),
            );
            query = query.field(
                Field::new(
                    format!("_{plural}Meta"),
                    TypeRef::named("ListMeta"),
                    move |ctx| {
                        FieldFuture::new(async move {
                            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                                let (svc, scope, lang) = request(&ctx).await?;
                                let (mut q, _) = list_args(&ctx, g.resource)?;
                                q.page = Page::Offset {
                                    limit: 1,
                                    offset: 0,
                                };
                                let (total, _) =
                                    resource::list(&svc, g.resource, &scope, &q, lang, false)
                                        .await
                                        .map_err(gql)?;
                                Ok(Some(FieldValue::owned_any(total)))
                            }
                            .await;
                            Ok(soft(&ctx, out))
                        })
                    },
                )
                .argument(InputValue::new("filter", TypeRef::named("JSON")))
                .argument(InputValue::new("where", TypeRef::named("JSON")))
                .argument(InputValue::new("search", TypeRef::named(TypeRef::STRING))),
            );
        }
        let t = g.type_name;
        let create = format!("create{t}");
        if !replaced.contains(&create.as_str()) {
            mutation = mutation.field(
                Field::new(create, TypeRef::named(t), move |ctx| {
                    FieldFuture::new(async move {
                        let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                            let (svc, scope, lang) = member(&ctx).await?;
                            let row = resource::create(
                                &svc,
                                g.resource,
                                &scope,
                                &input_body(&ctx)?,
                                lang,
                            )
                            .await
                            .map_err(gql)?;
                            Ok(Some(FieldValue::owned_any(row)))
                        }
                        .await;
                        Ok(soft(&ctx, out))
                    })
                })
                .argument(InputValue::new(
                    "input",
                    TypeRef::named_nn(input_type.clone()),
                )),
            );
        }
        mutation = mutation
            .field(
                Field::new(format!("update{t}"), TypeRef::named(t), move |ctx| {
                    FieldFuture::new(async move {
                        let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                            let (svc, scope, lang) = member(&ctx).await?;
                            let row = resource::update(
                                &svc,
                                g.resource,
                                &scope,
                                id_arg(&ctx)?,
                                &input_body(&ctx)?,
                                true,
                                lang,
                            )
                            .await
                            .map_err(gql)?;
                            Ok(Some(FieldValue::owned_any(row)))
                        }
                        .await;
                        Ok(soft(&ctx, out))
                    })
                })
                .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID)))
                .argument(InputValue::new("input", TypeRef::named_nn(input_type))),
            )
            .field(
                Field::new(
                    format!("delete{t}"),
                    TypeRef::named(TypeRef::BOOLEAN),
                    move |ctx| {
                        FieldFuture::new(async move {
                            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                                let (svc, scope, _) = member(&ctx).await?;
                                resource::delete(&svc, g.resource, &scope, id_arg(&ctx)?)
                                    .await
                                    .map_err(gql)?;
                                Ok(Some(FieldValue::value(true)))
                            }
                            .await;
                            Ok(soft(&ctx, out))
                        })
                    },
                )
                .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID))),
            )
            .field(
                Field::new(format!("restore{t}"), TypeRef::named(t), move |ctx| {
                    FieldFuture::new(async move {
                        let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                            let (svc, scope, lang) = member(&ctx).await?;
                            let row =
                                resource::restore(&svc, g.resource, &scope, id_arg(&ctx)?, lang)
                                    .await
                                    .map_err(gql)?;
                            Ok(Some(FieldValue::owned_any(row)))
                        }
                        .await;
                        Ok(soft(&ctx, out))
                    })
                })
                .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID))),
            );
    }
    if let Some(extend) = extend {
        let (queries, mutations, types) = extend(query, mutation);
        query = queries;
        mutation = mutations;
        for t in types {
            schema = schema.register(t);
        }
    }
    Ok(schema
        .register(field_error_type())
        .register(query)
        .register(mutation)
        .data(svc)
        .limit_depth(15)
        .limit_complexity(10_000)
        .finish()?)
}

/// Both shapes of the schema; each request runs against the one its selection asks for.
#[derive(Clone)]
pub struct ResourceSchema {
    flat: Arc<Schema>,
    connection: Arc<Schema>,
    types: Arc<Vec<&'static str>>,
    svc: ServiceContext,
    service: &'static str,
}

impl ResourceSchema {
    pub fn new(
        resources: &'static [&'static GraphqlResource],
        svc: ServiceContext,
    ) -> anyhow::Result<Self> {
        Self::build(resources, svc, None, &[])
    }

    /// With the service's own mutations (see [`Extend`]).
    pub fn with_mutations(
        resources: &'static [&'static GraphqlResource],
        svc: ServiceContext,
        extend: Extend,
    ) -> anyhow::Result<Self> {
        Self::build(resources, svc, Some(extend), &[])
    }

    /// With the service's own fields, where `replaced` names generic `create<Type>` mutations
    /// the service defines itself (a create that books stock, not a plain insert).
    pub fn with_extensions(
        resources: &'static [&'static GraphqlResource],
        svc: ServiceContext,
        extend: Extend,
        replaced: &'static [&'static str],
    ) -> anyhow::Result<Self> {
        Self::build(resources, svc, Some(extend), replaced)
    }

    fn build(
        resources: &'static [&'static GraphqlResource],
        svc: ServiceContext,
        extend: Option<Extend>,
        replaced: &'static [&'static str],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            flat: Arc::new(build(resources, svc.clone(), false, extend, replaced)?),
            connection: Arc::new(build(resources, svc.clone(), true, extend, replaced)?),
            svc,
            service: resources.first().map_or("", |g| g.resource.service),
            types: Arc::new(
                resources
                    .iter()
                    .filter(|g| g.roots)
                    .map(|g| g.type_name)
                    .collect(),
            ),
        })
    }

    /// The schema's SDL (connection variant), for clients and tests.
    pub fn sdl(&self) -> String {
        self.connection.sdl()
    }
}

/// `{field, message}`: one validation message of a mutation payload (`errors`).
fn field_error_type() -> Object {
    let text = |name: &'static str| {
        Field::new(name, TypeRef::named_nn(TypeRef::STRING), move |ctx| {
            FieldFuture::new(async move {
                let v = ctx.parent_value.try_downcast_ref::<Value>()?;
                json_value(v[name].clone())
            })
        })
    };
    Object::new("FieldError")
        .field(text("field"))
        .field(text("message"))
}

/// `created_at` → `createdAt` (GraphQL spellings of REST names).
pub fn camel_name(name: &str) -> String {
    camel(name)
}

/// What a service's own mutation needs: the service, the member scope, the language, the
/// caller's username and the public origin links are built on.
pub struct Writer {
    pub svc: ServiceContext,
    pub scope: crate::auth::ProjectScope,
    pub lang: &'static str,
    pub username: String,
    pub origin: String,
}

/// The caller of a mutation as a member of the project (else UNAUTHENTICATED / FORBIDDEN).
pub async fn writer(ctx: &ResolverContext<'_>) -> async_graphql::Result<Writer> {
    let (svc, scope, lang) = member(ctx).await?;
    let username = crate::graphql::maybe_principal(ctx)?
        .map(|p| p.claims().username.clone())
        .unwrap_or_default();
    let headers = ctx.data_opt::<HeaderMap>().cloned().unwrap_or_default();
    let origin = crate::service::public_origin(svc.platform.config(), &headers);
    Ok(Writer {
        svc,
        scope,
        lang,
        username,
        origin,
    })
}

/// The platform error as a GraphQL error (conventions §8 codes).
pub fn error(e: ApiError) -> async_graphql::Error {
    gql(e)
}

/// An argument as JSON (`None` when absent or null).
pub fn argument(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<Option<Value>> {
    json_arg(ctx, name)
}

/// A root field's result, its error recorded with its path and the field nulled.
pub fn field_result<'a>(
    ctx: &ResolverContext<'_>,
    out: async_graphql::Result<Option<FieldValue<'a>>>,
) -> Option<FieldValue<'a>> {
    soft(ctx, out)
}

/// Whether a document selects `edges`, `pageInfo` or `totalCount` anywhere. The walk expands
/// fragments: the handler's screen refused cycles and bounded the expanded size.
fn wants_connection(doc: &async_graphql::parser::types::ExecutableDocument) -> bool {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(set: &SelectionSet, doc: &async_graphql::parser::types::ExecutableDocument) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                matches!(name, "edges" | "pageInfo" | "totalCount")
                    || walk(&f.node.selection_set.node, doc)
            }
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .is_some_and(|frag| walk(&frag.node.selection_set.node, doc)),
            Selection::InlineFragment(i) => walk(&i.node.selection_set.node, doc),
        })
    }
    doc.operations
        .iter()
        .any(|(_, op)| walk(&op.node.selection_set.node, doc))
}

#[async_trait::async_trait]
impl Executor for ResourceSchema {
    async fn run(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        if let Some(query) = input_aliases(&request.query, &self.types) {
            // The handler's screen bounded the text; the renamed document parses as safely.
            if let Ok(doc) = async_graphql::parser::parse_query(&query) {
                request.set_parsed_query(doc);
            }
            request.query = query;
        }
        let connection = request.parsed_query().is_ok_and(wants_connection);
        let schema = if connection {
            &self.connection
        } else {
            &self.flat
        };
        schema.execute(request).await
    }

    fn public_cache(&self) -> Option<(&ServiceContext, &'static str)> {
        Some((&self.svc, self.service))
    }
}

// Workflow mutations of a service's own (`Extend`): payloads with `errors{field message}`.

/// An input object as the REST body (camelCase keys → snake_case).
pub fn input(ctx: &ResolverContext<'_>) -> async_graphql::Result<Value> {
    let raw = argument(ctx, "input")?.unwrap_or(Value::Null);
    Ok(snake_keys(raw))
}

pub fn snake_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (crate::list::snake_case(&k), snake_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

/// The messages of a refused request as payload errors `{field, message}`.
pub fn refusals(e: &ApiError) -> Vec<Value> {
    let body = e.body();
    let mut out = Vec::new();
    if e.status().as_u16() == 422 {
        out.push(serde_json::json!({"field": camel(e.code()), "message": e.detail()}));
        return out;
    }
    if let Value::Object(fields) = body {
        for (field, messages) in fields {
            let field = camel(&field);
            match messages {
                Value::Array(items) => {
                    for item in items {
                        let message = match item {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        out.push(serde_json::json!({"field": field, "message": message}));
                    }
                }
                Value::String(s) => out.push(serde_json::json!({"field": field, "message": s})),
                other => {
                    out.push(serde_json::json!({"field": field, "message": other.to_string()}))
                }
            }
        }
    }
    out
}

/// A workflow result as its payload: the values on success, `errors` when the request was
/// refused (400/404/409/422), a GraphQL error otherwise.
pub fn payload(result: Result<Value, ApiError>) -> async_graphql::Result<Value> {
    match result {
        Ok(v) => Ok(v),
        Err(e) if matches!(e.status().as_u16(), 400 | 404 | 409 | 422) => {
            Ok(serde_json::json!({ "__errors": refusals(&e) }))
        }
        Err(e) => Err(gql(e)),
    }
}

/// A payload type: each `(field, type)` reads the parent's value of that name; `errors` the
/// refusals.
pub fn payload_type(name: &str, fields: &'static [(&'static str, &'static str)]) -> Object {
    let mut object = Object::new(name);
    for &(field, ty) in fields {
        object = object.field(Field::new(field, TypeRef::named(ty), move |ctx| {
            FieldFuture::new(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                Ok(match &parent[field] {
                    Value::Null => None,
                    Value::Bool(b) if ty == TypeRef::BOOLEAN => Some(FieldValue::value(*b)),
                    v if ty == "JSON" => Some(FieldValue::value(async_graphql::Value::from_json(
                        camel_keys(v.clone()),
                    )?)),
                    v => Some(FieldValue::owned_any(v.clone())),
                })
            })
        }));
    }
    object.field(Field::new(
        "errors",
        TypeRef::named_nn_list_nn("FieldError"),
        |ctx| {
            FieldFuture::new(async move {
                let parent = ctx.parent_value.try_downcast_ref::<Value>()?;
                let errors: Vec<FieldValue<'_>> = parent["__errors"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(FieldValue::owned_any)
                    .collect();
                Ok(Some(FieldValue::list(errors)))
            })
        },
    ))
}

pub type Pinned<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A workflow field's work, given the resolver context and the caller.
pub type Work =
    for<'a> fn(&'a ResolverContext<'a>, Writer) -> Pinned<'a, async_graphql::Result<Value>>;

/// A workflow mutation answering `payload` (a type from [`payload_type`]).
/// The field is nullable (conventions §7): a refused call nulls only its field.
pub fn workflow(name: &'static str, payload_type: &'static str, work: Work) -> Field {
    Field::new(name, TypeRef::named(payload_type), move |ctx| {
        FieldFuture::new(async move {
            let out: async_graphql::Result<Option<FieldValue<'_>>> = async {
                let w = writer(&ctx).await?;
                let value = work(&ctx, w).await?;
                Ok(Some(FieldValue::owned_any(value)))
            }
            .await;
            Ok(field_result(&ctx, out))
        })
    })
}

/// JSON keys in GraphQL spelling (`created_at` → `createdAt`), recursively.
pub fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (camel(&k), camel_keys(v)))
                .collect::<serde_json::Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants_connection(query: &str) -> bool {
        async_graphql::parser::parse_query(query).is_ok_and(|doc| super::wants_connection(&doc))
    }

    #[test]
    fn the_selection_chooses_the_shape() {
        assert!(!wants_connection("{ products { id name price } }"));
        assert!(wants_connection(
            "{ products { edges { id } pageInfo { totalCount } } }"
        ));
        assert!(wants_connection(
            "query { products(first: 2) { totalCount } }"
        ));
        assert!(wants_connection(
            "{ products { ...F } } fragment F on ProductConnection { edges { id } }"
        ));
        assert_eq!(camel("created_at"), "createdAt");
    }

    #[test]
    fn input_type_aliases_are_read_as_the_canonical_type() {
        let types = ["Product", "Tag"];
        assert_eq!(
            input_aliases(
                "mutation($i: CreateProductInput!, $j: UpdateTagInput) { a }",
                &types
            )
            .as_deref(),
            Some("mutation($i: ProductInput!, $j: TagInput) { a }")
        );
        assert_eq!(
            input_aliases("mutation($i: ProductInput!) { a }", &types),
            None
        );
        // Longer names that merely contain an alias are left alone.
        assert_eq!(
            input_aliases("mutation($i: XCreateProductInput) { a }", &types),
            None
        );
    }
}
