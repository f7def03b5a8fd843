//! How the objects a support desk works with all day are shown: the columns that identify
//! them in lists (the one that names an object first; the rest fold away at phone width),
//! values as people read them (a number as +49 30 1234, a lock by its name, a customer by
//! its contact), and the order of an item page's fields. Collections without a view here
//! keep the generic table.

use std::collections::HashSet;

use super::*;

pub(super) struct Column {
    pub(super) title: &'static str,
    /// The API's `order_by` key, when the list can be sorted by this column.
    pub(super) sort: Option<&'static str>,
    /// Shown at phone width too.
    pub(super) keep: bool,
    pub(super) cell: fn(&Value, &Related) -> String,
}

/// The rows of a list page.
pub(super) const PAGE: usize = 25;

/// What a page's rows name but do not hold, read once per page.
#[derive(Default)]
pub(super) struct Related {
    /// What a reference field's id names: ("customer_id", 7) → the customer's contact's
    /// name, ("model_id", 3) → vendor and model, …
    names: HashMap<(&'static str, i64), String>,
    /// Subscriber ids with a registered contact.
    registered: HashSet<i64>,
    /// Subscriber ids without a contact found where a SIP server could not be asked.
    unsure: HashSet<i64>,
    /// Customer id → its subscribers (not terminated).
    counts: HashMap<i64, i64>,
}

fn s(o: &Value, k: &str) -> String {
    text_of(&o[k])
}

fn id(o: &Value, k: &str) -> Option<i64> {
    o[k].as_i64()
}

/// A number as people write it: +cc ac sn.
pub(super) fn number(n: &Value) -> String {
    if !n.is_object() {
        return String::new();
    }
    format!("+{} {} {}", s(n, "cc"), s(n, "ac"), s(n, "sn"))
        .trim()
        .to_string()
}

/// A subscriber's lock level by its name (NGCP's levels).
pub(super) fn lock_name(level: i64) -> &'static str {
    match level {
        0 => "none",
        1 => "foreign calls",
        2 => "outgoing calls",
        3 => "incoming and outgoing calls",
        4 => "global (no calls, no registration)",
        5 => "ported",
        _ => "unknown",
    }
}

fn subscriber_status(o: &Value) -> String {
    let lock = o["lock"].as_i64().unwrap_or(0);
    let status = s(o, "status");
    if lock == 0 || status == "terminated" {
        status
    } else {
        format!("{status}, locked: {}", lock_name(lock))
    }
}

fn named(r: &Related, customer: Option<i64>) -> String {
    match customer {
        Some(c) => r
            .names
            .get(&("customer_id", c))
            .cloned()
            .unwrap_or_else(|| format!("customer {c}")),
        None => String::new(),
    }
}

/// A contact's name as people say it: the company, else first and last name, else its email.
pub(super) fn contact_name(c: &Value) -> String {
    let company = s(c, "company");
    if !company.trim().is_empty() {
        return company;
    }
    let person = format!("{} {}", s(c, "firstname"), s(c, "lastname"))
        .trim()
        .to_string();
    if !person.is_empty() {
        return person;
    }
    s(c, "email")
}

impl Related {
    /// What an item page shows for a reference it knows the name of.
    pub(super) fn name_of(&self, field: &str, id: i64) -> Option<String> {
        let n = self.names.get(&(field, id))?;
        Some(match field {
            "customer_id" => format!("{n} (customer {id})"),
            _ => n.clone(),
        })
    }

    /// A device's lines as people read them: "1. bob@example.com (line, private)".
    pub(super) fn lines_text(&self, lines: &Value) -> String {
        let kind = |k: &str| {
            LINE_TYPES
                .iter()
                .find(|(v, _)| *v == k)
                .map(|(_, l)| l.to_string())
                .unwrap_or_else(|| k.to_string())
        };
        lines
            .as_array()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let who = match (l["subscriber_id"].as_i64(), l["target"].as_str()) {
                            (Some(sub), _) => self
                                .names
                                .get(&("subscriber_id", sub))
                                .cloned()
                                .unwrap_or_else(|| format!("subscriber {sub}")),
                            (None, Some(t)) => t.to_string(),
                            (None, None) => String::new(),
                        };
                        let label = l["label"]
                            .as_str()
                            .map(|x| format!(" \"{x}\""))
                            .unwrap_or_default();
                        format!("{}. {who} ({}){label}", i + 1, kind(&s(l, "type")))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// Whether subscriber `id` has a registered contact, as people read it.
    pub(super) fn registered(&self, id: i64) -> &'static str {
        if self.registered.contains(&id) {
            "yes"
        } else if self.unsure.contains(&id) {
            "unknown (a SIP server did not answer)"
        } else {
            "no"
        }
    }
}

/// A field's name as a label: words, without the `_id` of a reference.
pub(super) fn label(field: &str) -> String {
    let words = match field {
        "id" => "Id",
        "create_timestamp" => "Created",
        "modify_timestamp" => "Changed",
        "terminate_timestamp" => "Terminated",
        "identifier" => "MAC",
        "lock" => "Lock",
        "external_id" => "External id",
        "group_id" => "Carrier",
        "ip" => "IP address",
        "peer_auth_register" => "Registers at the carrier",
        "peer_auth_user" => "Auth user",
        "peer_auth_pass" => "Auth password",
        "peer_auth_realm" => "Auth realm",
        "callee_prefix" => "Called number prefix",
        "callee_pattern" => "Called number pattern (regex)",
        "caller_pattern" => "Caller pattern (regex)",
        "sip_code" => "SIP code",
        "sip_reason" => "SIP reason",
        "call_id" => "Call-ID",
        f => f.strip_suffix("_id").unwrap_or(f),
    };
    let mut out = words.replace('_', " ");
    if let Some(first) = out.get(0..1) {
        out = first.to_uppercase() + &out[1..];
    }
    out
}

/// One object of a collection, as a form's title names it.
pub(super) fn singular(name: &str) -> &str {
    match name {
        "subscribers" => "subscriber",
        "customers" => "customer",
        "customercontacts" => "contact",
        "pbxdevices" => "device",
        "sipservers" => "SIP server",
        "hooks" => "hook",
        "domains" => "domain",
        "billingprofiles" => "billing profile",
        "peeringgroups" => "carrier",
        "peeringservers" => "trunk",
        "peeringrules" => "outbound route",
        "resellers" => "reseller",
        "admins" => "admin",
        "pbxdevicemodels" => "device model",
        "pbxdeviceprofiles" => "device profile",
        "callforwards" => "call forward",
        "subscriberpreferences" => "preferences of subscriber",
        "pbxtenants" => "tenant",
        "pbxextensions" => "extension",
        "pbxringgroups" => "ring group",
        "pbxinboundroutes" => "inbound route",
        "pbxdaytimers" => "open hours",
        "cdrs" => "call record",
        other => other,
    }
}

/// A collection's name as a heading.
pub(super) fn heading(name: &str) -> String {
    match name {
        "subscribers" => "Subscribers".into(),
        "customers" => "Customers".into(),
        "pbxdevices" => "Devices".into(),
        "sipservers" => "SIP servers".into(),
        "hooks" => "Hooks".into(),
        "customercontacts" => "Contacts".into(),
        "peeringservers" => "Trunks".into(),
        "peeringgroups" => "Carriers".into(),
        "peeringrules" => "Outbound routes".into(),
        "pbxtenants" => "PBX tenants".into(),
        "pbxringgroups" => "Ring groups".into(),
        "pbxextensions" => "Extensions".into(),
        "cdrs" => "Calls".into(),
        other => other.to_string(),
    }
}

