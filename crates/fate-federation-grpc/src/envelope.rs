//! How a federation frame travels in eggroll's `Packet` (fate-spec §2.3).
//!
//! One `push` stream carries one frame. Its first packet's header names the message the way
//! rollsite does, and later packets carry only `body.value` (the next chunk of the frame):
//!
//! | field | value |
//! |---|---|
//! | `header.task.taskId` | federation session id |
//! | `header.src`, `header.dst` | `Topic{name: session id, partyId, role}` |
//! | `header.command.name` | tag |
//! | `header.operator` | [`OPERATOR_PUSH`] |
//! | `header.version` | [`VERSION`] |
//! | `header.ext` | the 16-byte transfer header below |
//! | `body.key` | message name |
//! | `body.value` | the frame's first chunk |
//!
//! Transfer header (`ext`), big-endian: `b"FRST" | frame_len u64 | hops u8 | 3 zero bytes`.
//! `frame_len` lets every hop refuse an oversized frame before reading it; `hops` counts the
//! routers passed and stops routing loops.

use fate_federation::MessageKey;
use fate_types::{Party, PartyId, Role};

use crate::proto::{Command, Data, Metadata, Packet, Task, Topic};

/// `header.version` of fate-rs federation packets.
pub const VERSION: &str = "fate-rs/1";
/// `header.operator` of a federation push.
pub const OPERATOR_PUSH: &str = "federation.push";
/// Most routers a packet may pass before it is refused as looping.
pub const MAX_HOPS: u8 = 8;

const EXT_MAGIC: [u8; 4] = *b"FRST";
const EXT_LEN: usize = 16;
/// Longest session id, name or tag accepted from a peer.
const MAX_FIELD_LEN: usize = 4096;
/// Longest party id accepted from a peer.
const MAX_PARTY_LEN: usize = 128;

/// A decoded first-packet header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub key: MessageKey,
    pub frame_len: u64,
    pub hops: u8,
}

impl Envelope {
    /// The first packet of a push: header plus the first chunk.
    pub fn packet(&self, first_chunk: bytes::Bytes) -> Packet {
        let topic = |p: &Party| Topic {
            name: self.key.session_id.clone(),
            party_id: p.party_id.0.clone(),
            role: p.role.as_str().to_string(),
            callback: None,
        };
        let mut ext = Vec::with_capacity(EXT_LEN);
        ext.extend_from_slice(&EXT_MAGIC);
        ext.extend_from_slice(&self.frame_len.to_be_bytes());
        ext.push(self.hops);
        ext.extend_from_slice(&[0, 0, 0]);
        Packet {
            header: Some(Metadata {
                task: Some(Task {
                    task_id: self.key.session_id.clone(),
                    model: None,
                }),
                src: Some(topic(&self.key.src)),
                dst: Some(topic(&self.key.dst)),
                command: Some(Command {
                    name: self.key.tag.clone(),
                }),
                operator: OPERATOR_PUSH.to_string(),
                seq: 0,
                ack: 0,
                conf: None,
                ext,
                version: VERSION.to_string(),
            }),
            body: Some(Data {
                key: self.key.name.clone(),
                value: first_chunk,
            }),
        }
    }

    /// Decodes the first packet's header; the error says which field is wrong.
    pub fn decode(packet: &Packet) -> Result<Envelope, String> {
        let header = packet
            .header
            .as_ref()
            .ok_or("the first packet of a push has no header")?;
        if header.version != VERSION {
            return Err(format!(
                "not a fate-rs federation packet: header.version is `{}`, expected `{VERSION}`",
                truncate(&header.version)
            ));
        }
        if header.operator != OPERATOR_PUSH {
            return Err(format!(
                "header.operator is `{}`, expected `{OPERATOR_PUSH}`",
                truncate(&header.operator)
            ));
        }
        let session_id = header
            .task
            .as_ref()
            .map(|t| t.task_id.clone())
            .unwrap_or_default();
        check_field("header.task.taskId (session id)", &session_id)?;
        let tag = header
            .command
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default();
        check_field("header.command.name (tag)", &tag)?;
        let name = packet
            .body
            .as_ref()
            .map(|b| b.key.clone())
            .unwrap_or_default();
        check_field("body.key (name)", &name)?;
        let src = party("header.src", header.src.as_ref())?;
        let dst = party("header.dst", header.dst.as_ref())?;
        let ext = &header.ext;
        if ext.len() != EXT_LEN || ext[..4] != EXT_MAGIC {
            return Err(format!(
                "header.ext is not a fate-rs transfer header ({} bytes)",
                ext.len()
            ));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&ext[4..12]);
        Ok(Envelope {
            key: MessageKey {
                session_id,
                name,
                tag,
                src,
                dst,
            },
            frame_len: u64::from_be_bytes(len),
            hops: ext[12],
        })
    }
}

