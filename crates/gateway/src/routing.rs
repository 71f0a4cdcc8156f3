//! Which service and which service-relative path a public URL names (conventions.md §1).

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    GatewayHealth,
    GatewayReady,
    Metrics,
    Swagger,
    Redoc,
    /// `service`, path inside the service (no trailing slash), language from the URL.
    Service {
        service: &'static str,
        path: String,
        lang: Option<&'static str>,
    },
    NotFound,
    /// Outside the API space: the web app's territory.
    WebApp,
}

/// REST segments that are other spellings of a service (+ a path prefix inside it).
const REST_ALIASES: &[(&str, &str, &str)] = &[
    ("users", "auth", "/users"),
    ("projects", "project", "/projects"),
    ("profile", "auth", "/profile"),
    ("products", "product", "/products"),
    ("orders", "order", ""),
    ("cart", "order", "/cart"),
    ("debt", "credit", ""),
    ("crm", "customer", ""),
    ("blog", "content", ""),
    ("logs", "admin", "/logs"),
];

/// GraphQL segments that are other spellings of a service.
const GRAPHQL_ALIASES: &[(&str, &str)] = &[
    ("debt", "credit"),
    ("crm", "customer"),
    ("auction", "catalog"),
    ("console", "admin"),
];

/// Every service name the platform knows (built or not).
pub const SERVICES: &[&str] = &[
    "auth",
    "project",
    "product",
    "inventory",
    "order",
    "billing",
    "pos",
    "catalog",
    "credit",
    "customer",
    "repair",
    "content",
    "admin",
];

fn service_name(seg: &str) -> Option<&'static str> {
    SERVICES.iter().copied().find(|s| *s == seg)
}

fn lang(seg: &str) -> Option<&'static str> {
    kernel::lang::SUPPORTED.into_iter().find(|l| *l == seg)
}

fn join(prefix: &str, rest: &[&str]) -> String {
    let mut path = prefix.to_owned();
    for seg in rest.iter().filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() {
        "/".to_owned()
    } else {
        path
    }
}

fn rest_target(segs: &[&str], lang: Option<&'static str>) -> Target {
    let Some((seg, rest)) = segs.split_first() else {
        return Target::NotFound;
    };
    if let Some(service) = service_name(seg) {
        return Target::Service {
            service,
            path: join("", rest),
            lang,
        };
    }
    match REST_ALIASES.iter().find(|(alias, _, _)| alias == seg) {
        Some((_, service, prefix)) => Target::Service {
            service: service_name(service).unwrap_or("auth"),
            path: join(prefix, rest),
            lang,
        },
        None => Target::NotFound,
    }
}

fn graphql_target(seg: &str, lang: Option<&'static str>) -> Target {
    let service = service_name(seg).or_else(|| {
        GRAPHQL_ALIASES
            .iter()
            .find(|(alias, _)| *alias == seg)
            .and_then(|(_, s)| service_name(s))
    });
    match service {
        Some(service) => Target::Service {
            service,
            path: "/graphql".into(),
            lang,
        },
        None => Target::NotFound,
    }
}

/// Resolves a request path (trailing slash optional everywhere).
pub fn resolve(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["health"] => Target::GatewayHealth,
        ["ready"] => Target::GatewayReady,
        ["metrics"] => Target::Metrics,
        ["docs", "swagger"] | ["docs"] => Target::Swagger,
        ["docs", "redoc"] => Target::Redoc,
        [".well-known", "jwks.json"] => Target::Service {
            service: "auth",
            path: "/.well-known/jwks.json".into(),
            lang: None,
        },
        ["api", "v1", rest @ ..] => rest_target(rest, None),
        [l, "api", "v1", rest @ ..] if lang(l).is_some() => rest_target(rest, lang(l)),
        ["graphql", seg] => graphql_target(seg, None),
        ["graphql", seg, l, "v1", "graphql"] if lang(l).is_some() => graphql_target(seg, lang(l)),
        [seg, "graphql"] => graphql_target(seg, None),
        ["api", ..] | ["graphql", ..] | [_, "api", ..] => Target::NotFound,
        _ => Target::WebApp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(service: &'static str, path: &str, lang: Option<&'static str>) -> Target {
        Target::Service {
            service,
            path: path.into(),
            lang,
        }
    }

    #[test]
    fn rest_routes_and_aliases() {
        assert_eq!(
            resolve("/api/v1/auth/auth/token/"),
            svc("auth", "/auth/token", None)
        );
        assert_eq!(
            resolve("/api/v1/auth/auth/token"),
            svc("auth", "/auth/token", None)
        );
        assert_eq!(resolve("/api/v1/auth/"), svc("auth", "/", None));
        assert_eq!(resolve("/api/v1/users/me/"), svc("auth", "/users/me", None));
        assert_eq!(
            resolve("/api/v1/products/"),
            svc("product", "/products", None)
        );
        assert_eq!(
            resolve("/api/v1/orders/orders/7/"),
            svc("order", "/orders/7", None)
        );
        assert_eq!(
            resolve("/en/api/v1/orders/orders/"),
            svc("order", "/orders", Some("en"))
        );
        assert_eq!(
            resolve("/ar/api/v1/auth/user/"),
            svc("auth", "/user", Some("ar"))
        );
    }

    #[test]
    fn graphql_forms() {
        assert_eq!(
            resolve("/graphql/product"),
            svc("product", "/graphql", None)
        );
        assert_eq!(
            resolve("/graphql/product/"),
            svc("product", "/graphql", None)
        );
        assert_eq!(
            resolve("/graphql/product/ar/v1/graphql"),
            svc("product", "/graphql", Some("ar"))
        );
        assert_eq!(
            resolve("/billing/graphql"),
            svc("billing", "/graphql", None)
        );
        assert_eq!(resolve("/graphql/debt"), svc("credit", "/graphql", None));
    }

    #[test]
    fn unknown_and_legacy_paths_are_not_found() {
        assert_eq!(resolve("/api/v2/auth/user/"), Target::NotFound);
        assert_eq!(resolve("/api/v1/nosuch/x/"), Target::NotFound);
        assert_eq!(resolve("/api/v1/analytics/"), Target::NotFound);
        assert_eq!(resolve("/graphql"), Target::NotFound);
        assert_eq!(resolve("/health/"), Target::GatewayHealth);
        assert_eq!(resolve("/products"), Target::WebApp);
    }
}
