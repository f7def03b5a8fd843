//! Named destination sets and time sets (`/api/cfdestinationsets/`, `/api/cftimesets/`).

use super::*;

// --- destination and time sets -------------------------------------------------------------

pub(super) fn set_name(name: &str) -> Result<String> {
    let n = model::non_empty("name", name.to_string(), 64)?;
    if n.starts_with("quickset_") {
        return Err(Error::invalid(
            "name",
            "names starting with quickset_ are kept for /api/callforwards/",
        ));
    }
    Ok(n)
}

pub(super) async fn list_sets(
    c: &mut Conn,
    kind: SetKind,
    actor: &Actor,
    q: &ListQuery,
) -> Result<(Vec<SetRow>, Option<i64>)> {
    let w = q.where_scoped(actor, &["name"], &["subscriber_id", "reseller_id"])?;
    fs::list_sets(c, kind, &w, &q.page).await
}

/// Writes a set: new (`id` None) or renamed/changed, with its name unique per subscriber.
pub(super) async fn write_set(
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

pub(super) fn json<T: Serialize>(v: &T) -> Result<String> {
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

pub(super) fn dset(r: SetRow) -> DestinationSet {
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
    ) -> Result<crate::resources::Created> {
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

pub(super) fn tset(r: SetRow) -> TimeSet {
    TimeSet {
        times: serde_json::from_str(&r.body).unwrap_or_default(),
        id: r.id,
        subscriber_id: r.subscriber_id,
        name: r.name,
        reseller_id: r.reseller_id,
    }
}

pub(super) fn valid_times(i: &[TimeInput]) -> Result<Vec<TimeEntry>> {
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
    ) -> Result<crate::resources::Created> {
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
