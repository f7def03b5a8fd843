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

use crate::error::{Error, Result};
use crate::features::callforwards::{
    self as cf, CfType, Destination, DestinationInput, ListMode, Owner, TimeEntry, TimeInput,
};
use crate::features::prefs;
use crate::http::resource::{ListQuery, Resource};
use crate::http::App;
use crate::model::{self, Actor};
use crate::store::features::{self as fs, MappingFields, MappingRow, PrefOwner, SetKind, SetRow};
use crate::store::subscribers::{self as subs, SubscriberRow};
use crate::store::{numbers, Arg, Conn};

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

// --- destination and time sets -------------------------------------------------------------

fn set_name(name: &str) -> Result<String> {
    let n = model::non_empty("name", name.to_string(), 64)?;
    if n.starts_with("quickset_") {
        return Err(Error::invalid(
            "name",
            "names starting with quickset_ are kept for /api/callforwards/",
        ));
    }
    Ok(n)
}

async fn list_sets(
    c: &mut Conn,
    kind: SetKind,
    actor: &Actor,
    q: &ListQuery,
) -> Result<(Vec<SetRow>, Option<i64>)> {
    let w = q.where_scoped(actor, &["name"], &["subscriber_id", "reseller_id"])?;
    fs::list_sets(c, kind, &w, &q.page).await
}

