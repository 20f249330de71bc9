//! FATE's `route_table.json`, read unchanged (fate-spec §2.5), and a reloading handle on it.
//!
//! ```json
//! {"route_table": {"9999":    {"default": [{"ip": "127.0.0.1", "port": 9370}]},
//!                  "10000":   {"default": [{"ip": "10.0.0.2", "port": 9370, "is_secure": true}]},
//!                  "default": {"default": [{"ip": "exchange", "port": 9370,
//!                                           "hostname": "exchange.fate.org"}]}},
//!  "permission": {"default_allow": true},
//!  "self_party": ["9999"]}
//! ```
//!
//! Lookup follows rollsite and OSX: the party's entry, else the `default` party entry (only
//! when `permission.default_allow`); inside it the role's list, else the `default` role list;
//! the first endpoint of the list is used. Endpoints take `ip`, `port`, `is_secure` (bool, 0/1
//! or "true"/"false"), `is_polling`, OSX's PEM fields `certChainFile`, `privateKeyFile`,
//! `caFile` (relative paths are relative to the route table's directory) and, as a fate-rs
//! extension, `hostname`: the name the next hop's TLS certificate must carry (default
//! `<party_id>.<domain>` of the destination). Other fields (OSX's `protocol`, `useSSL`, ...) are
//! ignored; keystore routes (`useKeyStore: true`) are refused because only PEM is supported.
//!
//! `hostname` is independent of `ip`/`port`: the connection goes to `ip:port` and `hostname`
//! is sent as the TLS server name (SNI) and checked against the certificate. That is what the
//! seeds' star network needs (fate-spec §2.6): every peer is reached through one SNI proxy
//! (Apache Traffic Server, `sni.yaml` `tunnel_route` per `<party>.<domain>`), so each peer's
//! route is `{"ip": <proxy ip>, "port": <proxy port>, "is_secure": true, "hostname":
//! "10000.fate.org"}` and the proxy tunnels the TLS session, unopened, to that party's router
//! (tests/sni.rs runs this with a real Traffic Server).
//! `permission` missing means `default_allow: true`, as in every shipped FATE example.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::{Condvar, Mutex, RwLock};
use serde_json::Value;

/// The key FATE uses for "any party" and "any role".
pub const DEFAULT_KEY: &str = "default";

/// How often [`Routes::watch`] checks the file by default (OSX reloads on change; rollsite
/// re-reads every minute).
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a route table could not be read or a route could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The file could not be read.
    #[error("cannot read route table {path}: {reason}")]
    Io {
        /// The route table file.
        path: PathBuf,
        /// The operating system's message.
        reason: String,
    },
    /// The text is not JSON.
    #[error("route table {source_name} is not valid JSON: {reason}")]
    Json {
        /// The file, or `<string>`.
        source_name: String,
        /// The parser's message.
        reason: String,
    },
    /// A value has the wrong shape or is missing.
    #[error("route table {source_name}: {at}: {reason}")]
    Field {
        /// The file, or `<string>`.
        source_name: String,
        /// Where, e.g. `route_table["10000"]["default"][0].port`.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither the party nor (an allowed) `default` entry exists.
    #[error("no route to party {party_id} (route_table has {known}; {default_state})")]
    NoParty {
        /// The destination party id.
        party_id: String,
        /// The party ids the table lists, comma separated.
        known: String,
        /// `default not allowed` or `no default entry`.
        default_state: &'static str,
    },
    /// The party entry has neither the role nor a `default` role.
    #[error("no route to role {role} of party {party_id} (route_table[\"{entry}\"] has {known})")]
    NoRole {
        /// The destination party id.
        party_id: String,
        /// The destination role.
        role: String,
        /// The party entry used (`default` when the party fell back).
        entry: String,
        /// The roles the entry lists.
        known: String,
    },
    /// The chosen endpoint is a reverse-polling endpoint, which fate-rs does not implement.
    #[error(
        "route to {role}:{party_id} (route_table[\"{entry}\"]) is a polling route (is_polling), \
         which fate-rs routers do not support: give the party's ip and port instead"
    )]
    Polling {
        /// The destination party id.
        party_id: String,
        /// The destination role.
        role: String,
        /// The party entry used.
        entry: String,
    },
}

