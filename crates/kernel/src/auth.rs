//! Who is calling and in which project: token verification (cached), revocation, the principal
//! extractors, and the project scope that every tenant data function requires.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::cache::SharedCache;
use crate::config::Config;
use crate::error::ApiError;
use crate::jwt::{Claims, KeyRing, TokenError, TokenType};
use crate::observe::RequestActor;
use crate::platform::Platform;
use crate::rbac::{role_allows, Grants, Role};

/// Answers "which role does this user hold in this project" (owned by the project service,
/// projected into auth).
#[async_trait]
pub trait MembershipDirectory: Send + Sync {
    async fn role_of(&self, user_id: i64, project_id: i64) -> anyhow::Result<Option<Role>>;
    async fn project_exists(&self, project_id: i64) -> anyhow::Result<bool>;
}

/// Verifies access tokens: signature once per token (then cached until expiry), revocation on
/// every request.
pub struct TokenVerifier {
    keys: Arc<KeyRing>,
    cache: SharedCache,
    verified: moka::sync::Cache<String, Arc<Claims>>,
    revocation_ttl: Duration,
}

fn revoked_jti_key(jti: &str) -> String {
    format!("revoked:jti:{jti}")
}
fn revoked_sid_key(sid: &uuid::Uuid) -> String {
    format!("revoked:sid:{sid}")
}
fn stale_sid_key(sid: &uuid::Uuid) -> String {
    format!("stale:sid:{sid}")
}

impl TokenVerifier {
    pub fn new(keys: Arc<KeyRing>, cache: SharedCache, config: &Config) -> Self {
        let lifetime = Duration::from_secs(
            (config.jwt.access_ttl_secs.max(1) as u64) + config.jwt.leeway_secs,
        );
        Self {
            keys,
            cache,
            verified: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(lifetime)
                .build(),
            revocation_ttl: lifetime,
        }
    }

    /// A verified, unexpired, unrevoked access token's claims.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let claims = match self.verified.get(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.keys.verify(token, TokenType::Access)?);
                self.verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.exp + 30 < Utc::now().timestamp() {
            self.verified.invalidate(token);
            return Err(TokenError::Expired);
        }
        if self.is_revoked(&claims).await {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// Revoked jti, revoked session, or a session marked stale after this token was issued.
    /// A cache failure counts as revoked: fail closed.
    pub async fn is_revoked(&self, claims: &Claims) -> bool {
        let mut keys = vec![revoked_jti_key(&claims.jti)];
        if let Some(sid) = &claims.sid {
            keys.push(revoked_sid_key(sid));
            keys.push(stale_sid_key(sid));
        }
        let values = match self.cache.get_many(&keys).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "revocation lookup failed");
                return true;
            }
        };
        let revoked = values.first().is_some_and(Option::is_some)
            || values.get(1).is_some_and(Option::is_some);
        let stale = values
            .get(2)
            .and_then(|v| v.as_deref())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|marked| claims.iat <= marked);
        revoked || stale
    }

    pub async fn revoke_jti(&self, jti: &str) -> anyhow::Result<()> {
        self.cache
            .set(&revoked_jti_key(jti), "1", self.revocation_ttl)
            .await
    }

    /// Every access token of the session is refused from now on.
    pub async fn revoke_session(&self, sid: &uuid::Uuid) -> anyhow::Result<()> {
        self.cache
            .set(&revoked_sid_key(sid), "1", self.revocation_ttl)
            .await
    }

    /// Access tokens of the session issued up to now are refused; the client refreshes.
    pub async fn mark_stale(&self, sid: &uuid::Uuid) -> anyhow::Result<()> {
        let now = Utc::now().timestamp().to_string();
        self.cache
            .set(&stale_sid_key(sid), &now, self.revocation_ttl)
            .await
    }

    /// A refresh re-derives the claims, so the session is fresh again.
    pub async fn clear_stale(&self, sid: &uuid::Uuid) -> anyhow::Result<()> {
        self.cache.delete(&stale_sid_key(sid)).await
    }
}

/// The outcome of reading the `Authorization` header, set on every request by [`authenticate`].
#[derive(Clone, Debug)]
pub enum AuthState {
    Anonymous,
    Authenticated(Arc<Claims>),
    Invalid,
}

/// The bearer token of a request; an absent or empty header (Apollo sends `""`) is anonymous.
pub fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Some(Err(()));
    }
    Some(Ok(token.trim()))
}

