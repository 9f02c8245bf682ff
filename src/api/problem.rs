//! RFC 9457 problem details (`application/problem+json`) and request parsing that answers with
//! them: JSON bodies naming the bad field, path and query values.

use crate::store::StoreError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// An error answer: status, title, detail and, for bad input, the field at fault.
#[derive(Debug)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Detail for the reader.
    pub detail: String,
    /// The field, query parameter or path segment at fault.
    pub field: Option<String>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Problem::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(d) => Problem::new(StatusCode::CONFLICT, d),
            StoreError::Invalid { field, reason } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{field}: {reason}"),
            )
            .field(field),
            other => {
                tracing::error!(error = %other, "store failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed; see the daemon's log",
                )
            }
        }
    }
}

/// Reads a JSON body as `T`: malformed JSON is 400, a wrong, missing or unknown field 422
/// naming it.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {inner}"),
            );
        }
        let field = crate::store::field_of(&e.path().to_string(), &inner.to_string(), "");
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {inner}"),
        )
        .field(field)
    })
}

/// Applies a JSON merge patch (RFC 7396, top level) to `current` and reads the result as `T`.
pub fn merge<T: DeserializeOwned>(current: &impl Serialize, patch: &[u8]) -> Result<T, Problem> {
    let patch: serde_json::Map<String, Value> = parse(patch)?;
    let mut value = serde_json::to_value(current).unwrap_or_default();
    for (k, v) in patch {
        value[k] = v;
    }
    parse(value.to_string().as_bytes())
}

/// A path parameter, answered with a problem when it does not parse.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| Params(t))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()).field("path"))
    }
}

/// Query parameters, answered with a problem (naming the parameter) when they do not parse.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryOf<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| QueryOf(t))
            .map_err(|e| {
                let field = query_field(&e).unwrap_or_else(|| "query".into());
                Problem::new(StatusCode::BAD_REQUEST, e.body_text()).field(field)
            })
    }
}

/// The parameter a query rejection is about, from the path serde followed (never the bad
/// value, which serde also quotes for an unknown variant).
fn query_field(e: &axum::extract::rejection::QueryRejection) -> Option<String> {
    type PathError = serde_path_to_error::Error<serde::de::value::Error>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(p) = err.downcast_ref::<PathError>() {
            let field = crate::store::field_of(&p.path().to_string(), &p.inner().to_string(), "");
            return (!field.is_empty()).then_some(field);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn names_unknown_missing_and_mistyped_fields() {
        let e = parse::<Spec>(br#"{"name": "a", "colour": 1}"#).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.field.as_deref()),
            (422, Some("colour")),
            "{e:?}"
        );
        let e = parse::<Spec>(br#"{"inner": {"n": 1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"), "{e:?}");
        let e = parse::<Spec>(br#"{"name": "a", "inner": {"n": "x"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"), "{e:?}");
        let e = parse::<Spec>(br#"{"name": "a", "inner": {"m": 1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.m"), "{e:?}");
        assert_eq!(parse::<Spec>(b"{oops").unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn merge_patch_keeps_what_it_does_not_name() {
        let current = Spec {
            name: "a".into(),
            inner: Some(Inner { n: 1 }),
        };
        let s: Spec = merge(&current, br#"{"name": "b"}"#).unwrap();
        assert_eq!((s.name.as_str(), s.inner.unwrap().n), ("b", 1));
        let e = merge::<Spec>(&current, br#"{"nmae": "b"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("nmae"));
    }
}