/// One endpoint of a route list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Host name or address of the next hop.
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// Whether to speak TLS to it (FATE's `is_secure`).
    pub is_secure: bool,
    /// FATE's reverse polling flag; such routes are refused at lookup.
    pub is_polling: bool,
    /// Name the next hop's certificate must carry, sent as the TLS server name (SNI) while
    /// connecting to `ip` (fate-rs extension; see the module docs).
    pub hostname: Option<String>,
    /// OSX `certChainFile`: client certificate chain for this hop (PEM).
    pub cert_chain_file: Option<PathBuf>,
    /// OSX `privateKeyFile`: client key for this hop (PEM, PKCS#8).
    pub private_key_file: Option<PathBuf>,
    /// OSX `caFile`: CA to verify this hop's server certificate (PEM).
    pub ca_file: Option<PathBuf>,
}

impl Route {
    /// `ip:port`.
    pub fn address(&self) -> String {
        if self.ip.contains(':') && !self.ip.starts_with('[') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}

/// Which entries a lookup used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The endpoint to push to.
    pub route: Route,
    /// `Some(party_id)` when the party's own entry matched, `None` for the `default` entry.
    pub party_entry: Option<String>,
    /// `Some(role)` when the role's own list matched, `None` for the `default` list.
    pub role_entry: Option<String>,
    /// The party is one of this site's own (`self_party`): the hop leads to its node.
    pub local: bool,
}

impl Hop {
    /// How the hop is described in errors: `router of 10000`, `node of 9999` (a site's own
    /// party) or `default route`.
    pub fn describe(&self) -> String {
        match (&self.party_entry, &self.role_entry) {
            (Some(party), None) if self.local => format!("node of {party}"),
            (Some(party), None) => format!("router of {party}"),
            (Some(party), Some(role)) => format!("{role} of {party}"),
            (None, Some(role)) => format!("default route for {role}"),
            (None, None) => "default route".to_string(),
        }
    }
}

/// A parsed `route_table.json`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RouteTable {
    entries: BTreeMap<String, BTreeMap<String, Vec<Route>>>,
    default_allow: bool,
    self_party: Vec<String>,
}

impl RouteTable {
    /// Parses a route table from JSON text; relative PEM paths are resolved against
    /// `base_dir` when given.
    pub fn from_json(text: &str, base_dir: Option<&Path>) -> Result<Self, RouteError> {
        Parser {
            source_name: "<string>".to_string(),
            base_dir,
        }
        .parse(text)
    }

    /// Reads and parses `path`; relative PEM paths are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, RouteError> {
        let text = std::fs::read_to_string(path).map_err(|e| RouteError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Parser {
            source_name: path.display().to_string(),
            base_dir: path.parent(),
        }
        .parse(&text)
    }

    /// A table from parts (tests, generated configs). Empty route lists are dropped.
    pub fn from_parts(
        entries: BTreeMap<String, BTreeMap<String, Vec<Route>>>,
        default_allow: bool,
        self_party: Vec<String>,
    ) -> Self {
        let entries = entries
            .into_iter()
            .map(|(party, roles)| {
                let roles = roles.into_iter().filter(|(_, r)| !r.is_empty()).collect();
                (party, roles)
            })
            .collect();
        RouteTable {
            entries,
            default_allow,
            self_party,
        }
    }

