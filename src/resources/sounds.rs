//! Sound sets (`/api/soundsets/`), the handles a set can fill (`/api/soundhandles/`, a fixed
//! catalog) and the files that fill them (`/api/soundfiles/`): announcements and music on
//! hold, kept as data. voxprov checks and stores the audio; playing it is a media server's
//! job.
//!
//! A file is uploaded as NGCP's clients do: `POST /api/soundfiles/?set_id=1&handle=music_on_hold
//! &filename=moh.wav&loopplay=true` with `Content-Type: audio/x-wav` and the WAV file as the
//! body (or as JSON with the audio base64-encoded in `data`). A second upload for the same set
//! and handle replaces the first. `GET /api/soundfilerecordings/{id}` returns the audio.

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, NoInput, Resource};
use crate::store::customers::{Customer, CUSTOMER_COLS};
use crate::store::sounds::{self as st, FileFields, SetFields, SoundFileRow, SoundSetRow};
use crate::store::{delete_row, get_as, get_from_view, list_as, name_taken, Conn};

use super::resellers::check_reseller;

// --- handles -------------------------------------------------------------------------------

pub use crate::features::sounds::HANDLES;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SoundHandle {
    pub id: i64,
    /// What a set's file is uploaded for (the `handle` of /api/soundfiles/).
    pub handle: String,
    pub group: String,
}

fn all_handles() -> impl Iterator<Item = SoundHandle> {
    HANDLES
        .iter()
        .flat_map(|(g, hs)| hs.iter().map(move |h| (*g, *h)))
        .enumerate()
        .map(|(n, (g, h))| SoundHandle {
            id: n as i64 + 1,
            handle: h.into(),
            group: g.into(),
        })
}

fn is_handle(h: &str) -> bool {
    HANDLES.iter().any(|(_, hs)| hs.contains(&h))
}

pub struct SoundHandles;

#[async_trait]
impl Resource for SoundHandles {
    const NAME: &'static str = "soundhandles";
    const SUMMARY: &'static str =
        "Sound handles: what a sound set's files can be for (a fixed catalog)";
    const CAN_CREATE: bool = false;
    const CAN_UPDATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("group", "the handle's group"),
        ("handle", "the handle's name"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "handle", "group"];
    type Repr = SoundHandle;
    type Input = NoInput;

    async fn list(
        _: &mut Conn,
        _: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<SoundHandle>, Option<i64>)> {
        let mut all: Vec<SoundHandle> = all_handles()
            .filter(|h| q.get("group").is_none_or(|g| g == h.group))
            .filter(|h| q.get("handle").is_none_or(|n| n == h.handle))
            .collect();
        // Ordered (by id, the only order) before the page is cut.
        if q.page.descending {
            all.reverse();
        }
        let total = all.len() as i64;
        let skip = ((q.page.page - 1) * q.page.rows).max(0) as usize;
        let mut page: Vec<SoundHandle> = all.into_iter().skip(skip).collect();
        page.truncate(q.page.rows as usize);
        Ok((page, q.page.count.then_some(total)))
    }
    async fn load(_: &mut Conn, _: &App, id: i64, _: bool) -> Result<Option<SoundHandle>> {
        Ok(all_handles().find(|h| h.id == id))
    }
    fn id(r: &SoundHandle) -> i64 {
        r.id
    }
    fn reseller_of(_: &SoundHandle) -> Option<i64> {
        None
    }
    fn visible(_: &SoundHandle, _: &Actor) -> bool {
        true
    }
}

// --- sets ----------------------------------------------------------------------------------

