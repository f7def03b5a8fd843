//! Types and rules, without HTTP and without SQL. Input becomes typed, validated values here,
//! at the edge; inner code never re-validates strings.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [&'static str] = &[$($s),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $s),+ } }
            pub fn parse(field: &str, s: &str) -> Result<Self> {
                match s { $($s => Ok($name::$variant),)+ _ => Err(Error::invalid(field,
                    format!("'{s}' is not a valid value: must be one of {}", Self::ALL.join(", ")))) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Lifecycle of a customer (Sipwise contract status).
    CustomerStatus { Active = "active", Pending = "pending", Locked = "locked", Terminated = "terminated" }
);
string_enum!(
    /// Lifecycle of a subscriber.
    SubscriberStatus { Active = "active", Locked = "locked", Terminated = "terminated" }
);
string_enum!(CustomerType { Sipaccount = "sipaccount", Pbxaccount = "pbxaccount" });
string_enum!(ResellerStatus { Active = "active", Locked = "locked", Terminated = "terminated" });
string_enum!(
    /// `admin` may do everything; `reseller` only within its reseller.
    Role { Admin = "admin", Reseller = "reseller" }
);

/// A string meant to hold decimal digits, accepted from JSON as a string or a non-negative
/// integer (Sipwise's own clients send `cc => 43`); [`Number::parse`] checks the digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digits(pub String);

impl<'de> Deserialize<'de> for Digits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Digits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string of digits or a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Digits, E> {
                Ok(Digits(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Digits, E> {
                if v < 0 {
                    return Err(E::custom("must not be negative"));
                }
                Ok(Digits(v.to_string()))
            }
            // Checked by `Number::parse`, with the request's other fields (one answer names
            // every field that needs a change).
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Digits, E> {
                Ok(Digits(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl utoipa::PartialSchema for Digits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]*$"))
            .description(Some("digits; an integer is accepted too"))
            .into()
    }
}
impl ToSchema for Digits {}

/// A telephone number as Sipwise splits it: country code, area code, subscriber number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberInput {
    pub cc: Digits,
    #[serde(default = "empty_digits")]
    pub ac: Digits,
    pub sn: Digits,
    /// Returned by voxprov in representations; ignored on input.
    #[serde(default, skip_serializing)]
    #[schema(read_only)]
    pub number_id: Option<serde_json::Value>,
}

fn empty_digits() -> Digits {
    Digits(String::new())
}

/// A validated E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number {
    pub cc: String,
    pub ac: String,
    pub sn: String,
}

impl Number {
    /// `strict`: E.164's 15 digits at most; otherwise NGCP's widths (see below).
    pub fn parse(field: &str, n: &NumberInput, strict: bool) -> Result<Number> {
        let (cc, ac, sn) = (&n.cc.0, &n.ac.0, &n.sn.0);
        for (part, v) in [("cc", cc), ("ac", ac), ("sn", sn)] {
            if !v.chars().all(|c| c.is_ascii_digit()) {
                let shown: String = v.chars().take(40).collect();
                return Err(Error::invalid(
                    format!("{field}.{part}"),
                    format!("'{shown}' is not a string of digits"),
                ));
            }
        }
        if cc.is_empty() || cc.len() > 3 || cc.starts_with('0') {
            return Err(Error::invalid(
                format!("{field}.cc"),
                "must be a country code of 1 to 3 digits, not starting with 0",
            ));
        }
        if sn.is_empty() {
            return Err(Error::invalid(format!("{field}.sn"), "must not be empty"));
        }
        // E.164 allows 15 digits; NGCP stores up to 7 in ac and 31 in sn (national
        // numbering plans and service numbers beyond E.164), and its clients send such numbers:
        // accepted unless the request asks for strict handling.
        if strict {
            if cc.len() + ac.len() + sn.len() > 15 {
                return Err(Error::invalid(
                    field,
                    "cc, ac and sn together must not exceed 15 digits (E.164)",
                ));
            }
        } else if ac.len() > 7 || sn.len() > 31 {
            return Err(Error::invalid(
                field,
                "ac must be at most 7 digits and sn at most 31",
            ));
        }
        Ok(Number {
            cc: cc.clone(),
            ac: ac.clone(),
            sn: sn.clone(),
        })
    }
    /// NGCP's words for a number someone else has, which its clients match on.
    pub fn taken(&self) -> String {
        format!(
            "Number '{}'-'{}'-'{}' already exists (+{})",
            self.cc,
            self.ac,
            self.sn,
            self.e164()
        )
    }
    pub fn e164(&self) -> String {
        format!("{}{}{}", self.cc, self.ac, self.sn)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.e164())
    }
}

/// Optional text: trims nothing, but bounds the length and refuses control characters.
pub fn text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>> {
    match v {
        None => Ok(None),
        Some(s) => Ok(Some(required_text(field, s, max)?)),
    }
}

pub fn required_text(field: &str, s: String, max: usize) -> Result<String> {
    if s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(s)
}

pub fn non_empty(field: &str, s: String, max: usize) -> Result<String> {
    if s.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    required_text(field, s, max)
}

/// SIP user part: letters, digits and the unreserved marks that SIP servers and phones all
/// accept; 1–64 characters, what Kamailio's and OpenSIPS's username columns hold (a longer one
/// could never be delivered).
pub fn sip_username(field: &str, s: &str) -> Result<String> {
    if s.is_empty() || s.len() > 64 {
        return Err(Error::invalid(field, "must be 1 to 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+~!*'()".contains(c))
    {
        return Err(Error::invalid(
            field,
            "may contain only letters, digits and . _ - + ~ ! * ' ( )",
        ));
    }
    Ok(s.to_string())
}

/// A SIP domain: a DNS name or an IPv4 address, lower-cased; at most 64 characters, what the
/// SIP servers' domain columns hold.
pub fn domain_name(field: &str, s: &str) -> Result<String> {
    let s = s.to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                // '_' as NGCP accepts it (SIP domains are names, not only DNS host names)
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !ok {
        return Err(Error::invalid(
            field,
            format!("'{s}' is not a valid domain name"),
        ));
    }
    Ok(s)
}

pub fn email(field: &str, v: Option<String>) -> Result<Option<String>> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            let ok = s.len() <= 254
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && s.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
            if !ok {
                return Err(Error::invalid(
                    field,
                    format!("'{s}' is not a valid email address"),
                ));
            }
            Ok(Some(s))
        }
    }
}