    /// Finds the next hop towards `role` of `party_id` (see the module docs for the rules).
    pub fn lookup(&self, party_id: &str, role: &str) -> Result<Hop, RouteError> {
        let (party_entry, roles) = match self.entries.get(party_id) {
            Some(roles) if party_id != DEFAULT_KEY => (Some(party_id.to_string()), roles),
            _ => match self.entries.get(DEFAULT_KEY) {
                Some(roles) if self.default_allow => (None, roles),
                found => {
                    return Err(RouteError::NoParty {
                        party_id: party_id.to_string(),
                        known: self.known_parties(),
                        default_state: if found.is_some() {
                            "default not allowed"
                        } else {
                            "no default entry"
                        },
                    });
                }
            },
        };
        let entry_name = party_entry.as_deref().unwrap_or(DEFAULT_KEY).to_string();
        let (role_entry, list) = match roles.get(role) {
            Some(list) if role != DEFAULT_KEY => (Some(role.to_string()), list),
            _ => match roles.get(DEFAULT_KEY) {
                Some(list) => (None, list),
                None => {
                    return Err(RouteError::NoRole {
                        party_id: party_id.to_string(),
                        role: role.to_string(),
                        entry: entry_name,
                        known: join_or_none(roles.keys()),
                    });
                }
            },
        };
        // Parsing and `from_parts` keep only non-empty lists.
        let Some(route) = list.first() else {
            return Err(RouteError::NoRole {
                party_id: party_id.to_string(),
                role: role.to_string(),
                entry: entry_name,
                known: join_or_none(roles.keys()),
            });
        };
        if route.is_polling {
            return Err(RouteError::Polling {
                party_id: party_id.to_string(),
                role: role.to_string(),
                entry: entry_name,
            });
        }
        let local = party_entry
            .as_deref()
            .is_some_and(|p| self.self_party.iter().any(|s| s == p));
        Ok(Hop {
            route: route.clone(),
            party_entry,
            role_entry,
            local,
        })
    }

    /// The parties this site hosts (OSX `self_party`).
    pub fn self_party(&self) -> &[String] {
        &self.self_party
    }

    /// Whether `party_id` is one of this site's parties.
    pub fn is_self(&self, party_id: &str) -> bool {
        self.self_party.iter().any(|p| p == party_id)
    }

    /// Whether the `default` party entry may be used.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The party keys of the table (including `default` if present), sorted.
    pub fn parties(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The route lists of one party key.
    pub fn roles(&self, party: &str) -> Option<&BTreeMap<String, Vec<Route>>> {
        self.entries.get(party)
    }

    fn known_parties(&self) -> String {
        join_or_none(self.entries.keys().filter(|k| k.as_str() != DEFAULT_KEY))
    }
}

fn join_or_none<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&str> = keys.map(String::as_str).collect();
    if keys.is_empty() {
        "no entries".to_string()
    } else {
        keys.join(", ")
    }
}

struct Parser<'a> {
    source_name: String,
    base_dir: Option<&'a Path>,
}

