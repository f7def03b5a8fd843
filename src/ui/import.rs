//! Long work with progress: CSV import in batches, streamed into the page.

use super::*;

// ---------------------------------------------------------------------------------------
// Long work with progress: CSV import in batches, SIP server repair

pub(super) const IMPORT_BATCH: usize = 200;

pub(super) async fn import_form(
    State(app): State<UiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match coll(&name) {
        Some(c) if c.bulk => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to import here").into_response(),
    }
    let example = if name == "subscribers" {
        "customer_id,domain,username,password,cc,ac,sn"
    } else {
        "contact_id,billing_profile_id,type,status,external_id"
    };
    page(
        "import.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "name": name, "example": example, "batch": IMPORT_BATCH}),
    )
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page whose list of steps arrives while the work goes on (HTML streamed as it is
/// written: the browser shows each step as it comes, no script needed).
pub(super) fn progress_page(
    u: &User,
    title: &str,
    back: &str,
) -> Result<(String, String), Response> {
    let html = match templates().get_template("progress.html").and_then(|t| {
        t.render(minijinja::Value::from_serialize(
            json!({"user": user_ctx(u), "csrf": u.csrf, "title": title, "back": back}),
        ))
    }) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("UI template progress.html: {e:#}");
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response());
        }
    };
    let (head, tail) = html.split_once("@@STREAM@@").unwrap_or((&html, ""));
    Ok((head.to_string(), tail.to_string()))
}

pub(super) fn streamed(rx: tokio::sync::mpsc::Receiver<String>) -> Response {
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<_, std::convert::Infallible>,
    );
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The most a CSV upload or paste may hold (the form's whole body is limited to this and a
/// little more).
pub(super) const IMPORT_MAX: usize = 4 * 1024 * 1024;

/// An import form's post (multipart: a chosen file or pasted text): the text fields and the
/// CSV. A file wins over pasted text.
async fn import_post(
    mut mp: axum::extract::Multipart,
) -> Result<(HashMap<String, String>, String), Response> {
    let refuse = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m).into_response();
    let mut fields = HashMap::new();
    let mut file = None;
    while let Some(f) = mp
        .next_field()
        .await
        .map_err(|e| refuse(format!("form: {e}")))?
    {
        let name = f.name().unwrap_or("").to_string();
        let is_file = f.file_name().is_some_and(|n| !n.is_empty());
        let bytes = f
            .bytes()
            .await
            .map_err(|e| refuse(format!("{name}: {e}")))?;
        if bytes.len() > IMPORT_MAX {
            return Err(refuse(format!("{name}: larger than {IMPORT_MAX} bytes")));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| refuse(format!("{name}: not UTF-8 text")))?;
        if name == "file" && is_file {
            file = Some(text);
        } else if name != "file" {
            fields.insert(name, text);
        }
    }
    let csv = file
        .filter(|f| !f.trim().is_empty())
        .or_else(|| fields.remove("csv"))
        .unwrap_or_default();
    Ok((fields, csv))
}

