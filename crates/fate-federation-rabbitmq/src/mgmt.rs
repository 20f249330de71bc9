//! The RabbitMQ management HTTP API calls FATE makes (fate-spec §2.7): users, vhosts,
//! permissions, federation upstreams and policies. Blocking (ureq), each call bounded by
//! [`TIMEOUT`]; errors name the broker, the party and, for a refused login, the route-table
//! fields to check.

use std::time::Duration;

use serde_json::{Value, json};

use crate::RabbitError;
use crate::route::Broker;

/// Longest one management call may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Percent-encodes a URL path segment (everything but RFC 3986's unreserved characters).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A management API client for one party's broker.
#[derive(Clone)]
pub struct Management {
    agent: ureq::Agent,
    base: String,
    auth: String,
    party: String,
    addr: String,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("addr", &self.addr)
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

impl Management {
    /// A client for `party`'s broker with its admin credentials from the route table.
    pub fn new(party: &str, broker: &Broker) -> Result<Self, RabbitError> {
        let missing = |field: &str| RabbitError::Route {
            party: party.to_string(),
            field: field.to_string(),
            reason: "missing: this node serves the party, so it needs the admin credentials of \
                     its broker's management API"
                .into(),
        };
        let user = broker.user.as_deref().ok_or_else(|| missing("user"))?;
        let password = broker
            .password
            .as_deref()
            .ok_or_else(|| missing("password"))?;
        Ok(Management {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(TIMEOUT)
                .timeout(TIMEOUT)
                .build(),
            base: format!("http://{}:{}/api", broker.host, broker.mng_port),
            auth: format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            party: party.to_string(),
            addr: broker.mng_addr(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, RabbitError> {
        let url = format!("{}{path}", self.base);
        let request = self
            .agent
            .request(method, &url)
            .set("Authorization", &self.auth);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let fail = |reason: String| RabbitError::Broker {
            party: self.party.clone(),
            addr: self.addr.clone(),
            reason,
        };
        match result {
            Ok(response) => {
                let text = response
                    .into_string()
                    .map_err(|e| fail(format!("{method} {path}: reading the answer: {e}")))?;
                if text.trim().is_empty() {
                    Ok(Value::Null)
                } else {
                    serde_json::from_str(&text)
                        .map_err(|e| fail(format!("{method} {path}: the answer is not JSON: {e}")))
                }
            }
            Err(ureq::Error::Status(401, _)) => Err(RabbitError::Route {
                party: self.party.clone(),
                field: "password".into(),
                reason: format!(
                    "the management API of broker {} refused the login (HTTP 401): check `user` \
                     and `password`",
                    self.addr
                ),
            }),
            Err(ureq::Error::Status(code, response)) => {
                let mut text = response.into_string().unwrap_or_default();
                text.truncate(500);
                Err(fail(format!("{method} {path}: HTTP {code}: {text}")))
            }
            Err(ureq::Error::Transport(t)) => Err(RabbitError::Route {
                party: self.party.clone(),
                field: "mng_port".into(),
                reason: format!("management API of broker {} unreachable: {t}", self.addr),
            }),
        }
    }

    /// PUTs `path`; an object created at the same moment by another party of this node (two
    /// parties on one broker set up the same vhost or user) counts as created.
    fn put(&self, path: &str, body: Value) -> Result<(), RabbitError> {
        match self.call("PUT", path, Some(body)) {
            Err(RabbitError::Broker { reason, .. }) if reason.contains("already_exists") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Deletes `path`; a missing object is fine (cleanup is idempotent).
    fn delete(&self, path: &str) -> Result<(), RabbitError> {
        match self.call("DELETE", path, None) {
            Err(RabbitError::Broker { reason, .. }) if reason.contains("HTTP 404") => Ok(()),
            other => other.map(drop),
        }
    }

    /// `GET /api/overview`: checks the address and the credentials.
    pub fn check(&self) -> Result<(), RabbitError> {
        self.call("GET", "/overview", None).map(drop)
    }

    /// `GET /api/whoami`: logs in and checks the user may create vhosts and users (the
    /// `administrator` tag); returns the user and its tags.
    pub fn check_admin(&self) -> Result<String, RabbitError> {
        let me = self.call("GET", "/whoami", None)?;
        let name = me.get("name").and_then(Value::as_str).unwrap_or("?");
        // 3.10 lists the tags as an array; older brokers as a comma-separated string.
        let tags: Vec<String> = match me.get("tags") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
            _ => Vec::new(),
        };
        if !tags.iter().any(|t| t == "administrator") {
            return Err(RabbitError::Route {
                party: self.party.clone(),
                field: "user".into(),
                reason: format!(
                    "user `{name}` of broker {} has tags {tags:?}, not `administrator`: it \
                     cannot create the sessions' vhosts and users",
                    self.addr
                ),
            });
        }
        Ok(format!("logged in as `{name}` [{}]", tags.join(",")))
    }

    /// `PUT /api/vhosts/{vhost}`.
    pub fn create_vhost(&self, vhost: &str) -> Result<(), RabbitError> {
        self.put(&format!("/vhosts/{}", encode(vhost)), json!({}))
    }

    /// `DELETE /api/vhosts/{vhost}` (its queues, upstreams and policies go with it).
    pub fn delete_vhost(&self, vhost: &str) -> Result<(), RabbitError> {
        self.delete(&format!("/vhosts/{}", encode(vhost)))
    }

    /// `PUT /api/users/{user}` with `password` and no tags (no management access).
    pub fn create_user(&self, user: &str, password: &str) -> Result<(), RabbitError> {
        self.put(
            &format!("/users/{}", encode(user)),
            json!({"password": password, "tags": ""}),
        )
    }

    /// `DELETE /api/users/{user}`.
    pub fn delete_user(&self, user: &str) -> Result<(), RabbitError> {
        self.delete(&format!("/users/{}", encode(user)))
    }

    /// `PUT /api/permissions/{vhost}/{user}`: everything within the vhost.
    pub fn grant(&self, vhost: &str, user: &str) -> Result<(), RabbitError> {
        self.put(
            &format!("/permissions/{}/{}", encode(vhost), encode(user)),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
    }

    /// The federation upstream `name` in `vhost` pulling from `queue` at `uri`, and the policy
    /// of the same name that federates the queue `name` from it.
    pub fn federate_queue(
        &self,
        vhost: &str,
        name: &str,
        uri: &str,
        queue: &str,
    ) -> Result<(), RabbitError> {
        let (vhost_enc, name_enc) = (encode(vhost), encode(name));
        self.put(
            &format!("/parameters/federation-upstream/{vhost_enc}/{name_enc}"),
            json!({"value": {
                "uri": uri,
                "queue": queue,
                // The defaults wait 5 s before retrying a link whose peer is not set up yet,
                // and let 1000 unacknowledged 1 MiB messages travel at once.
                "reconnect-delay": 1,
                "prefetch-count": 32,
                "ack-mode": "on-confirm",
            }}),
        )?;
        self.put(
            &format!("/policies/{vhost_enc}/{name_enc}"),
            json!({
                "pattern": format!("^{}$", regex_escape(name)),
                "apply-to": "queues",
                "definition": {"federation-upstream": name},
            }),
        )
    }

    /// Names of the vhosts of the broker.
    pub fn vhosts(&self) -> Result<Vec<String>, RabbitError> {
        names(self.call("GET", "/vhosts", None)?)
    }

    /// Names of the users of the broker.
    pub fn users(&self) -> Result<Vec<String>, RabbitError> {
        names(self.call("GET", "/users", None)?)
    }

    /// Names of the queues of the broker, in every vhost.
    pub fn queues(&self) -> Result<Vec<String>, RabbitError> {
        names(self.call("GET", "/queues", None)?)
    }

    /// The heartbeat (seconds) of each client connection to `vhost`.
    pub fn heartbeats(&self, vhost: &str) -> Result<Vec<u64>, RabbitError> {
        let path = format!("/vhosts/{}/connections", encode(vhost));
        Ok(self
            .call("GET", &path, None)?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("timeout").and_then(Value::as_u64))
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn names(value: Value) -> Result<Vec<String>, RabbitError> {
    Ok(value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_paths_and_credentials() {
        assert_eq!(encode("a_b-1.x"), "a_b-1.x");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(base64(b"guest:guest"), "Z3Vlc3Q6Z3Vlc3Q=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(regex_escape("a.b"), "a\\.b");
    }
}
