//! OpenAPI 3.1 pieces every service shares: the bearer scheme, and the operations the resource
//! engine mounts, described from the same [`Resource`] that validates and serves them (its
//! fields, kinds, limits, filters and orderings).

use serde_json::{json, Map, Value};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Paths};

use crate::resource::{Field, FieldKind, Resource, MAX_MEASURE};

/// Bearer JWTs on every operation (public ones accept them too).
pub fn secure(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let required = SecurityRequirement::new("bearer", Vec::<String>::new());
    doc.security = Some(vec![required, SecurityRequirement::default()]);
}

/// The operations `resource::rest` mounts for `r` at `path` (relative to the service root):
/// list, create (unless the service writes its own), trash, retrieve, update, delete, restore.
pub fn resource_paths(path: &str, r: &Resource, own_create: bool) -> Paths {
    let tag = r.label;
    let row = row_schema(r);
    let id = json!([{"name": "id", "in": "path", "required": true,
                      "description": "The id (or the slug where the resource has one).",
                      "schema": {"type": "string"}}]);
    let mut collection = json!({
        "get": operation(tag, &format!("List {}", plural(r)), list_parameters(r), None,
                         json!({"200": ok(page_schema(&row))})),
    });
    if !own_create {
        collection["post"] = operation(
            tag,
            &format!("Create a {}", r.label.to_lowercase()),
            json!([]),
            Some(input_schema(r, true)),
            json!({"201": ok(row.clone())}),
        );
    }
    let item = json!({
        "get": operation(tag, &format!("Retrieve a {}", r.label.to_lowercase()), id.clone(), None,
                         json!({"200": ok(row.clone())})),
        "patch": operation(tag, "Change some fields", id.clone(), Some(input_schema(r, false)),
                           json!({"200": ok(row.clone())})),
        "put": operation(tag, "Replace the writable fields", id.clone(), Some(input_schema(r, true)),
                         json!({"200": ok(row.clone())})),
        "delete": operation(tag, "Move to the trash (or delete)", id.clone(), None,
                            json!({"204": {"description": "Deleted."}})),
    });
    let trash = json!({
        "get": operation(tag, "List what is in the trash", list_parameters(r), None,
                         json!({"200": ok(page_schema(&row))})),
    });
    let restore = json!({
        "post": operation(tag, "Restore from the trash", id, None, json!({"200": ok(row)})),
    });
    let mut paths = Paths::new();
    for (at, item) in [
        (format!("/{path}/"), collection),
        (format!("/{path}/trash/"), trash),
        (format!("/{path}/{{id}}/"), item),
        (format!("/{path}/{{id}}/restore/"), restore),
    ] {
        // The JSON above is written to fit the model; a misfit is a bug the openapi test
        // finds (the operations go missing from the document).
        if let Ok(item) = serde_json::from_value::<PathItem>(item) {
            paths.paths.insert(at, item);
        }
    }
    paths
}

fn plural(r: &Resource) -> String {
    format!("{}s", r.label.to_lowercase())
}

fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

/// An operation with the error answers every resource route can give.
fn operation(
    tag: &str,
    summary: &str,
    parameters: Value,
    body: Option<Value>,
    mut responses: Value,
) -> Value {
    for (status, description) in [
        (
            "400",
            "Invalid input: a map of field errors, or `{code, detail}`.",
        ),
        ("401", "No valid token (member routes)."),
        (
            "403",
            "Not a member of the project, or missing the permission.",
        ),
        ("404", "No such row in the project."),
    ] {
        responses[status] = json!({"description": description});
    }
    let mut op = json!({"tags": [tag], "summary": summary, "parameters": parameters,
                        "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true,
                                   "content": {"application/json": {"schema": schema}}});
    }
    op
}