impl Parser<'_> {
    fn err(&self, at: impl fmt::Display, reason: impl Into<String>) -> RouteError {
        RouteError::Field {
            source_name: self.source_name.clone(),
            at: at.to_string(),
            reason: reason.into(),
        }
    }

    fn parse(&self, text: &str) -> Result<RouteTable, RouteError> {
        let root: Value = serde_json::from_str(text).map_err(|e| RouteError::Json {
            source_name: self.source_name.clone(),
            reason: e.to_string(),
        })?;
        let root = root
            .as_object()
            .ok_or_else(|| self.err("top level", "expected an object"))?;
        let table = root
            .get("route_table")
            .ok_or_else(|| self.err("route_table", "missing"))?
            .as_object()
            .ok_or_else(|| self.err("route_table", "expected an object of party ids"))?;
        let mut entries = BTreeMap::new();
        for (party, roles) in table {
            let at = format!("route_table[\"{party}\"]");
            if party.trim().is_empty() {
                return Err(self.err(&at, "empty party id"));
            }
            let roles = roles
                .as_object()
                .ok_or_else(|| self.err(&at, "expected an object of roles"))?;
            let mut parsed = BTreeMap::new();
            for (role, list) in roles {
                let at = format!("{at}[\"{role}\"]");
                let list = list
                    .as_array()
                    .ok_or_else(|| self.err(&at, "expected a list of endpoints"))?;
                if list.is_empty() {
                    return Err(self.err(&at, "empty endpoint list"));
                }
                let routes = list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.route(&format!("{at}[{i}]"), v))
                    .collect::<Result<Vec<_>, _>>()?;
                parsed.insert(role.clone(), routes);
            }
            entries.insert(party.clone(), parsed);
        }
        let default_allow = match root.get("permission") {
            None | Some(Value::Null) => true,
            Some(Value::Object(p)) => match p.get("default_allow") {
                None => true,
                Some(v) => flag(v).ok_or_else(|| {
                    self.err(
                        "permission.default_allow",
                        format!("expected a boolean, got {v}"),
                    )
                })?,
            },
            Some(other) => {
                return Err(self.err("permission", format!("expected an object, got {other}")));
            }
        };
        let self_party = match root.get("self_party") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    party_id(v).ok_or_else(|| {
                        self.err(
                            format!("self_party[{i}]"),
                            format!("expected a party id, got {v}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(self.err("self_party", format!("expected a list, got {other}")));
            }
        };
        Ok(RouteTable {
            entries,
            default_allow,
            self_party,
        })
    }

    fn route(&self, at: &str, v: &Value) -> Result<Route, RouteError> {
        let obj = v
            .as_object()
            .ok_or_else(|| self.err(at, "expected an endpoint object"))?;
        let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
        if field("useKeyStore").and_then(flag) == Some(true) {
            return Err(self.err(
                format!("{at}.useKeyStore"),
                "keystore (JKS) routes are not supported: give PEM files in certChainFile, \
                 privateKeyFile and caFile",
            ));
        }
        let is_polling = match field("is_polling") {
            None => false,
            Some(v) => flag(v).ok_or_else(|| {
                self.err(
                    format!("{at}.is_polling"),
                    format!("expected a boolean, got {v}"),
                )
            })?,
        };
        let is_secure = match field("is_secure") {
            None => false,
            Some(v) => flag(v).ok_or_else(|| {
                self.err(
                    format!("{at}.is_secure"),
                    format!("expected a boolean, got {v}"),
                )
            })?,
        };
        let ip = match field("ip") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => {
                return Err(self.err(
                    format!("{at}.ip"),
                    format!("expected a host name or address, got {other}"),
                ));
            }
            None if is_polling => String::new(),
            None => return Err(self.err(format!("{at}.ip"), "missing")),
        };
        let port = match field("port") {
            Some(v) => port(v).ok_or_else(|| {
                self.err(
                    format!("{at}.port"),
                    format!("expected a port number 1-65535, got {v}"),
                )
            })?,
            None if is_polling => 0,
            None => return Err(self.err(format!("{at}.port"), "missing")),
        };
        let text = |name: &str| -> Result<Option<String>, RouteError> {
            match field(name) {
                None => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(other) => Err(self.err(
                    format!("{at}.{name}"),
                    format!("expected a string, got {other}"),
                )),
            }
        };
        let path = |name: &str| -> Result<Option<PathBuf>, RouteError> {
            Ok(text(name)?.map(|p| {
                let p = PathBuf::from(p);
                match self.base_dir {
                    Some(base) if p.is_relative() => base.join(p),
                    _ => p,
                }
            }))
        };
        let route = Route {
            ip,
            port,
            is_secure,
            is_polling,
            hostname: text("hostname")?,
            cert_chain_file: path("certChainFile")?,
            private_key_file: path("privateKeyFile")?,
            ca_file: path("caFile")?,
        };
        if route.cert_chain_file.is_some() != route.private_key_file.is_some() {
            return Err(self.err(
                at,
                "certChainFile and privateKeyFile must be given together",
            ));
        }
        Ok(route)
    }
}

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn port(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p != 0)
}

fn party_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        _ => None,
    }
}

