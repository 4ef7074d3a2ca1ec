//! TLS to PostgreSQL: rustls with ring, driven by the URL's `sslmode` and `sslrootcert`, as
//! libpq reads them (<https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNECT-SSLMODE>).
//!
//! Whenever a connection is encrypted, the server's certificate is verified, and its name
//! checked against the host: against the webpki roots, and the CA certificates of the PEM file
//! `sslrootcert` names, if any. This is stricter than libpq, whose `prefer` and `require`
//! accept any certificate: a store that carries paging state does not talk to a server it
//! cannot authenticate.
//!
//! | `sslmode` | what the store does |
//! |---|---|
//! | `disable` | plain connections |
//! | `prefer` (libpq's default, and ours) | TLS if the server offers it, verified; plain if it does not |
//! | `require`, `verify-ca`, `verify-full` | TLS, verified; no connection otherwise |

use std::sync::Arc;

use alert_core::{JobStoreError, StorageKind};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A URL with what only the store reads taken out of it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split {
    /// What tokio-postgres parses: `verify-ca` and `verify-full` become `require`, which
    /// verifies anyway, and `sslrootcert` is gone.
    pub(super) url: String,
    /// The CA file `sslrootcert` named.
    pub(super) root_cert: Option<String>,
}

/// Splits `url` (a `postgres://` URL, or libpq's `key=value` form) into what tokio-postgres
/// reads and the CA file.
pub(super) fn split(url: &str) -> Split {
    let mut root_cert = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslrootcert", path) => {
                root_cert = Some(path.to_owned());
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => Some("require".to_owned()),
            (_, value) => Some(value.to_owned()),
        }
    };
    let url = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .filter_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        let value = if key == "sslrootcert" {
                            percent_decoded(value)
                        } else {
                            value.to_owned()
                        };
                        keep(key, &value).map(|value| format!("{key}={value}"))
                    })
                    .collect();
                if params.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", params.join("&"))
                }
            }
        }
    } else {
        url.split_whitespace()
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                keep(key, value).map(|value| format!("{key}={value}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    Split { url, root_cert }
}

/// `%XX` escapes decoded, as a URL's query value needs.
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector every connection of the store uses: rustls with ring, trusting the webpki
/// roots and the PEM certificates of `root_cert`.
pub(super) fn connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, JobStoreError> {
    let invalid = |why: String| {
        JobStoreError::storage(
            StorageKind::Broken,
            format!("the PostgreSQL CA file (sslrootcert) is unusable: {why}"),
        )
    };
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_cert {
        let pem = std::fs::read(path).map_err(|e| invalid(format!("{path}: {e}")))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| invalid(format!("{path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("{path}: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(invalid(format!("{path} holds no PEM certificate")));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_reads_sslrootcert_and_the_verifying_modes_itself() {
        assert_eq!(
            split(
                "postgres://u@db:5432/q?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x"
            ),
            Split {
                url: "postgres://u@db:5432/q?sslmode=require&application_name=x".to_owned(),
                root_cert: Some("/ca.pem".to_owned()),
            }
        );
        assert_eq!(
            split("postgres://u@db/q?sslrootcert=%2Fetc%2Fca.pem"),
            Split {
                url: "postgres://u@db/q".to_owned(),
                root_cert: Some("/etc/ca.pem".to_owned()),
            }
        );
        assert_eq!(
            split("host=db sslmode=verify-ca sslrootcert=/ca.pem dbname=q"),
            Split {
                url: "host=db sslmode=require dbname=q".to_owned(),
                root_cert: Some("/ca.pem".to_owned()),
            }
        );
        assert_eq!(
            split("postgres://u@db/q?sslmode=disable"),
            Split {
                url: "postgres://u@db/q?sslmode=disable".to_owned(),
                root_cert: None,
            }
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("alertpub-empty-ca-{}", std::process::id()));
        std::fs::write(&path, "not a certificate").unwrap();
        let error = connector(path.to_str()).err().expect("refused");
        let _ = std::fs::remove_file(&path);
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error}"
        );
        let missing = connector(Some("/nonexistent/ca.pem"))
            .err()
            .expect("refused");
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
    }
}
