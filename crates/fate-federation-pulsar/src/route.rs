//! FATE's `pulsar_route_table.yaml` (fate-spec §2.6): where each party's broker is.
//!
//! ```yaml
//! 9999:
//!   host: 127.0.0.1
//!   port: 6650          # binary protocol (pulsar://)
//!   sslPort: 6651       # pulsar+ssl://
//!   proxy: ""           # SNI proxy in front of the broker (star network), host:port
//!   mng_port: 8080      # admin REST (webServicePort); FATE keeps it in service_conf.yaml
//!   mng_ssl_port: 8081  # admin REST over TLS (webServicePortTls), for replication through
//!                       # the SNI proxy: Pulsar's replicator asks the remote admin REST
//! default:
//!   proxy: proxy.fate.org:443
//!   domain: fate.org
//!   brokerPort: 6650
//!   brokerSslPort: 6651
//! ```
//!
//! A party without an entry resolves through `default` to host `<party>.<domain>` with the
//! default ports and proxy (FATE's star network); without `default` (or its `domain`) it is an
//! error naming the party. Errors name the party and the field.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::PulsarError;

/// Default binary-protocol port.
pub const DEFAULT_PORT: u16 = 6650;
/// Default TLS port.
pub const DEFAULT_SSL_PORT: u16 = 6651;
/// Default admin REST port (the broker's `webServicePort`).
pub const DEFAULT_MNG_PORT: u16 = 8080;
/// Default admin REST TLS port (the broker's `webServicePortTls`, 8081 in FATE's star
/// deployment guide, fate-spec §2.6).
pub const DEFAULT_MNG_SSL_PORT: u16 = 8081;

/// One party's broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Binary-protocol port (`pulsar://host:port`).
    pub port: u16,
    /// TLS port (`pulsar+ssl://host:sslPort`).
    pub ssl_port: u16,
    /// The SNI proxy in front of it (`host:port`), if any.
    pub proxy: Option<String>,
    /// Admin REST port.
    pub mng_port: u16,
    /// Admin REST TLS port.
    pub mng_ssl_port: u16,
}

impl Broker {
    /// `pulsar://host:port`.
    pub fn service_url(&self) -> String {
        format!("pulsar://{}:{}", self.host, self.port)
    }

    /// `host:port` (binary protocol), for errors.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `http://host:mng_port`, the admin REST base.
    pub fn admin_url(&self) -> String {
        format!("http://{}:{}", self.host, self.mng_port)
    }

    /// `pulsar+ssl://host:sslPort`.
    pub fn service_url_tls(&self) -> String {
        format!("pulsar+ssl://{}:{}", self.host, self.ssl_port)
    }

    /// `host:mng_port`, for errors.
    pub fn mng_addr(&self) -> String {
        format!("{}:{}", self.host, self.mng_port)
    }
}

/// The `default` entry: how a party without an entry is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultRoute {
    /// SNI proxy (`host:port`).
    pub proxy: Option<String>,
    /// Domain: party `P` is `P.<domain>`.
    pub domain: Option<String>,
    /// Broker port of such a party.
    pub broker_port: u16,
    /// Broker TLS port of such a party.
    pub broker_ssl_port: u16,
    /// Admin REST port of such a party.
    pub mng_port: u16,
    /// Admin REST TLS port of such a party.
    pub mng_ssl_port: u16,
}

/// The parsed route table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    brokers: BTreeMap<String, Broker>,
    default: Option<DefaultRoute>,
}

/// Longest a host, proxy or domain may be.
const MAX_FIELD: usize = 1024;

