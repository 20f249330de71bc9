//! FATE 2.x `psi` (fate-spec §4.2, `components/psi.py` and `arch/protocol/psi/ecdh/_run.py`):
//! ECDH private set intersection of the guest's and the hosts' match ids on Curve25519.
//!
//! Each party draws a fresh [`EcdhSecret`] per run. Match ids are processed in blocks of at most
//! [`BLOCK_ROWS`] consecutive rows of one partition, and a row is addressed by its location
//! (block, offset), as FATE's block table addresses rows; point lists travel as tables of
//! blocks (`fate_runtime::fedtable`, one object per partition), so no message holds the whole
//! id set.
//!
//! 1. guest: `E_g(id)` per block, `guest_first_sign` to every host.
//! 2. host: `E_h(id)` per block, `host_first_sign` to the guest; `E_h(E_g(id))` of the guest's
//!    points, keyed by that point with the list of guest locations (duplicate guest ids
//!    allowed), `guest_second_sign` to the guest.
//! 3. guest: `E_g(E_h(id))` of each host's points keyed by point with the host location
//!    (duplicate host ids are an error, "duplicate match_id detect"); equal 32-byte points are
//!    equal ids, so joining the two gives the pairs (guest location, host location); the
//!    intersection across all hosts is the guest's output. Each host gets its `host_indexer`:
//!    guest sample id -> host location, for the intersecting rows only.
//! 4. host: each indexer entry picks its row and re-keys it by the guest's sample id
//!    (FATE's `loc_with_sample_id_replacement`), so every party's output shares the guest's keys.
//!
//! What each party learns (as in FATE): the host sees only points it cannot invert and, at the
//! end, which of its rows intersect and the guest sample ids they map to; the guest sees only
//! points, the size of each host's id set and the intersection. An empty intersection fails at
//! every party with the same message (an extra acknowledgement round makes sure every party
//! has read it before any fails, so none is merely canceled).

use crate::{artifact, param};
use fate_computing::{Key, Table, hash_bytes};
use fate_crypto::psi::{EcdhSecret, Point};
use fate_runtime::fedtable::{get_table, remote_table};
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row};
use fate_types::component::{ArtifactKind, ComponentSpec};
use fate_types::{Party, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The `psi` component.
pub struct Psi;

/// The only protocol (FATE 2.x `psi_run`).
pub const PROTOCOL: &str = "ecdh_psi";
/// The only curve (`safety.psi.ecdh.curve_type`, fate-spec §4.2).
pub const CURVE_TYPE: &str = "curve25519";
/// Rows per block of match ids (one `encrypt_ids` call, one entry of a point table).
pub const BLOCK_ROWS: usize = 4096;

/// Message names, as FATE's `_run.py` names them.
pub const GUEST_FIRST_SIGN: &str = "guest_first_sign";
pub const HOST_FIRST_SIGN: &str = "host_first_sign";
pub const GUEST_SECOND_SIGN: &str = "guest_second_sign";
pub const HOST_INDEXER: &str = "host_indexer";
/// fate-rs only: the failure handshake of an empty intersection.
const EMPTY_ACK: &str = "psi_empty_ack";
const EMPTY_RELEASE: &str = "psi_empty_release";
const TAG: &str = "psi";

/// A double-signed id `E_a(E_b(id))` as a table key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Sign(Point);

impl Key for Sign {
    fn partition_hash(&self) -> u64 {
        hash_bytes(&self.0)
    }
}

/// Rows `start..start + len` of partition `part` of the input table.
#[derive(Debug, Clone, Copy)]
struct Span {
    part: usize,
    start: usize,
    len: usize,
}

/// The input table cut into blocks; block `b` is `spans[b]`.
struct Blocks<'a> {
    table: &'a Table<String, Row>,
    spans: Vec<Span>,
}

/// A row location: block id in the high 32 bits, offset in the low 32.
fn loc(block: u64, offset: usize) -> u64 {
    (block << 32) | offset as u64
}

impl<'a> Blocks<'a> {
    fn new(table: &'a Table<String, Row>) -> Self {
        let mut spans = Vec::new();
        for (part, rows) in table.partitions().iter().enumerate() {
            let mut start = 0;
            while start < rows.len() {
                let len = BLOCK_ROWS.min(rows.len() - start);
                spans.push(Span { part, start, len });
                start += len;
            }
        }
        Blocks { table, spans }
    }

