//! A listing request, parsed from a query string (the API's, or one built by bulk export):
//! paging, order, and the filters a resource declares.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::Actor;
use crate::store::Page;

pub const MAX_ROWS: i64 = 1000;

/// A validated listing request.
pub struct ListQuery {
    pub page: Page,
    pub filters: BTreeMap<String, String>,
    /// Everything but page/rows, re-encoded for next/prev links.
    pub passthrough: String,
}

impl ListQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }
    pub fn get_id(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| Error::BadRequest(format!("{name}: '{v}' is not an integer id")))
            })
            .transpose()
    }
}

/// What a filter's value must be, told by its name: ids are integers, `since` and `until`
/// times; everything else text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Id,
    Time,
    Text,
}

pub fn filter_kind(name: &str) -> FilterKind {
    match name {
        "since" | "until" => FilterKind::Time,
        "external_id" | "webhook_id" => FilterKind::Text,
        n if n == "id" || n.ends_with("_id") => FilterKind::Id,
        _ => FilterKind::Text,
    }
}

/// A filter's value checked against its kind: a time is `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`
/// (UTC), made whole (a day alone starts at 00:00:00 for `since`, ends at 23:59:59 for
/// `until`).
fn filter_value(name: &str, v: String) -> Result<String> {
    match filter_kind(name) {
        FilterKind::Id => {
            v.parse::<i64>()
                .map_err(|_| Error::BadRequest(format!("{name}: '{v}' is not an integer id")))?;
            Ok(v)
        }
        FilterKind::Time => {
            // Written back in the stored form: times compare as text, so `2024-1-5 0:0:0`
            // must become `2024-01-05 00:00:00`.
            let fmt = "%Y-%m-%d %H:%M:%S";
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v.trim(), fmt) {
                return Ok(t.format(fmt).to_string());
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
                let time = if name == "until" {
                    "23:59:59"
                } else {
                    "00:00:00"
                };
                return Ok(format!("{} {time}", d.format("%Y-%m-%d")));
            }
            Err(Error::BadRequest(format!(
                "{name}: '{}' is not a time as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (UTC)",
                v.chars().take(40).collect::<String>()
            )))
        }
        FilterKind::Text => Ok(v),
    }
}

pub fn parse_list_query(
    raw: Option<&str>,
    filters: &[(&str, &str)],
    order_by: &[(&'static str, &'static str)],
) -> Result<ListQuery> {
    let mut page = 1i64;
    let mut rows = 10i64;
    let mut order = order_by[0].1;
    let mut desc = false;
    let mut count = true;
    let mut after_id = None;
    let mut map = BTreeMap::new();
    let mut pass = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        match k.as_str() {
            "page" => {
                page = v
                    .parse()
                    .ok()
                    .filter(|p: &i64| *p >= 1 && *p <= 1_000_000_000)
                    .ok_or_else(|| {
                        Error::BadRequest(format!("page: '{v}' is not a positive integer"))
                    })?;
                continue;
            }
            "rows" => {
                rows = v.parse::<i64>().ok().filter(|r| *r >= 1).ok_or_else(|| {
                    Error::BadRequest(format!("rows: '{v}' is not a positive integer"))
                })?;
                if rows > MAX_ROWS {
                    // A page holds at most MAX_ROWS: said plainly under strict handling,
                    // cut down (and named) otherwise.
                    if super::handling::strict() {
                        return Err(Error::BadRequest(format!(
                            "rows: at most {MAX_ROWS} per page"
                        )));
                    }
                    super::handling::ignored(format!("query:rows>{MAX_ROWS}"));
                    rows = MAX_ROWS;
                }
                continue;
            }
            "order_by" => match order_by.iter().find(|(n, _)| *n == v) {
                Some((_, c)) => order = c,
                None if !super::handling::strict() => {
                    super::handling::ignored("query:order_by");
                    continue;
                }
                None => {
                    return Err(Error::BadRequest(format!(
                        "order_by: '{v}' is not one of {}",
                        order_by
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            },
            "order_by_direction" => {
                desc = match v.to_ascii_lowercase().as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => {
                        return Err(Error::BadRequest(format!(
                            "order_by_direction: '{v}' is not asc or desc"
                        )))
                    }
                };
            }
            "no_count" => count = !query_bool("no_count", &v)?,
            "after_id" => {
                after_id = Some(v.parse::<i64>().map_err(|_| {
                    Error::BadRequest(format!("after_id: '{v}' is not an integer id"))
                })?);
            }
            _ if filters.iter().any(|(n, _)| *n == k) => {
                if v.len() > 255 {
                    return Err(Error::BadRequest(format!("{k}: filter value too long")));
                }
                map.insert(k.clone(), filter_value(&k, v.clone())?);
            }
            _ => {
                super::handling::unknown_query(&k, || {
                    let names: Vec<&str> = filters.iter().map(|(n, _)| *n).collect();
                    format!("; filters here: {}", names.join(", "))
                })?;
                continue;
            }
        }
        pass.append_pair(&k, &v);
    }
    if after_id.is_some() && (order != "id" || desc || page != 1) {
        return Err(Error::BadRequest(
            "after_id: keyset paging orders by id ascending and replaces page".into(),
        ));
    }
    Ok(ListQuery {
        page: Page {
            page,
            rows,
            order_by: order,
            descending: desc,
            count,
            after_id,
        },
        filters: map,
        passthrough: pass.finish(),
    })
}

/// A yes/no query parameter: `1`/`true` or `0`/`false` (any case).
pub fn query_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "{name}: '{v}' is not true, false, 1 or 0"
        ))),
    }
}

pub fn parse_id(raw: &str) -> Result<i64> {
    raw.parse::<i64>().ok().filter(|i| *i > 0).ok_or_else(|| {
        Error::BadRequest(format!(
            "invalid id '{}': ids are positive integers",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

impl ListQuery {
    /// The usual WHERE clause: the actor's reseller scope on `reseller_id`, then exact-or-
    /// wildcard text filters and integer-id filters, each named like its column.
    pub fn where_scoped(
        &self,
        actor: &Actor,
        text: &[&str],
        ids: &[&str],
    ) -> Result<crate::store::Where> {
        let mut w = crate::store::Where::new();
        if let Some(r) = actor.scope() {
            w.push("reseller_id = ?", crate::store::Arg::Int(r));
        }
        for col in text {
            if let Some(v) = self.get(col) {
                w.text_filter(col, v);
            }
        }
        for col in ids {
            if let Some(v) = self.get_id(col)? {
                w.push(&format!("{col} = ?"), crate::store::Arg::Int(v));
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::filter_value;

    #[test]
    fn times_are_written_back_in_the_stored_form() {
        for (name, given, want) in [
            ("since", "2024-1-5 0:0:0", "2024-01-05 00:00:00"),
            ("since", "2024-01-05", "2024-01-05 00:00:00"),
            ("until", "2024-1-5", "2024-01-05 23:59:59"),
            ("until", "2024-12-31 23:59:59", "2024-12-31 23:59:59"),
        ] {
            assert_eq!(filter_value(name, given.into()).unwrap(), want, "{given}");
        }
        for bad in ["2026-99-99", "yesterday", "2024-02-30"] {
            assert!(filter_value("since", bad.into()).is_err(), "{bad}");
        }
    }
}
