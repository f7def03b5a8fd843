//! One error type for the whole server. Inner layers return it; the HTTP edge turns it into
//! `{"code": N, "message": "…"}`. The cause of an internal error goes to the log, never to the
//! client: a database error text in a response body helps an attacker and nobody else.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: the request itself is malformed (bad JSON, bad query parameter, bad id).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: authenticated but not allowed, or a business limit (max_subscribers).
    #[error("{0}")]
    Forbidden(String),
    /// 404: absent, or belongs to another reseller (which must look the same).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// 412: If-Match did not match the current ETag.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid; always names the field (and, once known, what the
    /// request held there).
    #[error("{field}: {message}")]
    Validation {
        field: String,
        message: String,
        input: Option<String>,
        /// Other fields' problems found in the same request: (field, message).
        more: Vec<(String, String)>,
    },
    /// 423: the object is still in use by others.
    #[error("{0}")]
    Locked(String),
    #[error("too many failed attempts, retry in {0} s")]
    TooManyRequests(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
            input: None,
            more: Vec::new(),
        }
    }

    /// A validation error of another object's field, named as the field it came from here
    /// (an extension's `macaddr` is its phone's `identifier`).
    pub fn renamed_field(self, from: &str, to: &str) -> Self {
        match self {
            Error::Validation {
                field,
                message,
                input,
                more,
            } if field == from => Error::Validation {
                field: to.into(),
                message,
                input,
                more,
            },
            e => e,
        }
    }

    /// A validation error told what the request held at its field (`doc`, the request's
    /// document; `lines[0].label` is looked up as a path).
    pub fn with_input(self, doc: &serde_json::Value) -> Self {
        match self {
            Error::Validation {
                field,
                message,
                input: None,
                more,
            } => {
                let mut at = Some(doc);
                for part in field.split('.') {
                    let (name, index) = match part.split_once('[') {
                        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                        None => (part, None),
                    };
                    at = at.and_then(|v| v.get(name));
                    if let Some(i) = index {
                        at = at.and_then(|v| v.get(i));
                    }
                }
                // A secret is never echoed (answers end up in clients' logs).
                let last = field.rsplit('.').next().unwrap_or("");
                let secret = ["pass", "secret", "token"].iter().any(|w| last.contains(w));
                let input = match at {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(_) if secret => "********".into(),
                    Some(serde_json::Value::String(s)) => s.chars().take(100).collect(),
                    Some(v) => v.to_string().chars().take(100).collect(),
                };
                Error::Validation {
                    field,
                    message,
                    input: Some(input),
                    more,
                }
            }
            other => other,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Error::Internal(e.into())
    }
}

/// Unique-constraint violations become a 422 naming the field; everything else from the
/// database is internal. Index names are chosen so that both SQLite's message
/// ("UNIQUE constraint failed: subscribers.username, …") and PostgreSQL's constraint name
/// ("uq_subscribers_username") identify the field.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                let hay = format!("{} {}", db.constraint().unwrap_or(""), db.message());
                for (needle, field, msg) in UNIQUE_FIELDS {
                    if hay.contains(needle) {
                        return Error::invalid(*field, *msg);
                    }
                }
                return Error::Conflict("an object with these values already exists".into());
            }
        }
        if let sqlx::Error::Database(db) = &e {
            // PostgreSQL's "character not in repertoire" / "untranslatable character": text
            // the edge let through (it checks NUL everywhere); a client error, never a 500.
            if matches!(db.code().as_deref(), Some("22021") | Some("22P05")) {
                return Error::BadRequest("text holds a character that cannot be stored".into());
            }
        }
        if let sqlx::Error::PoolTimedOut = e {
            return Error::Unavailable("database busy, retry".into());
        }
        if let Some(why) = unavailable(&e) {
            // Nothing is claimed done: the client is told to try again (a write whose commit
            // was cut off may or may not have happened; its journal entry says which).
            tracing::warn!("database unavailable: {e}");
            return Error::Unavailable(format!("database unavailable ({why}), retry"));
        }
        Error::Internal(e.into())
    }
}

