//! Request language: URL prefix (`/ar/api/v1/…`) → `Accept-Language` → `en`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

pub const SUPPORTED: [&str; 3] = ["en", "ar", "fr"];

/// Set by the gateway when the URL carried a language prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlLanguage(pub &'static str);

/// A supported language code for a tag such as `ar-SA` or `FR`.
pub fn supported(tag: &str) -> Option<&'static str> {
    let base = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    SUPPORTED.into_iter().find(|l| *l == base)
}

/// The first supported language of an `Accept-Language` header, by q-value.
pub fn from_accept_language(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let mut tags: Vec<(f32, &str)> = value
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse().ok())
                .unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0));
    tags.into_iter().find_map(|(_, tag)| supported(tag))
}

/// URL prefix → `Accept-Language` → `en`.
pub fn resolve(parts: &Parts) -> &'static str {
    parts
        .extensions
        .get::<UrlLanguage>()
        .map(|l| l.0)
        .or_else(|| from_accept_language(&parts.headers))
        .unwrap_or("en")
}

/// The language a response should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lang(pub &'static str);

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang(resolve(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            "de-DE, ar-SA;q=0.8, en;q=0.5".parse().expect("hv"),
        );
        assert_eq!(from_accept_language(&headers), Some("ar"));
        assert_eq!(supported("FR-ca"), Some("fr"));
        assert_eq!(supported("de"), None);
    }
}
