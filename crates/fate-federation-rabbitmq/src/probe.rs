//! Reachability probes for `fate doctor`: a broker's AMQP listener and its management API,
//! each bounded by [`TIMEOUT`]; errors name the party, the broker and the route-table field.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::RabbitError;
use crate::route::Broker;

/// Longest one probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Opens an AMQP 0-9-1 connection to `party`'s broker far enough to read its
/// `connection.start` (no login), and names the product and version it announces.
pub fn amqp(party: &str, broker: &Broker) -> Result<String, RabbitError> {
    let addr = broker.amqp_addr();
    let fail = |reason: String| RabbitError::Route {
        party: party.to_string(),
        field: "port".into(),
        reason: format!("AMQP port of broker {addr}: {reason}"),
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
        .write_all(b"AMQP\x00\x00\x09\x01")
        .map_err(|e| fail(format!("sending the protocol header: {e}")))?;
    // A method frame: type 1, channel 0, payload size, then class 10 method 10
    // (connection.start). Read a bounded prefix of it: enough for the server properties.
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while n < 11 {
        match stream.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(fail(format!("no answer to the AMQP header: {e}"))),
        }
    }
    if n < 11 || buf[0] != 1 || buf[7..11] != [0, 10, 0, 10] {
        return Err(fail(format!(
            "the answer is not AMQP 0-9-1's connection.start (first bytes {:02x?})",
            &buf[..n.min(11)]
        )));
    }
    // Keep reading until the frame is in (it is small) to find product and version.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    while n < buf.len() {
        match stream.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    let find = |key: &str| -> Option<String> {
        let at = text.find(key)? + key.len() + 5; // 'S' and a 4-byte length
        text.get(at..).map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_graphic() || *c == ' ')
                .collect()
        })
    };
    Ok(match (find("product"), find("version")) {
        (Some(p), Some(v)) if !p.is_empty() => format!("AMQP 0-9-1: {p} {v}"),
        _ => "AMQP 0-9-1 broker answered".into(),
    })
}

/// Reaches `party`'s management API without logging in (HTTP 401 counts as reachable: the
/// admin credentials of a peer's broker are not this node's to know).
pub fn management(party: &str, broker: &Broker) -> Result<String, RabbitError> {
    let addr = broker.mng_addr();
    let url = format!("http://{addr}/api/overview");
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(TIMEOUT)
        .timeout(TIMEOUT)
        .build();
    match agent.get(&url).call() {
        Ok(r) => Ok(format!("HTTP {}", r.status())),
        Err(ureq::Error::Status(401, _)) => Ok("HTTP 401 (reachable; login not tried)".into()),
        Err(ureq::Error::Status(code, _)) => Err(RabbitError::Broker {
            party: party.to_string(),
            addr,
            reason: format!("management API answered HTTP {code} (is rabbitmq_management on?)"),
        }),
        Err(ureq::Error::Transport(t)) => Err(RabbitError::Route {
            party: party.to_string(),
            field: "mng_port".into(),
            reason: format!("management API of broker {addr} unreachable: {t}"),
        }),
    }
}
