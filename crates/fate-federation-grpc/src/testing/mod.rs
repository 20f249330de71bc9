//! Test harnesses for networks of sites on one machine (cargo feature `testing`): real
//! servers and real links, no stand-ins.
//!
//! - [`netns`]: Linux network namespaces on a private bridge, one address per namespace,
//!   code run inside a namespace on a thread of its own, and `tbf` rate limits on links.
//! - [`delay`]: a userspace TCP proxy that adds a fixed one-way delay per direction (this
//!   machine's kernel has no `netem`, see the platform notes).
//! - [`Sites`]: several sites' transports as one `Transport`, for the conformance suite.
//! - [`ats`]: Apache Traffic Server as the seeds' SNI proxy of a star network (fate-spec §2.6).
//!
//! Tests that need something the machine may lack (root, `ip`, `traffic_server`) call
//! [`unavailable`]: it skips with the reason, or fails under CI, where everything is installed.

pub mod ats;
pub mod delay;
pub mod netns;
mod sites;

pub use sites::Sites;

/// Whether the tests run under CI (the environment variable `CI` is set and not empty or
/// `false`/`0`). CI installs everything (`scripts/setup.sh`) and runs as root, so a missing
/// prerequisite there is a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// What a test does when a prerequisite is missing: under CI ([`under_ci`]) it panics with
/// `reason`; otherwise it prints `skipping <test>: <reason>` and the caller returns. The line
/// goes straight to the process's stderr, past the test harness's output capture, so a skip
/// is visible in a normal `cargo test` run.
pub fn unavailable(test: &str, reason: &str) {
    if under_ci() {
        panic!("{test} cannot run under CI: {reason}");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipping {test}: {reason}");
}