/// Whether a database error means "not now" rather than "wrong": the connection is gone, the
/// server is shutting down or starting, a standby does not take writes yet (a failover in
/// progress), or the transaction lost a serialization race.
fn unavailable(e: &sqlx::Error) -> Option<&'static str> {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some("connection lost"),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Some("connection lost"),
        sqlx::Error::Protocol(_) => Some("connection broken"),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            match code.as_ref() {
                c if c.starts_with("08") => Some("connection lost"),
                "57P01" | "57P02" => Some("server shutting down"),
                "57P03" => Some("server starting"),
                "25006" => Some("read-only: failover in progress"),
                "53300" => Some("too many connections"),
                "40001" | "40P01" => Some("concurrent update"),
                // SQLite (extended result codes): busy past the busy timeout. (LOCKED is a
                // conflict on one connection, a fault, not a moment to wait out.)
                "5" | "261" | "517" | "773" => Some("database busy"),
                _ => None,
            }
        }
        _ => None,
    }
}

const UNIQUE_FIELDS: &[(&str, &str, &str)] = &[
    (
        "pbx_extensions_number",
        "extension",
        "is an extension of this tenant already",
    ),
    (
        "pbx_extensions.tenant_id, pbx_extensions.extension",
        "extension",
        "is an extension of this tenant already",
    ),
    (
        "pbx_ringgroups_number",
        "number",
        "is a ring group of this tenant already",
    ),
    (
        "pbx_ringgroups.tenant_id, pbx_ringgroups.number",
        "number",
        "is a ring group of this tenant already",
    ),
    (
        "pbx_inboundroutes_number",
        "number",
        "has an inbound route already",
    ),
    (
        "pbx_inboundroutes.tenant_id, pbx_inboundroutes.carrier",
        "number",
        "has an inbound route already",
    ),
    (
        "pbx_tenants_customer",
        "customer_id",
        "this customer is a tenant already",
    ),
    (
        "pbx_tenants.customer_id",
        "customer_id",
        "this customer is a tenant already",
    ),
    (
        "pbx_tenants_name",
        "name",
        "a tenant with this name already exists",
    ),
    (
        "pbx_tenants.reseller_id, pbx_tenants.name",
        "name",
        "a tenant with this name already exists",
    ),
    (
        "subscribers_username",
        "username",
        "already exists in this domain",
    ),
    (
        "subscribers.username",
        "username",
        "already exists in this domain",
    ),
    (
        "subscribers_webusername",
        "webusername",
        "already exists in this domain",
    ),
    (
        "subscribers.webusername",
        "webusername",
        "already exists in this domain",
    ),
    ("numbers_e164", "number", "is already assigned"),
    ("numbers.cc", "number", "is already assigned"),
    ("domains_domain", "domain", "already exists"),
    ("domains.domain", "domain", "already exists"),
    (
        "billing_profiles_handle",
        "handle",
        "already exists for this reseller",
    ),
    (
        "billing_profiles.reseller_id",
        "handle",
        "already exists for this reseller",
    ),
    (
        "resellers_name",
        "name",
        "reseller with this name already exists",
    ),
    (
        "resellers.name",
        "name",
        "reseller with this name already exists",
    ),
    (
        "resellers_contract",
        "contract_id",
        "reseller with this contract already exists",
    ),
    (
        "resellers.contract_id",
        "contract_id",
        "reseller with this contract already exists",
    ),
    ("admins_login", "login", "already exists"),
    ("admins.login", "login", "already exists"),
    ("subscribers_uuid", "uuid", "already exists"),
    ("sipservers_name", "name", "already exists"),
    ("sipservers.name", "name", "already exists"),
    ("subscribers.uuid", "uuid", "already exists"),
];

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(e.into())
    }
}

/// Validation problems gathered across a request's fields, so that one answer names every
/// field that needs a change (the first as NGCP's `field`, all in `errors`).
#[derive(Default)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    /// The value of a check, or `None` with its problems noted; any other error goes on.
    pub fn check<T>(&mut self, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Error::Validation {
                field,
                message,
                more,
                ..
            }) => {
                self.0.push((field, message));
                self.0.extend(more);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The value of a check, or a stand-in (its type's default) with its problems noted: the
    /// stand-in is never used, as [`Problems::finish`] then fails.
    pub fn value<T: Default>(&mut self, r: Result<T>) -> Result<T> {
        Ok(self.check(r)?.unwrap_or_default())
    }

    pub fn note(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a problem of `field` is noted.
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    /// The gathered problems as one error, if there are any.
    pub fn finish(self) -> Result<()> {
        let mut all = self.0.into_iter();
        match all.next() {
            None => Ok(()),
            Some((field, message)) => Err(Error::Validation {
                field,
                message,
                input: None,
                more: all.collect(),
            }),
        }
    }
}
