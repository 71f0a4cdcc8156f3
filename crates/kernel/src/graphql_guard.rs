//! The screen every GraphQL request passes before any parser recursion or validation visitor
//! runs: nesting of the query text and the variables, fragment cycles and unknown or unused
//! fragments, the size of the operation once its fragments are expanded, directives, and text
//! PostgreSQL cannot store. Everything here is iterative or bounded by [`MAX_NESTING`], so a
//! hostile document answers 400 in milliseconds and never exhausts a thread's stack.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::parser::{Pos, Positioned};
use async_graphql::Name;
use async_graphql_value::Value as GqlValue;
use serde_json::Value;

/// Deepest bracket nesting (`{`, `[`, `(`) accepted in the query text and in the variables.
pub const MAX_NESTING: usize = 48;
/// Most fields an operation may select once every fragment is expanded.
pub const MAX_FIELDS: u64 = 5_000;
/// Most fields (aliases included) at the root of an operation: each may be a query of its own.
pub const MAX_ROOT_FIELDS: u64 = 50;
/// Most directives in a document.
pub const MAX_DIRECTIVES: usize = 100;
/// Most fragment definitions in a document.
pub const MAX_FRAGMENTS: usize = 200;

/// Why a document was refused: HTTP 400, message, location and code.
#[derive(Debug)]
pub struct Refusal {
    pub message: String,
    pub pos: Option<Pos>,
    pub code: &'static str,
    /// For text PostgreSQL cannot store: the REST-style field map.
    pub fields: Option<Value>,
}

impl Refusal {
    fn new(message: impl Into<String>, pos: Option<Pos>, code: &'static str) -> Self {
        Self {
            message: message.into(),
            pos,
            code,
            fields: None,
        }
    }

    fn invalid(message: impl Into<String>, pos: Pos) -> Self {
        Self::new(message, Some(pos), "GRAPHQL_VALIDATION_FAILED")
    }

    fn too_complex(message: impl Into<String>, pos: Option<Pos>) -> Self {
        Self::new(message, pos, "QUERY_TOO_COMPLEX")
    }

    fn null_character(field: String) -> Self {
        let fields = serde_json::json!({ &field: [crate::text::NULL_MESSAGE] });
        Self {
            message: format!("{field}: {}", crate::text::NULL_MESSAGE),
            pos: None,
            code: "VALIDATION_ERROR",
            fields: Some(fields),
        }
    }

    /// The body of the 400 response.
    pub fn body(&self) -> Value {
        let mut error = serde_json::json!({
            "message": self.message,
            "extensions": {"code": self.code, "status": 400},
        });
        if let Some(pos) = self.pos {
            error["locations"] = serde_json::json!([{"line": pos.line, "column": pos.column}]);
        }
        if let Some(fields) = &self.fields {
            error["extensions"]["fields"] = fields.clone();
        }
        serde_json::json!({ "errors": [error] })
    }
}

/// What the screen learnt of an accepted document.
#[derive(Debug)]
pub struct Screened {
    pub document: ExecutableDocument,
    /// Whether the operation to run (or any, without a name) is a mutation or subscription.
    pub is_mutation: bool,
}

/// Screens a request's document and variables; see the module docs.
pub fn screen(
    query: &str,
    operation: Option<&str>,
    variables: Option<&Value>,
) -> Result<Screened, Refusal> {
    check_text_nesting(query)?;
    if let Some(vars) = variables {
        check_variables(vars)?;
    }
    let document = async_graphql::parser::parse_query(query).map_err(|e| {
        let pos = e.positions().next();
        Refusal::invalid(e.to_string(), pos.unwrap_or_default())
    })?;
    check_fragments_and_size(&document)?;
    check_literals(&document)?;
    let is_mutation = is_mutation(&document, operation);
    Ok(Screened {
        document,
        is_mutation,
    })
}