fn route_err(party: &str, field: &str, reason: impl Into<String>) -> PulsarError {
    PulsarError::Route {
        party: party.to_string(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn field_text(
    party: &str,
    field: &str,
    v: &Value,
    allow_empty: bool,
) -> Result<String, PulsarError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null if allow_empty => String::new(),
        _ => return Err(route_err(party, field, "expected a string")),
    };
    if (s.is_empty() && !allow_empty) || s.len() > MAX_FIELD {
        return Err(route_err(
            party,
            field,
            format!("must have 1 to {MAX_FIELD} bytes"),
        ));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(route_err(
            party,
            field,
            format!("`{s}` has a space, a control character or a slash"),
        ));
    }
    Ok(s)
}

fn port(party: &str, field: &str, v: &Value) -> Result<u16, PulsarError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| route_err(party, field, format!("{v:?} is not a port")))
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl RouteTable {
    /// A table from entries (and no `default`).
    pub fn new(brokers: impl IntoIterator<Item = (String, Broker)>) -> Self {
        RouteTable {
            brokers: brokers.into_iter().collect(),
            default: None,
        }
    }

    /// Reads `pulsar_route_table.yaml`.
    pub fn load(path: &Path) -> Result<Self, PulsarError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| route_err("", "", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parses the YAML text of a route table.
    pub fn parse(text: &str) -> Result<Self, PulsarError> {
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| route_err("", "", format!("not YAML: {e}")))?;
        let Value::Mapping(map) = doc else {
            return Err(route_err("", "", "expected a mapping of party ids"));
        };
        let mut table = RouteTable::default();
        for (k, v) in map {
            let party = match k {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s,
                other => {
                    return Err(route_err(
                        "",
                        "",
                        format!("party id {other:?} is not a string"),
                    ));
                }
            };
            let Value::Mapping(fields) = v else {
                return Err(route_err(&party, "", "expected a mapping of fields"));
            };
            if party == "default" {
                let mut d = DefaultRoute {
                    broker_port: DEFAULT_PORT,
                    broker_ssl_port: DEFAULT_SSL_PORT,
                    mng_port: DEFAULT_MNG_PORT,
                    mng_ssl_port: DEFAULT_MNG_SSL_PORT,
                    ..DefaultRoute::default()
                };
                for (fk, fv) in fields {
                    let Some(field) = fk.as_str() else {
                        return Err(route_err(
                            &party,
                            "",
                            format!("field {fk:?} is not a string"),
                        ));
                    };
                    match field {
                        "proxy" => d.proxy = non_empty(field_text(&party, field, &fv, true)?),
                        "domain" => d.domain = non_empty(field_text(&party, field, &fv, false)?),
                        "brokerPort" => d.broker_port = port(&party, field, &fv)?,
                        "brokerSslPort" => d.broker_ssl_port = port(&party, field, &fv)?,
                        "mng_port" => d.mng_port = port(&party, field, &fv)?,
                        "mng_ssl_port" => d.mng_ssl_port = port(&party, field, &fv)?,
                        other => {
                            return Err(route_err(
                                &party,
                                other,
                                "unknown field (known: proxy, domain, brokerPort, \
                                 brokerSslPort, mng_port, mng_ssl_port)",
                            ));
                        }
                    }
                }
                table.default = Some(d);
                continue;
            }
            fate_types::check_path_id("party id", &party)
                .map_err(|e| route_err(&party, "", e.to_string()))?;
            let mut host = None;
            let mut broker = Broker {
                host: String::new(),
                port: DEFAULT_PORT,
                ssl_port: DEFAULT_SSL_PORT,
                proxy: None,
                mng_port: DEFAULT_MNG_PORT,
                mng_ssl_port: DEFAULT_MNG_SSL_PORT,
            };
            for (fk, fv) in fields {
                let Some(field) = fk.as_str() else {
                    return Err(route_err(
                        &party,
                        "",
                        format!("field {fk:?} is not a string"),
                    ));
                };
                match field {
                    "host" => host = Some(field_text(&party, field, &fv, false)?),
                    "port" => broker.port = port(&party, field, &fv)?,
                    "sslPort" => broker.ssl_port = port(&party, field, &fv)?,
                    "proxy" => broker.proxy = non_empty(field_text(&party, field, &fv, true)?),
                    "mng_port" => broker.mng_port = port(&party, field, &fv)?,
                    "mng_ssl_port" => broker.mng_ssl_port = port(&party, field, &fv)?,
                    other => {
                        return Err(route_err(
                            &party,
                            other,
                            "unknown field (known: host, port, sslPort, proxy, mng_port, \
                             mng_ssl_port)",
                        ));
                    }
                }
            }
            broker.host = host.ok_or_else(|| route_err(&party, "host", "missing"))?;
            table.brokers.insert(party, broker);
        }
        Ok(table)
    }

    /// The broker of `party_id`: its entry, else `<party>.<domain>` from `default`.
    pub fn broker(&self, party_id: &str) -> Result<Broker, PulsarError> {
        if let Some(b) = self.brokers.get(party_id) {
            return Ok(b.clone());
        }
        match &self.default {
            Some(DefaultRoute {
                domain: Some(domain),
                proxy,
                broker_port,
                broker_ssl_port,
                mng_port,
                mng_ssl_port,
            }) => Ok(Broker {
                host: format!("{party_id}.{domain}"),
                port: *broker_port,
                ssl_port: *broker_ssl_port,
                proxy: proxy.clone(),
                mng_port: *mng_port,
                mng_ssl_port: *mng_ssl_port,
            }),
            Some(_) => Err(route_err(
                party_id,
                "default.domain",
                "the party is not in pulsar_route_table.yaml and `default` has no `domain` to \
                 compose its host from",
            )),
            None => Err(route_err(
                party_id,
                "host",
                "the party is not in pulsar_route_table.yaml (and there is no `default` entry), \
                 so its broker is unknown",
            )),
        }
    }

    /// Every party id with an entry.
    pub fn parties(&self) -> impl Iterator<Item = &str> {
        self.brokers.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fate_entries_composes_unknown_parties_and_names_bad_fields() {
        let t = RouteTable::parse(
            "9999:\n  host: 127.0.0.1\n  port: 6650\n  sslPort: 6651\n  proxy: \"\"\n  \
             mng_port: 18080\n\
             10000: {host: peer, port: 7650}\n\
             default: {proxy: \"proxy.fate.org:443\", domain: fate.org, brokerPort: 6650, \
             brokerSslPort: 6651}\n",
        )
        .unwrap();
        let b = t.broker("9999").unwrap();
        assert_eq!(
            (b.port, b.ssl_port, b.mng_port, b.proxy),
            (6650, 6651, 18080, None)
        );
        assert_eq!(
            t.broker("10000").unwrap().service_url(),
            "pulsar://peer:7650"
        );
        let composed = t.broker("10001").unwrap();
        assert_eq!(composed.host, "10001.fate.org");
        assert_eq!(composed.proxy.as_deref(), Some("proxy.fate.org:443"));

        let e = RouteTable::parse("9999: {host: h}")
            .unwrap()
            .broker("10001")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("party 10001") && e.contains("pulsar_route_table.yaml"),
            "{e}"
        );
        let e = RouteTable::parse("default: {proxy: p}")
            .unwrap()
            .broker("10001")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("party 10001") && e.contains("`default.domain`"),
            "{e}"
        );
        let e = RouteTable::parse("9999: {host: h, port: 70000}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`port`"), "{e}");
        let e = RouteTable::parse("9999: {host: h, sslPort: x}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`sslPort`"), "{e}");
        let e = RouteTable::parse("9999: {hots: h}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`hots`"), "{e}");
        let e = RouteTable::parse("9999: {port: 1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`host`"), "{e}");
        let e = RouteTable::parse("9999: {host: \"a/b\"}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`host`"), "{e}");
        let e = RouteTable::parse("default: {domain: fate.org, brokerPort: 0}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("party default") && e.contains("`brokerPort`"),
            "{e}"
        );
        let e = RouteTable::parse("../x: {host: h}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party ../x"), "{e}");
    }
}
