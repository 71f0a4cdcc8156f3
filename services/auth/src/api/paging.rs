//! This service's pagination (auth.md §1): `?page=&limit=` (alias `page_size`, max 100) →
//! `{count, total_pages, current_page, next, previous, limit, results}` with page numbers.

use axum::http::StatusCode;
use kernel::ApiError;
use serde_json::{json, Value};

pub struct PageRequest {
    pub page: i64,
    pub limit: i64,
}

fn positive(field: &str, value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::field(field, "A valid positive integer is required.")),
    }
}

impl PageRequest {
    pub fn parse(
        page: Option<&str>,
        limit: Option<&str>,
        page_size: Option<&str>,
        default_limit: i64,
    ) -> Result<Self, ApiError> {
        let field = if limit.is_some() {
            "limit"
        } else {
            "page_size"
        };
        Ok(Self {
            page: positive("page", page, 1)?,
            limit: positive(field, limit.or(page_size), default_limit)?.min(100),
        })
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.limit)
    }

    /// The page body; a page past the end is 404 `Invalid page.`.
    pub fn body(&self, count: i64, results: Vec<Value>) -> Result<Value, ApiError> {
        let total_pages = ((count + self.limit - 1) / self.limit).max(1);
        if self.page > total_pages {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Invalid page.",
            ));
        }
        Ok(json!({
            "count": count,
            "total_pages": total_pages,
            "current_page": self.page,
            "next": (self.page < total_pages).then_some(self.page + 1),
            "previous": (self.page > 1).then_some(self.page - 1),
            "limit": self.limit,
            "results": results,
        }))
    }
}