static SUBSCRIBERS: &[Column] = &[
    Column {
        title: "Subscriber",
        sort: Some("username"),
        keep: true,
        cell: |o, _| format!("{}@{}", s(o, "username"), s(o, "domain")),
    },
    Column {
        title: "Number",
        sort: None,
        keep: true,
        // Kept on one line at phone width.
        cell: |o, _| number(&o["primary_number"]).replace(' ', "\u{a0}"),
    },
    Column {
        title: "Name",
        sort: Some("display_name"),
        keep: false,
        cell: |o, _| s(o, "display_name"),
    },
    Column {
        title: "Customer",
        sort: Some("customer_id"),
        keep: false,
        cell: |o, r| named(r, id(o, "customer_id")),
    },
    Column {
        title: "Status",
        sort: Some("status"),
        keep: false,
        cell: |o, _| subscriber_status(o),
    },
    Column {
        title: "Registered",
        sort: None,
        keep: false,
        cell: |o, r| match id(o, "id") {
            Some(i) if r.registered.contains(&i) => "yes".into(),
            Some(i) if r.unsure.contains(&i) => "unknown".into(),
            _ => "no".into(),
        },
    },
];

static CUSTOMERS: &[Column] = &[
    Column {
        title: "Customer",
        sort: None,
        keep: true,
        cell: |o, r| {
            id(o, "contact_id")
                .and_then(|c| r.names.get(&("contact_id", c)).cloned())
                .unwrap_or_else(|| format!("customer {}", s(o, "id")))
        },
    },
    Column {
        title: "Status",
        sort: Some("status"),
        keep: true,
        cell: |o, _| s(o, "status"),
    },
    Column {
        title: "External id",
        sort: Some("external_id"),
        keep: false,
        cell: |o, _| s(o, "external_id"),
    },
    Column {
        title: "Type",
        sort: Some("type"),
        keep: false,
        cell: |o, _| s(o, "type"),
    },
    Column {
        title: "Subscribers",
        sort: None,
        keep: false,
        cell: |o, r| {
            id(o, "id")
                .and_then(|i| r.counts.get(&i))
                .map(|n| n.to_string())
                .unwrap_or_default()
        },
    },
    Column {
        title: "Id",
        sort: Some("id"),
        keep: false,
        cell: |o, _| s(o, "id"),
    },
];

static DEVICES: &[Column] = &[
    Column {
        title: "MAC",
        sort: Some("identifier"),
        keep: true,
        cell: |o, _| s(o, "identifier"),
    },
    Column {
        title: "Station",
        sort: None,
        keep: true,
        cell: |o, _| s(o, "station_name"),
    },
    Column {
        title: "Model",
        sort: None,
        keep: false,
        cell: |o, r| {
            id(o, "model_id")
                .and_then(|m| r.names.get(&("model_id", m)).cloned())
                .unwrap_or_default()
        },
    },
    Column {
        title: "Customer",
        sort: None,
        keep: false,
        cell: |o, r| named(r, id(o, "customer_id")),
    },
    Column {
        title: "Last fetch",
        sort: Some("last_fetch"),
        keep: false,
        cell: |o, _| match o["last_fetch_timestamp"].as_str() {
            Some(t) => format!("{t} ({})", s(o, "last_fetch_file")),
            None => "never".into(),
        },
    },
];

static SIPSERVERS: &[Column] = &[
    Column {
        title: "SIP server",
        sort: Some("name"),
        keep: true,
        cell: |o, _| s(o, "name"),
    },
    Column {
        title: "State",
        sort: None,
        keep: true,
        cell: |o, _| {
            let st = &o["status"];
            let state = s(st, "state");
            match st["last_error"].as_str() {
                Some(e) if state != "ok" => format!("{state}: {e}"),
                _ => state,
            }
        },
    },
    Column {
        title: "Backlog",
        sort: None,
        keep: false,
        cell: |o, _| s(&o["status"], "backlog"),
    },
    Column {
        title: "Last success",
        sort: None,
        keep: false,
        cell: |o, _| match o["status"]["last_success_at"].as_str() {
            Some(t) => t.to_string(),
            None => "never".into(),
        },
    },
    Column {
        title: "Role",
        sort: None,
        keep: false,
        cell: |o, _| format!("{} ({})", s(o, "role"), s(o, "driver")),
    },
    Column {
        title: "Enabled",
        sort: None,
        keep: false,
        cell: |o, _| {
            if o["enabled"] == json!(true) {
                "yes"
            } else {
                "no"
            }
            .into()
        },
    },
];

static HOOKS: &[Column] = &[
    Column {
        title: "Hook",
        sort: Some("name"),
        keep: true,
        cell: |o, _| s(o, "name"),
    },
    Column {
        title: "Status",
        sort: None,
        keep: true,
        cell: |o, _| match o["disabled_reason"].as_str() {
            Some(why) => format!("{}: {why}", s(o, "status")),
            None => s(o, "status"),
        },
    },
    Column {
        title: "Events",
        sort: None,
        keep: false,
        cell: |o, _| {
            o["events"]
                .as_array()
                .map(|a| a.iter().map(text_of).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        },
    },
    Column {
        title: "Phase",
        sort: None,
        keep: false,
        cell: |o, _| s(o, "phase"),
    },
    Column {
        title: "Calls",
        sort: None,
        keep: false,
        cell: |o, _| format!("{} {}", s(o, "method"), s(o, "url")),
    },
];

/// A trunk's registration on each SIP server, as people read it.
pub(super) fn registration_text(t: &Value) -> String {
    if t["peer_auth_register"] != json!(true) {
        return "not registering".into();
    }
    let states: Vec<String> = t["registration"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let mut x = format!("{} on SIP server {}", s(r, "state"), s(r, "sipserver_id"));
                    // Why it is not registered; once registered the detail is Kamailio's own.
                    if let Some(d) = r["detail"]
                        .as_str()
                        .filter(|d| !d.is_empty() && r["state"] != json!("registered"))
                    {
                        x.push_str(&format!(" ({d})"));
                    }
                    x
                })
                .collect()
        })
        .unwrap_or_default();
    if states.is_empty() {
        "not yet known".into()
    } else {
        states.join("; ")
    }
}

/// A reference's name when the page read it, else its id.
fn named_ref(o: &Value, r: &Related, field: &'static str) -> String {
    id(o, field)
        .and_then(|g| r.names.get(&(field, g)).cloned())
        .unwrap_or_else(|| s(o, field))
}