/// Writes a set: new (`id` None) or renamed/changed, with its name unique per subscriber.
async fn write_set(
    c: &mut Conn,
    kind: SetKind,
    id: Option<i64>,
    subscriber_id: i64,
    name: &str,
    body: &str,
) -> Result<i64> {
    let name = set_name(name)?;
    if let Some(other) = fs::set_id_by_name(c, kind, subscriber_id, &name).await? {
        if Some(other) != id {
            return Err(Error::invalid(
                "name",
                format!("this subscriber already has a set named '{name}'"),
            ));
        }
    }
    match id {
        Some(id) => {
            fs::update_set(c, kind, id, &name, body).await?;
            Ok(id)
        }
        None => fs::insert_set(c, kind, subscriber_id, &name, body).await,
    }
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

pub struct CfDestinationSets;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DestinationSet {
    pub id: i64,
    pub subscriber_id: i64,
    pub name: String,
    pub destinations: Vec<Destination>,
    #[serde(skip)]
    pub reseller_id: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationSetInput {
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub subscriber_id: i64,
    pub name: String,
    pub destinations: Vec<DestinationInput>,
}

fn dset(r: SetRow) -> DestinationSet {
    DestinationSet {
        destinations: serde_json::from_str(&r.body).unwrap_or_default(),
        id: r.id,
        subscriber_id: r.subscriber_id,
        name: r.name,
        reseller_id: r.reseller_id,
    }
}

#[async_trait]
impl Resource for CfDestinationSets {
    const NAME: &'static str = "cfdestinationsets";
    const SUMMARY: &'static str = "Call forward destination sets: named hunting lists";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("subscriber_id", "subscriber"),
        ("name", "set name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id"];
    type Repr = DestinationSet;
    type Input = DestinationSetInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<DestinationSet>, Option<i64>)> {
        let (rows, total) = list_sets(c, SetKind::Destinations, actor, q).await?;
        Ok((rows.into_iter().map(dset).collect(), total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<DestinationSet>> {
        Ok(fs::get_set(c, SetKind::Destinations, id, lock)
            .await?
            .map(dset))
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        i: DestinationSetInput,
    ) -> Result<crate::http::resource::Created> {
        let s = owning_sub(c, actor, i.subscriber_id, "subscriber_id").await?;
        let d = cf::destinations("destinations", &i.destinations, &s.owner())?;
        if d.is_empty() {
            return Err(Error::invalid("destinations", "must not be empty"));
        }
        let id = write_set(
            c,
            SetKind::Destinations,
            None,
            s.row.id,
            &i.name,
            &json(&d)?,
        )
        .await?;
        Ok(id.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &DestinationSet,
        i: DestinationSetInput,
    ) -> Result<()> {
        if i.subscriber_id != old.subscriber_id {
            return Err(Error::invalid(
                "subscriber_id",
                "a set cannot move to another subscriber",
            ));
        }
        let s = owning_sub(c, actor, old.subscriber_id, "subscriber_id").await?;
        let d = cf::destinations("destinations", &i.destinations, &s.owner())?;
        if d.is_empty() {
            return Err(Error::invalid("destinations", "must not be empty"));
        }
        write_set(
            c,
            SetKind::Destinations,
            Some(id),
            s.row.id,
            &i.name,
            &json(&d)?,
        )
        .await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &DestinationSet) -> Result<()> {
        fs::delete_set(c, SetKind::Destinations, id).await
    }
    fn id(r: &DestinationSet) -> i64 {
        r.id
    }
    fn reseller_of(r: &DestinationSet) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &DestinationSet) -> Vec<(&'static str, String)> {
        vec![(
            "subscribers",
            format!("/api/subscribers/{}", r.subscriber_id),
        )]
    }
}

pub struct CfTimeSets;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimeSet {
    pub id: i64,
    pub subscriber_id: i64,
    pub name: String,
    pub times: Vec<TimeEntry>,
    #[serde(skip)]
    pub reseller_id: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeSetInput {
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub subscriber_id: i64,
    pub name: String,
    pub times: Vec<TimeInput>,
}

fn tset(r: SetRow) -> TimeSet {
    TimeSet {
        times: serde_json::from_str(&r.body).unwrap_or_default(),
        id: r.id,
        subscriber_id: r.subscriber_id,
        name: r.name,
        reseller_id: r.reseller_id,
    }
}

fn valid_times(i: &[TimeInput]) -> Result<Vec<TimeEntry>> {
    let t = cf::times("times", i)?;
    if t.is_empty() {
        return Err(Error::invalid("times", "must not be empty"));
    }
    Ok(t)
}

#[async_trait]
impl Resource for CfTimeSets {
    const NAME: &'static str = "cftimesets";
    const SUMMARY: &'static str = "Call forward time sets: when a forward applies";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("subscriber_id", "subscriber"),
        ("name", "set name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id"];
    type Repr = TimeSet;
    type Input = TimeSetInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<TimeSet>, Option<i64>)> {
        let (rows, total) = list_sets(c, SetKind::Times, actor, q).await?;
        Ok((rows.into_iter().map(tset).collect(), total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<TimeSet>> {
        Ok(fs::get_set(c, SetKind::Times, id, lock).await?.map(tset))
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        i: TimeSetInput,
    ) -> Result<crate::http::resource::Created> {
        let s = owning_sub(c, actor, i.subscriber_id, "subscriber_id").await?;
        let t = valid_times(&i.times)?;
        let id = write_set(c, SetKind::Times, None, s.row.id, &i.name, &json(&t)?).await?;
        Ok(id.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &TimeSet,
        i: TimeSetInput,
    ) -> Result<()> {
        if i.subscriber_id != old.subscriber_id {
            return Err(Error::invalid(
                "subscriber_id",
                "a set cannot move to another subscriber",
            ));
        }
        owning_sub(c, actor, old.subscriber_id, "subscriber_id").await?;
        let t = valid_times(&i.times)?;
        write_set(
            c,
            SetKind::Times,
            Some(id),
            old.subscriber_id,
            &i.name,
            &json(&t)?,
        )
        .await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &TimeSet) -> Result<()> {
        fs::delete_set(c, SetKind::Times, id).await
    }
    fn id(r: &TimeSet) -> i64 {
        r.id
    }
    fn reseller_of(r: &TimeSet) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &TimeSet) -> Vec<(&'static str, String)> {
        vec![(
            "subscribers",
            format!("/api/subscribers/{}", r.subscriber_id),
        )]
    }
}

// --- /api/callforwards/ --------------------------------------------------------------------

pub struct CallForwards;

/// One forward type: empty `destinations` = not set.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CfBlock {
    pub destinations: Vec<Destination>,
    pub times: Vec<TimeEntry>,
    pub sources: Vec<String>,
    pub sources_mode: String,
    pub bnumbers: Vec<String>,
    pub bnumbers_mode: String,
    pub enabled: bool,
    /// cft only: seconds to ring before forwarding (the `ringtimeout` preference).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ringtimeout: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallForwardsRepr {
    pub subscriber_id: i64,
    pub cfu: CfBlock,
    pub cfb: CfBlock,
    pub cft: CfBlock,
    pub cfna: CfBlock,
    pub cfs: CfBlock,
    pub cfr: CfBlock,
    pub cfo: CfBlock,
    #[serde(skip)]
    pub reseller_id: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CfBlockInput {
    #[serde(default)]
    pub destinations: Option<Vec<DestinationInput>>,
    #[serde(default)]
    pub times: Option<Vec<TimeInput>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub sources: Option<Vec<Value>>,
    #[serde(default)]
    pub sources_mode: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub bnumbers: Option<Vec<Value>>,
    #[serde(default)]
    pub bnumbers_mode: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub ringtimeout: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallForwardsInput {
    #[serde(default)]
    pub cfu: Option<CfBlockInput>,
    #[serde(default)]
    pub cfb: Option<CfBlockInput>,
    #[serde(default)]
    pub cft: Option<CfBlockInput>,
    #[serde(default)]
    pub cfna: Option<CfBlockInput>,
    #[serde(default)]
    pub cfs: Option<CfBlockInput>,
    #[serde(default)]
    pub cfr: Option<CfBlockInput>,
    #[serde(default)]
    pub cfo: Option<CfBlockInput>,
}

fn mode(field: &str, v: Option<&str>) -> Result<String> {
    Ok(ListMode::parse(field, v.unwrap_or("whitelist"))?
        .as_str()
        .to_string())
}

fn block_of(ms: &[&MappingRow], t: CfType, ringtimeout: Option<i64>) -> CfBlock {
    let mut b = match ms.iter().find(|m| m.cf_type() == t) {
        Some(m) => CfBlock {
            destinations: m.destinations(),
            times: m.times(),
            sources: m.sources(),
            sources_mode: m.sources_mode.clone(),
            bnumbers: m.bnumbers(),
            bnumbers_mode: m.bnumbers_mode.clone(),
            enabled: m.enabled.0,
            ringtimeout: None,
        },
        None => CfBlock {
            sources_mode: "whitelist".into(),
            bnumbers_mode: "whitelist".into(),
            ..Default::default()
        },
    };
    if t == CfType::Cft {
        b.ringtimeout = ringtimeout;
    }
    b
}

fn build_cf(row: &SubscriberRow, ms: &[&MappingRow], ringtimeout: Option<i64>) -> CallForwardsRepr {
    let b = |t| block_of(ms, t, ringtimeout);
    CallForwardsRepr {
        subscriber_id: row.id,
        cfu: b(CfType::Cfu),
        cfb: b(CfType::Cfb),
        cft: b(CfType::Cft),
        cfna: b(CfType::Cfna),
        cfs: b(CfType::Cfs),
        cfr: b(CfType::Cfr),
        cfo: b(CfType::Cfo),
        reseller_id: row.reseller_id,
    }
}

/// Features of a page of subscribers: their mappings and their ringtimeout.
async fn features_of(
    c: &mut Conn,
    ids: &[i64],
) -> Result<(HashMap<i64, Vec<MappingRow>>, HashMap<i64, Option<i64>>)> {
    let mut maps: HashMap<i64, Vec<MappingRow>> = HashMap::new();
    for m in fs::mappings_of(c, ids).await? {
        maps.entry(m.subscriber_id).or_default().push(m);
    }
    let rt = fs::prefs_of(c, PrefOwner::Subscriber, ids)
        .await?
        .into_iter()
        .map(|(k, p)| (k, p.get("ringtimeout").and_then(Value::as_i64)))
        .collect();
    Ok((maps, rt))
}

fn ringtimeout(field: &str, v: &Value) -> Result<Option<Value>> {
    prefs::validate_one("ringtimeout", field, v.clone())
}

#[async_trait]
impl Resource for CallForwards {
    const NAME: &'static str = "callforwards";
    const SUMMARY: &'static str =
        "Call forwards of a subscriber (id = subscriber id): cfu, cfb, cft, cfna, cfs, cfr, cfo";
    const CAN_CREATE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = SUB_FILTERS;
    const READ_ONLY: &'static [&'static str] = &["subscriber_id", "id"];
    type Repr = CallForwardsRepr;
    type Input = CallForwardsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<CallForwardsRepr>, Option<i64>)> {
        let (rows, total) = list_subs(c, actor, q).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let (maps, rt) = features_of(c, &ids).await?;
        let items = rows
            .iter()
            .map(|r| {
                let ms: Vec<&MappingRow> = maps.get(&r.id).into_iter().flatten().collect();
                build_cf(r, &ms, rt.get(&r.id).copied().flatten())
            })
            .collect();
        Ok((items, total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<CallForwardsRepr>> {
        let Some(s) = sub_ctx(c, id, lock).await? else {
            return Ok(None);
        };
        let (maps, rt) = features_of(c, &[id]).await?;
        let ms: Vec<&MappingRow> = maps.get(&id).into_iter().flatten().collect();
        Ok(Some(build_cf(&s.row, &ms, rt.get(&id).copied().flatten())))
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &CallForwardsRepr,
        i: CallForwardsInput,
    ) -> Result<()> {
        let s = sub_ctx(c, id, false)
            .await?
            .ok_or_else(|| Error::not_found("subscriber"))?;
        let blocks = [
            (CfType::Cfu, i.cfu),
            (CfType::Cfb, i.cfb),
            (CfType::Cft, i.cft),
            (CfType::Cfna, i.cfna),
            (CfType::Cfs, i.cfs),
            (CfType::Cfr, i.cfr),
            (CfType::Cfo, i.cfo),
        ];
        // Validate everything before writing anything.
        struct Valid {
            t: CfType,
            dests: Vec<Destination>,
            times: Vec<TimeEntry>,
            sources: Vec<String>,
            sources_mode: String,
            bnumbers: Vec<String>,
            bnumbers_mode: String,
            enabled: bool,
        }
        let mut valid = Vec::new();
        let mut rt = None;
        for (t, b) in blocks {
            let Some(b) = b else { continue };
            let n = t.as_str();
            if t == CfType::Cft {
                rt = Some(ringtimeout("cft.ringtimeout", &b.ringtimeout)?);
            } else if !b.ringtimeout.is_null() {
                return Err(Error::invalid(
                    format!("{n}.ringtimeout"),
                    "only cft has a ringtimeout",
                ));
            }
            let dests = cf::destinations(
                &format!("{n}.destinations"),
                b.destinations.as_deref().unwrap_or_default(),
                &s.owner(),
            )?;
            let times = cf::times(
                &format!("{n}.times"),
                b.times.as_deref().unwrap_or_default(),
            )?;
            let sources = cf::patterns(
                &format!("{n}.sources"),
                b.sources.as_deref().unwrap_or_default(),
            )?;
            let bnumbers = cf::patterns(
                &format!("{n}.bnumbers"),
                b.bnumbers.as_deref().unwrap_or_default(),
            )?;
            let sources_mode = mode(&format!("{n}.sources_mode"), b.sources_mode.as_deref())?;
            let bnumbers_mode = mode(&format!("{n}.bnumbers_mode"), b.bnumbers_mode.as_deref())?;
            if dests.is_empty() {
                if !times.is_empty() || !sources.is_empty() || !bnumbers.is_empty() {
                    return Err(Error::invalid(
                        format!("{n}.destinations"),
                        "must not be empty when times, sources or bnumbers are given",
                    ));
                }
                continue;
            }
            valid.push(Valid {
                t,
                dests,
                times,
                sources,
                sources_mode,
                bnumbers,
                bnumbers_mode,
                enabled: b.enabled.unwrap_or(true),
            });
        }
        let mut mappings = Vec::new();
        for v in valid {
            let name = format!("quickset_{}", v.t.as_str());
            let dset =
                upsert_quickset(c, SetKind::Destinations, id, &name, &json(&v.dests)?).await?;
            let tset = if v.times.is_empty() {
                None
            } else {
                Some(upsert_quickset(c, SetKind::Times, id, &name, &json(&v.times)?).await?)
            };
            mappings.push(MappingFields {
                cf_type: v.t,
                destination_set_id: dset,
                time_set_id: tset,
                sources: v.sources,
                sources_mode: v.sources_mode,
                bnumbers: v.bnumbers,
                bnumbers_mode: v.bnumbers_mode,
                enabled: v.enabled,
            });
        }
        fs::replace_mappings(c, id, &mappings).await?;
        fs::drop_unused_quicksets(c, id).await?;
        if let Some(rt) = rt {
            fs::set_pref(c, PrefOwner::Subscriber, id, "ringtimeout", rt.as_ref()).await?;
        }
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &CallForwardsRepr) -> Result<()> {
        fs::replace_mappings(c, id, &[]).await?;
        fs::drop_unused_quicksets(c, id).await
    }
    fn id(r: &CallForwardsRepr) -> i64 {
        r.subscriber_id
    }
    fn reseller_of(r: &CallForwardsRepr) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &CallForwardsRepr) -> Vec<(&'static str, String)> {
        vec![
            (
                "subscribers",
                format!("/api/subscribers/{}", r.subscriber_id),
            ),
            ("cfmappings", format!("/api/cfmappings/{}", r.subscriber_id)),
        ]
    }
}

async fn upsert_quickset(
    c: &mut Conn,
    kind: SetKind,
    sub: i64,
    name: &str,
    body: &str,
) -> Result<i64> {
    match fs::set_id_by_name(c, kind, sub, name).await? {
        Some(id) => {
            fs::update_set(c, kind, id, name, body).await?;
            Ok(id)
        }
        None => fs::insert_set(c, kind, sub, name, body).await,
    }
}

// --- /api/cfmappings/ ----------------------------------------------------------------------

pub struct CfMappings;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MappingRepr {
    pub destinationset: String,
    pub destinationset_id: i64,
    pub timeset: Option<String>,
    pub timeset_id: Option<i64>,
    pub sources: Vec<String>,
    pub sources_mode: String,
    pub bnumbers: Vec<String>,
    pub bnumbers_mode: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CfMappingsRepr {
    pub subscriber_id: i64,
    pub cfu: Vec<MappingRepr>,
    pub cfb: Vec<MappingRepr>,
    pub cft: Vec<MappingRepr>,
    pub cfna: Vec<MappingRepr>,
    pub cfs: Vec<MappingRepr>,
    pub cfr: Vec<MappingRepr>,
    pub cfo: Vec<MappingRepr>,
    pub cft_ringtimeout: Option<i64>,
    #[serde(skip)]
    pub reseller_id: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    /// The set's name, or give `destinationset_id`.
    #[serde(default)]
    pub destinationset: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub destinationset_id: Option<i64>,
    #[serde(default)]
    pub timeset: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub timeset_id: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub sources: Option<Vec<Value>>,
    #[serde(default)]
    pub sources_mode: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub bnumbers: Option<Vec<Value>>,
    #[serde(default)]
    pub bnumbers_mode: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CfMappingsInput {
    #[serde(default)]
    pub cfu: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cfb: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cft: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cfna: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cfs: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cfr: Option<Vec<MappingInput>>,
    #[serde(default)]
    pub cfo: Option<Vec<MappingInput>>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub cft_ringtimeout: Value,
}

fn build_maps(row: &SubscriberRow, ms: &[&MappingRow], rt: Option<i64>) -> CfMappingsRepr {
    let of = |t: CfType| {
        ms.iter()
            .filter(|m| m.cf_type() == t)
            .map(|m| MappingRepr {
                destinationset: m.destination_set.clone(),
                destinationset_id: m.destination_set_id,
                timeset: m.time_set.clone(),
                timeset_id: m.time_set_id,
                sources: m.sources(),
                sources_mode: m.sources_mode.clone(),
                bnumbers: m.bnumbers(),
                bnumbers_mode: m.bnumbers_mode.clone(),
                enabled: m.enabled.0,
            })
            .collect()
    };
    CfMappingsRepr {
        subscriber_id: row.id,
        cfu: of(CfType::Cfu),
        cfb: of(CfType::Cfb),
        cft: of(CfType::Cft),
        cfna: of(CfType::Cfna),
        cfs: of(CfType::Cfs),
        cfr: of(CfType::Cfr),
        cfo: of(CfType::Cfo),
        cft_ringtimeout: rt,
        reseller_id: row.reseller_id,
    }
}

/// A set named by id or name, which must be the subscriber's own.
async fn resolve_set(
    c: &mut Conn,
    kind: SetKind,
    sub: i64,
    field: &str,
    id: Option<i64>,
    name: Option<&str>,
) -> Result<Option<i64>> {
    let found = match (id, name) {
        (Some(id), _) => fs::get_set(c, kind, id, false)
            .await?
            .filter(|s| s.subscriber_id == sub)
            .map(|s| s.id),
        (None, Some(n)) if !n.is_empty() => fs::set_id_by_name(c, kind, sub, n).await?,
        _ => return Ok(None),
    };
    match found {
        Some(id) => Ok(Some(id)),
        None => Err(Error::invalid(field, "is not a set of this subscriber")),
    }
}

#[async_trait]
impl Resource for CfMappings {
    const NAME: &'static str = "cfmappings";
    const SUMMARY: &'static str =
        "Call forward mappings of a subscriber (id = subscriber id): which sets each type uses";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = SUB_FILTERS;
    const READ_ONLY: &'static [&'static str] = &["subscriber_id", "id"];
    type Repr = CfMappingsRepr;
    type Input = CfMappingsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<CfMappingsRepr>, Option<i64>)> {
        let (rows, total) = list_subs(c, actor, q).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let (maps, rt) = features_of(c, &ids).await?;
        let items = rows
            .iter()
            .map(|r| {
                let ms: Vec<&MappingRow> = maps.get(&r.id).into_iter().flatten().collect();
                build_maps(r, &ms, rt.get(&r.id).copied().flatten())
            })
            .collect();
        Ok((items, total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<CfMappingsRepr>> {
        let Some(s) = sub_ctx(c, id, lock).await? else {
            return Ok(None);
        };
        let (maps, rt) = features_of(c, &[id]).await?;
        let ms: Vec<&MappingRow> = maps.get(&id).into_iter().flatten().collect();
        Ok(Some(build_maps(
            &s.row,
            &ms,
            rt.get(&id).copied().flatten(),
        )))
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &CfMappingsRepr,
        i: CfMappingsInput,
    ) -> Result<()> {
        let lists = [
            (CfType::Cfu, i.cfu),
            (CfType::Cfb, i.cfb),
            (CfType::Cft, i.cft),
            (CfType::Cfna, i.cfna),
            (CfType::Cfs, i.cfs),
            (CfType::Cfr, i.cfr),
            (CfType::Cfo, i.cfo),
        ];
        let rt = ringtimeout("cft_ringtimeout", &i.cft_ringtimeout)?;
        let mut mappings = Vec::new();
        for (t, list) in lists {
            for (k, m) in list.unwrap_or_default().into_iter().enumerate() {
                let f = format!("{}[{k}]", t.as_str());
                let dset = resolve_set(
                    c,
                    SetKind::Destinations,
                    id,
                    &format!("{f}.destinationset"),
                    m.destinationset_id,
                    m.destinationset.as_deref(),
                )
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        format!("{f}.destinationset"),
                        "is required (or destinationset_id)",
                    )
                })?;
                let tset = resolve_set(
                    c,
                    SetKind::Times,
                    id,
                    &format!("{f}.timeset"),
                    m.timeset_id,
                    m.timeset.as_deref(),
                )
                .await?;
                mappings.push(MappingFields {
                    cf_type: t,
                    destination_set_id: dset,
                    time_set_id: tset,
                    sources: cf::patterns(
                        &format!("{f}.sources"),
                        m.sources.as_deref().unwrap_or_default(),
                    )?,
                    sources_mode: mode(&format!("{f}.sources_mode"), m.sources_mode.as_deref())?,
                    bnumbers: cf::patterns(
                        &format!("{f}.bnumbers"),
                        m.bnumbers.as_deref().unwrap_or_default(),
                    )?,
                    bnumbers_mode: mode(&format!("{f}.bnumbers_mode"), m.bnumbers_mode.as_deref())?,
                    enabled: m.enabled.unwrap_or(true),
                });
            }
        }
        fs::replace_mappings(c, id, &mappings).await?;
        fs::drop_unused_quicksets(c, id).await?;
        fs::set_pref(c, PrefOwner::Subscriber, id, "ringtimeout", rt.as_ref()).await
    }
    fn id(r: &CfMappingsRepr) -> i64 {
        r.subscriber_id
    }
    fn reseller_of(r: &CfMappingsRepr) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &CfMappingsRepr) -> Vec<(&'static str, String)> {
        vec![
            (
                "subscribers",
                format!("/api/subscribers/{}", r.subscriber_id),
            ),
            (
                "callforwards",
                format!("/api/callforwards/{}", r.subscriber_id),
            ),
        ]
    }
}
