//! Numbers: list and look up; move an alias to another subscriber of the same customer.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::subscribers::{self, Subscribers};
use crate::app::App;
use crate::changes::Op;
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{record, ListQuery, Resource};
use crate::store::numbers::{set_owner, NumberRec, NUMBER_COLS};
use crate::store::{get_as, list_as, Conn, Flag};

pub struct Numbers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberMove {
    /// The subscriber the number is assigned to; only this may change.
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub subscriber_id: i64,
    /// Whether an alias is a device id (rings one device); absent keeps it.
    #[serde(default)]
    pub is_devid: Option<bool>,
}

#[async_trait]
impl Resource for Numbers {
    const NAME: &'static str = "numbers";
    const SUMMARY: &'static str =
        "Numbers assigned to subscribers; PUT/PATCH subscriber_id moves an alias within a customer, is_devid marks a device id";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("cc", "country code"),
        ("ac", "area code"),
        ("sn", "subscriber number, * wildcard"),
        ("subscriber_id", "owning subscriber"),
        ("type", "primary or alias"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("cc", "cc"),
        ("ac", "ac"),
        ("sn", "sn"),
        ("subscriber_id", "subscriber_id"),
        ("reseller_id", "reseller_id"),
        ("is_primary", "is_primary"),
        ("is_devid", "is_devid"),
    ];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "cc",
        "ac",
        "sn",
        "reseller_id",
        "is_primary",
        "create_timestamp",
    ];
    type Repr = NumberRec;
    type Input = NumberMove;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<NumberRec>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["cc", "ac", "sn"],
            &["subscriber_id", "reseller_id"],
        )?;
        match q.get("type") {
            None => {}
            Some("primary") => {
                w.raw("is_primary = 1");
            }
            Some("alias") => {
                w.raw("is_primary = 0");
            }
            Some(v) => {
                return Err(Error::BadRequest(format!(
                    "type: '{v}' is not primary or alias"
                )))
            }
        }
        list_as(c, NUMBER_COLS, "numbers", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<NumberRec>> {
        get_as(c, NUMBER_COLS, "numbers", id, lock).await
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &NumberRec,
        i: NumberMove,
    ) -> Result<()> {
        if let Some(devid) = i.is_devid.filter(|d| *d != old.is_devid.0) {
            sqlx::query("UPDATE numbers SET is_devid = $1 WHERE id = $2")
                .bind(Flag::int(devid))
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
        if old.subscriber_id == Some(i.subscriber_id) {
            return Ok(());
        }
        if old.is_primary.0 {
            return Err(Error::invalid(
                "subscriber_id",
                "a primary number cannot be moved; change the subscriber's primary_number instead",
            ));
        }
        let from = match old.subscriber_id {
            Some(s) => subscribers::load(c, app, s, true).await?,
            None => None,
        };
        let to = subscribers::load(c, app, i.subscriber_id, true).await?;
        let to = match to {
            Some(t) if Subscribers::visible(&t, actor) && t.status != "terminated" => t,
            _ => {
                return Err(Error::invalid(
                    "subscriber_id",
                    format!("subscriber {} does not exist", i.subscriber_id),
                ))
            }
        };
        if from
            .as_ref()
            .is_some_and(|f| f.customer_id != to.customer_id)
        {
            return Err(Error::invalid(
                "subscriber_id",
                "numbers move only between subscribers of the same customer",
            ));
        }
        set_owner(c, id, to.id).await?;
        // Both subscribers' representations changed: journal them (and so tell consumers).
        for before in from.iter().chain(std::iter::once(&to)) {
            let after = subscribers::load(c, app, before.id, false).await?;
            record::<Subscribers>(c, actor, Op::Update, Some(before), after.as_ref()).await?;
        }
        Ok(())
    }
    fn id(r: &NumberRec) -> i64 {
        r.id
    }
    fn reseller_of(r: &NumberRec) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &NumberRec) -> Vec<(&'static str, String)> {
        r.subscriber_id
            .map(|s| vec![("subscribers", format!("/api/subscribers/{s}"))])
            .unwrap_or_default()
    }
}