static TRUNKS: &[Column] = &[
    Column {
        title: "Trunk",
        sort: Some("name"),
        keep: true,
        cell: |o, _| s(o, "name"),
    },
    Column {
        title: "Registration",
        sort: None,
        keep: true,
        cell: |o, _| registration_text(o),
    },
    Column {
        title: "Gateway",
        sort: None,
        keep: false,
        cell: |o, _| {
            let proto = match o["transport"].as_i64() {
                Some(2) => "TCP",
                Some(3) => "TLS",
                _ => "UDP",
            };
            format!("{}:{} {proto}", s(o, "ip"), s(o, "port"))
        },
    },
    Column {
        title: "Carrier",
        sort: Some("group_id"),
        keep: false,
        cell: |o, r| named_ref(o, r, "group_id"),
    },
    Column {
        title: "Enabled",
        sort: None,
        keep: false,
        cell: |o, _| {
            if o["enabled"] == json!(true) {
                "yes"
            } else {
                "no"
            }
            .into()
        },
    },
];

static CARRIERS: &[Column] = &[
    Column {
        title: "Carrier",
        sort: Some("name"),
        keep: true,
        cell: |o, _| s(o, "name"),
    },
    Column {
        title: "Priority",
        sort: Some("priority"),
        keep: true,
        cell: |o, _| s(o, "priority"),
    },
    Column {
        title: "Description",
        sort: None,
        keep: false,
        cell: |o, _| s(o, "description"),
    },
];

static ROUTES: &[Column] = &[
    Column {
        title: "Called numbers",
        sort: None,
        keep: true,
        cell: |o, _| {
            let prefix = s(o, "callee_prefix");
            let mut x = if prefix.is_empty() {
                "any".to_string()
            } else {
                format!("starting {prefix}")
            };
            if let Some(p) = o["callee_pattern"].as_str().filter(|p| !p.is_empty()) {
                x.push_str(&format!(", matching {p}"));
            }
            x
        },
    },
    Column {
        title: "Carrier",
        sort: None,
        keep: true,
        cell: |o, r| named_ref(o, r, "group_id"),
    },
    Column {
        title: "Callers",
        sort: None,
        keep: false,
        cell: |o, _| {
            o["caller_pattern"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("any")
                .to_string()
        },
    },
    Column {
        title: "Description",
        sort: None,
        keep: false,
        cell: |o, _| s(o, "description"),
    },
];

/// Seconds as people read a call's length: 45 s, 3 min 05 s, 1 h 02 min.
fn call_length(secs: f64) -> String {
    let t = secs.round() as i64;
    match t {
        t if t < 60 => format!("{t} s"),
        t if t < 3600 => format!("{} min {:02} s", t / 60, t % 60),
        t => format!("{} h {:02} min", t / 3600, (t % 3600) / 60),
    }
}

/// An ISO 8601 time as `YYYY-MM-DD HH:MM:SS` (UTC, as the filters take it).
fn moment_text(v: &Value) -> String {
    text_of(v).replace('T', " ").chars().take(19).collect()
}

/// A call's outcome in words.
pub(super) fn call_outcome(o: &Value) -> String {
    let code = s(o, "sip_code");
    match o["status"].as_str().unwrap_or("") {
        "ok" if o["end_time"].is_null() => "in progress".into(),
        "ok" => "answered".into(),
        "busy" => format!("busy ({code})"),
        "noanswer" => "not answered".into(),
        "cancel" => "cancelled by the caller".into(),
        "offline" => format!("not reachable ({code})"),
        other => {
            let why = s(o, "sip_reason");
            if why.is_empty() {
                format!("{other} ({code})")
            } else {
                format!("failed: {code} {why}")
            }
        }
    }
}

static CDRS: &[Column] = &[
    Column {
        title: "Started (UTC)",
        sort: Some("start_time"),
        keep: true,
        cell: |o, _| moment_text(&o["start_time"]),
    },
    Column {
        title: "From",
        sort: None,
        keep: true,
        cell: |o, _| s(o, "caller"),
    },
    Column {
        title: "To",
        sort: None,
        keep: true,
        cell: |o, _| {
            let (dialled, reached) = (s(o, "callee"), s(o, "destination"));
            if reached.is_empty() || reached.split('@').next() == Some(dialled.as_str()) {
                dialled
            } else {
                format!("{dialled} → {reached}")
            }
        },
    },
    Column {
        title: "Outcome",
        sort: None,
        keep: false,
        cell: |o, _| call_outcome(o),
    },
    Column {
        title: "Length",
        sort: Some("duration"),
        keep: false,
        cell: |o, _| {
            // Only an answered call has a length.
            o["duration"]
                .as_f64()
                .filter(|_| !o["answer_time"].is_null())
                .map(call_length)
                .unwrap_or_default()
        },
    },
    Column {
        title: "Direction",
        sort: None,
        keep: false,
        cell: |o, _| {
            match o["direction"].as_str().unwrap_or("") {
                "local" => "between subscribers",
                "out" => "outgoing",
                "in" => "incoming",
                "foreign" => "through",
                x => x,
            }
            .to_string()
        },
    },
    Column {
        title: "Trunk",
        sort: None,
        keep: false,
        cell: |o, _| s(o, "trunk"),
    },
    Column {
        title: "Customer",
        sort: None,
        keep: false,
        cell: |o, r| named_ref(o, r, "customer_id"),
    },
];

/// How a list's filter form asks for a field.
pub(super) enum FilterKind {
    Text,
    /// A day (the API takes `YYYY-MM-DD` as midnight UTC).
    Day,
    Choice(&'static [(&'static str, &'static str)]),
    /// An object of another collection, picked by name.
    Pick(&'static str),
}

/// A purpose-built filter form: (API filter, label, widget). Lists without one offer every
/// filter the API has, as text boxes.
pub(super) fn filter_fields(
    name: &str,
) -> Option<&'static [(&'static str, &'static str, FilterKind)]> {
    static CDR_FILTERS: &[(&str, &str, FilterKind)] = &[
        ("start_ge", "From (day, UTC)", FilterKind::Day),
        ("start_le", "Until (day, UTC, included)", FilterKind::Day),
        (
            "caller",
            "Caller (user@domain, * wildcard)",
            FilterKind::Text,
        ),
        ("callee", "Called number (* wildcard)", FilterKind::Text),
        (
            "status",
            "Outcome",
            FilterKind::Choice(&[
                ("ok", "answered"),
                ("busy", "busy"),
                ("noanswer", "not answered"),
                ("cancel", "cancelled"),
                ("offline", "not reachable"),
                ("other", "failed otherwise"),
            ]),
        ),
        (
            "direction",
            "Direction",
            FilterKind::Choice(&[
                ("local", "between subscribers"),
                ("out", "outgoing"),
                ("in", "incoming"),
                ("foreign", "through"),
            ]),
        ),
        ("customer_id", "Customer", FilterKind::Pick("customers")),
    ];
    match name {
        "cdrs" => Some(CDR_FILTERS),
        _ => None,
    }
}

/// Lists that belong with a list (a carrier's trunks and routes): (label, collection).
pub(super) fn see_also(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "peeringservers" => &[
            ("Carriers", "peeringgroups"),
            ("Outbound routes", "peeringrules"),
        ],
        "peeringgroups" => &[
            ("Trunks", "peeringservers"),
            ("Outbound routes", "peeringrules"),
        ],
        "peeringrules" => &[("Carriers", "peeringgroups"), ("Trunks", "peeringservers")],
        _ => &[],
    }
}

/// The columns of a collection with a view of its own.
pub(super) fn columns(name: &str) -> Option<&'static [Column]> {
    Some(match name {
        "subscribers" => SUBSCRIBERS,
        "customers" => CUSTOMERS,
        "pbxdevices" => DEVICES,
        "sipservers" => SIPSERVERS,
        "hooks" => HOOKS,
        "peeringservers" => TRUNKS,
        "peeringgroups" => CARRIERS,
        "peeringrules" => ROUTES,
        "cdrs" => CDRS,
        _ => return None,
    })
}

