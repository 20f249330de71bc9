//! Fault points for crash tests: `fault::point("name")` aborts the process (as `kill -9` would:
//! no destructors, no flushing, no cleanup) when the environment variable `FATE_FAULT` is
//! `name`, or `name@N` and this is the N-th time the point is reached. Otherwise a point costs
//! one load of a value read once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed point: its name and the hit that aborts (1 = the first).
struct Armed {
    name: String,
    nth: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("FATE_FAULT").ok().and_then(|v| parse(&v)))
        .as_ref()
}

fn parse(value: &str) -> Option<Armed> {
    let (name, nth) = match value.rsplit_once('@') {
        Some((name, n)) => (name, n.trim().parse().ok().filter(|n| *n > 0)?),
        None => (value, 1),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| Armed {
        name: name.to_string(),
        nth,
        hits: AtomicU64::new(0),
    })
}

/// A named point where a crash test may kill the process.
#[inline]
pub fn point(name: &str) {
    if let Some(a) = armed()
        && a.name == name
        && a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.nth
    {
        eprintln!("FATE_FAULT: aborting at fault point {name} (hit {})", a.nth);
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_and_an_optional_hit() {
        let a = parse("lr.epoch@2").unwrap();
        assert_eq!((a.name.as_str(), a.nth), ("lr.epoch", 2));
        let a = parse("upload.data_written").unwrap();
        assert_eq!((a.name.as_str(), a.nth), ("upload.data_written", 1));
        assert!(parse("x@0").is_none());
        assert!(parse("x@two").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn an_unarmed_point_returns() {
        // FATE_FAULT is not set in unit tests; reaching a point does nothing.
        point("upload.data_written");
    }
}
