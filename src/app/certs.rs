//! Certificates voxprov issues and reads: the admin client-certificate CA (kept in the
//! database, its key encrypted under the secret key), the client certificates made from it
//! for `/api/admincerts/`, the trial server certificate, and the MAC a phone's certificate
//! names.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use sqlx::Row;

use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::Store;

const ADMIN_CA: &str = "admin-ca";

/// A CA certificate with its key, ready to sign.
pub struct Authority {
    pub cert_pem: String,
    key_pem: String,
}

/// A new client certificate: PEM certificate, PEM key, its serial (hex) and fingerprint.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub serial: String,
    pub fingerprint: String,
}

fn pki_err(e: impl std::fmt::Display) -> Error {
    Error::internal(anyhow::anyhow!("certificate: {e}"))
}

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// The admin CA, created on first use (by whichever node gets there first).
pub async fn admin_ca(store: &Store, cipher: &Cipher) -> Result<Authority> {
    if let Some(ca) = load(store, cipher, ADMIN_CA).await? {
        return Ok(ca);
    }
    let key = KeyPair::generate().map_err(pki_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "voxprov");
    dn.push(DnType::CommonName, "voxprov admin client CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = days_from_now(-1);
    params.not_after = days_from_now(365 * 20);
    let cert = params.self_signed(&key).map_err(pki_err)?;
    let key_enc = cipher.encrypt(&key.serialize_pem())?;
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO pki (name, cert_pem, key_enc, create_timestamp) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(ADMIN_CA)
    .bind(cert.pem())
    .bind(key_enc)
    .bind(crate::store::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    load(store, cipher, ADMIN_CA)
        .await?
        .ok_or_else(|| pki_err("the admin CA vanished after it was created"))
}

async fn load(store: &Store, cipher: &Cipher, name: &str) -> Result<Option<Authority>> {
    let mut c = store.read().await?;
    let row = sqlx::query("SELECT cert_pem, key_enc FROM pki WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Authority {
        cert_pem: row.try_get(0)?,
        key_pem: cipher.decrypt(&row.try_get::<String, _>(1)?)?,
    }))
}

impl Authority {
    /// A client certificate for `login`, valid for `days`.
    pub fn issue_client(&self, login: &str, days: i64) -> Result<Issued> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(pki_err)?;
        let ca_params = CertificateParams::from_ca_cert_pem(&self.cert_pem).map_err(pki_err)?;
        let ca = ca_params.self_signed(&ca_key).map_err(pki_err)?;
        let key = KeyPair::generate().map_err(pki_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "voxprov");
        dn.push(DnType::CommonName, login);
        params.distinguished_name = dn;
        let mut serial = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut serial);
        serial[0] &= 0x7f; // positive, as DER wants it
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = days_from_now(-1);
        params.not_after = days_from_now(days);
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(pki_err)?;
        Ok(Issued {
            fingerprint: crate::crypto::sha256_hex(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: hex::encode(serial),
        })
    }
}

/// A self-signed server certificate and key (PEM) for `names` (DNS names or addresses).
pub fn self_signed_server(names: &[String]) -> anyhow::Result<(String, String)> {
    let mut all = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    all.extend(names.iter().cloned());
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(all)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "voxprov");
    dn.push(DnType::CommonName, "voxprov self-signed (trial)");
    params.distinguished_name = dn;
    params.not_before = days_from_now(-1);
    params.not_after = days_from_now(825);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The one MAC address a (phone's) certificate names in its subject's common name or its
/// subject alternative names; `None` for a certificate with none or with several (a generic
/// certificate shared by many devices proves nothing about which phone is asking).
pub fn certificate_mac(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut texts: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(s)
            | x509_parser::extensions::GeneralName::RFC822Name(s)
            | x509_parser::extensions::GeneralName::URI(s) = name
            {
                texts.push(s.to_string());
            }
        }
    }
    let mut macs: Vec<String> = texts.iter().flat_map(|t| macs_in(t)).collect();
    macs.sort();
    macs.dedup();
    match macs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Every run of exactly 12 hex digits (optionally split by ':' or '-' every two) in `text`,
/// lower-cased without separators.
fn macs_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == ':' || c == '-')) {
        let hexes: String = word.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        let separated = word.contains([':', '-']);
        let well_split = !separated
            || word
                .split([':', '-'])
                .all(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_hexdigit()));
        if hexes.len() == 12 && well_split {
            out.push(hexes.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_cn(cn: &str) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_phone_certificate_names_one_mac_or_none() {
        assert_eq!(
            certificate_mac(&cert_with_cn("0015651a2b3c")).as_deref(),
            Some("0015651a2b3c")
        );
        assert_eq!(
            certificate_mac(&cert_with_cn("SEP 00:04:F2:AA:BB:CC")).as_deref(),
            Some("0004f2aabbcc")
        );
        // Generic vendor certificates and ambiguous ones prove nothing.
        assert_eq!(certificate_mac(&cert_with_cn("Yealink Equipment")), None);
        assert_eq!(
            certificate_mac(&cert_with_cn("0015651a2b3c 0015651a2b3d")),
            None
        );
        assert_eq!(certificate_mac(&cert_with_cn("0015651a2b3c4")), None);
    }
}