/// Reads what `rows` of `name` refer to, through the API as the user (what they may not
/// see stays unnamed). One request per distinct object, at most a page's worth.
pub(super) async fn related(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    name: &str,
    rows: &[Value],
) -> Related {
    let mut r = Related::default();
    // A page's worth at most, whatever the caller passed.
    let distinct = |k: &str| -> Vec<i64> {
        let mut ids: Vec<i64> = rows.iter().filter_map(|o| id(o, k)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(PAGE);
        ids
    };
    let get = |uri: String| async move { api(app, actor, peer, Method::GET, &uri, None).await };
    // A customer by its contact's name.
    let contact = |c: i64| async move {
        let (st, ct) = get(format!("/api/customercontacts/{c}")).await;
        Some(contact_name(&ct)).filter(|n| st.is_success() && !n.is_empty())
    };
    for c in distinct("customer_id") {
        let (st, cust) = get(format!("/api/customers/{c}")).await;
        if let (true, Some(ct)) = (st.is_success(), id(&cust, "contact_id")) {
            if let Some(n) = contact(ct).await {
                r.names.insert(("customer_id", c), n);
            }
        }
    }
    for c in distinct("contact_id") {
        if let Some(n) = contact(c).await {
            r.names.insert(("contact_id", c), n);
        }
    }
    for (field, coll, key) in [
        ("billing_profile_id", "billingprofiles", "name"),
        ("reseller_id", "resellers", "name"),
        ("profile_id", "pbxdeviceprofiles", "name"),
        ("home_server_id", "sipservers", "name"),
        ("group_id", "peeringgroups", "name"),
        ("tenant_id", "pbxtenants", "name"),
        ("sipserver_id", "sipservers", "name"),
    ] {
        if name == "subscribers" && field == "profile_id" {
            continue; // a subscriber's profile_id is a subscriber profile
        }
        for i in distinct(field) {
            let (st, o) = get(format!("/api/{coll}/{i}")).await;
            if st.is_success() && !s(&o, key).is_empty() {
                r.names.insert((field, i), format!("{} ({i})", s(&o, key)));
            }
        }
    }
    // A device's lines by their subscribers' names.
    let mut line_subs: Vec<i64> = rows
        .iter()
        .flat_map(|o| o["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["subscriber_id"].as_i64())
        .collect();
    line_subs.sort_unstable();
    line_subs.dedup();
    line_subs.truncate(PAGE);
    for sub in line_subs {
        let (st, o) = get(format!("/api/subscribers/{sub}")).await;
        if st.is_success() {
            r.names.insert(
                ("subscriber_id", sub),
                format!("{}@{}", s(&o, "username"), s(&o, "domain")),
            );
        }
    }
    // A call's parties, when they are subscribers.
    for field in ["caller_subscriber_id", "callee_subscriber_id"] {
        for sub in distinct(field) {
            let (st, o) = get(format!("/api/subscribers/{sub}")).await;
            if st.is_success() {
                r.names.insert(
                    (field, sub),
                    format!("{}@{}", s(&o, "username"), s(&o, "domain")),
                );
            }
        }
    }
    for m in distinct("model_id") {
        let (st, model) = get(format!("/api/pbxdevicemodels/{m}")).await;
        if st.is_success() {
            r.names.insert(
                ("model_id", m),
                format!("{} {}", s(&model, "vendor"), s(&model, "model")),
            );
        }
    }
    if name == "subscribers" && !rows.is_empty() {
        // Each row's AoR asked on its own (not every registration there is), side by side so
        // that a slow SIP server costs its timeout once.
        let mut asks = tokio::task::JoinSet::new();
        for sub in distinct("id") {
            let (app, actor) = (app.clone(), actor.clone());
            asks.spawn(async move {
                let uri = format!("/api/subscriberregistrations/?subscriber_id={sub}");
                let (st, regs) = api(&app, &actor, peer, Method::GET, &uri, None).await;
                let any = !items(&regs, "subscriberregistrations").is_empty();
                let unsure = !st.is_success()
                    || regs["unanswered_sipservers"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty());
                (sub, any, unsure)
            });
        }
        while let Some(done) = asks.join_next().await {
            match done {
                Ok((sub, true, _)) => {
                    r.registered.insert(sub);
                }
                Ok((sub, false, true)) => {
                    r.unsure.insert(sub);
                }
                Ok(_) | Err(_) => {}
            }
        }
    }
    if name == "customers" {
        for c in distinct("id") {
            let (st, v) = get(format!("/api/subscribers/?customer_id={c}&rows=1")).await;
            if let (true, Some(n)) = (st.is_success(), v["total_count"].as_i64()) {
                r.counts.insert(c, n);
            }
        }
    }
    r
}

/// The fields an item page shows first, in this order (the rest follow alphabetically).
pub(super) fn first_fields(name: &str) -> &'static [&'static str] {
    match name {
        "subscribers" => &[
            "username",
            "domain",
            "primary_number",
            "alias_numbers",
            "display_name",
            "status",
            "lock",
            "customer_id",
            "email",
            "webusername",
            "external_id",
            "home_server_id",
        ],
        "customers" => &[
            "contact_id",
            "status",
            "type",
            "external_id",
            "billing_profile_id",
            "max_subscribers",
        ],
        "customercontacts" => &[
            "company",
            "firstname",
            "lastname",
            "email",
            "phonenumber",
            "street",
            "postcode",
            "city",
            "country",
        ],
        "pbxdevices" => &[
            "identifier",
            "station_name",
            "model_id",
            "customer_id",
            "profile_id",
            "lines",
            "last_fetch_timestamp",
            "last_fetch_file",
            "last_fetch_address",
            "last_fetch_user_agent",
            "fetch_count",
        ],
        "sipservers" => &["name", "status", "role", "driver", "enabled", "domains"],
        "hooks" => &[
            "name",
            "status",
            "disabled_reason",
            "events",
            "phase",
            "url",
        ],
        "pbxtenants" => &[
            "name",
            "description",
            "customer_id",
            "domain",
            "localdplan",
            "operator",
            "masteroclo",
        ],
        "peeringservers" => &[
            "name",
            "group_id",
            "registration",
            "ip",
            "host",
            "port",
            "transport",
            "enabled",
            "peer_auth_register",
            "peer_auth_user",
            "peer_auth_pass",
            "peer_auth_realm",
        ],
        "peeringgroups" => &["name", "priority", "description", "contract_id"],
        "peeringrules" => &[
            "group_id",
            "callee_prefix",
            "callee_pattern",
            "caller_pattern",
            "description",
            "enabled",
        ],
        "cdrs" => &[
            "start_time",
            "caller",
            "callee",
            "destination",
            "status",
            "duration",
            "answer_time",
            "end_time",
            "direction",
            "trunk",
            "customer_id",
            "tenant_id",
            "sip_code",
            "sip_reason",
        ],
        _ => &[],
    }
}

/// A field's value as an item page shows it, when people read it otherwise than as JSON.
pub(super) fn readable(name: &str, field: &str, v: &Value) -> Option<String> {
    match (name, field) {
        ("subscribers", "primary_number") => Some(number(v)),
        ("subscribers", "alias_numbers") => Some(
            v.as_array()
                .map(|a| a.iter().map(number).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        ("subscribers", "lock") => v.as_i64().map(|l| lock_name(l).to_string()),
        ("pbxringgroups", "out") => v
            .as_str()
            .map(|m| m.split_whitespace().collect::<Vec<_>>().join(", ")),
        (_, "events" | "domains") => v
            .as_array()
            .map(|a| a.iter().map(text_of).collect::<Vec<_>>().join(", ")),
        (_, _) if v.is_boolean() => Some(if v == &json!(true) { "yes" } else { "no" }.into()),
        ("cdrs", "duration") => v.as_f64().map(call_length),
        ("peeringservers", "transport") => v.as_i64().map(|t| {
            TRANSPORTS
                .iter()
                .find(|(n, _)| n.parse() == Ok(t))
                .map_or(t.to_string(), |(_, l)| l.to_string())
        }),
        ("cdrs", "start_time" | "answer_time" | "end_time") => {
            v.as_str().map(|_| format!("{} UTC", moment_text(v)))
        }
        ("sipservers", "status") => {
            let state = s(v, "state");
            let mut out = state.clone();
            if let Some(b) = v["backlog"].as_i64() {
                out.push_str(&format!(", {b} changes behind"));
            }
            match v["last_success_at"].as_str() {
                Some(t) => out.push_str(&format!(", last success {t}")),
                None => out.push_str(", never written"),
            }
            if let Some(e) = v["last_error"].as_str() {
                out.push_str(&format!(", last error: {e}"));
            }
            Some(out)
        }
        _ => None,
    }
}

/// The buttons an item page offers beyond edit and delete, from the object's state.
pub(super) fn buttons(name: &str, id: i64, o: &Value) -> Vec<Value> {
    let post = |action: &str, label: &str, hint: &str| json!({"href": format!("/ui/{name}/{id}/{action}"), "label": label, "hint": hint});
    match name {
        "subscribers" if o["status"] != json!("terminated") => {
            if o["lock"].as_i64().unwrap_or(0) == 0 {
                vec![post(
                    "lock",
                    "Lock",
                    "no calls and no registration until unlocked",
                )]
            } else {
                vec![post(
                    "unlock",
                    "Unlock",
                    "calls and registration allowed again",
                )]
            }
        }
        "customers" => match o["status"].as_str() {
            Some("active") => vec![post(
                "lock",
                "Lock",
                "its subscribers can no longer register or call",
            )],
            Some("locked") => vec![post("unlock", "Unlock", "back to active")],
            _ => Vec::new(),
        },
        "hooks" => vec![post(
            "rotate_secret",
            "Rotate secret",
            "a new signing secret, shown once; the old one keeps signing for a day",
        )],
        "pbxdevices" => match o["auth"].as_str() {
            Some("token") => vec![post(
                "reset_token",
                "New first-boot URL",
                "a replaced or reset phone: the old URLs stop working",
            )],
            Some("basic" | "digest") => vec![post(
                "reset_secret",
                "New device password",
                "the phone needs the new one to fetch its configuration",
            )],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// What an action button asks of the API: method, path, JSON Patch body; and what it tells
/// the user when it worked.
pub(super) fn action_request(
    name: &str,
    id: i64,
    action: &str,
) -> Option<(Method, String, Option<String>, &'static str)> {
    let patch = |path: &str, v: Value| {
        Some(json!([{"op": "replace", "path": path, "value": v}]).to_string())
    };
    let uri = format!("/api/{name}/{id}");
    Some(match (name, action) {
        ("subscribers", "lock") => (
            Method::PATCH,
            uri,
            patch("/lock", json!(4)),
            "Locked: no calls and no registration.",
        ),
        ("subscribers", "unlock") => (Method::PATCH, uri, patch("/lock", json!(0)), "Unlocked."),
        ("customers", "lock") => (
            Method::PATCH,
            uri,
            patch("/status", json!("locked")),
            "Locked: its subscribers can no longer register or call.",
        ),
        ("customers", "unlock") => (
            Method::PATCH,
            uri,
            patch("/status", json!("active")),
            "Unlocked: active again.",
        ),
        ("pbxdevices", "resync") => (Method::POST, format!("{uri}/resync"), None, "Resync sent."),
        ("hookexecutions", "redeliver") => (
            Method::POST,
            format!("{uri}/redeliver"),
            None,
            "Queued for redelivery.",
        ),
        ("hooks", "rotate_secret") => (
            Method::POST,
            format!("{uri}/rotate_secret"),
            None,
            "Secret rotated.",
        ),
        ("pbxdevices", "reset_token") => (
            Method::POST,
            format!("{uri}/reset_token"),
            None,
            "New first-boot URL made; the old URLs no longer work.",
        ),
        ("pbxdevices", "reset_secret") => (
            Method::POST,
            format!("{uri}/reset_secret"),
            None,
            "New device password made.",
        ),
        ("sipservers", "check") => (Method::POST, format!("{uri}/check"), None, "Checked."),
        ("sipservers", "repair") => (Method::POST, format!("{uri}/repair"), None, "Repaired."),
        _ => return None,
    })
}

/// What deleting an object of `name` does, in the words of the confirmation page.
pub(super) fn delete_words(name: &str) -> (&'static str, &'static str) {
    match name {
        "subscribers" => (
            "Terminate",
            "The subscriber can no longer register or call, its numbers are released and its \
             rows leave every SIP server; its record stays (terminated) for billing and the journal.",
        ),
        _ => ("Delete", "This cannot be undone (the journal keeps what it was)."),
    }
}

/// An item page's heading: what people call the object.
pub(super) fn title(name: &str, id: i64, o: &Value, r: &Related) -> String {
    let named = match name {
        "customers" => o["contact_id"]
            .as_i64()
            .and_then(|c| r.names.get(&("contact_id", c)))
            .map(|n| format!("{n} (customer {id})"))
            .unwrap_or_default(),
        "subscribers" => format!("{}@{}", s(o, "username"), s(o, "domain")),
        "pbxdevices" => format!("Device {}", s(o, "identifier")),
        "sipservers" | "hooks" => s(o, "name"),
        "pbxtenants" => format!("Tenant {}", s(o, "name")),
        "peeringservers" => format!("Trunk {}", s(o, "name")),
        "peeringgroups" => format!("Carrier {}", s(o, "name")),
        "peeringrules" => match s(o, "callee_prefix") {
            p if p.is_empty() => "Outbound route for every number".into(),
            p => format!("Outbound route for numbers starting {p}"),
        },
        "pbxringgroups" => format!("Ring group {} ({})", s(o, "number"), s(o, "grouptype")),
        "pbxextensions" => format!("Extension {}", s(o, "extension")),
        "customercontacts" => contact_name(o),
        "cdrs" => format!(
            "Call from {} to {} at {}",
            s(o, "caller"),
            s(o, "callee"),
            moment_text(&o["start_time"])
        ),
        _ => String::new(),
    };
    if named.trim_matches('@').is_empty() {
        format!("{name} {id}")
    } else {
        named
    }
}

// ---------------------------------------------------------------------------------------
// Forms

/// How a form asks for a field, beyond a text box.
pub(super) enum Widget {
    /// One of fixed values: (value, label).
    Choice(&'static [(&'static str, &'static str)]),
    /// An object of another collection: its id (or, for a domain, its name).
    Pick(&'static str),
    /// Where a PBX call goes: one of the tenant's destinations, or a number typed in.
    Destination,
}

const GROUP_TYPES: &[(&str, &str)] = &[
    ("Ring", "Ring: all members at once"),
    ("Hunt", "Hunt: one member after another"),
    ("Page", "Page: all, answered by the phones"),
    ("Alias", "Alias: a second number for one extension"),
];

const SUBSCRIBER_STATUS: &[(&str, &str)] = &[
    ("active", "active"),
    ("locked", "locked"),
    ("terminated", "terminated"),
];
const LOCKS: &[(&str, &str)] = &[
    ("0", "none"),
    ("1", "foreign calls"),
    ("2", "outgoing calls"),
    ("3", "incoming and outgoing calls"),
    ("4", "global (no calls, no registration)"),
    ("5", "ported"),
];
const CUSTOMER_STATUS: &[(&str, &str)] = &[
    ("active", "active"),
    ("pending", "pending"),
    ("locked", "locked"),
    ("terminated", "terminated"),
];
const TRANSPORTS: &[(&str, &str)] = &[("1", "UDP"), ("2", "TCP"), ("3", "TLS")];
const CUSTOMER_TYPES: &[(&str, &str)] = &[
    ("sipaccount", "SIP account"),
    ("pbxaccount", "PBX account (a tenant)"),
];

pub(super) fn widget(name: &str, field: &str) -> Option<Widget> {
    Some(match (name, field) {
        ("subscribers", "status") => Widget::Choice(SUBSCRIBER_STATUS),
        ("subscribers", "lock") => Widget::Choice(LOCKS),
        ("customers", "status") => Widget::Choice(CUSTOMER_STATUS),
        ("customers", "type") => Widget::Choice(CUSTOMER_TYPES),
        (_, "customer_id") => Widget::Pick("customers"),
        (_, "tenant_id") => Widget::Pick("pbxtenants"),
        ("pbxringgroups", "grouptype") => Widget::Choice(GROUP_TYPES),
        ("pbxringgroups", "outcome") | ("pbxinboundroutes", "openroute" | "closeroute") => {
            Widget::Destination
        }
        (_, "reseller_id") => Widget::Pick("resellers"),
        ("subscribers", "domain") => Widget::Pick("domains"),
        (_, "billing_profile_id") => Widget::Pick("billingprofiles"),
        ("customers", "contact_id") => Widget::Pick("customercontacts"),
        (_, "home_server_id") => Widget::Pick("sipservers"),
        ("pbxdevices", "model_id") => Widget::Pick("pbxdevicemodels"),
        ("pbxdevices", "profile_id") => Widget::Pick("pbxdeviceprofiles"),
        ("peeringservers" | "peeringrules", "group_id") => Widget::Pick("peeringgroups"),
        ("peeringgroups", "contract_id") => Widget::Pick("contracts"),
        ("peeringservers", "transport") => Widget::Choice(TRANSPORTS),
        _ => return None,
    })
}

/// Kinds the form handles as more than text: a number as cc/ac/sn, a list of numbers.
pub(super) fn kind_override(name: &str, field: &str) -> Option<&'static str> {
    match (name, field) {
        ("subscribers", "primary_number") => Some("e164"),
        ("subscribers", "alias_numbers") => Some("e164list"),
        ("pbxdevices", "lines") => Some("lines"),
        ("pbxringgroups", "out") => Some("members"),
        _ => None,
    }
}

/// A form's fields in the order people fill them in (the rest follow alphabetically).
pub(super) fn form_order(name: &str) -> &'static [&'static str] {
    match name {
        "subscribers" => &[
            "customer_id",
            "domain",
            "username",
            "password",
            "primary_number",
            "alias_numbers",
            "display_name",
            "email",
            "status",
            "lock",
            "webusername",
            "webpassword",
            "external_id",
            "home_server_id",
        ],
        "customers" => &[
            "contact_id",
            "billing_profile_id",
            "type",
            "status",
            "external_id",
            "max_subscribers",
        ],
        "customercontacts" => &[
            "company",
            "firstname",
            "lastname",
            "email",
            "phonenumber",
            "street",
            "postcode",
            "city",
            "country",
        ],
        "pbxdevices" => &[
            "identifier",
            "model_id",
            "customer_id",
            "station_name",
            "profile_id",
            "lines",
        ],
        "pbxringgroups" => &[
            "tenant_id",
            "number",
            "grouptype",
            "out",
            "ringdelay",
            "outcome",
        ],
        "pbxinboundroutes" => &["tenant_id", "number", "openroute", "closeroute"],
        "pbxextensions" => &["tenant_id", "extension", "type", "macaddr", "model_id"],
        "peeringgroups" => &["name", "contract_id", "priority", "description"],
        "peeringservers" => &[
            "group_id",
            "name",
            "ip",
            "host",
            "port",
            "transport",
            "peer_auth_register",
            "peer_auth_user",
            "peer_auth_pass",
            "peer_auth_realm",
            "weight",
            "enabled",
            "probe",
        ],
        "peeringrules" => &[
            "group_id",
            "callee_prefix",
            "callee_pattern",
            "caller_pattern",
            "description",
            "enabled",
            "stopper",
        ],
        _ => &[],
    }
}

/// What the API takes for a yes/no left out (a checkbox shows it on a new form); `None`
/// where the form does not know.
pub(super) fn bool_default(field: &str) -> Option<bool> {
    match field {
        "enabled" | "is_active" => Some(true),
        "administrative" | "contract_default" | "intra_pbx" | "local_ac" | "loopplay"
        | "peer_auth_register" | "prepaid" | "probe" | "read_only" | "set_default" | "stopper"
        | "store_password" => Some(false),
        _ => None,
    }
}

/// A checkbox sends nothing when unticked: a field the form showed as one (its `_cb_` marker)
/// and not sent is a no.
pub(super) fn fold_checkboxes(
    fields: &[(String, &'static str)],
    form: &mut HashMap<String, String>,
) {
    for (f, kind) in fields {
        if *kind == "boolean" && form.remove(&format!("_cb_{f}")).is_some() {
            let on = form.get(f).is_some_and(|v| v == "true");
            form.insert(f.clone(), on.to_string());
        }
    }
}

/// Collections whose rules refuse an empty required text with its own message (a form sends
/// it empty, so that the answer names it among the others); elsewhere it is left out.
pub(super) fn refuses_empty(name: &str) -> bool {
    matches!(
        name,
        "subscribers" | "peeringgroups" | "peeringservers" | "hooks"
    )
}

/// Fields the API requires by a rule rather than by its schema (a customer contact's
/// reseller, which a system contact has not).
pub(super) fn also_required(name: &str) -> &'static [&'static str] {
    match name {
        "customercontacts" => &["reseller_id"],
        _ => &[],
    }
}

/// Fields a form leaves out because another field asks the same (a subscriber's domain by
/// name rather than by id).
pub(super) fn form_hidden(name: &str) -> &'static [&'static str] {
    match name {
        "subscribers" => &["domain_id"],
        // Time sets for carriers are refused by the API (not supported yet).
        "peeringgroups" => &["time_set_id"],
        _ => &[],
    }
}

/// The choices for a [`Widget::Pick`]: (value, label), read through the API as the user;
/// `None` when there are too many for a list (the form asks for the id then).
pub(super) async fn picks(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    collection: &str,
) -> Option<Vec<(String, String)>> {
    picks_upto(app, actor, peer, collection, LIST_MOST).await
}

/// The most objects a reference offers as a list; up to [`TYPE_AHEAD_MOST`] it offers them
/// to type ahead in (a text box with the browser's own suggestions, no script).
pub(super) const LIST_MOST: i64 = 200;
pub(super) const TYPE_AHEAD_MOST: i64 = crate::resources::MAX_ROWS;

/// Like [`picks`], up to `most` objects (`None` past that).
pub(super) async fn picks_upto(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    collection: &str,
    most: i64,
) -> Option<Vec<(String, String)>> {
    let get = |uri: String| async move { api(app, actor, peer, Method::GET, &uri, None).await };
    // Counted first: a collection too large is not read.
    let (st, v) = get(format!("/api/{collection}/?rows=1")).await;
    if !st.is_success() || v["total_count"].as_i64().unwrap_or(0) > most {
        return None;
    }
    let (st, v) = get(format!("/api/{collection}/?rows={most}")).await;
    if !st.is_success() {
        return None;
    }
    let list = items(&v, collection);
    let mut contacts = HashMap::new();
    if collection == "customers" {
        let (_, cv) = get(format!("/api/customercontacts/?rows={most}")).await;
        for ct in items(&cv, "customercontacts") {
            if let Some(i) = id(&ct, "id") {
                contacts.insert(i, contact_name(&ct));
            }
        }
    }
    Some(
        list.iter()
            .filter(|o| collection != "sipservers" || o["role"] == json!("home"))
            .filter(|o| !matches!(o["status"].as_str(), Some("terminated")))
            .map(|o| {
                let i = s(o, "id");
                match collection {
                    "domains" => (s(o, "domain"), s(o, "domain")),
                    "customers" => {
                        let who = id(o, "contact_id")
                            .and_then(|c| contacts.get(&c).cloned())
                            .unwrap_or_default();
                        let ext = s(o, "external_id");
                        let mut l = if who.is_empty() {
                            format!("customer {i}")
                        } else {
                            format!("{who} (customer {i})")
                        };
                        if !ext.is_empty() {
                            l.push_str(&format!(", {ext}"));
                        }
                        (i, l)
                    }
                    "customercontacts" => (i.clone(), format!("{} ({i})", contact_name(o))),
                    "pbxdevicemodels" => (i, format!("{} {}", s(o, "vendor"), s(o, "model"))),
                    "contracts" => (i.clone(), format!("contract {i} ({})", s(o, "type"))),
                    "subscribers" => (
                        i,
                        format!(
                            "{}@{} {}",
                            s(o, "username"),
                            s(o, "domain"),
                            number(&o["primary_number"])
                        )
                        .trim()
                        .to_string(),
                    ),
                    _ => (i.clone(), format!("{} ({i})", s(o, "name"))),
                }
            })
            .collect(),
    )
}

/// A number as the form compares it: its digits only, without its id.
fn number_parts(n: &Value) -> Value {
    json!({"cc": s(n, "cc"), "ac": s(n, "ac"), "sn": s(n, "sn")})
}

/// A number field's value as the form carries it (JSON of cc/ac/sn; empty for none).
pub(super) fn numbers_shown(v: &Value, kind: &str) -> String {
    match (v, kind) {
        (Value::Object(_), "e164") => number_parts(v).to_string(),
        (Value::Array(a), "e164list") if !a.is_empty() => {
            Value::Array(a.iter().map(number_parts).collect()).to_string()
        }
        _ => String::new(),
    }
}

/// Posted number editors (`f.cc`, `f.ac`, `f.sn`; `f.0.cc`, … for lists) folded into their
/// field as [`numbers_shown`] writes it, so the rest of the form handling sees one value.
pub(super) fn fold_numbers(fields: &[(String, &'static str)], form: &mut HashMap<String, String>) {
    let part = |form: &HashMap<String, String>, prefix: &str| -> Option<Value> {
        let get = |k: &str| {
            form.get(&format!("{prefix}{k}"))
                .map(|v| v.trim().to_string())
        };
        let (cc, ac, sn) = (get("cc")?, get("ac")?, get("sn")?);
        Some(json!({"cc": cc, "ac": ac, "sn": sn}))
    };
    let blank = |n: &Value| ["cc", "ac", "sn"].iter().all(|k| n[*k] == json!(""));
    for (f, kind) in fields {
        match *kind {
            "e164" => {
                if let Some(n) = part(form, &format!("{f}.")) {
                    let v = if blank(&n) {
                        String::new()
                    } else {
                        n.to_string()
                    };
                    form.insert(f.clone(), v);
                }
            }
            "lines" => {
                let mut rows = Vec::new();
                let mut seen = false;
                for i in 0.. {
                    let get = |k: &str| {
                        form.get(&format!("{f}.{i}.{k}"))
                            .map(|v| v.trim().to_string())
                    };
                    let Some(kind) = get("type") else { break };
                    seen = true;
                    let mut m = Map::new();
                    for k in ["subscriber_id", "line", "label", "target"] {
                        if let Some(v) = get(k).filter(|v| !v.is_empty()) {
                            // Ids and account numbers as numbers when they are (else the API
                            // names the field).
                            let v = match (k, v.parse::<i64>()) {
                                ("subscriber_id" | "line", Ok(n)) => json!(n),
                                _ => json!(v),
                            };
                            m.insert(k.to_string(), v);
                        }
                    }
                    if ["subscriber_id", "label", "target"]
                        .iter()
                        .any(|k| m.contains_key(*k))
                    {
                        m.insert("type".into(), json!(kind));
                        rows.push(Value::Object(m));
                    }
                }
                if seen {
                    let v = if rows.is_empty() {
                        String::new()
                    } else {
                        Value::Array(rows).to_string()
                    };
                    form.insert(f.clone(), v);
                }
            }
            "members" => {
                let rows: Vec<String> = (0..)
                    .map_while(|i| form.get(&format!("{f}.{i}")))
                    // One member per row: a number typed with spaces is one number.
                    .map(|v| v.split_whitespace().collect::<String>())
                    .filter(|v| !v.is_empty())
                    .collect();
                if form.contains_key(&format!("{f}.0")) {
                    form.insert(f.clone(), rows.join(" "));
                }
            }
            "e164list" => {
                let mut rows = Vec::new();
                let mut seen = false;
                // Every row the form had (the whole form is limited in size).
                for i in 0.. {
                    let Some(n) = part(form, &format!("{f}.{i}.")) else {
                        break;
                    };
                    seen = true;
                    if !blank(&n) {
                        rows.push(n);
                    }
                }
                if seen {
                    let v = if rows.is_empty() {
                        String::new()
                    } else {
                        Value::Array(rows).to_string()
                    };
                    form.insert(f.clone(), v);
                }
            }
            _ => {}
        }
    }
}

/// A device line as the form compares it: its set fields only.
fn line_parts(l: &Value) -> Value {
    let mut m = Map::new();
    for k in ["subscriber_id", "line", "type", "label", "target"] {
        if let Some(v) = l.get(k).filter(|v| !v.is_null() && *v != "") {
            m.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// A device's lines as the form carries them (JSON of their set fields; empty for none).
pub(super) fn lines_shown(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.iter().map(line_parts).collect()).to_string(),
        _ => String::new(),
    }
}

/// The rows a lines editor shows: the device's lines, then two empty ones.
pub(super) fn line_rows(value: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(value).unwrap_or(Value::Null);
    let mut rows: Vec<Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    json!({"subscriber_id": text_of(&l["subscriber_id"]), "line": text_of(&l["line"]),
                           "type": text_of(&l["type"]), "label": text_of(&l["label"]), "target": text_of(&l["target"])})
                })
                .collect()
        })
        .unwrap_or_default();
    let want = rows.len() + 2;
    while rows.len() < want {
        rows.push(
            json!({"subscriber_id": "", "line": "", "type": "private", "label": "", "target": ""}),
        );
    }
    rows
}

/// The rows of a ring group's members editor: its members in order, then two empty ones.
pub(super) fn member_rows(value: &str) -> Vec<Value> {
    let mut rows: Vec<Value> = value.split_whitespace().map(|m| json!(m)).collect();
    rows.push(json!(""));
    rows.push(json!(""));
    rows
}

/// What a tenant's calls may be sent to, for a form's list to pick from (a number can still
/// be typed): (value, label).
pub(super) async fn destinations(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    tenant: i64,
) -> Vec<(String, String)> {
    let uri = format!("/api/pbxdestinations/?tenant_id={tenant}");
    let (st, v) = api(app, actor, peer, Method::GET, &uri, None).await;
    if !st.is_success() {
        return Vec::new();
    }
    items(&v, "pbxdestinations")
        .iter()
        .map(|d| {
            let kind = match (d["type"].as_str(), d["grouptype"].as_str()) {
                (Some("ringgroup"), Some(g)) => format!("ring group, {g}"),
                (Some(k), _) => k.to_string(),
                _ => String::new(),
            };
            (
                s(d, "destination"),
                format!("{} ({kind})", s(d, "destination")),
            )
        })
        .collect()
}

/// The kinds of a device line.
pub(super) const LINE_TYPES: &[(&str, &str)] = &[
    ("private", "private line"),
    ("shared", "shared line"),
    ("blf", "busy lamp key"),
    ("speeddial", "speed dial key"),
];

/// The rows a number editor shows for a field's value: its numbers, then `blank` empty rows.
pub(super) fn number_rows(value: &str, kind: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(value).unwrap_or(Value::Null);
    let mut rows: Vec<Value> = match (v, kind) {
        (Value::Object(o), _) => vec![number_parts(&Value::Object(o))],
        (Value::Array(a), _) => a.iter().map(number_parts).collect(),
        _ => Vec::new(),
    };
    let want = if kind == "e164" { 1 } else { rows.len() + 2 };
    while rows.len() < want {
        rows.push(json!({"cc": "", "ac": "", "sn": ""}));
    }
    rows
}

// ---------------------------------------------------------------------------------------
// The dashboard

/// What an object is called in a sentence: username@domain, a device's MAC, a name.
pub(super) fn object_name(resource: &str, id: i64, o: Option<&Value>) -> String {
    let o = o.unwrap_or(&Value::Null);
    let named = match resource {
        "subscribers" => format!("{}@{}", s(o, "username"), s(o, "domain")),
        "customers" => {
            let ext = s(o, "external_id");
            if ext.is_empty() {
                String::new()
            } else {
                format!("{id} ({ext})")
            }
        }
        "customercontacts" => contact_name(o),
        "pbxdevices" => s(o, "identifier"),
        "domains" => s(o, "domain"),
        "admins" => s(o, "login"),
        _ => s(o, "name"),
    };
    if named.trim_matches('@').trim().is_empty() {
        format!("{id}")
    } else {
        named
    }
}

/// A journal entry as a sentence: "administrator changed subscriber bob@example.com
/// (display name, lock)".
pub(super) fn change_sentence(j: &Value) -> String {
    let resource = s(j, "resource");
    let id = j["resource_id"].as_i64().unwrap_or(0);
    let (before, after) = (&j["before"], &j["after"]);
    let verb = match (j["operation"].as_str(), resource.as_str()) {
        (Some("create"), _) => "created",
        (Some("delete"), "subscribers" | "customers") => "terminated",
        (Some("delete"), _) => "deleted",
        _ => "changed",
    };
    let what = object_name(
        &resource,
        id,
        after.as_object().map(|_| after).or(Some(before)),
    );
    let mut out = format!("{} {verb} {} {what}", s(j, "actor"), singular(&resource));
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        let mut changed: Vec<String> = a
            .iter()
            .filter(|(k, v)| !k.ends_with("timestamp") && b.get(*k) != Some(*v))
            .map(|(k, _)| label(k).to_lowercase())
            .collect();
        if changed.len() > 4 {
            changed.truncate(4);
            changed.push("…".into());
        }
        if !changed.is_empty() {
            out.push_str(&format!(" ({})", changed.join(", ")));
        }
    }
    out
}

/// What needs someone's attention now, worst first: SIP servers behind or failing, trunks
/// whose registration failed, hooks switched off (by hand or after failing). (label, link,
/// detail)
pub(super) fn trouble(sipservers: &[Value], trunks: &[Value], hooks: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for x in sipservers.iter().filter(|x| x["enabled"] == json!(true)) {
        let st = &x["status"];
        let state = s(st, "state");
        let behind = st["backlog"].as_i64().unwrap_or(0);
        if state == "ok" && behind == 0 {
            continue;
        }
        let mut detail = state;
        if behind > 0 {
            detail.push_str(&format!(", {behind} changes behind"));
        }
        if let Some(e) = st["last_error"].as_str() {
            detail.push_str(&format!(": {e}"));
        }
        out.push(json!({"label": format!("SIP server {}", s(x, "name")), "href": format!("/ui/sipservers/{}", s(x, "id")), "detail": detail}));
    }
    for t in trunks {
        for r in t["registration"].as_array().into_iter().flatten() {
            if r["state"] == json!("failed") {
                out.push(json!({"label": format!("Trunk {}", s(t, "name")), "href": format!("/ui/peeringservers/{}", s(t, "id")),
                                "detail": format!("registration failed on SIP server {}{}", s(r, "sipserver_id"),
                                                  r["detail"].as_str().map(|d| format!(": {d}")).unwrap_or_default())}));
            }
        }
    }
    for h in hooks.iter().filter(|h| h["status"] == json!("disabled")) {
        out.push(json!({"label": format!("Hook {}", s(h, "name")), "href": format!("/ui/hooks/{}", s(h, "id")),
                        "detail": format!("{}{}", s(h, "status"), h["disabled_reason"].as_str().map(|d| format!(": {d}")).unwrap_or_default())}));
    }
    out
}