/// Reads the bearer token once per request; never rejects by itself (credential routes ignore
/// stale tokens), handlers decide through the extractors below.
pub async fn resolve_auth_state(platform: &Platform, headers: &HeaderMap) -> AuthState {
    match bearer_token(headers) {
        None => AuthState::Anonymous,
        Some(Err(())) => AuthState::Invalid,
        Some(Ok(token)) => match platform.verifier().authenticate(token).await {
            Ok(claims) => AuthState::Authenticated(claims),
            Err(_) => AuthState::Invalid,
        },
    }
}

/// Middleware: sets [`AuthState`] unless an outer layer (the gateway) already did.
pub async fn authenticate(
    State(platform): State<Platform>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.extensions().get::<AuthState>().is_none() {
        let state = resolve_auth_state(&platform, req.headers()).await;
        req.extensions_mut().insert(state);
    }
    req.extensions_mut().insert(platform);
    next.run(req).await
}

/// The client address: the socket peer, or the first `X-Forwarded-For` hop when configured.
pub fn client_ip(
    parts_headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded: bool,
) -> IpAddr {
    if trust_forwarded {
        if let Some(ip) = parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip())
}

/// Extractor for the caller's IP address.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let trust = parts
            .extensions
            .get::<Platform>()
            .is_some_and(|p| p.config().trust_forwarded_for);
        Ok(ClientIp(client_ip(&parts.headers, peer, trust)))
    }
}

/// An authenticated caller (401 otherwise).
#[derive(Clone, Debug)]
pub struct Principal(pub Arc<Claims>);

impl Principal {
    pub fn user_id(&self) -> i64 {
        self.0.user_id
    }

    pub fn claims(&self) -> &Claims {
        &self.0
    }
}

fn auth_state(parts: &Parts) -> Result<AuthState, ApiError> {
    parts
        .extensions
        .get::<AuthState>()
        .cloned()
        .ok_or_else(|| ApiError::internal("authentication layer missing from the router"))
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match auth_state(parts)? {
            AuthState::Authenticated(claims) => Ok(Principal(claims)),
            AuthState::Anonymous => Err(ApiError::not_authenticated()),
            AuthState::Invalid => Err(ApiError::token_not_valid()),
        }
    }
}

/// An optional caller: anonymous is `None`, but an invalid token is still 401.
#[derive(Clone, Debug)]
pub struct MaybePrincipal(pub Option<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MaybePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match auth_state(parts)? {
            AuthState::Authenticated(claims) => Ok(MaybePrincipal(Some(Principal(claims)))),
            AuthState::Anonymous => Ok(MaybePrincipal(None)),
            AuthState::Invalid => Err(ApiError::token_not_valid()),
        }
    }
}

/// The project a request acts in, with the caller's role there. Only this module can build
/// one, so a tenant data function that takes it cannot be called without the checks.
#[derive(Clone, Debug)]
pub struct ProjectScope {
    project_id: i64,
    user_id: i64,
    role: Option<Role>,
    is_superuser: bool,
}

impl ProjectScope {
    pub fn project_id(&self) -> i64 {
        self.project_id
    }

    pub fn user_id(&self) -> i64 {
        self.user_id
    }

    pub fn role(&self) -> Option<Role> {
        self.role
    }

    pub fn is_superuser(&self) -> bool {
        self.is_superuser
    }

    /// The platform acting in this scope's project on this caller's behalf, with a service's
    /// grants (admin): what one service uses to call another in-process (an order reserving
    /// stock for a customer who may not move stock himself). The project cannot change.
    pub fn as_service(&self) -> ProjectScope {
        ProjectScope {
            role: Some(Role::Admin),
            ..self.clone()
        }
    }

    /// The platform acting in a project for a background job of its own (a reconciler undoing
    /// what an interrupted request left): no user, the service's role.
    pub fn for_job(project_id: i64) -> ProjectScope {
        ProjectScope {
            project_id,
            user_id: 0,
            role: Some(Role::Admin),
            is_superuser: false,
        }
    }

    /// The platform acting in an event's project, for the effects its consumers cause (an order
    /// confirmed once paid). Events come from the platform's own outboxes, so their project is
    /// trusted; `None` for an event without one.
    pub fn for_event(envelope: &crate::events::Envelope) -> Option<ProjectScope> {
        Some(ProjectScope {
            project_id: envelope.project_id?,
            user_id: envelope.actor_id.unwrap_or(0),
            role: Some(Role::Admin),
            is_superuser: false,
        })
    }