/// Deserializes a present field as `Some(value)`, so that with `#[serde(default)]` an absent
/// field is `None` and an explicit null is `Some(None)`.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Who is acting, resolved from the credentials of a request (or the system itself).
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<i64>,
    pub name: String,
    pub role: Role,
    pub reseller_id: Option<i64>,
    pub read_only: bool,
    /// The client's address, for the journal.
    pub client: Option<String>,
    /// The admin behind the credentials: the admin itself, or an API key's owner.
    pub admin_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Admin,
    ApiKey,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Admin => "admin",
            ActorKind::ApiKey => "apikey",
            ActorKind::System => "system",
        }
    }
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            kind: ActorKind::System,
            id: None,
            name: "system".into(),
            role: Role::Admin,
            reseller_id: None,
            read_only: false,
            client: None,
            admin_id: None,
        }
    }
    /// The reseller this actor is confined to; `None` for admins, who see everything.
    pub fn scope(&self) -> Option<i64> {
        match self.role {
            Role::Admin => None,
            Role::Reseller => Some(self.reseller_id.unwrap_or(-1)),
        }
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    /// Writes need a role that is not read-only.
    pub fn check_write(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::Forbidden(
                "read-only credentials cannot change anything".into(),
            ));
        }
        Ok(())
    }
    pub fn check_admin(&self) -> Result<()> {
        if !self.is_admin() {
            return Err(Error::Forbidden("only admins may do this".into()));
        }
        Ok(())
    }
    /// The reseller an object created by this actor belongs to: a reseller's own, always;
    /// an admin must say which.
    pub fn owning_reseller(&self, given: Option<i64>) -> Result<i64> {
        match self.scope() {
            Some(own) => Ok(own),
            None => given.ok_or_else(|| Error::invalid("reseller_id", "is required")),
        }
    }
}

