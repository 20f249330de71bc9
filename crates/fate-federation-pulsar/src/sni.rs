//! Checks a hop of FATE's Pulsar star network (fate-spec §2.6): that the SNI proxy in front of
//! a party's broker routes the party's site name to a broker whose certificate the site's CA
//! issued for that name. A proxy without a route for the name fails the handshake (Traffic
//! Server configured by `fate_federation_grpc::sni` holds no certificate) or answers with a
//! certificate of its own, so the error names the proxy and the name.
//! Used by `fate doctor` and the tests; the brokers' replication takes the same hop.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A TLS handshake with `server_name` through the SNI proxy at `proxy` (`host:port`),
/// verifying the certificate chain against the CA certificates in `ca_file` and the name,
/// each step bounded by `timeout`.
pub fn check_sni_route(
    proxy: &str,
    server_name: &str,
    ca_file: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("cannot read the CA file {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("`{server_name}` is not a TLS server name: {e}"))?;
    let addr = proxy
        .to_socket_addrs()
        .map_err(|e| format!("SNI proxy {proxy}: cannot resolve it: {e}"))?
        .next()
        .ok_or_else(|| format!("SNI proxy {proxy}: resolves to no address"))?;
    let mut sock = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("SNI proxy {proxy}: cannot connect: {e}"))?;
    sock.set_read_timeout(Some(timeout)).ok();
    sock.set_write_timeout(Some(timeout)).ok();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| {
            format!(
                "SNI proxy {proxy} did not lead to a broker certified as `{server_name}` (no \
                 route for that name at the proxy, or a certificate of another CA): {e}"
            )
        })?;
    }
    // Nothing is sent: close politely.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    let _ = sock.flush();
    let mut rest = [0u8; 1];
    let _ = sock.read(&mut rest);
    Ok(())
}
