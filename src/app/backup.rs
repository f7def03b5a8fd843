//! Backups: one file holding a consistent logical copy of the database (see
//! [`crate::store::dump`]) and the secret key, encrypted under a passphrase the operator gives
//! (argon2id, then AES-256-GCM), so a backup alone is enough to bring every SIP password back.
//!
//! The file is JSON lines: a header (format, voxprov version, schema version, the encrypted
//! key), then per table a line naming its columns followed by one line per row, then an end
//! line with the counts and the SHA-256 of everything before it. It restores into either
//! database, from the schema version it was taken at or an older one.

use std::io::{BufRead, Write};
use std::path::Path;

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::{rngs::OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

use crate::crypto::Cipher;
use crate::store::{dump, Store};

const FORMAT: &str = "voxprov-backup";
const FORMAT_VERSION: u32 = 1;
/// Rows per insert statement on restore.
const BATCH: usize = 500;
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub format_version: u32,
    pub voxprov: String,
    pub schema: i64,
    pub backend: String,
    pub created: String,
    key: SealedKey,
}

/// The secret key under the passphrase: argon2id parameters, salt, nonce, ciphertext.
#[derive(Clone, Serialize, Deserialize)]
struct SealedKey {
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
struct TableLine {
    table: String,
    columns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    end: bool,
    tables: usize,
    rows: u64,
    sha256: String,
}

/// What makes a file no backup this voxprov can restore (damaged, truncated, from a newer
/// version, not a backup at all), as opposed to a failure of the database it goes into.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Damaged(pub String);

macro_rules! damaged {
    ($($t:tt)*) => { anyhow::Error::from(Damaged(format!($($t)*))) };
}

macro_rules! bail_damaged {
    ($($t:tt)*) => { return Err(damaged!($($t)*)) };
}

/// What a backup held.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub tables: usize,
    pub rows: u64,
    pub schema: i64,
    pub bytes: u64,
}

fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> anyhow::Result<[u8; 32]> {
    let params = argon2::Params::new(m, t, p, Some(32))
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(out)
}

fn seal(key: &[u8], passphrase: &str) -> anyhow::Result<SealedKey> {
    let (m, t, p) = (64 * 1024, 3, 1);
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let k = derive(passphrase, &salt, m, t, p)?;
    let sealed = Aes256Gcm::new_from_slice(&k)
        .expect("32-byte key")
        .encrypt(Nonce::from_slice(&nonce), key)
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    Ok(SealedKey {
        kdf: "argon2id".into(),
        m_kib: m,
        t,
        p,
        salt: STANDARD.encode(salt),
        nonce: STANDARD.encode(nonce),
        sealed: STANDARD.encode(sealed),
    })
}

/// The secret key from a header, or a clear refusal. The key derivation is deliberately
/// slow: it runs on the blocking pool, with the file's parameters bounded (a crafted file
/// must not take the server's memory or time).
pub async fn unseal(h: &Header, passphrase: &str) -> anyhow::Result<Vec<u8>> {
    let (s, p) = (h.key.clone(), passphrase.to_string());
    tokio::task::spawn_blocking(move || unseal_now(&s, &p)).await?
}

fn unseal_now(s: &SealedKey, passphrase: &str) -> anyhow::Result<Vec<u8>> {
    if s.kdf != "argon2id" || s.m_kib > 256 * 1024 || s.t > 10 || s.p > 4 {
        bail_damaged!("backup: unsupported key protection");
    }
    let b = |v: &str| {
        STANDARD
            .decode(v)
            .map_err(|_| damaged!("backup: damaged header"))
    };
    let k = derive(passphrase, &b(&s.salt)?, s.m_kib, s.t, s.p)?;
    let nonce = b(&s.nonce)?;
    if nonce.len() != 12 {
        bail_damaged!("backup: damaged header");
    }
    Aes256Gcm::new_from_slice(&k)
        .expect("32-byte key")
        .decrypt(Nonce::from_slice(&nonce), b(&s.sealed)?.as_slice())
        .map_err(|_| anyhow::anyhow!("wrong passphrase: the backup's secret key cannot be decrypted with it (nothing was written)"))
}

