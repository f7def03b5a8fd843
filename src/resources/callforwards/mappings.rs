//! `/api/cfmappings/{subscriber_id}`: which sets each forward type uses.

use super::*;

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

pub(super) fn build_maps(
    row: &SubscriberRow,
    ms: &[&MappingRow],
    rt: Option<i64>,
) -> CfMappingsRepr {
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
pub(super) async fn resolve_set(
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
