//! The rustls client configuration for `mqtts://`: the configured CA file or the system's trust
//! store, and an optional client certificate. Built once at start, so a missing or malformed
//! file stops the station with its name instead of failing every reconnection.

use super::config::MqttSection;
use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{what} {} is not a readable PEM file", path.display()))?;
    if certs.is_empty() {
        bail!("{what} {} holds no certificate", path.display());
    }
    Ok(certs)
}

pub fn client_config(cfg: &MqttSection) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match &cfg.ca_file {
        Some(ca) => {
            for c in certificates(ca, "mqtt.ca_file")? {
                roots.add(c).with_context(|| {
                    format!("mqtt.ca_file {}: a certificate is invalid", ca.display())
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                bail!("mqtt: no system trust store found for mqtts://; set mqtt.ca_file");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    let config = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "mqtt.client_cert")?;
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!(
                    "mqtt.client_key {} holds no readable PEM private key",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .context("mqtt.client_cert and mqtt.client_key do not make a usable pair")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
