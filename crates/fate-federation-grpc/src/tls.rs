//! TLS settings of a router or transport (rustls with ring, through tonic) and the mutual-TLS
//! party check.
//!
//! With TLS configured a server requires a client certificate signed by the federation CA
//! (mutual TLS, as eggroll's `secure.client.auth.enabled`, fate-spec §2.5), and every pushed
//! packet's claimed source party must be backed by the certificate: the certificate must carry
//! `<src party>.<domain>`, or a name of one of this site's own parties (its own router relaying),
//! or one of the configured relay names (an exchange).

use std::path::Path;
use std::sync::Arc;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::GrpcError;

/// Certificates and names of one site.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// This site's certificate chain (PEM): served to clients and presented to servers.
    pub cert_chain_pem: Vec<u8>,
    /// This site's private key (PEM, PKCS#8).
    pub private_key_pem: Vec<u8>,
    /// The federation CA (PEM): peers' certificates must chain to it.
    pub ca_pem: Vec<u8>,
    /// Domain of site names: party `P` is `P.<domain>` (e.g. `fate.org`).
    pub domain: String,
    /// Full certificate names allowed to relay packets of any source party, e.g.
    /// `exchange.fate.org` for an exchange router.
    pub trusted_relays: Vec<String>,
}

impl TlsConfig {
    /// Reads the PEM files (OSX's `certChainFile`, `privateKeyFile`, `caFile`).
    pub fn from_files(
        cert_chain_file: &Path,
        private_key_file: &Path,
        ca_file: &Path,
        domain: &str,
    ) -> Result<Self, GrpcError> {
        Ok(TlsConfig {
            cert_chain_pem: read_pem(cert_chain_file)?,
            private_key_pem: read_pem(private_key_file)?,
            ca_pem: read_pem(ca_file)?,
            domain: domain.to_string(),
            trusted_relays: Vec::new(),
        })
    }

    /// Adds a relay name (see [`TlsConfig::trusted_relays`]).
    pub fn trust_relay(mut self, name: impl Into<String>) -> Self {
        self.trusted_relays.push(name.into());
        self
    }

    /// The name party `party_id`'s certificate carries.
    pub fn party_name(&self, party_id: &str) -> String {
        format!("{party_id}.{}", self.domain)
    }

    pub(crate) fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &self.cert_chain_pem,
                &self.private_key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
    }

    pub(crate) fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(
                &self.cert_chain_pem,
                &self.private_key_pem,
            ))
            .domain_name(server_name.to_string())
    }
}

pub(crate) fn read_pem(path: &Path) -> Result<Vec<u8>, GrpcError> {
    std::fs::read(path).map_err(|e| GrpcError::Tls {
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

/// Checks that the client certificate `der` may carry packets from `src_party` into a site
/// hosting `self_party`. The chain itself was verified by rustls during the handshake.
pub(crate) fn check_peer(
    tls: &TlsConfig,
    der: Option<&rustls_pki_types::CertificateDer<'static>>,
    src_party: &str,
    self_party: &[String],
) -> Result<(), String> {
    let Some(der) = der else {
        return Err(format!(
            "TLS: no client certificate presented where {src_party} was claimed"
        ));
    };
    let cert = webpki::EndEntityCert::try_from(der)
        .map_err(|e| format!("TLS: unreadable client certificate: {e}"))?;
    let valid_for = |name: &str| -> bool {
        rustls_pki_types::ServerName::try_from(name)
            .map(|server_name| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
            .unwrap_or(false)
    };
    let claimed = tls.party_name(src_party);
    if valid_for(&claimed)
        || self_party.iter().any(|p| valid_for(&tls.party_name(p)))
        || tls.trusted_relays.iter().any(|name| valid_for(name))
    {
        return Ok(());
    }
    let names: Vec<&str> = cert.valid_dns_names().collect();
    let presented = if names.is_empty() {
        "a certificate without DNS names".to_string()
    } else {
        format!("certificate for {}", names.join(", "))
    };
    Err(format!(
        "TLS: {presented} presented where {src_party} was claimed (expected {claimed})"
    ))
}

/// Checks that the client certificate `der` names one of this site's own parties
/// (`self_party`): only they may read or drop the site's OSX queues (pop, peek, release).
pub(crate) fn check_local(
    tls: &TlsConfig,
    der: Option<&rustls_pki_types::CertificateDer<'static>>,
    self_party: &[String],
) -> Result<(), String> {
    let Some(der) = der else {
        return Err("TLS: no client certificate presented".to_string());
    };
    let cert = webpki::EndEntityCert::try_from(der)
        .map_err(|e| format!("TLS: unreadable client certificate: {e}"))?;
    let valid_for = |name: &str| -> bool {
        rustls_pki_types::ServerName::try_from(name)
            .map(|server_name| cert.verify_is_valid_for_subject_name(&server_name).is_ok())
            .unwrap_or(false)
    };
    if self_party.iter().any(|p| valid_for(&tls.party_name(p))) {
        return Ok(());
    }
    let names: Vec<&str> = cert.valid_dns_names().collect();
    let own: Vec<String> = self_party.iter().map(|p| tls.party_name(p)).collect();
    Err(format!(
        "TLS: certificate for {} may not read this site's queues (they belong to {})",
        if names.is_empty() {
            "no DNS name".to_string()
        } else {
            names.join(", ")
        },
        if own.is_empty() {
            "no party: self_party is empty".to_string()
        } else {
            own.join(", ")
        }
    ))
}

/// The first certificate of a request's TLS peer chain, if any.
pub(crate) fn peer_leaf<T>(
    request: &tonic::Request<T>,
) -> Option<rustls_pki_types::CertificateDer<'static>> {
    let certs: Arc<Vec<rustls_pki_types::CertificateDer<'static>>> = request.peer_certs()?;
    certs.first().cloned()
}