    /// The row (sample id, row) at `l`, if `l` is inside the table.
    fn row(&self, l: u64) -> Option<&'a (String, Row)> {
        let span = self.spans.get(usize::try_from(l >> 32).ok()?)?;
        let offset = (l & 0xffff_ffff) as usize;
        if offset >= span.len {
            return None;
        }
        self.table.partitions()[span.part].get(span.start + offset)
    }

    /// `E(match_id)` of every row, as a table block id -> points in row order.
    fn first_sign(&self, ctx: &Ctx, secret: &EcdhSecret) -> Table<u64, Vec<Point>> {
        let parts = self.table.partitions();
        let blocks: Vec<(u64, Vec<Point>)> = ctx.computing.install(|| {
            self.spans
                .iter()
                .enumerate()
                .map(|(b, s)| {
                    let ids: Vec<&[u8]> = parts[s.part][s.start..s.start + s.len]
                        .iter()
                        .map(|(_, r)| r.match_id.as_bytes())
                        .collect();
                    (b as u64, secret.encrypt_ids(&ids))
                })
                .collect()
        });
        ctx.computing
            .parallelize(blocks, self.table.num_partitions())
    }
}

/// Checks a peer's block table: block ids and offsets must fit a location.
fn check_blocks(t: &Table<u64, Vec<Point>>, name: &str, src: &Party) -> Result<(), ComponentError> {
    let bad = t
        .filter(|b, pts| *b > u64::from(u32::MAX) || pts.len() > u32::MAX as usize)
        .count();
    if bad > 0 {
        return Err(ComponentError::Data(format!(
            "`{name}` from {src} has {bad} blocks with an out-of-range id or size"
        )));
    }
    Ok(())
}

/// Applies `secret` to every point of a block table and keys the results by point, with the
/// row location of each and `one(location)` as value, folding equal points with `fold`.
fn second_sign<V: fate_computing::Value>(
    t: &Table<u64, Vec<Point>>,
    secret: &EcdhSecret,
    one: impl Fn(u64) -> V + Send + Sync,
    fold: impl Fn(V, V) -> V + Send + Sync,
) -> Table<Sign, V> {
    t.map_reduce_partitions(
        |part| {
            let mut out = Vec::with_capacity(part.iter().map(|(_, p)| p.len()).sum());
            for (block, points) in part {
                let signed = secret.diffie_hellman_batch(points);
                out.extend(
                    signed
                        .into_iter()
                        .enumerate()
                        .map(|(i, s)| (Sign(s), one(loc(*block, i)))),
                );
            }
            out
        },
        fold,
    )
}

