-- voxprov's own certificate authorities (the admin client-certificate CA): the certificate in
-- PEM, the private key encrypted under the secret key like SIP passwords. In the database so
-- every node of a cluster and every backup has the same one.
CREATE TABLE pki (
    name TEXT PRIMARY KEY,
    cert_pem TEXT NOT NULL,
    key_enc TEXT NOT NULL,
    create_timestamp TEXT NOT NULL
);
-- An admin's client certificate (/api/admincerts/): its serial as NGCP shows it and the
-- SHA-256 of its DER, which is what a TLS client is recognised by. NULL: none (or revoked).
ALTER TABLE admins ADD COLUMN ssl_client_m_serial TEXT;
ALTER TABLE admins ADD COLUMN ssl_client_fingerprint TEXT;
CREATE UNIQUE INDEX uq_admins_ssl_client_fingerprint ON admins(ssl_client_fingerprint);
