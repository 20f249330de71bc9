//! A task's protocol transcript at one party: what it sent and received through the
//! federation (message names, tag patterns, peers, counts, bytes), never the payloads. The
//! scheduler attaches a [`Traffic`] to every task party's `Federation` and writes it beside the
//! task's log when the task ends; the board shows it (issue 14: "a task's protocol transcript").
//!
//! Bounded: at most [`MAX_ENTRIES`] distinct (direction, peer, name, tag pattern) rows per task;
//! further frames are counted in one overflow row.

use fate_federation::{MessageKey, Observer, wire};
use fate_types::Party;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Distinct rows one task party records.
pub const MAX_ENTRIES: usize = 4096;

/// One row of a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficEntry {
    /// `sent` or `received`.
    pub direction: String,
    /// The other party, `role:party_id`.
    pub peer: String,
    /// The object's name (slices of a split object count under its name).
    pub name: String,
    /// The tag with its numbers replaced by `*` (`default.iterations-*.batches-*`), so the
    /// rows of an iterative protocol stay few.
    pub tag: String,
    /// Messages (objects) sent or received.
    pub messages: u64,
    /// Frames, slices included.
    pub frames: u64,
    /// Bytes of every frame.
    pub bytes: u64,
}

/// Key of a row: direction, peer, name, tag pattern.
type Key = (&'static str, String, String, String);

/// What a task party's federation moved, by row.
#[derive(Debug, Default)]
pub struct Traffic {
    rows: Mutex<BTreeMap<Key, (u64, u64, u64)>>,
}

impl Traffic {
    fn record(&self, direction: &'static str, peer: &Party, key: &MessageKey, bytes: usize) {
        let (name, first) = match wire::parse_slice_name(&key.name) {
            Some((base, _)) => (base, false),
            None => (key.name.as_str(), true),
        };
        let mut rows = self.rows.lock();
        let mut k: Key = (
            direction,
            format!("{}:{}", peer.role, peer.party_id),
            name.to_string(),
            tag_pattern(&key.tag),
        );
        if !rows.contains_key(&k) && rows.len() >= MAX_ENTRIES {
            k = (direction, "*".into(), "(more rows)".into(), "*".into());
        }
        let row = rows.entry(k).or_default();
        row.0 += u64::from(first);
        row.1 += 1;
        row.2 += bytes as u64;
    }

    /// The rows, sent before received, then by peer, name and tag.
    pub fn entries(&self) -> Vec<TrafficEntry> {
        let rows = self.rows.lock();
        let mut out: Vec<TrafficEntry> = rows
            .iter()
            .map(|((d, peer, name, tag), (m, f, b))| TrafficEntry {
                direction: (*d).to_string(),
                peer: peer.clone(),
                name: name.clone(),
                tag: tag.clone(),
                messages: *m,
                frames: *f,
                bytes: *b,
            })
            .collect();
        out.sort_by(|a, b| b.direction.cmp(&a.direction).then(a.peer.cmp(&b.peer)));
        out
    }

    /// Writes the rows as JSON to `path` (a failed write is logged, never fails the task).
    pub(crate) fn write(&self, path: &Path) {
        let entries = self.entries();
        let result = serde_json::to_vec(&entries)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(path, bytes)
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "Cannot write the task's transcript.");
        }
    }
}

impl Observer for Traffic {
    fn on_send(&self, key: &MessageKey, frame: &[u8]) {
        self.record("sent", &key.dst, key, frame.len());
    }

    fn on_recv(&self, key: &MessageKey, frame: &[u8]) {
        self.record("received", &key.src, key, frame.len());
    }
}

/// `tag` with each run of digits replaced by `*`.
fn tag_pattern(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    let mut in_digits = false;
    for c in tag.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Where a task's transcript at one party lives: beside its log,
/// `<logs_dir>/<job_id>/<role>/<party_id>/<task_name>.transcript.json`.
pub(crate) fn transcript_path(
    logs_dir: &Path,
    job_id: &str,
    role: &str,
    party_id: &str,
    task: &str,
) -> Option<PathBuf> {
    let log = crate::logs::task_log_path(logs_dir, job_id, role, party_id, task)?;
    Some(log.with_file_name(format!("{task}.transcript.json")))
}

/// Largest transcript file read back (a full one is about 1 MiB).
const MAX_FILE_BYTES: u64 = 8 << 20;

/// Reads a task party's transcript; `Ok(None)` when it has none (the task did not run here, or
/// ran before transcripts were kept).
pub(crate) fn read(path: &Path) -> std::io::Result<Option<Vec<TrafficEntry>>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Err(std::io::Error::other(format!(
                "{} is larger than {MAX_FILE_BYTES} bytes",
                path.display()
            )));
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fate_types::Role;

    fn key(name: &str, tag: &str) -> MessageKey {
        MessageKey {
            session_id: "s".into(),
            name: name.into(),
            tag: tag.into(),
            src: Party::new(Role::Guest, "9999"),
            dst: Party::new(Role::Host, "10000"),
        }
    }

    #[test]
    fn rows_group_iterations_and_slices_and_stay_bounded() {
        let t = Traffic::default();
        for i in 0..3 {
            t.on_send(
                &key("en_y", &format!("default.iterations-{i}.batches-0")),
                &[0; 10],
            );
        }
        t.on_send(
            &key(
                &wire::slice_name("en_y", 1),
                "default.iterations-2.batches-0",
            ),
            &[0; 5],
        );
        t.on_recv(&key("grad", "default.iterations-12"), &[0; 7]);
        let rows = t.entries();
        assert_eq!(
            rows,
            vec![
                TrafficEntry {
                    direction: "sent".into(),
                    peer: "host:10000".into(),
                    name: "en_y".into(),
                    tag: "default.iterations-*.batches-*".into(),
                    messages: 3,
                    frames: 4,
                    bytes: 35,
                },
                TrafficEntry {
                    direction: "received".into(),
                    peer: "guest:9999".into(),
                    name: "grad".into(),
                    tag: "default.iterations-*".into(),
                    messages: 1,
                    frames: 1,
                    bytes: 7,
                },
            ]
        );
        for i in 0..(MAX_ENTRIES + 10) {
            t.on_recv(&key(&format!("n{i}"), "t"), &[0; 1]);
        }
        let rows = t.entries();
        assert_eq!(rows.len(), MAX_ENTRIES + 1, "one overflow row");
        let more = rows.iter().find(|r| r.name == "(more rows)").unwrap();
        assert_eq!(more.messages, 12);
    }

    #[test]
    fn a_transcript_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path =
            transcript_path(dir.path(), "202601010000000000000", "guest", "9999", "lr_0").unwrap();
        assert!(path.ends_with("202601010000000000000/guest/9999/lr_0.transcript.json"));
        assert_eq!(read(&path).unwrap(), None);
        let t = Traffic::default();
        t.on_send(&key("x", "y"), &[1, 2, 3]);
        t.write(&path);
        assert_eq!(read(&path).unwrap().unwrap(), t.entries());
        assert!(transcript_path(dir.path(), "../x", "guest", "9999", "lr_0").is_none());
    }
}