/// Checks a passphrase an operator chose for a new backup.
pub fn check_passphrase(p: &str) -> anyhow::Result<()> {
    if p.chars().count() < MIN_PASSPHRASE {
        anyhow::bail!("passphrase: at least {MIN_PASSPHRASE} characters");
    }
    Ok(())
}

/// Writes a backup of `store` (and `cipher`'s key) to `out`, from one consistent snapshot:
/// every change committed before it began is in it, nothing committed after.
pub async fn write(
    store: &Store,
    cipher: &Cipher,
    passphrase: &str,
    out: &mut (impl Write + Send),
) -> anyhow::Result<Summary> {
    check_passphrase(passphrase)?;
    // The deliberately slow sealing first, so the snapshot is not held open through it.
    let key = {
        let (k, p) = (cipher.export_key(), passphrase.to_string());
        tokio::task::spawn_blocking(move || seal(&k, &p)).await??
    };
    let kind = dump::kind(store);
    let mut tx = dump::snapshot(store).await?;
    let tables = dump::tables(&mut tx, &kind).await?;
    let schema = dump::schema_version(&mut tx).await?;
    let header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        voxprov: env!("CARGO_PKG_VERSION").into(),
        schema,
        backend: store.backend().into(),
        created: crate::store::now(),
        key,
    };
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut line = |out: &mut (dyn Write + Send), text: &str| -> std::io::Result<()> {
        hash.update(text.as_bytes());
        hash.update(b"\n");
        bytes += text.len() as u64 + 1;
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")
    };
    line(out, &serde_json::to_string(&header)?)?;
    let mut rows = 0u64;
    for t in &tables {
        let tl = TableLine {
            table: t.name.clone(),
            columns: t.columns.iter().map(|c| c.name.clone()).collect(),
        };
        line(out, &serde_json::to_string(&tl)?)?;
        let sql = dump::select_rows(&kind, t);
        let mut stream = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *tx);
        while let Some(r) = stream.next().await {
            line(out, &r?)?;
            rows += 1;
        }
    }
    drop(tx);
    let digest = hex::encode(hash.finalize());
    let end = EndLine {
        end: true,
        tables: tables.len(),
        rows,
        sha256: digest,
    };
    let text = serde_json::to_string(&end)?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(Summary {
        tables: tables.len(),
        rows,
        schema,
        bytes: bytes + text.len() as u64 + 1,
    })
}

/// Reads the header of a backup file, refusing what is not one or cannot be restored here.
pub fn read_header(first_line: &str, known_schema: i64) -> anyhow::Result<Header> {
    let h: Header = serde_json::from_str(first_line)
        .map_err(|_| damaged!("not a voxprov backup (its first line is not a backup header)"))?;
    if h.format != FORMAT {
        bail_damaged!("not a voxprov backup");
    }
    if h.format_version > FORMAT_VERSION {
        bail_damaged!(
            "backup format {} is newer than this voxprov reads ({FORMAT_VERSION}): restore it with voxprov {} or later",
            h.format_version,
            h.voxprov
        );
    }
    if h.schema > known_schema {
        bail_damaged!(
            "the backup is from a newer voxprov ({}, schema {}) than this one ({}, schema {known_schema}): upgrade voxprov first",
            h.voxprov,
            h.schema,
            env!("CARGO_PKG_VERSION")
        );
    }
    Ok(h)
}

/// Loads a backup's rows into `store` in one transaction, replacing what is there (the caller
/// decides whether that is allowed): all of it or, on any error (a damaged or truncated file,
/// a column this schema lacks), nothing.
pub async fn load(store: &Store, input: &mut impl BufRead) -> anyhow::Result<Summary> {
    let (tx, summary) = load_uncommitted(store, input, &[]).await?;
    tx.commit().await?;
    Ok(summary)
}