    /// Step 3 of the check: superuser, else the role's default grants.
    pub fn require(&self, codename: &str, grants: &Grants) -> Result<(), ApiError> {
        if self.is_superuser || self.role.is_some_and(|r| role_allows(r, codename, grants)) {
            Ok(())
        } else {
            Err(ApiError::permission_denied())
        }
    }
}

/// `X-Project-ID` and its spellings; `Some(Err)` when present but not an integer.
pub fn project_header(headers: &HeaderMap) -> Option<Result<i64, ()>> {
    ["x-project-id", "project-id"].iter().find_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().parse::<i64>().map_err(|_| ()))
    })
}

/// The scope of a project named by the request itself (a URL like `project/{username}/…`),
/// checked against `directory`: `None` when the caller may not act there (the caller answers
/// 404, not 403). Superusers act as admins of any project; platform staff read any project.
pub async fn scope_in(
    principal: &Principal,
    project_id: i64,
    directory: &dyn MembershipDirectory,
) -> Result<Option<ProjectScope>, ApiError> {
    let claims = principal.claims();
    let role = directory.role_of(claims.user_id, project_id).await?;
    let role = match role {
        Some(role) => Some(role),
        None if (claims.is_superuser || claims.is_staff)
            && directory.project_exists(project_id).await? =>
        {
            Some(if claims.is_superuser {
                Role::Admin
            } else {
                Role::Viewer
            })
        }
        None => return Ok(None),
    };
    Ok(Some(ProjectScope {
        project_id,
        user_id: claims.user_id,
        role,
        is_superuser: claims.is_superuser,
    }))
}

