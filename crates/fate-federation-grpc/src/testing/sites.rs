//! [`Sites`]: several sites' transports seen as one [`Transport`], as the federation
//! conformance suite wants.

use std::sync::Arc;
use std::time::Instant;

use fate_federation::{CancelToken, FederationError, MessageKey, Transport};
use fate_types::Party;

use crate::GrpcTransport;

/// A send goes out through the source party's site, a receive waits at the destination
/// party's site. Each entry lists the party ids its transport hosts.
pub struct Sites(pub Vec<(&'static [&'static str], Arc<GrpcTransport>)>);

impl Sites {
    fn site(&self, party: &Party) -> Result<&Arc<GrpcTransport>, FederationError> {
        self.0
            .iter()
            .find(|(ids, _)| ids.contains(&party.party_id.as_str()))
            .map(|(_, t)| t)
            .ok_or_else(|| {
                FederationError::transport(party, "no site hosts this party in the test")
            })
    }
}

impl Transport for Sites {
    fn send(&self, key: &MessageKey, frame: Vec<u8>) -> Result<(), FederationError> {
        self.site(&key.src)?.send(key, frame)
    }

    fn send_cancellable(
        &self,
        key: &MessageKey,
        frame: Vec<u8>,
        cancel: &CancelToken,
    ) -> Result<(), FederationError> {
        self.site(&key.src)?.send_cancellable(key, frame, cancel)
    }

    fn recv(
        &self,
        key: &MessageKey,
        deadline: Instant,
        cancel: &CancelToken,
    ) -> Result<Vec<u8>, FederationError> {
        self.site(&key.dst)?.recv(key, deadline, cancel)
    }

    fn name(&self) -> &'static str {
        "grpc"
    }

    fn cleanup(&self, session_id: &str) {
        for (_, t) in &self.0 {
            t.cleanup(session_id);
        }
    }
}
