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

/// Longest job id accepted from a client or a partner. FATE's own ids are 21 digits.
pub const MAX_JOB_ID_LEN: usize = 64;
/// Longest identifier (namespace, table name, task name, model id/version, output key, role,
/// party id) that may become part of a path, a file name or a table key.
pub const MAX_ID_LEN: usize = 128;

/// Why an identifier was refused; the message names the field and shows the value escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for IdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for IdError {}

fn id_error(field: &str, value: &str, rule: &str) -> IdError {
    // Show at most 80 characters of the value, escaped, so an error never carries a large or
    // unprintable input.
    let shown: String = value.chars().take(80).collect();
    let more = if value.chars().count() > 80 {
        "..."
    } else {
        ""
    };
    IdError {
        field: field.to_string(),
        reason: format!("`{}{more}` {rule}", shown.escape_debug()),
    }
}

/// One path component made of `[A-Za-z0-9_-]` plus the `extra` bytes, 1 to `max` bytes long,
/// starting with a letter or digit: it can never be empty, `.`, `..`, absolute, or hold a
/// separator, a NUL or a control character.
fn check_component(field: &str, value: &str, max: usize, extra: &[u8]) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b));
    if ok {
        return Ok(());
    }
    let allowed: String = extra
        .iter()
        .map(|b| format!(", `{}`", *b as char))
        .collect();
    Err(id_error(
        field,
        value,
        &format!(
            "must be 1 to {max} letters, digits, `_`, `-`{allowed}, starting with a letter or digit"
        ),
    ))
}

/// A job id: what FATE generates (digits, fate-spec §3.1) or any id of `[A-Za-z0-9_-]`, at most
/// [`MAX_JOB_ID_LEN`] long. Job ids become directories under the logs dir.
pub fn check_job_id(field: &str, value: &str) -> Result<(), IdError> {
    check_component(field, value, MAX_JOB_ID_LEN, &[])
}

/// A task name, role, party id or output key: `[A-Za-z0-9_-]`, at most [`MAX_ID_LEN`].
pub fn check_path_id(field: &str, value: &str) -> Result<(), IdError> {
    check_component(field, value, MAX_ID_LEN, &[])
}

/// A table namespace or name, a model id or version: `[A-Za-z0-9_.@-]` (FATE's generated names
/// and versions use `.`), at most [`MAX_ID_LEN`], never starting with `.`.
pub fn check_name(field: &str, value: &str) -> Result<(), IdError> {
    check_component(field, value, MAX_ID_LEN, b".@")
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
    fn identifiers_that_become_paths_are_checked() {
        for ok in ["202308211911505128750", "job_1", "a-b"] {
            assert_eq!(check_job_id("job_id", ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/some/dir",
            "../../x",
            "..",
            ".",
            "a/b",
            "a\\b",
            "a\0b",
            "-rf",
            "_x",
            "a b",
            "ä",
            "a\nb",
            &"9".repeat(MAX_JOB_ID_LEN + 1),
        ] {
            let e = check_job_id("job_id", bad).unwrap_err();
            assert!(e.to_string().starts_with("job_id: "), "{e}");
        }
        assert!(check_name("name", "breast_hetero_guest.v1@2").is_ok());
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a b",
            &"n".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
        let long = check_name("name", &"x".repeat(10_000)).unwrap_err();
        assert!(long.to_string().len() < 300, "the error is bounded: {long}");
    }

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
