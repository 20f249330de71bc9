//! Job ids in FATE's format: `strftime("%Y%m%d%H%M%S%f")` followed by a per-process counter
//! digit (fate-spec §3.1, `fate_flow/utils/job_utils.py`), e.g. `202308211911505128750`.

use std::sync::Mutex;

/// Generates FATE-style job ids, strictly increasing within one process.
#[derive(Debug, Default)]
pub struct JobIdGenerator {
    state: Mutex<(String, u32)>,
}

impl JobIdGenerator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next id for the given wall-clock time.
    pub fn next_at(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        let stamp = now.format("%Y%m%d%H%M%S%6f").to_string();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if stamp > st.0 {
            *st = (stamp, 0);
        } else {
            st.1 += 1;
        }
        // FATE appends a one-digit counter; beyond 9 ids in the same microsecond we widen it,
        // which keeps ids unique and still sortable by time.
        format!("{}{}", st.0, st.1)
    }

    pub fn next(&self) -> String {
        self.next_at(chrono::Utc::now())
    }
}

/// Federation session id used by every backend: `{job_id}_{task_name}_{task_version}`
/// (fate-spec §2.1, `fate_flow/controller/parser.py`).
pub fn federation_session_id(job_id: &str, task_name: &str, task_version: u32) -> String {
    format!("{job_id}_{task_name}_{task_version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_fate_shape_and_are_unique() {
        let g = JobIdGenerator::new();
        let t = chrono::DateTime::parse_from_rfc3339("2023-08-21T19:11:50.512875Z")
            .unwrap()
            .to_utc();
        assert_eq!(g.next_at(t), "202308211911505128750");
        assert_eq!(g.next_at(t), "202308211911505128751");
        let a = g.next();
        let b = g.next();
        assert_ne!(a, b);
        assert!(a.len() >= 21 && a.chars().all(|c| c.is_ascii_digit()));
    }
}
