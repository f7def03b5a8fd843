//! Call forwards, in Sipwise's four views of one model:
//! - /api/callforwards/{subscriber_id}: every forward type with its destinations and times,
//!   the quick way (PUT replaces all; sets named `quickset_<type>` are managed for you);
//! - /api/cfdestinationsets/ and /api/cftimesets/: named hunting lists and time windows;
//! - /api/cfmappings/{subscriber_id}: which sets each forward type uses.
//!
//! Every change is journalled under its resource and reaches the SIP servers through the
//! change log as usr_preferences rows (see `features::callforwards::attributes`).

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Result};
use crate::features::callforwards::{
    self as cf, CfType, Destination, DestinationInput, ListMode, Owner, TimeEntry, TimeInput,
};
use crate::features::prefs;
use crate::model::{self, Actor};
use crate::resources::{ListQuery, Resource};
use crate::store::features::{self as fs, MappingFields, MappingRow, PrefOwner, SetKind, SetRow};
use crate::store::subscribers::{self as subs, SubscriberRow};
use crate::store::{numbers, Arg, Conn};

mod forwards;
mod mappings;
mod sets;
pub use forwards::*;
pub use mappings::*;
pub use sets::*;

/// The subscriber a feature belongs to, with what short destinations expand with.
pub struct SubCtx {
    pub row: SubscriberRow,
    pub number: Option<String>,
}

impl SubCtx {
    pub fn owner(&self) -> Owner<'_> {
        Owner {
            domain: &self.row.domain,
            username: &self.row.username,
            number: self.number.as_deref(),
        }
    }
}

/// A live (not terminated) subscriber, or `None`.
pub async fn sub_ctx(c: &mut Conn, id: i64, lock: bool) -> Result<Option<SubCtx>> {
    let Some(row) = subs::get(c, id, lock).await? else {
        return Ok(None);
    };
    if row.status == "terminated" {
        return Ok(None);
    }
    let number = numbers::for_subscribers(c, &[id])
        .await?
        .into_iter()
        .find(|n| n.is_primary.0)
        .map(|n| format!("{}{}{}", n.cc, n.ac, n.sn));
    Ok(Some(SubCtx { row, number }))
}

/// The subscriber a set or mapping names, as this actor may use it (else 422 on `field`).
async fn owning_sub(c: &mut Conn, actor: &Actor, id: i64, field: &str) -> Result<SubCtx> {
    match sub_ctx(c, id, true).await? {
        Some(s) if actor.scope().is_none_or(|r| r == s.row.reseller_id) => Ok(s),
        _ => Err(Error::invalid(
            field,
            format!("subscriber {id} does not exist or is terminated"),
        )),
    }
}

/// Live subscribers of a listing page (keyed feature resources list per subscriber).
pub async fn list_subs(
    c: &mut Conn,
    actor: &Actor,
    q: &ListQuery,
) -> Result<(Vec<SubscriberRow>, Option<i64>)> {
    let mut w = q.where_scoped(actor, &[], &["reseller_id", "customer_id"])?;
    if let Some(id) = q.get_id("subscriber_id")? {
        w.push("id = ?", Arg::Int(id));
    }
    w.raw("status <> 'terminated'");
    subs::list(c, &w, &q.page).await
}

const SUB_FILTERS: &[(&str, &str)] = &[
    ("subscriber_id", "subscriber"),
    ("customer_id", "customer"),
    ("reseller_id", "owning reseller"),
];
