//! A small certificate authority for a federation: one CA and one certificate per site whose
//! common name and DNS names are `<party_id>.<domain>` (e.g. `9999.fate.org`), as FATE's
//! Pulsar/Traffic Server star network names its brokers (fate-spec §2.5, §2.6). Keys are ECDSA
//! P-256 in PKCS#8 PEM, which is what eggroll and OSX require.
//!
//! A router checks that the certificate a peer presents carries `<claimed party>.<domain>`, so
//! a certificate doubles as the party's identity ([`crate::tls`]).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// File name of the CA certificate written by [`CertAuthority::write`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA key written by [`CertAuthority::write`].
pub const CA_KEY_FILE: &str = "ca.key";

/// Why a certificate could not be made, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused the parameters or the key.
    #[error("cannot create the certificate for {name}: {reason}")]
    Generate {
        /// The certificate's name.
        name: String,
        /// rcgen's message.
        reason: String,
    },
    /// A name is not usable as a DNS label.
    #[error("invalid certificate name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
}

/// The certificate and key of one site, in PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The first name the certificate was issued for (a party id or a label like `exchange`).
    pub name: String,
    /// Its DNS names, `<name>.<domain>` for each name.
    pub dns_names: Vec<String>,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// Paths of the files [`IssuedCert::write`] created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// `<name>.crt`
    pub cert_chain_file: PathBuf,
    /// `<name>.key`
    pub private_key_file: PathBuf,
    /// `ca.pem` of the issuing authority.
    pub ca_file: PathBuf,
}

impl IssuedCert {
    /// Writes `<name>.crt` and `<name>.key` into `dir` (created if missing) and returns their
    /// paths together with `dir/ca.pem`.
    pub fn write(&self, dir: &Path) -> Result<CertFiles, CertError> {
        create_dir(dir)?;
        let cert_chain_file = dir.join(format!("{}.crt", self.name));
        let private_key_file = dir.join(format!("{}.key", self.name));
        write_file(&cert_chain_file, &self.cert_pem)?;
        write_key(&private_key_file, &self.key_pem)?;
        Ok(CertFiles {
            cert_chain_file,
            private_key_file,
            ca_file: dir.join(CA_CERT_FILE),
        })
    }
}

/// A CA that issues site certificates for one domain.
pub struct CertAuthority {
    domain: String,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl CertAuthority {
    /// A new CA for `domain` (e.g. `fate.org`) with a fresh key.
    pub fn new(domain: &str) -> Result<Self, CertError> {
        check_domain(domain)?;
        let key = KeyPair::generate().map_err(|e| gen_err("the CA", e))?;
        let params = ca_params(domain);
        let cert = params.self_signed(&key).map_err(|e| gen_err("the CA", e))?;
        Ok(CertAuthority {
            domain: domain.to_string(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Reloads a CA that [`CertAuthority::write`] saved in `dir` for `domain`.
    pub fn load(dir: &Path, domain: &str) -> Result<Self, CertError> {
        check_domain(domain)?;
        let cert_pem = read_file(&dir.join(CA_CERT_FILE))?;
        let key_pem = read_file(&dir.join(CA_KEY_FILE))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| gen_err("the CA", e))?;
        Ok(CertAuthority {
            domain: domain.to_string(),
            cert_pem,
            key_pem,
            issuer: Issuer::new(ca_params(domain), key),
        })
    }

    /// The domain site names end with.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The CA certificate (PEM): every site's `caFile`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `ca.pem` and `ca.key` into `dir` (created if missing); returns the `ca.pem` path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, CertError> {
        create_dir(dir)?;
        let ca = dir.join(CA_CERT_FILE);
        write_file(&ca, &self.cert_pem)?;
        write_key(&dir.join(CA_KEY_FILE), &self.key_pem)?;
        Ok(ca)
    }

    /// Issues a certificate for a site hosting `names` (party ids, or a label such as
    /// `exchange`): CN `<names[0]>.<domain>`, one DNS name `<name>.<domain>` per name, usable
    /// as both server and client certificate.
    pub fn issue(&self, names: &[&str]) -> Result<IssuedCert, CertError> {
        let Some(first) = names.first() else {
            return Err(CertError::InvalidName {
                name: String::new(),
                reason: "a certificate needs at least one name",
            });
        };
        for name in names {
            check_label(name)?;
        }
        let dns_names: Vec<String> = names
            .iter()
            .map(|n| format!("{n}.{}", self.domain))
            .collect();
        let mut params =
            CertificateParams::new(dns_names.clone()).map_err(|e| gen_err(first, e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, dns_names[0].clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.domain.clone());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        set_validity(&mut params);
        let key = KeyPair::generate().map_err(|e| gen_err(first, e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| gen_err(first, e))?;
        Ok(IssuedCert {
            name: (*first).to_string(),
            dns_names,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Creates a CA for `domain` and one certificate per site in `sites` (each a list of names,
/// see [`CertAuthority::issue`]) and writes them all into `dir`: `ca.pem`, `ca.key` and
/// `<first name>.crt` / `<first name>.key` per site.
pub fn generate(dir: &Path, domain: &str, sites: &[&[&str]]) -> Result<Vec<CertFiles>, CertError> {
    let ca = CertAuthority::new(domain)?;
    ca.write(dir)?;
    sites
        .iter()
        .map(|names| ca.issue(names)?.write(dir))
        .collect()
}

fn ca_params(domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        DnType::CommonName,
        format!("fate-rs federation CA for {domain}"),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, domain.to_string());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    set_validity(&mut params);
    params
}

/// Valid from the start of last year for ten years.
fn set_validity(params: &mut CertificateParams) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let year = 1970 + (secs / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
}

fn check_domain(domain: &str) -> Result<(), CertError> {
    if domain.is_empty() || domain.split('.').any(|l| check_label(l).is_err()) {
        return Err(CertError::InvalidName {
            name: domain.to_string(),
            reason: "a domain is dot-separated labels of letters, digits and '-'",
        });
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), CertError> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CertError::InvalidName {
            name: label.to_string(),
            reason: "a site name is 1-63 letters, digits or inner '-' (a DNS label)",
        })
    }
}

fn gen_err(name: &str, e: rcgen::Error) -> CertError {
    CertError::Generate {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|e| CertError::Io {
        action: "create directory",
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|e| CertError::Io {
        action: "write",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a private key readable by its owner only (on Unix).
fn write_key(path: &Path, text: &str) -> Result<(), CertError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| CertError::Io {
            action: "write",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn read_file(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|e| CertError::Io {
        action: "read",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
