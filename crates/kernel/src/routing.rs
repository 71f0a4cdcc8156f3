//! Route registration that remembers what it mounts. A service builds its routes with
//! [`Routes`] and the verbs of this module (`get(h).post(h2)`), so the table of mounted
//! operations comes from the code that routes: the service's OpenAPI document is checked
//! against it (every mounted operation has one), and the resource engine documents its own
//! operations here as it mounts them.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::{OpenApi, Paths};

/// A method router and the methods it answers.
pub struct Endpoint<S> {
    router: MethodRouter<S>,
    methods: Vec<Method>,
}

macro_rules! verbs {
    ($($name:ident => $method:ident),*) => {
        $(
            #[doc = concat!("An endpoint answering `", stringify!($method), "` with `handler`.")]
            pub fn $name<H, T, S>(handler: H) -> Endpoint<S>
            where
                H: Handler<T, S>,
                T: 'static,
                S: Clone + Send + Sync + 'static,
            {
                Endpoint {
                    router: axum::routing::$name(handler),
                    methods: vec![Method::$method],
                }
            }
        )*

        impl<S: Clone + Send + Sync + 'static> Endpoint<S> {
            $(
                #[doc = concat!("Also answers `", stringify!($method), "` with `handler`.")]
                pub fn $name<H, T>(mut self, handler: H) -> Self
                where
                    H: Handler<T, S>,
                    T: 'static,
                {
                    self.router = self.router.$name(handler);
                    self.methods.push(Method::$method);
                    self
                }
            )*
        }
    };
}

verbs!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

impl<S: Clone + Send + Sync + 'static> Endpoint<S> {
    /// Both endpoints' methods on one path (their methods must not overlap).
    pub fn merge(mut self, other: Endpoint<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.methods.extend(other.methods);
        self
    }
}

/// One mounted operation: its method and every spelling of its path (relative to the
/// service's root, as `service::at` registers them).
#[derive(Clone, Debug)]
pub struct Mounted {
    pub method: Method,
    pub spellings: Vec<String>,
}

/// What a service mounted and its OpenAPI document.
#[derive(Clone, Default)]
pub struct ServiceApi {
    pub mounted: Vec<Mounted>,
    pub document: Option<OpenApi>,
}

impl ServiceApi {
    /// The mounted operations the document does not describe under any of their spellings
    /// (`METHOD /path`), for the test that keeps the document whole.
    pub fn undocumented(&self, prefix: &str) -> Vec<String> {
        let Some(doc) = &self.document else {
            return self
                .mounted
                .iter()
                .map(|m| format!("{} {}", m.method, first(m)))
                .collect();
        };
        let documented: Vec<(String, Method)> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                operations_of(item)
                    .into_iter()
                    .map(|m| (shape(path), m))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.mounted
            .iter()
            .filter(|m| {
                !m.spellings.iter().any(|s| {
                    let wanted = shape(&format!("{prefix}{s}"));
                    documented
                        .iter()
                        .any(|(p, method)| *p == wanted && *method == m.method)
                })
            })
            .map(|m| format!("{} {prefix}{}", m.method, first(m)))
            .collect()
    }
}

fn first(m: &Mounted) -> &str {
    m.spellings.first().map_or("", String::as_str)
}

/// A path with its parameters unnamed and no trailing slash: `/a/{id}/` → `/a/{}`.
fn shape(path: &str) -> String {
    path.trim_end_matches('/')
        .split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn operations_of(item: &PathItem) -> Vec<Method> {
    [
        (&item.get, Method::GET),
        (&item.post, Method::POST),
        (&item.put, Method::PUT),
        (&item.patch, Method::PATCH),
        (&item.delete, Method::DELETE),
    ]
    .into_iter()
    .filter(|(op, _)| op.is_some())
    .map(|(_, m)| m)
    .collect()
}

/// A service's routes as they are built: the axum router, the table of what was mounted and
/// the operations documented while mounting (the resource engine's).
pub struct Routes<S> {
    router: Router<S>,
    mounted: Vec<Mounted>,
    generated: Paths,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            mounted: Vec::new(),
            generated: Paths::new(),
        }
    }

    /// Mounts `endpoint` at each of `paths` (the first is the one documents use), bare and
    /// under `/{alias}/`, in both spellings (`service::at`).
    pub fn at<P: AsRef<str>>(mut self, alias: &str, paths: &[P], endpoint: Endpoint<S>) -> Self {
        let spellings = crate::service::spellings(alias, paths);
        for method in endpoint.methods {
            self.mounted.push(Mounted {
                method,
                spellings: spellings.clone(),
            });
        }
        self.router = crate::service::at(self.router, &spellings, endpoint.router);
        self
    }

    /// Operations described by the code that mounts them (paths relative to the service root).
    pub fn document(mut self, paths: Paths) -> Self {
        self.generated.merge(paths);
        self
    }

    /// Applies `change` to the router built so far (a `route_layer` over the routes above).
    pub fn map(mut self, change: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = change(self.router);
        self
    }

    /// The router, and the service's API: what was mounted, and the document: `declared`
    /// (the hand-written handlers' `#[utoipa::path]`s) with the generated operations, their
    /// paths under `prefix` (`/api/v1/product`).
    pub fn finish(self, prefix: &str, declared: OpenApi) -> (Router<S>, ServiceApi) {
        let mut document = declared;
        let mut generated = Paths::new();
        for (path, item) in self.generated.paths {
            generated.paths.insert(format!("{prefix}{path}"), item);
        }
        document.paths.merge(generated);
        crate::openapi::secure(&mut document);
        (
            self.router,
            ServiceApi {
                mounted: self.mounted,
                document: Some(document),
            },
        )
    }
}
