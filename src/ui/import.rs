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

pub(super) async fn import(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&u, &headers, &form) {
        return r;
    }
    match coll(&name) {
        Some(c) if c.bulk => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to import here").into_response(),
    }
    // Split into batches of whole CSV records (a quoted field may hold a line break).
    let csv_text = form.get("csv").cloned().unwrap_or_default();
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
    let (head, tail) =
        match progress_page(&u, &format!("Importing {name}"), &format!("/ui/{name}/")) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let actor = u.actor.clone();
    tokio::spawn(async move {
        let _ = tx.send(head).await;
        let total = records.len();
        let (mut created, mut failed) = (0, 0);
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
                &format!("/api/{name}/?mode=per-row"),
                Some(("text/csv", body)),
            )
            .await;
            let first = n * IMPORT_BATCH;
            let mut line = String::new();
            if s.is_success() {
                let rows = v["rows"].as_array().cloned().unwrap_or_default();
                let ok = rows.iter().filter(|r| r["status"] == "created").count();
                created += ok;
                failed += rows.len() - ok;
                line.push_str(&format!(
                    "<li>rows {}–{} of {total}: {ok} created",
                    first + 1,
                    first + chunk.len()
                ));
                let errs: Vec<String> = rows
                    .iter()
                    .filter(|r| r["status"] != "created")
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
        let _ = tx
            .send(format!(
                "<li><strong id=\"done\">Done: {created} created, {failed} failed.</strong></li>\n"
            ))
            .await;
        let _ = tx.send(tail).await;
    });
    streamed(rx)
}
