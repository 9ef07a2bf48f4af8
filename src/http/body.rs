//! Extractors that turn bad input into the right error: malformed JSON → 400, valid
//! JSON with wrong values → 422 naming the field, too large → 413.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::error::Category;

use super::ApiError;

/// Request bodies above this answer 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Nothing needs compressed requests, and inflating one before the size limit
        // applies would let a small body take a lot of memory.
        let encoded = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            if encoded {
                return Err(ApiError::BadRequest(
                    "compressed request bodies are not accepted; send plain JSON".into(),
                ));
            }
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(format!("could not read the body: {e}"))
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

/// Parses JSON, telling syntax errors (400) from values of the wrong shape (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        // A type error can surface before a syntax error later in the text; only a
        // document that is valid JSON as a whole has "invalid values".
        let syntax = serde_json::from_slice::<IgnoredAny>(bytes).err();
        match inner.classify() {
            Category::Data if syntax.is_none() => {
                let field = match message.strip_prefix("missing field `") {
                    Some(rest) => rest.trim_end_matches('`').to_owned(),
                    None if path == "." => "body".to_owned(),
                    None => path,
                };
                ApiError::invalid(field, message)
            }
            Category::Data | Category::Syntax | Category::Eof | Category::Io => {
                let message = syntax.map_or(message, |e| e.to_string());
                ApiError::BadRequest(format!("malformed JSON: {message}"))
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// `?limit=&after=` of every listing.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub after: Option<String>,
}

/// What a listing may be narrowed to: members by `email`, pools by `product`,
/// sessions by `product`, `pool` and `user` (id or e-mail).
#[derive(Debug, Deserialize, Default)]
pub struct Filter {
    pub email: Option<String>,
    pub product: Option<String>,
    pub pool: Option<String>,
    pub user: Option<String>,
}

impl PageQuery {
    /// The page size: default 100, at most 1000.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n as usize),
            Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 1000")),
        }
    }
}