fn list_parameters(r: &Resource) -> Value {
    let query = |name: &str, schema: Value, description: &str| {
        json!({"name": name, "in": "query", "required": false, "schema": schema,
               "description": description})
    };
    let mut params = vec![
        query(
            "page",
            json!({"type": "integer", "minimum": 1}),
            "Page number.",
        ),
        query(
            "page_size",
            json!({"type": "integer", "minimum": 1}),
            "Rows per page.",
        ),
        query(
            "limit",
            json!({"type": "integer", "minimum": 1}),
            "Rows (with `offset`).",
        ),
        query(
            "offset",
            json!({"type": "integer", "minimum": 0}),
            "Rows skipped.",
        ),
        query(
            "search",
            json!({"type": "string"}),
            "Every term must match.",
        ),
        query(
            "ordering",
            json!({"type": "string"}),
            &format!(
                "Comma-separated, `-` for descending: {}.",
                r.list
                    .ordering
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    for f in r.list.filters {
        params.push(query(
            f.name,
            json!({"type": "string"}),
            "Filter (also `name__op`: in, gt, gte, lt, lte, contains, isnull…).",
        ));
    }
    for p in r.list.extra_params {
        params.push(query(p, json!({"type": "string"}), "Filter."));
    }
    Value::Array(params)
}

fn page_schema(row: &Value) -> Value {
    json!({
        "type": "object",
        "required": ["results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"]},
            "previous": {"type": ["string", "null"]},
            "results": {"type": "array", "items": row},
        },
    })
}

/// The row as it is read: the standard columns, every field (null when unset or hidden from
/// the caller), the slug; computed values and what hooks add are open.
fn row_schema(r: &Resource) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({"type": "integer"}));
    props.insert("project_id".into(), json!({"type": ["integer", "null"]}));
    for name in ["created_at", "updated_at", "deleted_at"] {
        props.insert(name.into(), json!({"type": ["string", "null"]}));
    }
    props.insert("created_by".into(), json!({"type": ["integer", "null"]}));
    if r.slug_from.is_some() {
        props.insert("slug".into(), json!({"type": ["string", "null"]}));
    }
    for f in r.fields {
        props.insert(f.name.into(), output_type(&f.kind));
    }
    json!({"type": "object", "required": ["id"], "properties": props})
}

fn output_type(kind: &FieldKind) -> Value {
    match kind {
        FieldKind::Int { .. } => json!({"type": ["integer", "null"]}),
        FieldKind::Number { .. } => json!({"type": ["number", "null"]}),
        FieldKind::Bool => json!({"type": ["boolean", "null"]}),
        // A reference is its id, or the row itself where the resource nests it.
        FieldKind::Ref { .. } => json!({"type": ["integer", "object", "null"]}),
        FieldKind::Json { .. } => any(),
        FieldKind::Text { .. }
        | FieldKind::Decimal { .. }
        | FieldKind::Choice(_)
        | FieldKind::Color
        | FieldKind::DateTime
        | FieldKind::Date => json!({"type": ["string", "null"]}),
    }
}

/// What a client may write: every field that is not read-only, with the limits the resource
/// checks; `required` only on create and replace.
fn input_schema(r: &Resource, whole: bool) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in r.fields.iter().filter(|f| !f.read_only) {
        props.insert(f.name.into(), input_type(f));
        if whole && f.required {
            required.push(f.name);
        }
    }
    json!({"type": "object", "properties": props, "required": required})
}

fn input_type(f: &Field) -> Value {
    let nullable = |schema: Value| {
        if f.required {
            schema
        } else {
            json!({"anyOf": [schema, {"type": "null"}]})
        }
    };
    let schema = match &f.kind {
        FieldKind::Text { max } => json!({"type": "string", "maxLength": max}),
        FieldKind::Int { min, max } => bounded(json!({"type": "integer"}), *min, *max),
        FieldKind::Decimal { min, max, scale } => json!({
            "anyOf": [
                {"type": "string", "pattern": format!("^-?[0-9]+(\\.[0-9]{{1,{scale}}})?$")},
                bounded(json!({"type": "number"}), *min, *max),
            ],
        }),
        FieldKind::Number { min } => json!({
            "type": "number",
            "minimum": min.unwrap_or(-MAX_MEASURE),
            "maximum": MAX_MEASURE,
        }),
        FieldKind::Bool => json!({"type": "boolean"}),
        FieldKind::Json { .. } => any(),
        FieldKind::Choice(values) => json!({"type": "string", "enum": values}),
        FieldKind::Color => json!({"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"}),
        FieldKind::Ref { .. } => json!({"type": "integer", "minimum": 1}),
        FieldKind::DateTime => json!({"type": "string", "format": "date-time"}),
        FieldKind::Date => json!({"type": "string", "format": "date"}),
    };
    let schema = if f.translated {
        json!({"anyOf": [schema, {"type": "object",
                                  "description": "Per language: `{\"en\": …, \"ar\": …}`."}]})
    } else {
        schema
    };
    nullable(schema)
}

/// Any JSON value.
fn any() -> Value {
    json!({"type": ["object", "array", "string", "number", "boolean", "null"]})
}

fn bounded(mut schema: Value, min: Option<i64>, max: Option<i64>) -> Value {
    if let Some(min) = min {
        schema["minimum"] = json!(min);
    }
    if let Some(max) = max {
        schema["maximum"] = json!(max);
    }
    schema
}
