//! The Pulsar admin REST calls FATE makes (fate-spec §2.6): clusters, the tenant, a namespace
//! per session, subscriptions, topics. Blocking (ureq), each call bounded by [`TIMEOUT`];
//! errors name the broker, the party and, for an unreachable broker, the route-table field.

use std::time::Duration;

use serde_json::{Value, json};

use crate::PulsarError;
use crate::route::Broker;

/// Longest one admin call may take.
/// (30 s: a standalone broker on a loaded 2-core machine was seen to take over 10 s to answer
/// a subscription creation.)
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// An admin REST client for one party's broker.
#[derive(Clone)]
pub struct Admin {
    agent: ureq::Agent,
    base: String,
    party: String,
    addr: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("addr", &self.addr)
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

/// What a call answered: the JSON body, or `None` for a status the caller accepts.
type Answer = Result<Option<Value>, PulsarError>;

impl Admin {
    /// A client for `party`'s broker.
    pub fn new(party: &str, broker: &Broker) -> Self {
        Admin {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(TIMEOUT)
                .timeout(TIMEOUT)
                .build(),
            base: format!("{}/admin/v2", broker.admin_url()),
            party: party.to_string(),
            addr: broker.mng_addr(),
        }
    }

    /// The party whose broker this is.
    pub fn party(&self) -> &str {
        &self.party
    }

    /// `host:mng_port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn fail(&self, reason: String) -> PulsarError {
        PulsarError::Broker {
            party: self.party.clone(),
            addr: self.addr.clone(),
            reason,
        }
    }

