//! Reachability probes for `fate doctor`: a broker's binary-protocol port (a Pulsar `CONNECT`
//! answered) and its admin REST (the clusters, and whether FATE's tenant there allows them),
//! each bounded by [`TIMEOUT`]; errors name the party, the broker (`host:port`) and the
//! route-table field.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use crate::PulsarError;
use crate::admin::Admin;
use crate::route::Broker;

/// Longest one probe step (connect, read, one REST call) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Largest answer to `CONNECT` read (a `CONNECTED` is some tens of bytes).
const MAX_ANSWER: usize = 64 << 10;

/// Connects to `party`'s broker on its binary-protocol port, sends a Pulsar `CONNECT` (no
/// authentication, as FATE's client) and names the server version of its `CONNECTED`. Any
/// other well-formed Pulsar command (an `ERROR` of a broker that wants authentication)
/// counts as reachable; a closed port or a non-Pulsar answer fails.
pub fn binary(party: &str, broker: &Broker) -> Result<String, PulsarError> {
    let addr = broker.addr();
    let fail = |reason: String| PulsarError::Route {
        party: party.to_string(),
        field: "port".into(),
        reason: format!("binary protocol of broker {addr}: {reason}"),
    };
    let target = addr
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| fail("the host resolves to no address".into()))?;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)
        .map_err(|e| fail(format!("unreachable: {e}")))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    stream
        .write_all(&connect_frame("fate-doctor"))
        .map_err(|e| fail(format!("sending CONNECT: {e}")))?;
    // A frame: total size (u32, big-endian), command size (u32), then the BaseCommand.
    let mut head = [0u8; 8];
    stream
        .read_exact(&mut head)
        .map_err(|e| fail(format!("no answer to CONNECT: {e}")))?;
    let total = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if size == 0 || size > MAX_ANSWER || size + 4 > total {
        return Err(fail(format!(
            "the answer is not a Pulsar frame (first bytes {head:02x?})"
        )));
    }
    let mut command = vec![0u8; size];
    stream
        .read_exact(&mut command)
        .map_err(|e| fail(format!("reading the answer to CONNECT: {e}")))?;
    match decode_answer(&command) {
        Some(Answer::Connected(version)) => Ok(format!("Pulsar binary protocol: {version}")),
        Some(Answer::Error(message)) => Ok(format!(
            "Pulsar broker answered CONNECT with an error (reachable): {message}"
        )),
        Some(Answer::Other(kind)) => Ok(format!("Pulsar broker answered (command {kind})")),
        None => Err(fail("the answer to CONNECT is not a Pulsar command".into())),
    }
}

/// Asks `party`'s admin REST for its clusters ([`Admin::clusters`]) and whether `tenant`
/// exists there and allows one of them (a session's namespace can be created only then); a
/// tenant not there yet is fine (the first session creates it).
pub fn admin(party: &str, broker: &Broker, tenant: &str) -> Result<String, PulsarError> {
    let clusters = Admin::new(party, broker).clusters()?;
    let addr = broker.mng_addr();
    let url = format!("{}/admin/v2/tenants/{tenant}", broker.admin_url());
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(TIMEOUT)
        .timeout(TIMEOUT)
        .build();
    let fail = |reason: String| PulsarError::Broker {
        party: party.to_string(),
        addr: addr.clone(),
        reason,
    };
    let shown = clusters.join(",");
    match agent.get(&url).call() {
        Ok(response) => {
            let info: Value = response.into_json().map_err(|e| {
                fail(format!(
                    "GET /tenants/{tenant}: the answer is not JSON: {e}"
                ))
            })?;
            let allowed: Vec<&str> = info["allowedClusters"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if clusters.iter().any(|c| allowed.contains(&c.as_str())) {
                Ok(format!(
                    "clusters [{shown}]; tenant {tenant} allowed on [{}]",
                    allowed.join(",")
                ))
            } else {
                Err(fail(format!(
                    "tenant {tenant} allows clusters [{}], none of the broker's [{shown}]: no \
                     session namespace can be created there (add the cluster to the tenant)",
                    allowed.join(",")
                )))
            }
        }
        Err(ureq::Error::Status(404, _)) => Ok(format!(
            "clusters [{shown}]; tenant {tenant} not there yet (the first session creates it)"
        )),
        Err(ureq::Error::Status(code, _)) => Err(fail(format!(
            "admin REST GET /tenants/{tenant}: HTTP {code}"
        ))),
        Err(ureq::Error::Transport(t)) => Err(PulsarError::Route {
            party: party.to_string(),
            field: "mng_port".into(),
            reason: format!("the admin REST of broker {addr} is unreachable: {t}"),
        }),
    }
}

/// What a broker answered to `CONNECT`.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// `CONNECTED` and its `server_version`.
    Connected(String),
    /// `ERROR` and its message.
    Error(String),
    /// Some other command type.
    Other(u64),
}