/// Steps 1–2 of the check: who, and in which project.
pub async fn resolve_scope(
    platform: &Platform,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<ProjectScope, ApiError> {
    let claims = principal.claims();
    let requested = match project_header(headers) {
        Some(Ok(id)) => Some(id),
        Some(Err(())) => {
            return Err(ApiError::field(
                "X-Project-ID",
                "A valid integer is required.",
            ));
        }
        None => None,
    };
    let scope = |project_id, role| ProjectScope {
        project_id,
        user_id: claims.user_id,
        role,
        is_superuser: claims.is_superuser,
    };
    match (requested, claims.project_id) {
        (None, None) => Err(ApiError::bad_request(
            "project_required",
            "Project ID is required. Provide the X-Project-ID header or a project-scoped token.",
        )),
        (None, Some(token_project)) => Ok(scope(token_project, claims.role)),
        (Some(p), Some(token_project)) if p == token_project => Ok(scope(p, claims.role)),
        (Some(p), _) => {
            let directory = platform
                .memberships()
                .ok_or_else(|| ApiError::internal("no membership directory installed"))?;
            let role = directory.role_of(claims.user_id, p).await?;
            match role {
                Some(role) => Ok(scope(p, Some(role))),
                None if claims.is_superuser && directory.project_exists(p).await? => {
                    Ok(scope(p, Some(Role::Admin)))
                }
                None => Err(ApiError::not_project_member()),
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ProjectScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let platform = parts
            .extensions
            .get::<Platform>()
            .cloned()
            .ok_or_else(|| ApiError::internal("platform missing from the router"))?;
        resolve_scope(&platform, &principal, &parts.headers).await
    }
}

/// Who may read a project's public data: a member (full view), or anyone naming the project
/// with `X-Project-ID` on a public route (public rows and fields only). `viewer` is the
/// signed-in non-member, if any: they see exactly the anonymous view, and on a members-only
/// resource they are told they are not a member (403) rather than that nothing exists.
#[derive(Clone, Debug)]
pub enum ReadScope {
    Member(ProjectScope),
    Public {
        project_id: i64,
        viewer: Option<i64>,
    },
}

impl ReadScope {
    pub fn project_id(&self) -> i64 {
        match self {
            ReadScope::Member(s) => s.project_id(),
            ReadScope::Public { project_id, .. } => *project_id,
        }
    }

    pub fn member(&self) -> Option<&ProjectScope> {
        match self {
            ReadScope::Member(s) => Some(s),
            ReadScope::Public { .. } => None,
        }
    }
}

/// A member's scope when the caller has one; otherwise the project named by `X-Project-ID`
/// (which must exist), read publicly. No project at all → 400 `project_required`.
pub async fn resolve_read_scope(
    platform: &Platform,
    principal: Option<&Principal>,
    headers: &HeaderMap,
) -> Result<ReadScope, ApiError> {
    if let Some(principal) = principal {
        match resolve_scope(platform, principal, headers).await {
            Ok(scope) => return Ok(ReadScope::Member(scope)),
            Err(e) if e.code() == "not_project_member" => {}
            Err(e) => return Err(e),
        }
    }
    match project_header(headers) {
        Some(Ok(project_id)) => {
            let directory = platform
                .memberships()
                .ok_or_else(|| ApiError::internal("no membership directory installed"))?;
            if directory.project_exists(project_id).await? {
                Ok(ReadScope::Public {
                    project_id,
                    viewer: principal.map(Principal::user_id),
                })
            } else {
                Err(ApiError::not_found())
            }
        }
        Some(Err(())) => Err(ApiError::field(
            "X-Project-ID",
            "A valid integer is required.",
        )),
        None => Err(ApiError::bad_request(
            "project_required",
            "Project ID is required. Provide the X-Project-ID header or a project-scoped token.",
        )),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReadScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybePrincipal(principal) = MaybePrincipal::from_request_parts(parts, state).await?;
        let platform = parts
            .extensions
            .get::<Platform>()
            .cloned()
            .ok_or_else(|| ApiError::internal("platform missing from the router"))?;
        resolve_read_scope(&platform, principal.as_ref(), &parts.headers).await
    }
}

/// Who acts on a customer route (order.md §1: carts, own orders): a member of the project, an
/// authenticated non-member of the project named by `X-Project-ID`, or an anonymous guest of that
/// project (holding an `X-Guest-Token` once one was issued). Rows are filtered by the shopper, so
/// nothing here grants access to other people's data.
#[derive(Clone, Debug)]
pub enum Shopper {
    Member(ProjectScope),
    Customer {
        project_id: i64,
        user_id: i64,
    },
    Guest {
        project_id: i64,
        token: Option<String>,
    },
}

impl Shopper {
    pub fn project_id(&self) -> i64 {
        match self {
            Shopper::Member(s) => s.project_id(),
            Shopper::Customer { project_id, .. } | Shopper::Guest { project_id, .. } => *project_id,
        }
    }

    /// The authenticated user, member or not; `None` for a guest.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Shopper::Member(s) => Some(s.user_id()),
            Shopper::Customer { user_id, .. } => Some(*user_id),
            Shopper::Guest { .. } => None,
        }
    }

    pub fn member(&self) -> Option<&ProjectScope> {
        match self {
            Shopper::Member(s) => Some(s),
            _ => None,
        }
    }

    /// The platform acting in the shopper's project on the shopper's behalf (an order placed at
    /// checkout reserves stock and asks billing for coupons). The user id is the shopper's, 0
    /// for a guest; the grants are a service's, so callers decide first what the shopper may do.
    pub fn as_service(&self) -> ProjectScope {
        ProjectScope {
            project_id: self.project_id(),
            user_id: self.user_id().unwrap_or(0),
            role: Some(Role::Admin),
            is_superuser: false,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Shopper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybePrincipal(principal) = MaybePrincipal::from_request_parts(parts, state).await?;
        let platform = parts
            .extensions
            .get::<Platform>()
            .cloned()
            .ok_or_else(|| ApiError::internal("platform missing from the router"))?;
        let read = resolve_read_scope(&platform, principal.as_ref(), &parts.headers).await?;
        Ok(match (read, principal) {
            (ReadScope::Member(scope), _) => Shopper::Member(scope),
            (ReadScope::Public { project_id, .. }, Some(p)) => Shopper::Customer {
                project_id,
                user_id: p.user_id(),
            },
            (ReadScope::Public { project_id, .. }, None) => Shopper::Guest {
                project_id,
                token: parts
                    .headers
                    .get("x-guest-token")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty()),
            },
        })
    }
}

/// Adds the caller to the response for the access log.
pub fn tag_actor(
    mut response: Response,
    user_id: Option<i64>,
    project_id: Option<i64>,
) -> Response {
    response.extensions_mut().insert(RequestActor {
        user_id,
        project_id,
    });
    response
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        ApiError::token_not_valid().into_response()
    }
}
