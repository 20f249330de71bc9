//! FATE's `rabbitmq_route_table.yaml` (fate-spec §2.7): where each party's broker is.
//!
//! ```yaml
//! 9999:
//!   host: 127.0.0.1
//!   port: 5672        # AMQP
//!   mng_port: 15672   # management HTTP API
//!   user: fate        # admin of the management API; needed for the parties this node serves
//!   password: fate
//! 10000:
//!   host: 10.0.0.2
//!   port: 5672
//! ```
//!
//! FATE's table has `host` and `port`; the management port and the admin credentials come
//! from its `service_conf.yaml` (`rabbitmq.mng_port`, `user`, `password`) for the local broker
//! only. Here they may sit in the party's entry. Errors name the party and the field.

use std::collections::BTreeMap;
use std::path::Path;

use crate::RabbitError;

/// Default AMQP port.
pub const DEFAULT_PORT: u16 = 5672;
/// Default management API port.
pub const DEFAULT_MNG_PORT: u16 = 15672;

/// One party's broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// AMQP port.
    pub port: u16,
    /// Management API port.
    pub mng_port: u16,
    /// Admin user of the management API (only used for the parties this node serves).
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

impl Broker {
    /// `host:port` (AMQP), for errors.
    pub fn amqp_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `host:mng_port`, for errors.
    pub fn mng_addr(&self) -> String {
        format!("{}:{}", self.host, self.mng_port)
    }
}

/// The parsed route table: party id to broker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    brokers: BTreeMap<String, Broker>,
}

/// Longest a host, user or password may be.
const MAX_FIELD: usize = 1024;

impl RouteTable {
    /// A table from entries.
    pub fn new(brokers: impl IntoIterator<Item = (String, Broker)>) -> Self {
        RouteTable {
            brokers: brokers.into_iter().collect(),
        }
    }

    /// Reads `rabbitmq_route_table.yaml`.
    pub fn load(path: &Path) -> Result<Self, RabbitError> {
        let text = std::fs::read_to_string(path).map_err(|e| RabbitError::Route {
            party: String::new(),
            field: String::new(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(&text)
    }

    /// Parses the YAML text of a route table.
    pub fn parse(text: &str) -> Result<Self, RabbitError> {
        let err = |party: &str, field: &str, reason: String| RabbitError::Route {
            party: party.to_string(),
            field: field.to_string(),
            reason,
        };
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| err("", "", format!("not YAML: {e}")))?;
        let serde_yaml_ng::Value::Mapping(map) = doc else {
            return Err(err("", "", "expected a mapping of party ids".into()));
        };
        let mut brokers = BTreeMap::new();
        for (k, v) in map {
            let party = match k {
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::String(s) => s,
                other => return Err(err("", "", format!("party id {other:?} is not a string"))),
            };
            fate_types::check_path_id("party id", &party)
                .map_err(|e| err(&party, "", e.to_string()))?;
            let serde_yaml_ng::Value::Mapping(fields) = v else {
                return Err(err(&party, "", "expected a mapping {host, port}".into()));
            };
            let mut host = None;
            let mut port = DEFAULT_PORT;
            let mut mng_port = DEFAULT_MNG_PORT;
            let mut user = None;
            let mut password = None;
            for (fk, fv) in fields {
                let Some(field) = fk.as_str() else {
                    return Err(err(&party, "", format!("field {fk:?} is not a string")));
                };
                let text = |fv: &serde_yaml_ng::Value| -> Result<String, RabbitError> {
                    let s = match fv {
                        serde_yaml_ng::Value::String(s) => s.clone(),
                        serde_yaml_ng::Value::Number(n) => n.to_string(),
                        _ => return Err(err(&party, field, "expected a string".into())),
                    };
                    if s.is_empty() || s.len() > MAX_FIELD {
                        return Err(err(
                            &party,
                            field,
                            format!("must have 1 to {MAX_FIELD} bytes"),
                        ));
                    }
                    Ok(s)
                };
                let number = |fv: &serde_yaml_ng::Value| -> Result<u16, RabbitError> {
                    fv.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| err(&party, field, format!("{fv:?} is not a port")))
                };
                match field {
                    "host" => host = Some(text(&fv)?),
                    "port" => port = number(&fv)?,
                    "mng_port" => mng_port = number(&fv)?,
                    "user" => user = Some(text(&fv)?),
                    "password" => password = Some(text(&fv)?),
                    other => {
                        return Err(err(
                            &party,
                            other,
                            "unknown field (known: host, port, mng_port, user, password)".into(),
                        ));
                    }
                }
            }
            let host = host.ok_or_else(|| err(&party, "host", "missing".into()))?;
            brokers.insert(
                party,
                Broker {
                    host,
                    port,
                    mng_port,
                    user,
                    password,
                },
            );
        }
        Ok(RouteTable { brokers })
    }

    /// The broker of `party_id`, or an error naming the party and the file.
    pub fn broker(&self, party_id: &str) -> Result<&Broker, RabbitError> {
        self.brokers
            .get(party_id)
            .ok_or_else(|| RabbitError::Route {
                party: party_id.to_string(),
                field: "host".into(),
                reason: "the party is not in rabbitmq_route_table.yaml, so its broker is unknown"
                    .into(),
            })
    }

    /// Every party id in the table.
    pub fn parties(&self) -> impl Iterator<Item = &str> {
        self.brokers.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fate_entries_and_names_the_party_and_field_of_a_bad_one() {
        let t = RouteTable::parse(
            "9999:\n  host: 127.0.0.1\n  port: 5673\n  mng_port: 15673\n  user: a\n  password: b\n\
             10000: {host: peer}\n",
        )
        .unwrap();
        let b = t.broker("9999").unwrap();
        assert_eq!(
            (b.port, b.mng_port, b.user.as_deref()),
            (5673, 15673, Some("a"))
        );
        assert_eq!(t.broker("10000").unwrap().port, DEFAULT_PORT);
        let e = t.broker("10001").unwrap_err().to_string();
        assert!(
            e.contains("party 10001") && e.contains("rabbitmq_route_table.yaml"),
            "{e}"
        );
        let e = RouteTable::parse("9999: {host: h, port: 70000}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`port`"), "{e}");
        let e = RouteTable::parse("9999: {hots: h}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`hots`"), "{e}");
        let e = RouteTable::parse("9999: {port: 1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party 9999") && e.contains("`host`"), "{e}");
        let e = RouteTable::parse("../x: {host: h}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("party ../x"), "{e}");
    }
}