/// [`load`], leaving the transaction open for the caller to add to and commit. Tables named
/// in `keep` stay as they are (their rows in the file are read, checked and skipped).
pub async fn load_uncommitted(
    store: &Store,
    input: &mut impl BufRead,
    keep: &[&str],
) -> anyhow::Result<(crate::store::Tx, Summary)> {
    let kind = dump::kind(store);
    let mut hash = Sha256::new();
    let next = |input: &mut dyn BufRead| -> anyhow::Result<Option<String>> {
        let mut s = String::new();
        if input.read_line(&mut s)? == 0 {
            return Ok(None);
        }
        if !s.ends_with('\n') {
            bail_damaged!("backup is truncated");
        }
        s.pop();
        Ok(Some(s))
    };
    let first = next(input)?.ok_or_else(|| damaged!("backup is empty"))?;
    let header = read_header(&first, store.known_schema_version())?;
    hash.update(first.as_bytes());
    hash.update(b"\n");
    let mut tx = store.begin_solo().await?;
    dump::defer_references(&mut tx, &kind).await?;
    let tables = dump::tables(&mut tx, &kind).await?;
    let replaced: Vec<dump::Table> = tables
        .iter()
        .filter(|t| !keep.contains(&t.name.as_str()))
        .cloned()
        .collect();
    dump::clear(&mut tx, &kind, &replaced).await?;
    let mut current: Option<(dump::Table, Vec<String>)> = None;
    let mut batch: Vec<String> = Vec::new();
    let (mut rows, mut ntables) = (0u64, 0usize);
    async fn flush(
        tx: &mut crate::store::Tx,
        kind: &crate::config::DbKind,
        current: &Option<(dump::Table, Vec<String>)>,
        batch: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        if let (Some((t, cols)), false) = (current, batch.is_empty()) {
            let arr = format!("[{}]", batch.join(","));
            dump::insert_rows(tx, kind, t, cols, &arr)
                .await
                .map_err(|e| match e {
                    // A column the file has and this schema does not: the file's fault.
                    crate::error::Error::Validation { .. } => {
                        damaged!("restoring table {}: {e}", t.name)
                    }
                    e => anyhow::anyhow!("restoring table {}: {e}", t.name),
                })?;
            batch.clear();
        }
        Ok(())
    }
    let end = loop {
        let Some(l) = next(input)? else {
            bail_damaged!("backup is truncated (no end line): nothing was restored");
        };
        if l.starts_with("{\"end\":") {
            break serde_json::from_str::<EndLine>(&l)
                .map_err(|_| damaged!("backup: damaged end line"))?;
        }
        hash.update(l.as_bytes());
        hash.update(b"\n");
        if l.starts_with("{\"table\":") {
            flush(&mut tx, &kind, &current, &mut batch).await?;
            let tl: TableLine =
                serde_json::from_str(&l).map_err(|_| damaged!("backup: damaged table line"))?;
            let t = tables
                .iter()
                .find(|t| t.name == tl.table)
                .cloned()
                .ok_or_else(|| {
                    damaged!(
                        "backup: table {} does not exist in this voxprov's schema",
                        tl.table
                    )
                })?;
            current = Some((t, tl.columns));
            ntables += 1;
            continue;
        }
        let Some((t, _)) = &current else {
            bail_damaged!("backup: damaged row line");
        };
        if !matches!(serde_json::from_str::<Value>(&l), Ok(Value::Object(_))) {
            bail_damaged!("backup: damaged row line");
        }
        rows += 1;
        // A table this load leaves as it is: read and counted (the checksum covers it).
        if keep.contains(&t.name.as_str()) {
            continue;
        }
        batch.push(l);
        if batch.len() >= BATCH {
            flush(&mut tx, &kind, &current, &mut batch).await?;
        }
    };
    flush(&mut tx, &kind, &current, &mut batch).await?;
    if hex::encode(hash.finalize()) != end.sha256 || end.rows != rows || end.tables != ntables {
        bail_damaged!("backup is damaged (its checksum does not match): nothing was restored");
    }
    dump::reset_sequences(&mut tx, &kind, &tables).await?;
    Ok((
        tx,
        Summary {
            tables: ntables,
            rows,
            schema: header.schema,
            bytes: 0,
        },
    ))
}

/// Reads just the header of a backup file.
pub fn header_of(path: &Path, known_schema: i64) -> anyhow::Result<Header> {
    let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut first = String::new();
    std::io::BufReader::new(f).read_line(&mut first)?;
    read_header(first.trim_end(), known_schema)
}
