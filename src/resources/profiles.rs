//! Subscriber profile sets and profiles (`/api/subscriberprofilesets/`,
//! `/api/subscriberprofiles/`): a reseller's named sets of profiles, each profile the list of
//! preferences (`attributes`) a subscriber holding it may change; one profile per set is its
//! default. A subscriber names a set (`profile_set_id`) and a profile of it (`profile_id`,
//! or the set's default).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::profiles::{self as st, ProfileFields, ProfileRow, ProfileSet};
use crate::store::{delete_row, exists, get_as, list_as, name_taken, Conn};

pub struct ProfileSets;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileSetInput {
    /// Required for admins; a reseller's own is used otherwise.
    #[serde(default)]
    pub reseller_id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[async_trait]
impl Resource for ProfileSets {
    const NAME: &'static str = "subscriberprofilesets";
    const SUMMARY: &'static str =
        "Subscriber profile sets: a reseller's named sets of subscriber profiles";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("reseller_id", "reseller_id"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name", "reseller_id"];
    type Repr = ProfileSet;
    type Input = ProfileSetInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<ProfileSet>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id"])?;
        list_as(c, st::SET_COLS, "subscriber_profile_sets", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<ProfileSet>> {
        get_as(c, st::SET_COLS, "subscriber_profile_sets", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: ProfileSetInput) -> Result<Created> {
        let reseller = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, reseller).await?;
        let name = model::non_empty("name", i.name, 255)?;
        unique_set(c, reseller, &name, None).await?;
        let d = model::text("description", i.description, 255)?;
        Ok(st::save_set(c, None, reseller, &name, d).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &ProfileSet,
        i: ProfileSetInput,
    ) -> Result<()> {
        if i.reseller_id.is_some_and(|r| r != old.reseller_id) {
            return Err(Error::invalid(
                "reseller_id",
                "a profile set keeps its reseller",
            ));
        }
        let name = model::non_empty("name", i.name, 255)?;
        unique_set(c, old.reseller_id, &name, Some(id)).await?;
        let d = model::text("description", i.description, 255)?;
        st::save_set(c, Some(id), old.reseller_id, &name, d).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &ProfileSet) -> Result<()> {
        if exists(
            c,
            "subscribers",
            "profile_set_id = $1 AND status <> 'terminated'",
            id,
        )
        .await?
        {
            return Err(Error::Locked(format!(
                "profile set {id} is still used by subscribers"
            )));
        }
        sqlx::query("UPDATE subscribers SET profile_set_id = NULL, profile_id = NULL WHERE profile_set_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM subscriber_profiles WHERE profile_set_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "subscriber_profile_sets", id).await
    }
    fn id(r: &ProfileSet) -> i64 {
        r.id
    }
    fn reseller_of(r: &ProfileSet) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &ProfileSet) -> Vec<(&'static str, String)> {
        vec![(
            "subscriberprofiles",
            format!("/api/subscriberprofiles/?profile_set_id={}", r.id),
        )]
    }
}

async fn unique_set(c: &mut Conn, reseller: i64, name: &str, id: Option<i64>) -> Result<()> {
    if name_taken(
        c,
        "subscriber_profile_sets",
        "reseller_id",
        reseller,
        name,
        id,
    )
    .await?
    {
        return Err(Error::invalid(
            "name",
            "a profile set with this name already exists",
        ));
    }
    Ok(())
}

pub struct Profiles;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    pub id: i64,
    pub profile_set_id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// The set's default profile (a subscriber naming the set without a profile gets it).
    pub set_default: bool,
    /// The preferences a subscriber with this profile may change (names from
    /// /api/subscriberpreferencedefs/).
    pub attributes: Vec<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

impl From<ProfileRow> for Profile {
    fn from(r: ProfileRow) -> Self {
        Profile {
            id: r.id,
            profile_set_id: r.profile_set_id,
            reseller_id: r.reseller_id,
            name: r.name,
            description: r.description,
            set_default: r.set_default != 0,
            attributes: serde_json::from_str(&r.attributes).unwrap_or_default(),
            create_timestamp: r.create_timestamp,
            modify_timestamp: r.modify_timestamp,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    pub profile_set_id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub set_default: Option<bool>,
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
}

async fn profile_fields(c: &mut Conn, actor: &Actor, i: ProfileInput) -> Result<ProfileFields> {
    let set: Option<ProfileSet> = get_as(
        c,
        st::SET_COLS,
        "subscriber_profile_sets",
        i.profile_set_id,
        false,
    )
    .await?;
    let set = match set {
        Some(s) if actor.scope().is_none_or(|r| r == s.reseller_id) => s,
        _ => {
            return Err(Error::invalid(
                "profile_set_id",
                format!(
                    "Invalid 'profile_set_id': profile set {} does not exist",
                    i.profile_set_id
                ),
            ))
        }
    };
    let mut attributes = i.attributes.unwrap_or_default();
    for (n, a) in attributes.iter().enumerate() {
        if !crate::features::prefs::DEFS.iter().any(|d| d.name == a) {
            return Err(Error::invalid(
                format!("attributes[{n}]"),
                format!("'{a}' is not a known preference (see /api/subscriberpreferencedefs/)"),
            ));
        }
    }
    attributes.sort();
    attributes.dedup();
    Ok(ProfileFields {
        profile_set_id: set.id,
        reseller_id: set.reseller_id,
        name: model::non_empty("name", i.name, 255)?,
        description: model::text("description", i.description, 255)?,
        set_default: i.set_default.unwrap_or(false),
        attributes: serde_json::to_string(&attributes)?,
    })
}

#[async_trait]
impl Resource for Profiles {
    const NAME: &'static str = "subscriberprofiles";
    const SUMMARY: &'static str =
        "Subscriber profiles: which preferences a subscriber holding the profile may change";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("profile_set_id", "profile set"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("profile_set_id", "profile_set_id"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name", "profile_set_id"];
    type Repr = Profile;
    type Input = ProfileInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Profile>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["profile_set_id", "reseller_id"])?;
        let (rows, n): (Vec<ProfileRow>, _) =
            list_as(c, st::PROFILE_COLS, "subscriber_profiles", &w, &q.page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Profile>> {
        let r: Option<ProfileRow> =
            get_as(c, st::PROFILE_COLS, "subscriber_profiles", id, lock).await?;
        Ok(r.map(Into::into))
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: ProfileInput) -> Result<Created> {
        let f = profile_fields(c, actor, i).await?;
        unique_profile(c, f.profile_set_id, &f.name, None).await?;
        Ok(st::save_profile(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &Profile,
        i: ProfileInput,
    ) -> Result<()> {
        if i.profile_set_id != old.profile_set_id {
            return Err(Error::invalid("profile_set_id", "a profile keeps its set"));
        }
        let f = profile_fields(c, actor, i).await?;
        unique_profile(c, f.profile_set_id, &f.name, Some(id)).await?;
        st::save_profile(c, Some(id), &f).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &Profile) -> Result<()> {
        if exists(
            c,
            "subscribers",
            "profile_id = $1 AND status <> 'terminated'",
            id,
        )
        .await?
        {
            return Err(Error::Locked(format!(
                "profile {id} is still used by subscribers"
            )));
        }
        sqlx::query("UPDATE subscribers SET profile_id = NULL WHERE profile_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "subscriber_profiles", id).await
    }
    fn id(r: &Profile) -> i64 {
        r.id
    }
    fn reseller_of(r: &Profile) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Profile) -> Vec<(&'static str, String)> {
        vec![(
            "subscriberprofilesets",
            format!("/api/subscriberprofilesets/{}", r.profile_set_id),
        )]
    }
}

async fn unique_profile(c: &mut Conn, set: i64, name: &str, id: Option<i64>) -> Result<()> {
    if name_taken(c, "subscriber_profiles", "profile_set_id", set, name, id).await? {
        return Err(Error::invalid(
            "name",
            "a profile with this name already exists in the set",
        ));
    }
    Ok(())
}

/// A subscriber's profile: the set must be its reseller's; the profile one of the set's (the
/// set's default when none is named). `(set, profile)`.
pub async fn check_subscriber_profile(
    c: &mut Conn,
    reseller: i64,
    set: Option<i64>,
    profile: Option<i64>,
) -> Result<(Option<i64>, Option<i64>)> {
    let Some(set) = set else {
        if profile.is_some() {
            return Err(Error::invalid(
                "profile_id",
                "a profile needs its profile_set_id",
            ));
        }
        return Ok((None, None));
    };
    if !exists(
        c,
        "subscriber_profile_sets",
        &format!("id = $1 AND reseller_id = {reseller}"),
        set,
    )
    .await?
    {
        return Err(Error::invalid(
            "profile_set_id",
            format!("Invalid 'profile_set_id': profile set {set} does not exist"),
        ));
    }
    let profile = match profile {
        Some(p) => {
            if !exists(
                c,
                "subscriber_profiles",
                &format!("id = $1 AND profile_set_id = {set}"),
                p,
            )
            .await?
            {
                return Err(Error::invalid(
                    "profile_id",
                    format!("Invalid 'profile_id': profile {p} is not in profile set {set}"),
                ));
            }
            Some(p)
        }
        None => st::default_of(c, set).await?,
    };
    Ok((Some(set), profile))
}