    /// One call; HTTP statuses in `accept` answer `Ok(None)`.
    fn call(&self, method: &str, path: &str, body: Option<Value>, accept: &[u16]) -> Answer {
        let url = format!("{}{path}", self.base);
        let request = self.agent.request(method, &url);
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                if accept.contains(&response.status()) {
                    return Ok(None);
                }
                let text = response
                    .into_string()
                    .map_err(|e| self.fail(format!("{method} {path}: reading the answer: {e}")))?;
                if text.trim().is_empty() {
                    Ok(Some(Value::Null))
                } else {
                    serde_json::from_str(&text).map(Some).map_err(|e| {
                        self.fail(format!("{method} {path}: the answer is not JSON: {e}"))
                    })
                }
            }
            Err(ureq::Error::Status(code, _)) if accept.contains(&code) => Ok(None),
            Err(ureq::Error::Status(code, response)) => {
                let mut text = response.into_string().unwrap_or_default();
                text.truncate(500);
                Err(self.fail(format!("admin REST {method} {path}: HTTP {code}: {text}")))
            }
            Err(ureq::Error::Transport(t)) => Err(PulsarError::Route {
                party: self.party.clone(),
                field: "mng_port".into(),
                reason: format!("the admin REST of broker {} is unreachable: {t}", self.addr),
            }),
        }
    }

    /// The broker's clusters (`GET /clusters`): answers once the broker is up.
    pub fn clusters(&self) -> Result<Vec<String>, PulsarError> {
        let v = self
            .call("GET", "/clusters", None, &[])?
            .unwrap_or_default();
        serde_json::from_value(v)
            .map_err(|e| self.fail(format!("GET /clusters: not a list of names: {e}")))
    }

    /// The broker's `maxMessageSize`, if its runtime configuration says.
    pub fn max_message_size(&self) -> Option<usize> {
        let v = self
            .call("GET", "/brokers/configuration/runtime", None, &[])
            .ok()??;
        v.get("maxMessageSize")?.as_str()?.parse().ok()
    }

    /// A creating `PUT` (an existing resource is kept), retried a few times when it races
    /// with another creation of the same node in the broker's metadata store (HTTP 500,
    /// `BadVersionException`; the retry then finds it, 409).
    fn create(&self, path: &str, body: Option<Value>) -> Result<(), PulsarError> {
        let mut tries = 0;
        loop {
            match self.call("PUT", path, body.clone(), &[204, 409]) {
                Err(PulsarError::Broker { reason, .. })
                    if tries < 5 && reason.contains("HTTP 500") =>
                {
                    tries += 1;
                    tracing::debug!(broker = %self.addr, path, %reason, "Creation raced; retrying.");
                    std::thread::sleep(Duration::from_millis(200 * tries));
                }
                other => return other.map(drop),
            }
        }
    }

    /// Creates `tenant` allowed on `clusters` (an existing one is kept).
    pub fn create_tenant(&self, tenant: &str, clusters: &[String]) -> Result<(), PulsarError> {
        self.create(
            &format!("/tenants/{tenant}"),
            Some(json!({"adminRoles": [], "allowedClusters": clusters})),
        )
    }

    /// Registers (or updates) cluster `name` with `data` (Pulsar's ClusterData: service
    /// URLs, SNI proxy, replication client TLS), as FATE registers each remote party's broker
    /// in replication mode (fate-spec §2.6).
    pub fn upsert_cluster(&self, name: &str, data: &Value) -> Result<(), PulsarError> {
        let path = format!("/clusters/{name}");
        match self.call("PUT", &path, Some(data.clone()), &[200, 204]) {
            // It exists: bring it up to date (a no-op when nothing changed).
            Err(PulsarError::Broker { reason, .. }) if reason.contains("HTTP 409") => self
                .call("POST", &path, Some(data.clone()), &[200, 204])
                .map(drop),
            other => other.map(drop),
        }
    }

    /// Makes `tenant` allowed on `clusters` besides those it allows already, creating it if
    /// needed.
    pub fn allow_clusters(&self, tenant: &str, clusters: &[String]) -> Result<(), PulsarError> {
        let path = format!("/tenants/{tenant}");
        let Some(info) = self.call("GET", &path, None, &[404])? else {
            return self.create_tenant(tenant, clusters);
        };
        let mut allowed: Vec<String> = info
            .get("allowedClusters")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let before = allowed.len();
        for c in clusters {
            if !allowed.contains(c) {
                allowed.push(c.clone());
            }
        }
        if allowed.len() == before {
            return Ok(());
        }
        let roles = info.get("adminRoles").cloned().unwrap_or(json!([]));
        self.call(
            "POST",
            &path,
            Some(json!({"adminRoles": roles, "allowedClusters": allowed})),
            &[200, 204],
        )
        .map(drop)
    }

    /// Creates persistent topic `tenant/namespace/topic` (an existing one is kept).
    pub fn create_topic(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
    ) -> Result<(), PulsarError> {
        self.create(&format!("/persistent/{tenant}/{namespace}/{topic}"), None)
    }

    /// Sets the topic-level replication clusters of `tenant/namespace/topic`.
    pub fn set_topic_replication(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
        clusters: &[String],
    ) -> Result<(), PulsarError> {
        let path = format!("/persistent/{tenant}/{namespace}/{topic}/replication");
        self.call("POST", &path, Some(json!(clusters)), &[200, 204])
            .map(drop)
    }

    /// The replicator of persistent topic `tenant/namespace/topic` to `cluster`, as its stats
    /// show it: `None` without one, else whether it is connected to the remote broker.
    pub fn replicator(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
        cluster: &str,
    ) -> Result<Option<bool>, PulsarError> {
        let path = format!("/persistent/{tenant}/{namespace}/{topic}/stats");
        let stats = self.call("GET", &path, None, &[404])?.unwrap_or_default();
        Ok(stats
            .get("replication")
            .and_then(|r| r.get(cluster))
            .map(|r| {
                r.get("connected")
                    .and_then(|c| c.as_bool())
                    .unwrap_or(false)
            }))
    }

    /// What the replicator of `tenant/namespace/topic` to `cluster` has yet to deliver
    /// (`replicationBacklog`), `None` without a replicator.
    pub fn replication_backlog(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
        cluster: &str,
    ) -> Result<Option<u64>, PulsarError> {
        let path = format!("/persistent/{tenant}/{namespace}/{topic}/stats");
        let stats = self.call("GET", &path, None, &[404])?.unwrap_or_default();
        Ok(stats
            .get("replication")
            .and_then(|r| r.get(cluster))
            .map(|r| {
                r.get("replicationBacklog")
                    .and_then(|c| c.as_u64())
                    .unwrap_or(0)
            }))
    }

    /// Retention (kept even without a subscription, so that frames replicated before the
    /// receiver subscribes wait for it) and message TTL of `tenant/namespace`.
    pub fn set_retention_and_ttl(
        &self,
        tenant: &str,
        namespace: &str,
        minutes: u64,
        size_mb: u64,
    ) -> Result<(), PulsarError> {
        let base = format!("/namespaces/{tenant}/{namespace}");
        self.call(
            "POST",
            &format!("{base}/retention"),
            Some(json!({"retentionTimeInMinutes": minutes, "retentionSizeInMB": size_mb})),
            &[200, 204],
        )?;
        self.call(
            "POST",
            &format!("{base}/messageTTL"),
            Some(json!(minutes * 60)),
            &[200, 204],
        )
        .map(drop)
    }

    /// Creates `tenant/namespace` (an existing one is kept).
    pub fn create_namespace(&self, tenant: &str, namespace: &str) -> Result<(), PulsarError> {
        self.create(&format!("/namespaces/{tenant}/{namespace}"), None)
    }

    /// The namespaces of `tenant` (empty if the tenant does not exist).
    pub fn namespaces(&self, tenant: &str) -> Result<Vec<String>, PulsarError> {
        let Some(v) = self.call("GET", &format!("/namespaces/{tenant}"), None, &[404])? else {
            return Ok(Vec::new());
        };
        serde_json::from_value(v).map_err(|e| self.fail(format!("namespaces of {tenant}: {e}")))
    }

    /// Creates subscription `sub` on persistent topic `tenant/namespace/topic` at its
    /// earliest message, creating the topic (an existing subscription is kept).
    pub fn create_subscription(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
        sub: &str,
    ) -> Result<(), PulsarError> {
        // The broker answers 412 (subscription busy) rather than 409 to a creation of a
        // subscription that has a consumer: look first, and again after a refusal.
        if self
            .subscriptions(tenant, namespace, topic)?
            .iter()
            .any(|s| s == sub)
        {
            return Ok(());
        }
        match self.create(
            &format!("/persistent/{tenant}/{namespace}/{topic}/subscription/{sub}"),
            Some(json!({"ledgerId": -1, "entryId": -1, "partitionIndex": -1})),
        ) {
            Err(e)
                if self
                    .subscriptions(tenant, namespace, topic)?
                    .iter()
                    .any(|s| s == sub) =>
            {
                tracing::debug!(broker = %self.addr, topic, error = %e,
                    "The subscription appeared meanwhile.");
                Ok(())
            }
            other => other,
        }
    }

    /// The subscriptions of persistent topic `tenant/namespace/topic` (none if it does not
    /// exist).
    pub fn subscriptions(
        &self,
        tenant: &str,
        namespace: &str,
        topic: &str,
    ) -> Result<Vec<String>, PulsarError> {
        let path = format!("/persistent/{tenant}/{namespace}/{topic}/subscriptions");
        let Some(v) = self.call("GET", &path, None, &[404])? else {
            return Ok(Vec::new());
        };
        serde_json::from_value(v).map_err(|e| self.fail(format!("GET {path}: {e}")))
    }

    /// Deletes every topic of `tenant/namespace` (closing their producers and consumers),
    /// then the namespace. A namespace already gone is fine.
    pub fn delete_namespace(&self, tenant: &str, namespace: &str) -> Result<(), PulsarError> {
        // A peer's broker still replicating into this namespace would create its topics anew
        // as soon as they are deleted (and the namespace could never be): no more automatic
        // topic creation here first.
        self.call(
            "POST",
            &format!("/namespaces/{tenant}/{namespace}/autoTopicCreation"),
            Some(json!({"allowAutoTopicCreation": false})),
            &[200, 204, 404],
        )?;
        let topics = match self.call(
            "GET",
            &format!("/namespaces/{tenant}/{namespace}/topics"),
            None,
            &[404],
        )? {
            None => return Ok(()),
            Some(v) => serde_json::from_value::<Vec<String>>(v)
                .map_err(|e| self.fail(format!("topics of {tenant}/{namespace}: {e}")))?,
        };
        for full in topics {
            let Some(rest) = full.strip_prefix("persistent://") else {
                continue;
            };
            self.call(
                "DELETE",
                &format!("/persistent/{rest}?force=true"),
                None,
                &[204, 404],
            )?;
        }
        // Deleting topics is asynchronous on the broker side; a namespace that still has
        // one answers 409 for a moment.
        let mut last = None;
        for _ in 0..40 {
            match self.call(
                "DELETE",
                &format!("/namespaces/{tenant}/{namespace}"),
                None,
                &[204, 404],
            ) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last.expect("set in the loop"))
    }
}
