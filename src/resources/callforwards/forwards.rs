//! `/api/callforwards/{subscriber_id}`: every forward of a subscriber at once, kept in sets
//! named `quickset_<type>`.

use super::*;

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

pub(super) fn mode(field: &str, v: Option<&str>) -> Result<String> {
    Ok(ListMode::parse(field, v.unwrap_or("whitelist"))?
        .as_str()
        .to_string())
}

pub(super) fn block_of(ms: &[&MappingRow], t: CfType, ringtimeout: Option<i64>) -> CfBlock {
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

pub(super) fn build_cf(
    row: &SubscriberRow,
    ms: &[&MappingRow],
    ringtimeout: Option<i64>,
) -> CallForwardsRepr {
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
pub(super) async fn features_of(
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

pub(super) fn ringtimeout(field: &str, v: &Value) -> Result<Option<Value>> {
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
            // NGCP links a subscriber's forwards to themselves too; its clients look for it.
            (
                "callforwards",
                format!("/api/callforwards/{}", r.subscriber_id),
            ),
        ]
    }
}

pub(super) async fn upsert_quickset(
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