fn check_field(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(format!(
            "{what} has {} bytes, more than {MAX_FIELD_LEN}",
            value.len()
        ));
    }
    Ok(())
}

fn party(what: &str, topic: Option<&Topic>) -> Result<Party, String> {
    let topic = topic.ok_or_else(|| format!("{what} is missing"))?;
    let role: Role = topic
        .role
        .parse()
        .map_err(|e| format!("{what}.role: {e}"))?;
    let id = &topic.party_id;
    if id.is_empty()
        || id.len() > MAX_PARTY_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{what}.partyId `{}` is not a party id (1-{MAX_PARTY_LEN} letters, digits, '-' or '_')",
            truncate(id)
        ));
    }
    Ok(Party {
        role,
        party_id: PartyId(id.clone()),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Rewrites the hop count of a first packet in place (routers forward the packet otherwise
/// unchanged).
pub(crate) fn set_hops(packet: &mut Packet, hops: u8) {
    if let Some(header) = packet.header.as_mut()
        && header.ext.len() == EXT_LEN
    {
        header.ext[12] = hops;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MessageKey {
        MessageKey {
            session_id: "job_1_reader_0_0".into(),
            name: "pubkey".into(),
            tag: "default.iterations-3".into(),
            src: Party::new(Role::Guest, "9999"),
            dst: Party::new(Role::Host, "10000"),
        }
    }

    #[test]
    fn header_round_trips_and_uses_rollsite_fields() {
        let env = Envelope {
            key: key(),
            frame_len: 1 << 33,
            hops: 2,
        };
        let packet = env.packet(bytes::Bytes::from_static(b"abc"));
        let header = packet.header.as_ref().unwrap();
        assert_eq!(header.src.as_ref().unwrap().party_id, "9999");
        assert_eq!(header.dst.as_ref().unwrap().role, "host");
        assert_eq!(
            header.command.as_ref().unwrap().name,
            "default.iterations-3"
        );
        assert_eq!(packet.body.as_ref().unwrap().key, "pubkey");
        assert_eq!(Envelope::decode(&packet).unwrap(), env);
    }

    #[test]
    fn hostile_headers_are_refused_with_the_field_named() {
        let good = Envelope {
            key: key(),
            frame_len: 3,
            hops: 0,
        }
        .packet(bytes::Bytes::new());
        let mut p = good.clone();
        p.header.as_mut().unwrap().src.as_mut().unwrap().role = "spy".into();
        assert!(
            Envelope::decode(&p)
                .unwrap_err()
                .contains("header.src.role")
        );
        let mut p = good.clone();
        p.header.as_mut().unwrap().dst.as_mut().unwrap().party_id = "../etc".into();
        assert!(
            Envelope::decode(&p)
                .unwrap_err()
                .contains("header.dst.partyId")
        );
        let mut p = good.clone();
        p.header.as_mut().unwrap().ext.truncate(3);
        assert!(Envelope::decode(&p).unwrap_err().contains("header.ext"));
        let mut p = good.clone();
        p.body.as_mut().unwrap().key = "x".repeat(MAX_FIELD_LEN + 1);
        assert!(Envelope::decode(&p).unwrap_err().contains("body.key"));
        let mut p = good;
        p.header.as_mut().unwrap().version = "2.5".into();
        assert!(Envelope::decode(&p).unwrap_err().contains("header.version"));
        assert!(
            Envelope::decode(&Packet::default())
                .unwrap_err()
                .contains("no header")
        );
    }
}
