//! FATE-Flow's command relay over `unaryCall` (fate-spec §2.3): one node asks another party's
//! node to run a REST call (`/v2/partner/job/create`, ...). The packet carries
//! `src/dst Topic{name = job id, partyId, role = "fateflow"}`, `command.name` = URL path,
//! `operator` = HTTP method and `body{key = path, value = JSON}`; routers forward it by the
//! route table (`fateflow` role of the destination party, else `default`) and the destination
//! node's gRPC server hands it to its [`CommandHandler`], which replays it as a local HTTP request
//! and answers with the JSON reply.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::{Command as ProtoCommand, Conf, Data, Metadata, Packet, Task, Topic};

/// The role FATE's relay puts in both topics.
pub const FATEFLOW_ROLE: &str = "fateflow";

/// A relayed REST call, as the destination node receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The calling party (`header.src.partyId`); with mutual TLS its router checked it.
    pub src_party: String,
    /// The party asked (`header.dst.partyId`).
    pub dst_party: String,
    /// HTTP method (`header.operator`).
    pub method: String,
    /// URL path (`header.command.name`).
    pub path: String,
    /// JSON request body.
    pub body: Bytes,
}

/// What a node does with relayed commands: answer the JSON reply, or an error text.
pub trait CommandHandler: Send + Sync + 'static {
    /// Runs one command.
    fn handle(
        &self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send + 'static>>;
}

/// A shareable handler (with `Debug`, so configurations holding one stay printable).
#[derive(Clone)]
pub struct Commands(pub Arc<dyn CommandHandler>);

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commands(..)")
    }
}

fn topic(job_id: &str, party_id: &str) -> Topic {
    Topic {
        name: job_id.to_string(),
        party_id: party_id.to_string(),
        role: FATEFLOW_ROLE.to_string(),
        callback: None,
    }
}

/// The packet FATE-Flow sends for a relayed call (fate-spec §2.3).
pub(crate) fn request_packet(
    job_id: &str,
    src_party: &str,
    dst_party: &str,
    method: &str,
    path: &str,
    body: Bytes,
    timeout_ms: i64,
) -> Packet {
    Packet {
        header: Some(Metadata {
            task: Some(Task {
                task_id: job_id.to_string(),
                model: None,
            }),
            src: Some(topic(job_id, src_party)),
            dst: Some(topic(job_id, dst_party)),
            command: Some(ProtoCommand {
                name: path.to_string(),
            }),
            operator: method.to_string(),
            conf: Some(Conf {
                overall_timeout: timeout_ms,
                ..Conf::default()
            }),
            ..Metadata::default()
        }),
        body: Some(Data {
            key: path.to_string(),
            value: body,
        }),
    }
}

/// Reads a relayed call out of a packet that reached its destination.
pub(crate) fn parse(packet: Packet) -> Result<(Command, Metadata), String> {
    let header = packet.header.ok_or("unaryCall packet has no header")?;
    let src = header
        .src
        .as_ref()
        .ok_or("unaryCall packet has no header.src")?;
    let dst = header
        .dst
        .as_ref()
        .ok_or("unaryCall packet has no header.dst")?;
    let path = header
        .command
        .as_ref()
        .map(|c| c.name.clone())
        .filter(|p| !p.is_empty())
        .ok_or("unaryCall packet has no header.command.name (the URL path)")?;
    if !path.starts_with('/') {
        return Err(format!(
            "unaryCall command.name {path:?} is not a URL path starting with '/'"
        ));
    }
    let method = if header.operator.is_empty() {
        "POST".to_string()
    } else {
        header.operator.to_ascii_uppercase()
    };
    let command = Command {
        src_party: src.party_id.clone(),
        dst_party: dst.party_id.clone(),
        method,
        path,
        body: packet.body.map(|b| b.value).unwrap_or_default(),
    };
    Ok((command, header))
}

/// The reply packet: the request's header with source and destination swapped.
pub(crate) fn reply_packet(mut header: Metadata, path: &str, body: Bytes) -> Packet {
    std::mem::swap(&mut header.src, &mut header.dst);
    Packet {
        header: Some(header),
        body: Some(Data {
            key: path.to_string(),
            value: body,
        }),
    }
}