pub struct SoundSets;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SoundSet {
    pub id: i64,
    pub reseller_id: i64,
    /// A customer's own set; none: the reseller's, for any of its customers.
    pub customer_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    /// The set the customer's subscribers use unless they name another.
    pub contract_default: bool,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

impl From<SoundSetRow> for SoundSet {
    fn from(r: SoundSetRow) -> Self {
        SoundSet {
            id: r.id,
            reseller_id: r.reseller_id,
            customer_id: r.customer_id,
            name: r.name,
            description: r.description,
            contract_default: r.contract_default != 0,
            create_timestamp: r.create_timestamp,
            modify_timestamp: r.modify_timestamp,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoundSetInput {
    /// Required for admins (or implied by `customer_id`); a reseller's own otherwise.
    #[serde(default)]
    pub reseller_id: Option<i64>,
    /// NGCP's name for `customer_id`.
    #[serde(default)]
    pub contract_id: Option<i64>,
    #[serde(default)]
    pub customer_id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub contract_default: Option<bool>,
}

async fn set_fields(c: &mut Conn, actor: &Actor, i: SoundSetInput) -> Result<SetFields> {
    let customer_id = i.customer_id.or(i.contract_id);
    let customer: Option<Customer> = match customer_id {
        Some(id) => {
            let cu: Option<Customer> = get_as(c, CUSTOMER_COLS, "customers", id, false).await?;
            match cu {
                Some(cu)
                    if cu.status != "terminated"
                        && actor.scope().is_none_or(|r| r == cu.reseller_id) =>
                {
                    Some(cu)
                }
                _ => {
                    return Err(Error::invalid(
                        "customer_id",
                        format!("Invalid 'customer_id': customer {id} does not exist"),
                    ))
                }
            }
        }
        None => None,
    };
    let reseller = match (&customer, i.reseller_id) {
        (Some(cu), Some(r)) if r != cu.reseller_id => {
            return Err(Error::invalid(
                "reseller_id",
                "does not match the customer's reseller",
            ))
        }
        (Some(cu), _) => cu.reseller_id,
        (None, given) => {
            let r = actor.owning_reseller(given)?;
            check_reseller(c, r).await?;
            r
        }
    };
    Ok(SetFields {
        reseller_id: reseller,
        customer_id: customer.map(|cu| cu.id),
        name: model::non_empty("name", i.name, 255)?,
        description: model::text("description", i.description, 255)?,
        contract_default: i.contract_default.unwrap_or(false),
    })
}

async fn unique_set(c: &mut Conn, f: &SetFields, id: Option<i64>) -> Result<()> {
    if name_taken(c, "sound_sets", "reseller_id", f.reseller_id, &f.name, id).await? {
        return Err(Error::invalid(
            "name",
            "a sound set with this name already exists",
        ));
    }
    Ok(())
}

#[async_trait]
impl Resource for SoundSets {
    const NAME: &'static str = "soundsets";
    const SUMMARY: &'static str =
        "Sound sets: a reseller's or a customer's announcements and music on hold";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
        ("customer_id", "owning customer"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("reseller_id", "reseller_id"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name"];
    type Repr = SoundSet;
    type Input = SoundSetInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<SoundSet>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id", "customer_id"])?;
        let (rows, n): (Vec<SoundSetRow>, _) =
            list_as(c, st::SET_COLS, "sound_sets", &w, &q.page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<SoundSet>> {
        let r: Option<SoundSetRow> = get_as(c, st::SET_COLS, "sound_sets", id, lock).await?;
        Ok(r.map(Into::into))
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: SoundSetInput) -> Result<Created> {
        let f = set_fields(c, actor, i).await?;
        unique_set(c, &f, None).await?;
        Ok(st::save_set(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &SoundSet,
        i: SoundSetInput,
    ) -> Result<()> {
        let f = set_fields(c, actor, i).await?;
        if f.reseller_id != old.reseller_id {
            return Err(Error::invalid(
                "reseller_id",
                "a sound set keeps its reseller",
            ));
        }
        unique_set(c, &f, Some(id)).await?;
        st::save_set(c, Some(id), &f).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &SoundSet) -> Result<()> {
        sqlx::query("DELETE FROM sound_files WHERE set_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "sound_sets", id).await
    }
    fn id(r: &SoundSet) -> i64 {
        r.id
    }
    fn reseller_of(r: &SoundSet) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &SoundSet) -> Vec<(&'static str, String)> {
        let mut l = vec![("soundfiles", format!("/api/soundfiles/?set_id={}", r.id))];
        if let Some(cu) = r.customer_id {
            l.push(("customers", format!("/api/customers/{cu}")));
        }
        l
    }
}

// --- files ---------------------------------------------------------------------------------

pub struct SoundFiles;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SoundFile {
    pub id: i64,
    pub set_id: i64,
    pub handle: String,
    pub filename: String,
    /// Played in a loop (music on hold).
    pub loopplay: bool,
    /// What the WAV holds: PCM16, PCMU or PCMA, with its rate and channels.
    pub codec: String,
    /// Bytes of audio stored.
    pub size: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    #[serde(skip)]
    pub reseller_id: i64,
}

impl From<SoundFileRow> for SoundFile {
    fn from(r: SoundFileRow) -> Self {
        SoundFile {
            id: r.id,
            set_id: r.set_id,
            handle: r.handle,
            filename: r.filename,
            loopplay: r.loopplay != 0,
            codec: r.codec,
            size: r.size,
            create_timestamp: r.create_timestamp,
            modify_timestamp: r.modify_timestamp,
            reseller_id: r.reseller_id,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoundFileInput {
    pub set_id: i64,
    /// One of /api/soundhandles/.
    pub handle: String,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub loopplay: Option<bool>,
    /// The WAV file, base64-encoded (an upload as audio/x-wav fills it). Absent on PUT or
    /// PATCH: the stored audio stays.
    #[serde(default)]
    pub data: Option<String>,
}

/// What a WAV file holds, or why it is not one voxprov keeps: RIFF/WAVE with a `fmt ` chunk
/// of PCM (16-bit), A-law or µ-law, mono or stereo, 8 to 48 kHz, and a non-empty `data`
/// chunk.
pub fn wav_codec(b: &[u8]) -> Result<String> {
    let bad = |why: &str| Error::invalid("data", format!("not a usable WAV file: {why}"));
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            if len < 16 || body + 16 > b.len() {
                return Err(bad("short fmt chunk"));
            }
            fmt = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let Some((format, channels, rate, bits)) = fmt else {
                return Err(bad("data before fmt"));
            };
            if len == 0 || body >= b.len() {
                return Err(bad("no audio"));
            }
            let codec = match (format, bits) {
                (1, 16) => "PCM16",
                (6, 8) => "PCMA",
                (7, 8) => "PCMU",
                _ => return Err(bad("only 16-bit PCM, A-law or µ-law audio is kept")),
            };
            if !(1..=2).contains(&channels) {
                return Err(bad("only mono or stereo audio is kept"));
            }
            if !(8000..=48000).contains(&rate) {
                return Err(bad("the sample rate must be 8000 to 48000 Hz"));
            }
            return Ok(format!("{codec}/{rate}/{channels}"));
        }
        at = body.saturating_add(len).saturating_add(len & 1);
    }
    Err(bad("no data chunk"))
}

async fn file_set(c: &mut Conn, actor: &Actor, set_id: i64) -> Result<SoundSetRow> {
    let s: Option<SoundSetRow> = get_as(c, st::SET_COLS, "sound_sets", set_id, false).await?;
    match s {
        Some(s) if actor.scope().is_none_or(|r| r == s.reseller_id) => Ok(s),
        _ => Err(Error::invalid(
            "set_id",
            format!("Invalid 'set_id': sound set {set_id} does not exist"),
        )),
    }
}

fn checked_audio(app: &App, data: Option<String>) -> Result<Option<(Vec<u8>, String)>> {
    let Some(d) = data else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(d.trim())
        .map_err(|_| {
            Error::invalid("data", "must be base64 (or upload the file as audio/x-wav)")
        })?;
    if bytes.len() > app.cfg.max_sound_file_bytes {
        return Err(Error::PayloadTooLarge(app.cfg.max_sound_file_bytes));
    }
    let codec = wav_codec(&bytes)?;
    Ok(Some((bytes, codec)))
}

fn checked_handle(h: &str) -> Result<()> {
    if !is_handle(h) {
        return Err(Error::invalid(
            "handle",
            format!("'{h}' is not a sound handle (see /api/soundhandles/)"),
        ));
    }
    Ok(())
}

fn checked_filename(f: Option<String>, handle: &str) -> Result<String> {
    let f = f.unwrap_or_else(|| format!("{handle}.wav"));
    let f = model::non_empty("filename", f, 255)?;
    if f.contains(['/', '\\']) {
        return Err(Error::invalid("filename", "must not contain a path"));
    }
    Ok(f)
}

#[async_trait]
impl Resource for SoundFiles {
    const NAME: &'static str = "soundfiles";
    const SUMMARY: &'static str = "Sound files: the audio of a sound set for one handle \
         (POST audio/x-wav with set_id, handle, filename, loopplay in the query)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("set_id", "sound set"),
        ("handle", "the handle"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "codec",
        "size",
        "create_timestamp",
        "modify_timestamp",
    ];
    const REQUIRED: &'static [&'static str] = &["set_id", "handle"];
    const RAW_BODY: &'static [&'static str] = &["audio/x-wav", "audio/wav", "audio/wave"];
    const RAW_QUERY: &'static [(&'static str, &'static str)] = &[
        ("set_id", "the sound set (required with a raw body)"),
        (
            "handle",
            "the handle the audio is for (required with a raw body)",
        ),
        ("filename", "a name for the file (default: the handle)"),
        ("loopplay", "1 or true: play in a loop"),
    ];
    type Repr = SoundFile;
    type Input = SoundFileInput;

    fn raw_limit(app: &App) -> usize {
        app.cfg.max_sound_file_bytes
    }
    fn raw_document(bytes: &[u8], query: &[(String, String)]) -> Result<Value> {
        let mut doc = serde_json::Map::new();
        for (k, v) in query {
            let val = match k.as_str() {
                "set_id" => json!(v
                    .parse::<i64>()
                    .map_err(|_| Error::invalid("set_id", "must be an integer"))?),
                "loopplay" => json!(matches!(v.as_str(), "1" | "true" | "yes" | "on")),
                "handle" | "filename" => json!(v),
                other => {
                    crate::resources::handling::unknown_query(other, || {
                        "; an upload takes set_id, handle, filename, loopplay".into()
                    })?;
                    continue;
                }
            };
            doc.insert(k.clone(), val);
        }
        doc.insert(
            "data".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
        Ok(Value::Object(doc))
    }

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<SoundFile>, Option<i64>)> {
        let w = q.where_scoped(actor, &["handle"], &["set_id", "reseller_id"])?;
        let (rows, n): (Vec<SoundFileRow>, _) =
            list_as(c, st::FILE_COLS, st::FILES_FROM, &w, &q.page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<SoundFile>> {
        let r: Option<SoundFileRow> =
            get_from_view(c, "sound_files", st::FILE_COLS, st::FILES_FROM, id, lock).await?;
        Ok(r.map(Into::into))
    }
    /// Creates the set's file for the handle, or replaces it (as NGCP does).
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: SoundFileInput) -> Result<Created> {
        let set = file_set(c, actor, i.set_id).await?;
        checked_handle(&i.handle)?;
        let filename = checked_filename(i.filename, &i.handle)?;
        let Some((data, codec)) = checked_audio(app, i.data)? else {
            return Err(Error::invalid("data", "is required (the WAV file)"));
        };
        let existing = st::file_for(c, set.id, &i.handle).await?;
        let f = FileFields {
            set_id: set.id,
            handle: &i.handle,
            filename: &filename,
            loopplay: i.loopplay.unwrap_or(false),
            codec: &codec,
            data: Some(&data),
        };
        Ok(st::save_file(c, existing, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &SoundFile,
        i: SoundFileInput,
    ) -> Result<()> {
        if i.set_id != old.set_id {
            return Err(Error::invalid("set_id", "a sound file keeps its set"));
        }
        file_set(c, actor, i.set_id).await?;
        checked_handle(&i.handle)?;
        if i.handle != old.handle && st::file_for(c, old.set_id, &i.handle).await?.is_some() {
            return Err(Error::invalid(
                "handle",
                "the set already has a file for this handle",
            ));
        }
        let filename = checked_filename(i.filename, &i.handle)?;
        let audio = checked_audio(app, i.data)?;
        let f = FileFields {
            set_id: old.set_id,
            handle: &i.handle,
            filename: &filename,
            loopplay: i.loopplay.unwrap_or(false),
            codec: audio.as_ref().map_or(old.codec.as_str(), |a| a.1.as_str()),
            data: audio.as_ref().map(|a| a.0.as_slice()),
        };
        st::save_file(c, Some(id), &f).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &SoundFile) -> Result<()> {
        delete_row(c, "sound_files", id).await
    }
    fn id(r: &SoundFile) -> i64 {
        r.id
    }
    fn reseller_of(r: &SoundFile) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &SoundFile) -> Vec<(&'static str, String)> {
        vec![
            ("soundsets", format!("/api/soundsets/{}", r.set_id)),
            (
                "soundfilerecordings",
                format!("/api/soundfilerecordings/{}", r.id),
            ),
        ]
    }
}

/// The audio of a file `actor` may see, with its file name.
pub async fn recording(app: &App, actor: &Actor, id: i64) -> Result<(String, Vec<u8>)> {
    SoundFiles::check_access(actor, false)?;
    let mut c = app.store.read().await?;
    let f =
        crate::resources::write::load_visible::<SoundFiles>(&mut c, app, actor, id, false).await?;
    let data = st::data(&mut c, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("soundfiles {id} not found")))?;
    Ok((f.filename, data))
}
