//! The error type's face on the wire: `{"code": N, "message": "…"}` (plus `field` and
//! `errors` on 422), the Sipwise shape. Internal causes are logged with their chain and never sent.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        if let Error::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut body = json!({ "code": status.as_u16(), "message": self.to_string() });
        if let Error::Validation {
            field,
            message,
            input,
            more,
        } = &self
        {
            // NGCP's form, which its clients match on; `field` names the field as well.
            body["message"] = json!(format!(
                "Validation failed. field='{field}', input='{}', errors='{message}'",
                input.as_deref().unwrap_or("")
            ));
            body["field"] = json!(field);
            // Each problem by itself, for clients that show errors at their fields (the
            // web UI): NGCP's message repeats the field and the input around it.
            let all = std::iter::once((field, message)).chain(more.iter().map(|(f, m)| (f, m)));
            body["errors"] = all
                .map(|(f, m)| json!({ "field": f, "message": m }))
                .collect();
        }
        let mut resp = (status, Json(body)).into_response();
        let h = resp.headers_mut();
        match &self {
            Error::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"api_admin_http\""),
                );
            }
            Error::TooManyRequests(secs) => {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            // The database is away (restarting, failing over): worth trying again shortly.
            Error::Unavailable(_) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        resp
    }
}

/// The status each kind of error answers with.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Unauthorized => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Locked(_) => StatusCode::LOCKED,
        Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