/// Bracket nesting of the query text, skipping strings, block strings and comments.
fn check_text_nesting(query: &str) -> Result<(), Refusal> {
    let bytes = query.as_bytes();
    let (mut depth, mut i, mut line, mut line_start) = (0usize, 0usize, 1usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let pos = Pos {
                        line,
                        column: i - line_start + 1,
                    };
                    return Err(Refusal::too_complex(
                        format!("The document is nested more than {MAX_NESTING} levels deep."),
                        Some(pos),
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Variables: nesting bounded, and no text PostgreSQL cannot store (iteratively).
fn check_variables(vars: &Value) -> Result<(), Refusal> {
    let mut stack: Vec<(&Value, usize)> = vec![(vars, 0)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(Refusal::too_complex(
                format!("The variables are nested more than {MAX_NESTING} levels deep."),
                None,
            ));
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    match crate::text::find_null(vars) {
        Some(path) => Err(Refusal::null_character(path)),
        None => Ok(()),
    }
}

/// Counts of one selection set (an operation's or a fragment's), fragments not expanded.
#[derive(Default)]
struct Shape {
    /// Fields selected here and below, outside fragment spreads.
    fields: u64,
    /// Root-level fields (this set's own, inline fragments flattened).
    root_fields: u64,
    /// Fragment spreads with how many times each is spread, and the root-level ones.
    spreads: HashMap<Name, (u64, u64)>,
    directives: usize,
}

/// Walks a selection set; recursion bounded by the text's nesting.
fn shape_of(set: &SelectionSet, root: bool, shape: &mut Shape) {
    for item in &set.items {
        shape.directives += item.node.directives().len();
        match &item.node {
            Selection::Field(f) => {
                shape.fields += 1;
                shape.root_fields += u64::from(root);
                shape_of(&f.node.selection_set.node, false, shape);
            }
            Selection::FragmentSpread(s) => {
                let entry = shape
                    .spreads
                    .entry(s.node.fragment_name.node.clone())
                    .or_default();
                entry.0 += 1;
                entry.1 += u64::from(root);
            }
            Selection::InlineFragment(i) => shape_of(&i.node.selection_set.node, root, shape),
        }
    }
}

/// A shape's (fields, root fields) with its spreads expanded from `sizes` (saturating).
fn expanded(shape: &Shape, sizes: &HashMap<&Name, (u64, u64)>) -> (u64, u64) {
    let (mut fields, mut root) = (shape.fields, shape.root_fields);
    for (spread, (times, root_times)) in &shape.spreads {
        let (f, r) = sizes.get(spread).copied().unwrap_or_default();
        fields = fields.saturating_add(times.saturating_mul(f));
        root = root.saturating_add(root_times.saturating_mul(r));
    }
    (fields, root)
}

/// Unknown, unused and cyclic fragments; the expanded size of each operation; directives.
fn check_fragments_and_size(doc: &ExecutableDocument) -> Result<(), Refusal> {
    if doc.fragments.len() > MAX_FRAGMENTS {
        return Err(Refusal::too_complex(
            format!("A document may define at most {MAX_FRAGMENTS} fragments."),
            None,
        ));
    }
    let mut directives = 0usize;
    let mut fragments: HashMap<&Name, Shape> = HashMap::new();
    for (name, fragment) in &doc.fragments {
        let mut shape = Shape::default();
        shape_of(&fragment.node.selection_set.node, true, &mut shape);
        directives += shape.directives + fragment.node.directives.len();
        fragments.insert(name, shape);
    }
    let mut operations = Vec::new();
    for (_, op) in doc.operations.iter() {
        let mut shape = Shape::default();
        shape_of(&op.node.selection_set.node, true, &mut shape);
        directives += shape.directives + op.node.directives.len();
        operations.push((op.pos, shape));
    }
    if directives > MAX_DIRECTIVES {
        return Err(Refusal::too_complex(
            format!("A document may carry at most {MAX_DIRECTIVES} directives."),
            None,
        ));
    }
    for shape in fragments.values().chain(operations.iter().map(|(_, s)| s)) {
        if let Some(name) = shape
            .spreads
            .keys()
            .find(|n| !doc.fragments.contains_key(*n))
        {
            return Err(Refusal::invalid(
                format!("Unknown fragment \"{name}\"."),
                Pos::default(),
            ));
        }
    }
    let order = topological(doc, &fragments)?;
    // Expanded sizes, dependencies first (the order is a topological one, leaves last).
    let mut sizes: HashMap<&Name, (u64, u64)> = HashMap::new();
    for name in order.iter().rev() {
        let size = expanded(&fragments[name], &sizes);
        sizes.insert(name, size);
    }
    let mut used: HashSet<&Name> = HashSet::new();
    for (pos, shape) in &operations {
        let (fields, root) = expanded(shape, &sizes);
        if fields > MAX_FIELDS {
            return Err(Refusal::too_complex(
                format!(
                    "An operation may select at most {MAX_FIELDS} fields (fragments expanded)."
                ),
                Some(*pos),
            ));
        }
        if root > MAX_ROOT_FIELDS {
            return Err(Refusal::too_complex(
                format!("An operation may select at most {MAX_ROOT_FIELDS} root fields."),
                Some(*pos),
            ));
        }
        reachable(shape, &fragments, &mut used);
    }
    if let Some((name, fragment)) = doc.fragments.iter().find(|(n, _)| !used.contains(n)) {
        return Err(Refusal::invalid(
            format!("Fragment \"{name}\" is never used."),
            fragment.pos,
        ));
    }
    Ok(())
}

/// The fragments in an order where each comes before those it spreads; a cycle is refused
/// (Kahn's algorithm: no recursion).
fn topological<'a>(
    doc: &'a ExecutableDocument,
    fragments: &HashMap<&'a Name, Shape>,
) -> Result<Vec<&'a Name>, Refusal> {
    let mut incoming: HashMap<&Name, usize> = fragments.keys().map(|n| (*n, 0)).collect();
    for shape in fragments.values() {
        for spread in shape.spreads.keys() {
            if let Some(count) = incoming.get_mut(spread) {
                *count += 1;
            }
        }
    }
    let mut ready: Vec<&Name> = incoming
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::with_capacity(fragments.len());
    while let Some(name) = ready.pop() {
        order.push(name);
        for spread in fragments[name].spreads.keys() {
            if let Some((key, count)) = incoming.get_key_value(spread).map(|(k, c)| (*k, *c)) {
                incoming.insert(key, count - 1);
                if count == 1 {
                    ready.push(key);
                }
            }
        }
    }
    if order.len() < fragments.len() {
        let (name, fragment) = doc
            .fragments
            .iter()
            .filter(|(n, _)| incoming.get(n).is_some_and(|c| *c > 0))
            .min_by_key(|(_, f)| (f.pos.line, f.pos.column))
            .ok_or_else(|| Refusal::invalid("Fragments spread each other.", Pos::default()))?;
        return Err(Refusal::invalid(
            format!("Cannot spread fragment \"{name}\" within itself."),
            fragment.pos,
        ));
    }
    Ok(order)
}

/// Marks every fragment an operation reaches (iteratively).
fn reachable<'a>(
    shape: &'a Shape,
    fragments: &'a HashMap<&'a Name, Shape>,
    used: &mut HashSet<&'a Name>,
) {
    let mut stack: Vec<&Name> = shape.spreads.keys().collect();
    while let Some(name) = stack.pop() {
        if let Some((key, inner)) = fragments.get_key_value(name) {
            if used.insert(*key) {
                stack.extend(inner.spreads.keys());
            }
        }
    }
}

/// String literals in arguments (fields and directives) must be storable.
fn check_literals(doc: &ExecutableDocument) -> Result<(), Refusal> {
    let mut values: Vec<(String, &GqlValue)> = Vec::new();
    for (_, o) in doc.operations.iter() {
        literals_of_directives(&o.node.directives, &mut values);
        literals_of_set(&o.node.selection_set.node, &mut values);
    }
    for f in doc.fragments.values() {
        literals_of_directives(&f.node.directives, &mut values);
        literals_of_set(&f.node.selection_set.node, &mut values);
    }
    for (argument, value) in values {
        let mut stack: Vec<(String, &GqlValue)> = vec![(argument, value)];
        while let Some((path, value)) = stack.pop() {
            match value {
                GqlValue::String(s) if s.contains('\0') => {
                    return Err(Refusal::null_character(path))
                }
                GqlValue::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        stack.push((format!("{path}.{i}"), item));
                    }
                }
                GqlValue::Object(map) => {
                    for (key, item) in map {
                        stack.push((format!("{path}.{key}"), item));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn literals_of_directives<'a>(
    list: &'a [Positioned<Directive>],
    out: &mut Vec<(String, &'a GqlValue)>,
) {
    for d in list {
        for (name, value) in &d.node.arguments {
            out.push((name.node.to_string(), &value.node));
        }
    }
}

/// Recursion bounded by the text's nesting.
fn literals_of_set<'a>(s: &'a SelectionSet, out: &mut Vec<(String, &'a GqlValue)>) {
    for item in &s.items {
        literals_of_directives(item.node.directives(), out);
        match &item.node {
            Selection::Field(f) => {
                for (name, value) in &f.node.arguments {
                    out.push((name.node.to_string(), &value.node));
                }
                literals_of_set(&f.node.selection_set.node, out);
            }
            Selection::InlineFragment(i) => literals_of_set(&i.node.selection_set.node, out),
            Selection::FragmentSpread(_) => {}
        }
    }
}

fn is_mutation(doc: &ExecutableDocument, operation: Option<&str>) -> bool {
    use async_graphql::parser::types::DocumentOperations;
    let of = |t: OperationType| t == OperationType::Mutation || t == OperationType::Subscription;
    match &doc.operations {
        DocumentOperations::Single(op) => of(op.node.ty),
        DocumentOperations::Multiple(ops) => match operation {
            Some(name) => ops.get(name).is_some_and(|op| of(op.node.ty)),
            None => ops.values().any(|op| of(op.node.ty)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> Refusal {
        match screen(query, None, None) {
            Ok(_) => panic!("accepted: {query}"),
            Err(r) => r,
        }
    }

    #[test]
    fn fragment_cycles_unknown_and_unused_fragments_are_refused() {
        let r = refused("{ ...A } fragment A on Query { ...A }");
        assert_eq!(r.message, "Cannot spread fragment \"A\" within itself.");
        let r = refused("{ ...A } fragment A on Query { ...B } fragment B on Query { x ...A }");
        assert!(
            r.message.starts_with("Cannot spread fragment"),
            "{}",
            r.message
        );
        assert_eq!(refused("{ ...Nope }").message, "Unknown fragment \"Nope\".");
        assert_eq!(
            refused("{ x } fragment U on Query { x }").message,
            "Fragment \"U\" is never used."
        );
        let ok = screen(
            "query Q { ...A ...B } fragment A on Query { x ...B } fragment B on Query { y }",
            Some("Q"),
            None,
        );
        assert!(ok.is_ok_and(|s| !s.is_mutation));
    }

    #[test]
    fn nesting_is_bounded_in_text_and_variables_but_not_in_strings_or_comments() {
        let deep = format!("{{ f(a: {}1{}) }}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(refused(&deep).code, "QUERY_TOO_COMPLEX");
        let quoted = format!(
            "{{ f(a: \"{}\") }} # {}",
            "[".repeat(10_000),
            "{".repeat(100)
        );
        assert!(screen(&quoted, None, None).is_ok());
        let block = format!("{{ f(a: \"\"\"{}\"\"\") }}", "{".repeat(100));
        assert!(screen(&block, None, None).is_ok());
        let mut vars = serde_json::json!(1);
        for _ in 0..100 {
            vars = serde_json::json!([vars]);
        }
        let r = screen(
            "query($v: Int) { f(a: $v) }",
            None,
            Some(&serde_json::json!({"v": vars})),
        );
        assert!(r.is_err_and(|r| r.code == "QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn expanded_size_root_fields_and_directives_are_bounded() {
        let mut bomb = String::from("{ ...F0 }");
        for i in 0..30 {
            bomb.push_str(&format!(
                " fragment F{i} on Query {{ a ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        bomb.push_str(" fragment F30 on Query { a }");
        assert_eq!(refused(&bomb).code, "QUERY_TOO_COMPLEX");
        let aliases: String = (0..60).map(|i| format!(" a{i}: x")).collect();
        assert_eq!(
            refused(&format!("{{{aliases} }}")).code,
            "QUERY_TOO_COMPLEX"
        );
        let directives = format!("{{ x {} }}", "@skip(if: false) ".repeat(101));
        assert_eq!(refused(&directives).code, "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn null_characters_are_named() {
        let r = refused("mutation { create(input: {name: \"a\\u0000b\"}) { id } }");
        assert_eq!(r.code, "VALIDATION_ERROR");
        assert_eq!(
            r.fields,
            Some(serde_json::json!({"input.name": [crate::text::NULL_MESSAGE]}))
        );
        let vars = serde_json::json!({"input": {"items": [{"sku": "a\u{0}"}]}});
        let r = screen(
            "mutation($input: I) { create(input: $input) { id } }",
            None,
            Some(&vars),
        );
        assert!(r.is_err_and(|r| r.message.starts_with("input.items.0.sku:")));
        let r = screen("mutation { a }", None, None);
        assert!(r.is_ok_and(|s| s.is_mutation));
    }
}