/// A subscriber's SIP password checked against the operator's policy (422 naming `field`).
pub fn sip_password(
    policy: &crate::config::PasswordPolicy,
    field: &str,
    password: &str,
    username: &str,
) -> Result<()> {
    let n = password.chars().count();
    if n < policy.min_length {
        return Err(Error::invalid(
            field,
            format!("must be at least {} characters", policy.min_length),
        ));
    }
    if policy.forbid_username
        && !username.is_empty()
        && password.to_lowercase().contains(&username.to_lowercase())
    {
        return Err(Error::invalid(field, "must not contain the username"));
    }
    if password.chars().all(|c| c.is_ascii_digit()) && n < policy.min_digits_only_length {
        return Err(Error::invalid(
            field,
            format!(
                "a password of digits only must be at least {} digits",
                policy.min_digits_only_length
            ),
        ));
    }
    Ok(())
}

/// What a credential may do: its role, the reseller it is confined to, read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub role: Role,
    pub reseller_id: Option<i64>,
    pub read_only: bool,
}

impl Rights {
    /// What both allow: an API key's rights are those it was made with, cut down to what its
    /// admin has *now*. `None` when nothing is left (a key made for reseller A, of an admin
    /// since moved to reseller B).
    pub fn intersect(self, other: Rights) -> Option<Rights> {
        let read_only = self.read_only || other.read_only;
        let (role, reseller_id) = match (self.role, other.role) {
            (Role::Admin, Role::Admin) => (Role::Admin, None),
            (Role::Admin, Role::Reseller) => (Role::Reseller, other.reseller_id),
            (Role::Reseller, Role::Admin) => (Role::Reseller, self.reseller_id),
            (Role::Reseller, Role::Reseller) => {
                if self.reseller_id != other.reseller_id || self.reseller_id.is_none() {
                    return None;
                }
                (Role::Reseller, self.reseller_id)
            }
        };
        Some(Rights {
            role,
            reseller_id,
            read_only,
        })
    }
}

/// An integer id accepted as a JSON number or a string of digits: Sipwise's Perl clients
/// take ids from Location headers with a regex and send them back as strings.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        I(i64),
        S(String),
    }
    match IntOrString::deserialize(d).map_err(|_| de::Error::custom("expected an integer"))? {
        IntOrString::I(i) => Ok(i),
        IntOrString::S(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("'{s}' is not an integer"))),
    }
}

pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "int")] i64);
    Option::<W>::deserialize(d).map(|o| o.map(|w| w.0))
}

/// An integer id that may be absent (outer `None`), null (`Some(None)`), or given as a number
/// or a digit string.
pub fn present_int<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<i64>>, D::Error> {
    opt_int(d).map(Some)
}

/// An IPv4 address seen as IPv6 (`::ffff:10.0.0.1`, as a dual-stack listener reports it) as
/// the IPv4 address it is; any other address as it is.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An address or a CIDR (`10.0.0.1`, `10.0.0.0/8`) as a network; `None` when it is neither.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    s.parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(Into::into))
}

/// The client behind trusted proxies: walking `X-Forwarded-For` (every such header's values,
/// in order) from the right, trusted hops are skipped and the first other address is the
/// client. Anything unreadable ends the walk (what is left of it came from the client's side
/// and may be forged): `None` then, or when every hop is trusted.
pub fn forwarded_client<'a>(
    hops: impl Iterator<Item = &'a str>,
    trusted: impl Fn(&std::net::IpAddr) -> bool,
) -> Option<std::net::IpAddr> {
    let hops: Vec<&str> = hops.flat_map(|v| v.split(',')).map(str::trim).collect();
    for h in hops.iter().rev() {
        match h.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => return None,
        }
    }
    None
}