fn party_list(parties: &[Party]) -> String {
    parties
        .iter()
        .map(|p| p.party_id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_error(guest: &Party, hosts: &[Party]) -> ComponentError {
    let which = if hosts.len() == 1 { "host" } else { "hosts" };
    ComponentError::Data(format!(
        "empty intersection between guest {} and {which} {}",
        guest.party_id,
        party_list(hosts)
    ))
}

impl Component for Psi {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "psi".into(),
            legacy_modules: vec!["Intersection".into()],
            description: "ECDH private set intersection of the guest's and hosts' match ids".into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![
                param(
                    "protocol",
                    false,
                    Some(json!(PROTOCOL)),
                    "PSI protocol (only ecdh_psi)",
                ),
                param(
                    "curve_type",
                    false,
                    Some(json!(CURVE_TYPE)),
                    "elliptic curve (only curve25519)",
                ),
            ],
            inputs: vec![artifact(
                "input_data",
                ArtifactKind::Data,
                false,
                &[Role::Guest, Role::Host],
            )],
            outputs: vec![artifact(
                "output_data",
                ArtifactKind::Data,
                false,
                &[Role::Guest, Role::Host],
            )],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let protocol = ctx
            .param_opt::<String>("protocol")?
            .unwrap_or_else(|| PROTOCOL.into());
        if protocol != PROTOCOL {
            return Err(ComponentError::param(
                "protocol",
                format!(
                    "PSI protocol `{protocol}` is not implemented; the only protocol is `{PROTOCOL}`"
                ),
            ));
        }
        let curve = ctx
            .param_opt::<String>("curve_type")?
            .unwrap_or_else(|| CURVE_TYPE.into());
        if curve != CURVE_TYPE {
            return Err(ComponentError::param(
                "curve_type",
                format!("curve `{curve}` is not implemented; the only curve is `{CURVE_TYPE}`"),
            ));
        }
        let df = ctx.input_data("input_data")?;
        let input_count = df.count();
        let out = match ctx.role() {
            Role::Guest => guest_run(ctx, &df)?,
            Role::Host => host_run(ctx, &df)?,
            other => {
                return Err(ComponentError::Failed(format!(
                    "psi does not run as {other}"
                )));
            }
        };
        let n = out.count();
        ctx.info(format!(
            "psi at {}: {n} of {input_count} rows intersect",
            ctx.local
        ));
        ctx.metric("intersect_count", "custom", json!({"intersect_count": n}));
        ctx.metric(
            "summary",
            "custom",
            json!({
                "input_count": input_count,
                "intersect_count": n,
                "intersect_rate": n as f64 / input_count.max(1) as f64,
                "method": CURVE_TYPE,
            }),
        );
        ctx.output_data("output_data", &out)
    }
}

fn guest_run(ctx: &Ctx, df: &DataFrame) -> Result<DataFrame, ComponentError> {
    let fed = &ctx.federation;
    let me = ctx.local.clone();
    let hosts = ctx.parties_of(Role::Host);
    if hosts.is_empty() {
        return Err(ComponentError::Failed("psi needs at least one host".into()));
    }
    let secret = EcdhSecret::random(&mut rand::rngs::OsRng);
    let blocks = Blocks::new(&df.table);
    remote_table(
        fed,
        GUEST_FIRST_SIGN,
        TAG,
        &hosts,
        &blocks.first_sign(ctx, &secret),
    )?;

    // guest location -> one host location per host so far.
    let mut joined: Option<Table<u64, Vec<u64>>> = None;
    let mut empty_with: Option<Party> = None;
    for host in &hosts {
        ctx.check_canceled()?;
        let host_first: Table<u64, Vec<Point>> =
            get_table(fed, &ctx.computing, HOST_FIRST_SIGN, TAG, host)?;
        check_blocks(&host_first, HOST_FIRST_SIGN, host)?;
        fate_runtime::fault::point("psi.exchanged");
        // E_g(E_h(id)) -> (host location, occurrences).
        let host_second = second_sign(&host_first, &secret, |l| (l, 1u32), |a, b| (a.0, a.1 + b.1));
        let dups = host_second.filter(|_, (_, n)| *n > 1).count();
        if dups > 0 {
            return Err(ComponentError::Data(format!(
                "duplicate match_id detect: {dups} match ids occur more than once in the data of host {}",
                host.party_id
            )));
        }
        let guest_second: Table<Sign, Vec<u64>> =
            get_table(fed, &ctx.computing, GUEST_SECOND_SIGN, TAG, host)?;
        let bad = guest_second
            .filter(|_, ls| ls.iter().any(|l| blocks.row(*l).is_none()))
            .count();
        if bad > 0 {
            return Err(ComponentError::Data(format!(
                "`{GUEST_SECOND_SIGN}` from {host} has {bad} entries pointing outside the guest's data"
            )));
        }
        let pairs: Table<u64, Vec<u64>> = guest_second
            .join(&host_second, |g, h| (g.clone(), h.0))
            .flat_map(|_, (g, h)| g.iter().map(|gl| (*gl, vec![*h])).collect::<Vec<_>>());
        ctx.info(format!(
            "psi: {} guest rows intersect with host {}",
            pairs.count(),
            host.party_id
        ));
        if pairs.count() == 0 && empty_with.is_none() {
            empty_with = Some(host.clone());
        }
        joined = Some(match joined {
            None => pairs,
            Some(acc) => acc.join(&pairs, |a, b| {
                let mut v = a.clone();
                v.extend_from_slice(b);
                v
            }),
        });
    }
    // Guest sample id -> host locations, one per host in `hosts` order (every entry went
    // through one join per host).
    let by_sid: Table<String, Vec<u64>> = match joined {
        Some(t) => t.flat_map(|gl, hls| blocks.row(*gl).map(|(sid, _)| (sid.clone(), hls.clone()))),
        None => ctx.computing.parallelize(Vec::new(), 1),
    };
    for (j, host) in hosts.iter().enumerate() {
        let indexer: Table<String, u64> = by_sid.map_values(move |hls| hls[j]);
        remote_table(fed, HOST_INDEXER, TAG, std::slice::from_ref(host), &indexer)?;
    }
    if by_sid.count() == 0 {
        // Every host has read its (empty) indexer once it acknowledges; the release lets the
        // hosts fail only after every one has, so no party is merely canceled. Errors of the
        // handshake do not matter: the task fails with the message below either way.
        let _ = fed.get::<()>(EMPTY_ACK, TAG, &hosts);
        let _ = fed.remote(EMPTY_RELEASE, TAG, &hosts, &());
        let blame = empty_with.map(|h| vec![h]).unwrap_or(hosts);
        return Err(empty_error(&me, &blame));
    }
    let table = df.table.join(&by_sid, |row, _| row.clone());
    Ok(DataFrame {
        schema: df.schema.clone(),
        table,
    })
}

fn host_run(ctx: &Ctx, df: &DataFrame) -> Result<DataFrame, ComponentError> {
    let fed = &ctx.federation;
    let guest = ctx.guest()?;
    let guest_only = std::slice::from_ref(&guest);
    // The guest refuses duplicate host ids (it sees only points); checking here first names
    // the ids in the host's own log.
    let counts: Table<String, u32> = df.table.map_reduce_partitions(
        |p| p.iter().map(|(_, r)| (r.match_id.clone(), 1u32)).collect(),
        |a, b| a + b,
    );
    let dups = counts.filter(|_, n| *n > 1);
    if dups.count() > 0 {
        let examples: Vec<String> = dups
            .take(3)
            .into_iter()
            .map(|(id, n)| format!("`{id}` ({n} times)"))
            .collect();
        return Err(ComponentError::Data(format!(
            "duplicate match_id detect in the data of host {}: {} match ids occur more than once, e.g. {}",
            ctx.local.party_id,
            dups.count(),
            examples.join(", ")
        )));
    }
    let secret = EcdhSecret::random(&mut rand::rngs::OsRng);
    let blocks = Blocks::new(&df.table);
    remote_table(
        fed,
        HOST_FIRST_SIGN,
        TAG,
        guest_only,
        &blocks.first_sign(ctx, &secret),
    )?;

    let guest_first: Table<u64, Vec<Point>> =
        get_table(fed, &ctx.computing, GUEST_FIRST_SIGN, TAG, &guest)?;
    check_blocks(&guest_first, GUEST_FIRST_SIGN, &guest)?;
    fate_runtime::fault::point("psi.exchanged");
    // E_h(E_g(id)) -> every guest location with that id (duplicate guest ids allowed).
    let guest_second = second_sign(
        &guest_first,
        &secret,
        |l| vec![l],
        |mut a, b| {
            a.extend(b);
            a
        },
    );
    remote_table(fed, GUEST_SECOND_SIGN, TAG, guest_only, &guest_second)?;

    let indexer: Table<String, u64> = get_table(fed, &ctx.computing, HOST_INDEXER, TAG, &guest)?;
    if indexer.count() == 0 {
        // See guest_run: acknowledge, wait for the release, then fail.
        let _ = fed.remote(EMPTY_ACK, TAG, guest_only, &());
        let _ = fed.get_one::<()>(EMPTY_RELEASE, TAG, &guest);
        return Err(empty_error(&guest, &ctx.parties_of(Role::Host)));
    }
    // loc_with_sample_id_replacement: the row at each location, keyed by the guest's sample id.
    let table =
        indexer.flat_map(|sid, l| blocks.row(*l).map(|(_, row)| (sid.clone(), row.clone())));
    if table.count() != indexer.count() {
        return Err(ComponentError::Data(format!(
            "`{HOST_INDEXER}` from {guest} has {} entries pointing outside the data of host {}",
            indexer.count() - table.count(),
            ctx.local.party_id
        )));
    }
    Ok(DataFrame {
        schema: df.schema.clone(),
        table,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fate_computing::ComputingConfig;

    fn computing() -> fate_computing::Computing {
        fate_computing::Computing::new(ComputingConfig {
            cores: 1,
            default_partitions: 2,
            data_dir: None,
        })
        .unwrap()
    }

    fn rows(n: usize) -> Vec<(String, Row)> {
        (0..n)
            .map(|i| {
                (
                    format!("s{i:05}"),
                    Row {
                        match_id: format!("{i}"),
                        label: None,
                        weight: None,
                        features: vec![],
                    },
                )
            })
            .collect()
    }

    #[test]
    fn locations_resolve_within_blocks_and_refuse_the_rest() {
        let c = computing();
        let table = c.parallelize(rows(BLOCK_ROWS + 10), 1);
        let blocks = Blocks::new(&table);
        assert_eq!(blocks.spans.len(), 2);
        assert_eq!(blocks.row(loc(0, 0)).map(|r| r.0.as_str()), Some("s00000"));
        assert_eq!(
            blocks.row(loc(1, 9)).map(|r| r.0.clone()),
            Some(format!("s{:05}", BLOCK_ROWS + 9))
        );
        // Past the end of a block, an unknown block, and a block id with high bits set.
        for bad in [loc(0, BLOCK_ROWS), loc(1, 10), loc(2, 0), u64::MAX] {
            assert!(blocks.row(bad).is_none(), "{bad:#x}");
        }
    }

    /// Equal points fold: this is how the guest detects duplicate host ids it only sees as points.
    #[test]
    fn second_sign_counts_equal_points() {
        let c = computing();
        let secret = EcdhSecret::random(&mut rand::rngs::OsRng);
        let p = secret.encrypt_id(b"a");
        let q = secret.encrypt_id(b"b");
        let t = c.parallelize(vec![(0u64, vec![p, q]), (1, vec![p])], 2);
        let signed = second_sign(&t, &secret, |l| (l, 1u32), |a, b| (a.0, a.1 + b.1));
        let mut counts: Vec<u32> = signed.collect().into_iter().map(|(_, (_, n))| n).collect();
        counts.sort();
        assert_eq!(counts, [1, 2]);
    }
}
