//! Customer balances, which a billing system drives and which raise
//! `customer.balance.depleted|restored`.

use super::*;

pub struct CustomerBalances;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceInput {
    /// The customer's cash balance; crossing 0 raises customer.balance.depleted or restored.
    pub cash_balance: f64,
    /// Free-time balance in seconds.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub free_time_balance: Option<i64>,
}

#[async_trait]
impl Resource for CustomerBalances {
    const NAME: &'static str = "customerbalances";
    const SUMMARY: &'static str =
        "Customers' balances (id = the customer's id), as a billing system drives them";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[("reseller_id", "owning reseller")];
    const READ_ONLY: &'static [&'static str] = &["id", "customer_id", "reseller_id"];
    type Repr = Balance;
    type Input = BalanceInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Balance>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["reseller_id"])?;
        list_as(c, st::BALANCE_COLS, st::BALANCE_FROM, &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Balance>> {
        get_from_view(c, "customers", st::BALANCE_COLS, st::BALANCE_FROM, id, lock).await
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &Balance,
        i: BalanceInput,
    ) -> Result<()> {
        if !i.cash_balance.is_finite() || i.cash_balance.abs() > 1e15 {
            return Err(Error::invalid("cash_balance", "must be a finite amount"));
        }
        let free = i.free_time_balance.unwrap_or(old.free_time_balance);
        if free < 0 {
            return Err(Error::invalid("free_time_balance", "must not be negative"));
        }
        st::save_balance(c, id, i.cash_balance, free).await
    }
    fn id(r: &Balance) -> i64 {
        r.id
    }
    fn reseller_of(r: &Balance) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Balance) -> Vec<(&'static str, String)> {
        vec![("customers", format!("/api/customers/{}", r.customer_id))]
    }
}
