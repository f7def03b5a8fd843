//! The error type's face on the wire: `{"code": N, "message": "…"}` (plus `field` on 422),
//! the Sipwise shape. Internal causes are logged with their chain and never sent.

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if let Error::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request refused");
        }
        let mut body = json!({ "code": status.as_u16(), "message": self.to_string() });
        if let Error::Validation { field, .. } = &self {
            body["field"] = json!(field);
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
            _ => {}
        }
        resp
    }
}
