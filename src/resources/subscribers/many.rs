//! Many subscribers created at once (bulk import): the same validation, multi-row inserts.

use super::*;

/// Creates many subscribers at once (bulk import, a JSON array or CSV POST): the same
/// validation as one POST, then multi-row inserts and journal records. Each row gets its id
/// or its error; a bad row does not stop the others. Every unique name and number is checked
/// first, so an insert fails only if a concurrent writer took one meanwhile (PostgreSQL; or an
/// I/O error): a caller whose writes stand alone calls it inside a savepoint and redoes the
/// rows one by one then. An all-or-nothing import on SQLite, where nobody else writes, calls
/// [`write_many`] without a savepoint, and fails then.
pub async fn create_many(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    rows: Vec<Result<SubscriberInput>>,
    look: &mut Lookups,
) -> Result<Vec<Result<Created>>> {
    let (out, journal) = write_many(c, app, actor, rows, look).await?;
    journal.docs().record(c, actor).await?;
    Ok(out)
}

/// [`create_many`] without its journal records: the caller builds them ([`Journal::docs`],
/// pure work that can run on another thread meanwhile) and records them in the same
/// transaction before it commits.
pub async fn write_many(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    rows: Vec<Result<SubscriberInput>>,
    look: &mut Lookups,
) -> Result<(Vec<Result<Created>>, Journal)> {
    let mut out: Vec<Result<Created>> = Vec::with_capacity(rows.len());
    let mut ok: Vec<(usize, Validated)> = Vec::new();
    let mut pending: HashMap<i64, i64> = HashMap::new();
    for r in rows {
        let v = match r {
            Ok(i) => validate(c, app, actor, i, None, look).await,
            Err(e) => Err(e),
        };
        let v = v.and_then(|v| {
            if v.terminate {
                Err(Error::invalid(
                    "status",
                    "a subscriber cannot be created terminated",
                ))
            } else {
                Ok(v)
            }
        });
        match v {
            Ok(v) => {
                let cust = v.fields.customer_id;
                if let Some(m) = v.max_subscribers {
                    let live = customers::live_subscriber_count(c, cust).await?;
                    let n = pending.entry(cust).or_default();
                    if live + *n >= m {
                        out.push(Err(Error::Forbidden(format!(
                            "customer {cust} has reached its maximum of {m} subscribers"
                        ))));
                        continue;
                    }
                    *n += 1;
                }
                ok.push((out.len(), v));
                out.push(Ok(Created::from(0)));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    // Names and numbers: taken in the database, or twice in this batch.
    let mut by_domain: HashMap<i64, Vec<String>> = HashMap::new();
    let mut web_by_domain: HashMap<i64, Vec<String>> = HashMap::new();
    let mut digits = Vec::new();
    for (_, v) in &ok {
        by_domain
            .entry(v.fields.domain_id)
            .or_default()
            .push(v.fields.username.clone());
        if let Some(w) = &v.fields.webusername {
            web_by_domain
                .entry(v.fields.domain_id)
                .or_default()
                .push(w.clone());
        }
        digits.extend(v.primary.iter().chain(&v.aliases).map(Number::e164));
    }
    let mut taken = store::taken_names(c, store::UniqueName::Username, &by_domain).await?;
    // Web usernames are unique per domain as well: a clash the batch did not see would fail
    // its insert, and on SQLite an all-or-nothing batch has no savepoint to retry its rows.
    let mut taken_web =
        store::taken_names(c, store::UniqueName::Webusername, &web_by_domain).await?;
    let mut taken_nums = numbers::taken(c, &digits).await?;
    let mut accepted: Vec<(usize, Validated)> = Vec::with_capacity(ok.len());
    for (k, v) in ok {
        let key = (v.fields.domain_id, v.fields.username.clone());
        if !taken.insert(key) {
            out[k] = Err(Error::invalid(
                "username",
                format!(
                    "'{}' already exists in domain {}",
                    v.fields.username, v.domain
                ),
            ));
            continue;
        }
        if let Some(w) = &v.fields.webusername {
            if !taken_web.insert((v.fields.domain_id, w.clone())) {
                out[k] = Err(Error::invalid(
                    "webusername",
                    "already exists in this domain",
                ));
                taken.remove(&(v.fields.domain_id, v.fields.username.clone()));
                continue;
            }
        }
        let nums: Vec<(String, String, String)> = v
            .primary
            .iter()
            .map(|n| (n, "primary_number".to_string()))
            .chain(
                v.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n, format!("alias_numbers[{i}]"))),
            )
            .map(|(n, f)| (n.e164(), f, n.taken()))
            .collect();
        if let Some((_, f, msg)) = nums.iter().find(|(n, _, _)| taken_nums.contains(n)) {
            out[k] = Err(Error::invalid(f.as_str(), msg.as_str()));
            taken.remove(&(v.fields.domain_id, v.fields.username.clone()));
            if let Some(w) = &v.fields.webusername {
                taken_web.remove(&(v.fields.domain_id, w.clone()));
            }
            continue;
        }
        taken_nums.extend(nums.into_iter().map(|(n, _, _)| n));
        accepted.push((k, v));
    }
    if accepted.is_empty() {
        return Ok((out, Journal { rows: vec![] }));
    }
    let ts = crate::store::now();
    let uuids: Vec<String> = accepted.iter().map(|_| super::new_uuid()).collect();
    let rows: Vec<(String, &SubscriberFields)> = uuids
        .iter()
        .zip(&accepted)
        .map(|(u, (_, v))| (u.clone(), &v.fields))
        .collect();
    let ids = store::insert_many(c, &rows, &ts).await?;
    let mut nums: Vec<(i64, i64, &Number, bool)> = Vec::new();
    for (id, (_, v)) in ids.iter().zip(&accepted) {
        let r = v.fields.reseller_id;
        nums.extend(v.primary.iter().map(|n| (*id, r, n, true)));
        nums.extend(v.aliases.iter().map(|n| (*id, r, n, false)));
    }
    let recs = numbers::insert_many(c, &nums, &ts).await?;
    let mut recs_by_sub: HashMap<i64, Vec<NumberRec>> = HashMap::new();
    for n in recs {
        if let Some(s) = n.subscriber_id {
            recs_by_sub.entry(s).or_default().push(n);
        }
    }
    let mut rows = Vec::with_capacity(accepted.len());
    for ((id, uuid), (k, v)) in ids.iter().zip(uuids).zip(accepted) {
        out[k] = Ok(Created {
            id: *id,
            once: v.once(),
        });
        let mine = recs_by_sub.remove(id).unwrap_or_default();
        rows.push((new_row(*id, uuid, ts.clone(), v), mine));
    }
    Ok((out, Journal { rows }))
}

/// The subscribers a batch created, as reading them back would give them: what their journal
/// records are made of.
pub struct Journal {
    rows: Vec<(SubscriberRow, Vec<NumberRec>)>,
}

/// A batch's journal records as JSON text, ready to be written.
pub struct JournalDocs(Vec<(Option<i64>, i64, String)>);

impl Journal {
    /// Each subscriber as its journal record shows it (as `GET` would, the password
    /// redacted: it is never decrypted here), as JSON text.
    pub fn docs(self) -> JournalDocs {
        JournalDocs(
            self.rows
                .into_iter()
                .map(|(row, mut mine)| {
                    mine.sort_by_key(|n| (!n.is_primary.0, n.id));
                    let password = row
                        .password_enc
                        .as_ref()
                        .map(|_| crate::changes::REDACTED.to_string());
                    let repr = build_with(row, &mine, password);
                    let doc = Value::Object(to_map(&repr)).to_string();
                    (Some(repr.reseller_id), repr.id, doc)
                })
                .collect(),
        )
    }
}

impl JournalDocs {
    /// Records them, with the after-hooks they trigger, in `c`'s transaction.
    pub async fn record(&self, c: &mut Conn, actor: &Actor) -> Result<()> {
        crate::changes::record_created(c, actor, Subscribers::NAME, &self.0).await?;
        Ok(())
    }
}