/// BaseCommand types (PulsarApi.proto).
const CONNECT: u64 = 2;
const CONNECTED: u64 = 3;
const ERROR: u64 = 14;
/// The protocol version announced (v15: what Pulsar 2.x and later speak).
const PROTOCOL_VERSION: u64 = 15;

/// A `CONNECT` frame: `BaseCommand { type: CONNECT, connect: { client_version,
/// protocol_version } }`, protobuf by hand (three fields).
fn connect_frame(client_version: &str) -> Vec<u8> {
    let mut connect = Vec::new();
    put_bytes(&mut connect, 1, client_version.as_bytes());
    put_varint_field(&mut connect, 4, PROTOCOL_VERSION);
    let mut command = Vec::new();
    put_varint_field(&mut command, 1, CONNECT);
    put_bytes(&mut command, 2, &connect);
    let size = command.len() as u32;
    let mut frame = Vec::with_capacity(8 + command.len());
    frame.extend_from_slice(&(size + 4).to_be_bytes());
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&command);
    frame
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One protobuf field: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn get_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a protobuf message; `None` if it is malformed.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = get_varint(buf, &mut at)?;
        let value = match key & 7 {
            0 => Field::Varint(get_varint(buf, &mut at)?),
            1 => {
                at = at.checked_add(8).filter(|&end| end <= buf.len())?;
                Field::Varint(0)
            }
            2 => {
                let len = usize::try_from(get_varint(buf, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|&end| end <= buf.len())?;
                let bytes = &buf[at..end];
                at = end;
                Field::Bytes(bytes)
            }
            5 => {
                at = at.checked_add(4).filter(|&end| end <= buf.len())?;
                Field::Varint(0)
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

/// The string field `number` of a message, if there.
fn string_field(buf: &[u8], number: u64) -> Option<String> {
    fields(buf)?.into_iter().find_map(|(n, f)| match f {
        Field::Bytes(b) if n == number => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    })
}

/// Reads a BaseCommand: its type and, for `CONNECTED` and `ERROR`, what they say.
fn decode_answer(command: &[u8]) -> Option<Answer> {
    let fields = fields(command)?;
    let kind = fields.iter().find_map(|(n, f)| match f {
        Field::Varint(v) if *n == 1 => Some(*v),
        _ => None,
    })?;
    let sub = |number: u64| {
        fields.iter().find_map(|(n, f)| match f {
            Field::Bytes(b) if *n == number => Some(*b),
            _ => None,
        })
    };
    Some(match kind {
        // CommandConnected.server_version = 1.
        CONNECTED => Answer::Connected(
            sub(3)
                .and_then(|c| string_field(c, 1))
                .unwrap_or_else(|| "a broker".into()),
        ),
        // CommandError.message = 3.
        ERROR => Answer::Error(sub(14).and_then(|c| string_field(c, 3)).unwrap_or_default()),
        other => Answer::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_frame_is_a_base_command_of_type_connect() {
        let frame = connect_frame("x");
        // total 4 + command, command: type=2, connect {client_version "x", protocol 15}.
        let command = [0x08, 0x02, 0x12, 0x05, 0x0a, 0x01, b'x', 0x20, 0x0f];
        let mut want = vec![0, 0, 0, 13, 0, 0, 0, 9];
        want.extend_from_slice(&command);
        assert_eq!(frame, want);
    }

    #[test]
    fn answers_are_read_and_garbage_is_not() {
        // CONNECTED { server_version: "Pulsar Server4.2.4", protocol_version: 19 }
        let mut connected = Vec::new();
        put_bytes(&mut connected, 1, b"Pulsar Server4.2.4");
        put_varint_field(&mut connected, 2, 19);
        let mut command = Vec::new();
        put_varint_field(&mut command, 1, CONNECTED);
        put_bytes(&mut command, 3, &connected);
        assert_eq!(
            decode_answer(&command),
            Some(Answer::Connected("Pulsar Server4.2.4".into()))
        );
        let mut error = Vec::new();
        put_varint_field(&mut error, 1, 0);
        put_varint_field(&mut error, 2, 5);
        put_bytes(&mut error, 3, b"Authentication required");
        let mut command = Vec::new();
        put_varint_field(&mut command, 1, ERROR);
        put_bytes(&mut command, 14, &error);
        assert_eq!(
            decode_answer(&command),
            Some(Answer::Error("Authentication required".into()))
        );
        // HTTP, a length past the end, no type.
        assert_eq!(decode_answer(b"HTTP/1.1 400"), None);
        assert_eq!(decode_answer(&[0x12, 0x7f, 0x00]), None);
        assert_eq!(decode_answer(&[0x12, 0x00]), None);
    }
}