/// A shared, replaceable route table: what routers and transports read on every lookup.
/// Clones share the table. [`Routes::watch`] reloads it when its file changes.
#[derive(Clone, Debug)]
pub struct Routes {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    table: RwLock<Arc<RouteTable>>,
    generation: Mutex<u64>,
    changed: Condvar,
    file: Option<PathBuf>,
    last_error: Mutex<Option<RouteError>>,
}

impl Routes {
    /// A handle on a fixed table (replace it with [`Routes::set`]).
    pub fn new(table: RouteTable) -> Self {
        Self::build(table, None)
    }

    fn build(table: RouteTable, file: Option<PathBuf>) -> Self {
        Routes {
            shared: Arc::new(Shared {
                table: RwLock::new(Arc::new(table)),
                generation: Mutex::new(0),
                changed: Condvar::new(),
                file,
                last_error: Mutex::new(None),
            }),
        }
    }

    /// Loads `path` and re-reads it whenever its modification time or size changes, checking
    /// every `interval` on a background thread that ends when the last clone is dropped. A
    /// changed file that does not parse is logged and the previous table stays in force.
    pub fn watch(path: &Path, interval: Duration) -> Result<Self, RouteError> {
        let table = RouteTable::load(path)?;
        let routes = Self::build(table, Some(path.to_path_buf()));
        let weak = Arc::downgrade(&routes.shared);
        let path = path.to_path_buf();
        let stamp = file_stamp(&path);
        std::thread::Builder::new()
            .name("route-table-watch".to_string())
            .spawn(move || watch_loop(weak, path, stamp, interval))
            .map_err(|e| RouteError::Io {
                path: PathBuf::from("<watch thread>"),
                reason: e.to_string(),
            })?;
        Ok(routes)
    }

    /// The table in force.
    pub fn current(&self) -> Arc<RouteTable> {
        self.shared.table.read().clone()
    }

    /// Replaces the table.
    pub fn set(&self, table: RouteTable) {
        *self.shared.table.write() = Arc::new(table);
        *self.shared.last_error.lock() = None;
        let mut generation = self.shared.generation.lock();
        *generation += 1;
        self.shared.changed.notify_all();
    }

    /// Re-reads the watched file now. Returns the error (and keeps the old table) when the
    /// file does not parse; a handle from [`Routes::new`] has no file and returns `Ok`.
    pub fn reload(&self) -> Result<(), RouteError> {
        let Some(path) = &self.shared.file else {
            return Ok(());
        };
        match RouteTable::load(path) {
            Ok(table) => {
                tracing::info!(path = %path.display(), "Reloaded the route table.");
                self.set(table);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "Kept the previous route table: the changed file is invalid."
                );
                *self.shared.last_error.lock() = Some(err.clone());
                let mut generation = self.shared.generation.lock();
                *generation += 1;
                self.shared.changed.notify_all();
                Err(err)
            }
        }
    }

    /// Counts reload attempts (successful or not) and [`Routes::set`] calls.
    pub fn generation(&self) -> u64 {
        *self.shared.generation.lock()
    }

    /// Waits until [`Routes::generation`] exceeds `seen` or `timeout` passes; returns the
    /// generation then.
    pub fn wait_changed(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        let mut generation = self.shared.generation.lock();
        while *generation <= seen {
            if self
                .shared
                .changed
                .wait_until(&mut generation, deadline)
                .timed_out()
            {
                break;
            }
        }
        *generation
    }

    /// Why the last reload failed, if it did (cleared by a successful one).
    pub fn last_error(&self) -> Option<RouteError> {
        self.shared.last_error.lock().clone()
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn file_stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn watch_loop(weak: Weak<Shared>, path: PathBuf, mut stamp: Stamp, interval: Duration) {
    loop {
        std::thread::sleep(interval);
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let now = file_stamp(&path);
        if now != stamp {
            stamp = now;
            // The error is logged and recorded by reload.
            let _ = Routes { shared }.reload();
        }
    }
}