/// A CSV import: checked first (`check`: every row validated, nothing saved), then saved in
/// batches, each row on its own (a bad row is reported, the others are kept). The steps are
/// streamed into the page as they finish; a check ends with the button that saves the same
/// text.
pub(super) async fn import(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    mp: axum::extract::Multipart,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (form, csv_text) = match import_post(mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&u, &headers, &form) {
        return r;
    }
    match coll(&name) {
        Some(c) if c.bulk => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to import here").into_response(),
    }
    let check = form.contains_key("check");
    // Split into batches of whole CSV records (a quoted field may hold a line break).
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, format!("CSV header: {e}")).into_response()
        }
    };
    let records: Vec<csv::StringRecord> = match rdr.records().collect() {
        Ok(r) => r,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("CSV: {e}")).into_response(),
    };
    let title = if check {
        format!(
            "Checking {} rows for {name} (nothing is saved)",
            records.len()
        )
    } else {
        format!("Importing {name}")
    };
    let (head, tail) = match progress_page(&u, &title, &format!("/ui/{name}/")) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let actor = u.actor.clone();
    let csrf = u.csrf.clone();
    tokio::spawn(async move {
        let _ = tx.send(head).await;
        let total = records.len();
        let (mut good, mut failed) = (0, 0);
        let (ok_word, mode) = if check {
            ("valid", "per-row&dry_run=1")
        } else {
            ("created", "per-row")
        };
        for (n, chunk) in records.chunks(IMPORT_BATCH).enumerate() {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(&header);
            for r in chunk {
                let _ = w.write_record(r);
            }
            let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
            let (s, v) = api(
                &app,
                &actor,
                peer,
                Method::POST,
                &format!("/api/{name}/?mode={mode}"),
                Some(("text/csv", body)),
            )
            .await;
            let first = n * IMPORT_BATCH;
            let mut line = String::new();
            if s.is_success() {
                let rows = v["rows"].as_array().cloned().unwrap_or_default();
                let ok = rows.iter().filter(|r| r["status"] == ok_word).count();
                good += ok;
                failed += rows.len() - ok;
                line.push_str(&format!(
                    "<li>rows {}–{} of {total}: {ok} {ok_word}",
                    first + 1,
                    first + chunk.len()
                ));
                let errs: Vec<String> = rows
                    .iter()
                    .filter(|r| r["status"] != ok_word)
                    .map(|r| {
                        // Each batch repeats the header: its line L is line L + first of the text.
                        let line = r["row"].as_i64().map(|x| x + first as i64).unwrap_or(0);
                        match r["field"].as_str() {
                            Some(f) => {
                                esc(&format!("line {line}: {f}: {}", text_of(&r["message"])))
                            }
                            None => esc(&format!("line {line}: {}", text_of(&r["message"]))),
                        }
                    })
                    .collect();
                if !errs.is_empty() {
                    line.push_str(&format!(
                        ", {} failed<ul class=\"error\"><li>{}</li></ul>",
                        errs.len(),
                        errs.join("</li><li>")
                    ));
                }
                line.push_str("</li>\n");
            } else {
                failed += chunk.len();
                line = format!(
                    "<li class=\"error\">rows {}–{}: {}</li>\n",
                    first + 1,
                    first + chunk.len(),
                    esc(&text_of(&v["message"]))
                );
            }
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let done = if check {
            let mut s = format!(
                "<li><strong id=\"done\">Checked: {good} valid, {failed} with errors. Nothing was saved.</strong></li>\n"
            );
            if good > 0 {
                // The same text again, to be saved now (the check read it, so it parses).
                let label = if failed == 0 {
                    format!("Import all {good} rows")
                } else {
                    format!("Import the {good} valid rows (the lines with errors are left out)")
                };
                s.push_str(&format!(
                    "<li><form method=\"post\" action=\"/ui/{name}/import\" enctype=\"multipart/form-data\">\
                     <input type=\"hidden\" name=\"_csrf\" value=\"{}\">\
                     <textarea name=\"csv\" hidden>{}</textarea>\
                     <div class=\"actions\"><button type=\"submit\" id=\"apply\">{}</button> \
                     <a href=\"/ui/{name}/import\">Fix the file and check again</a></div></form></li>",
                    esc(&csrf),
                    esc(&csv_text),
                    esc(&label)
                ));
            }
            s
        } else {
            format!(
                "<li><strong id=\"done\">Done: {good} created, {failed} failed.</strong></li>\n"
            )
        };
        let _ = tx.send(done).await;
        let _ = tx.send(tail).await;
    });
    streamed(rx)
}

/// A list as CSV, with the import's columns (the file imports back): every object the user
/// may see that the list's filters select, read through the API a page at a time. SIP
/// passwords are left out (`voxprov export --with-passwords` is the way to them).
pub(super) async fn export(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if name == "cdrs" {
        return export_cdrs(&app, &u, peer, q).await;
    }
    let kind = match name.as_str() {
        "subscribers" => crate::resources::bulk::Kind::Subscribers,
        "customers" => crate::resources::bulk::Kind::Customers,
        _ => return (StatusCode::NOT_FOUND, "nothing to export here").into_response(),
    };
    let filters: String = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
            if !matches!(
                k.as_ref(),
                "page" | "rows" | "after_id" | "order_by" | "order_by_direction" | "no_count"
            ) && !v.is_empty()
            {
                s.append_pair(&k, &v);
            }
        }
        s.finish()
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(kind.columns().iter().map(|(c, _)| *c));
    let mut after = 0i64;
    loop {
        let (s, v) = api(
            &app,
            &u.actor,
            peer,
            Method::GET,
            &format!("/api/{name}/?rows=1000&no_count=1&after_id={after}&{filters}"),
            None,
        )
        .await;
        if !s.is_success() {
            return (s, text_of(&v["message"])).into_response();
        }
        let page = items(&v, &name);
        let Some(last) = page.last().and_then(|o| o["id"].as_i64()) else {
            break;
        };
        for o in &page {
            let mut m = o.as_object().cloned().unwrap_or_default();
            m.remove("password");
            let _ = w.write_record(crate::resources::bulk::export_row(kind, &m));
        }
        if page.len() < 1000 {
            break;
        }
        after = last;
    }
    let body = w.into_inner().unwrap_or_default();
    crate::http::attachment(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        &format!("{name}.csv"),
        body,
    )
}

/// Call records as the list's filters select them, as CSV: the API's export (its columns, at
/// most [`CDR_EXPORT_MAX`] of the newest, oldest first).
async fn export_cdrs(app: &UiState, u: &User, peer: SocketAddr, q: Option<String>) -> Response {
    let given: HashMap<String, String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "page" | "rows" | "limit" | "order_by" | "order_by_direction"
            )
        })
        .collect();
    let filters = api_filters("", &given);
    let (s, body) = api_bytes(
        app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/cdrs/export?limit={CDR_EXPORT_MAX}&{filters}"),
        None,
        64 << 20,
    )
    .await;
    if !s.is_success() {
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        return (s, text_of(&v["message"])).into_response();
    }
    crate::http::attachment(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        "cdrs.csv",
        body.to_vec(),
    )
}

/// The most call records one download holds (the list's filters narrow it; the API pages a
/// larger export by start time).
const CDR_EXPORT_MAX: i64 = 100_000;
