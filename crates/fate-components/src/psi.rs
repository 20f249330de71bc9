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
use fate_computing::{
    Combine, ComputingError, Filter, FlatMap, Fold, Kernel, KernelRegistry, Key, MapPartition,
    MapRow, MapValues, Secret, Table, hash_bytes,
};
use fate_crypto::psi::{EcdhSecret, Point};
use fate_runtime::fedtable::{get_table, remote_table};
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row};
use fate_types::component::{ArtifactKind, ComponentSpec};
use fate_types::{Party, Role};
use rand::RngCore;
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
pub struct Sign(Point);

impl Key for Sign {
    fn partition_hash(&self) -> u64 {
        hash_bytes(&self.0)
    }
}

/// A row location: block id in the high 32 bits, offset in the low 32.
fn loc(block: u64, offset: usize) -> u64 {
    (block << 32) | offset as u64
}

/// How the input table is cut into blocks of at most [`BLOCK_ROWS`] consecutive rows of one
/// partition (rows in key order): `first_block[p]` is the id of partition `p`'s first block,
/// `lens[b]` the rows of block `b`. Only counts: the rows stay in the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocks {
    first_block: Vec<u32>,
    lens: Vec<u32>,
}

impl Blocks {
    fn new(table: &Table<String, Row>) -> Result<Self, ComponentError> {
        let mut first_block = Vec::new();
        let mut lens = Vec::new();
        for n in table.partition_counts()? {
            first_block.push(u32::try_from(lens.len()).map_err(|_| too_many_blocks())?);
            let mut start = 0;
            while start < n {
                let len = BLOCK_ROWS.min(n - start);
                lens.push(len as u32);
                start += len;
            }
        }
        if u32::try_from(lens.len()).is_err() {
            return Err(too_many_blocks());
        }
        Ok(Blocks { first_block, lens })
    }

    /// Whether `l` is a row of the table.
    fn contains(&self, l: u64) -> bool {
        let Ok(block) = usize::try_from(l >> 32) else {
            return false;
        };
        self.lens
            .get(block)
            .is_some_and(|&len| (l & 0xffff_ffff) < u64::from(len))
    }

    /// The (location, row) pairs of partition `index`'s rows, in order.
    fn locate<'a, T>(&self, index: usize, rows: &'a [T]) -> impl Iterator<Item = (u64, &'a T)> {
        let first = u64::from(self.first_block.get(index).copied().unwrap_or(0));
        rows.iter()
            .enumerate()
            .map(move |(i, r)| (loc(first + (i / BLOCK_ROWS) as u64, i % BLOCK_ROWS), r))
    }
}

fn too_many_blocks() -> ComponentError {
    ComponentError::Data("the input table has more than 2^32 blocks of match ids".into())
}

/// Step 1: `E(match_id)` of every row, as block id -> points in row order. Holds the party's
/// secret scalar (its 32 random bytes) as a kernel parameter, which stays in this party.
#[derive(Debug, Serialize, Deserialize)]
pub struct FirstSign {
    secret: Secret<[u8; 32]>,
    blocks: Blocks,
}
impl Kernel for FirstSign {
    const NAME: &'static str = "fate_components.psi.first_sign";
}
impl MapPartition for FirstSign {
    type K = String;
    type V = Row;
    type K2 = u64;
    type V2 = Vec<Point>;
    fn apply(&self, index: usize, rows: &[(String, Row)]) -> Vec<(u64, Vec<Point>)> {
        let secret = EcdhSecret::from_bytes(self.secret.0);
        let first = u64::from(self.blocks.first_block.get(index).copied().unwrap_or(0));
        rows.chunks(BLOCK_ROWS)
            .enumerate()
            .map(|(j, chunk)| {
                let ids: Vec<&[u8]> = chunk.iter().map(|(_, r)| r.match_id.as_bytes()).collect();
                (first + j as u64, secret.encrypt_ids(&ids))
            })
            .collect()
    }
}

/// Location -> sample id of every row (to map locations back to rows by a join).
#[derive(Debug, Serialize, Deserialize)]
pub struct Locations {
    blocks: Blocks,
}
impl Kernel for Locations {
    const NAME: &'static str = "fate_components.psi.locations";
}
impl MapPartition for Locations {
    type K = String;
    type V = Row;
    type K2 = u64;
    type V2 = String;
    fn apply(&self, index: usize, rows: &[(String, Row)]) -> Vec<(u64, String)> {
        self.blocks
            .locate(index, rows)
            .map(|(l, (sid, _))| (l, sid.clone()))
            .collect()
    }
}

/// A peer's block with an out-of-range id or size.
#[derive(Debug, Serialize, Deserialize)]
pub struct BadBlock;
impl Kernel for BadBlock {
    const NAME: &'static str = "fate_components.psi.bad_block";
}
impl Filter for BadBlock {
    type K = u64;
    type V = Vec<Point>;
    fn keep(&self, b: &u64, pts: &Vec<Point>) -> bool {
        *b > u64::from(u32::MAX) || pts.len() > u32::MAX as usize
    }
}

/// Checks a peer's block table: block ids and offsets must fit a location.
fn check_blocks(t: &Table<u64, Vec<Point>>, name: &str, src: &Party) -> Result<(), ComponentError> {
    let bad = t.filter(&BadBlock).count()?;
    if bad > 0 {
        return Err(ComponentError::Data(format!(
            "`{name}` from {src} has {bad} blocks with an out-of-range id or size"
        )));
    }
    Ok(())
}

fn signed<V>(
    secret: &Secret<[u8; 32]>,
    rows: &[(u64, Vec<Point>)],
    one: impl Fn(u64) -> V,
) -> Vec<(Sign, V)> {
    let secret = EcdhSecret::from_bytes(secret.0);
    let mut out = Vec::with_capacity(rows.iter().map(|(_, p)| p.len()).sum());
    for (block, points) in rows {
        let signed = secret.diffie_hellman_batch(points);
        out.extend(
            signed
                .into_iter()
                .enumerate()
                .map(|(i, s)| (Sign(s), one(loc(*block, i)))),
        );
    }
    out
}

/// Step 3 (guest): `E_g(E_h(id))` of a host's points -> (host location, 1), folded by
/// [`CountHostIds`].
#[derive(Debug, Serialize, Deserialize)]
pub struct SignHostPoints {
    secret: Secret<[u8; 32]>,
}
impl Kernel for SignHostPoints {
    const NAME: &'static str = "fate_components.psi.sign_host_points";
}
impl MapPartition for SignHostPoints {
    type K = u64;
    type V = Vec<Point>;
    type K2 = Sign;
    type V2 = (u64, u32);
    fn apply(&self, _: usize, rows: &[(u64, Vec<Point>)]) -> Vec<(Sign, (u64, u32))> {
        signed(&self.secret, rows, |l| (l, 1u32))
    }
}

/// Equal host points: keep a location, count the occurrences.
#[derive(Debug, Serialize, Deserialize)]
pub struct CountHostIds;
impl Kernel for CountHostIds {
    const NAME: &'static str = "fate_components.psi.count_host_ids";
}
impl Fold for CountHostIds {
    type V = (u64, u32);
    fn apply(&self, a: (u64, u32), b: (u64, u32)) -> (u64, u32) {
        (a.0, a.1 + b.1)
    }
}

/// Step 2 (host): `E_h(E_g(id))` of the guest's points -> [guest location], folded by
/// [`ConcatLocations`] (duplicate guest ids allowed).
#[derive(Debug, Serialize, Deserialize)]
pub struct SignGuestPoints {
    secret: Secret<[u8; 32]>,
}
impl Kernel for SignGuestPoints {
    const NAME: &'static str = "fate_components.psi.sign_guest_points";
}
impl MapPartition for SignGuestPoints {
    type K = u64;
    type V = Vec<Point>;
    type K2 = Sign;
    type V2 = Vec<u64>;
    fn apply(&self, _: usize, rows: &[(u64, Vec<Point>)]) -> Vec<(Sign, Vec<u64>)> {
        signed(&self.secret, rows, |l| vec![l])
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConcatLocations;
impl Kernel for ConcatLocations {
    const NAME: &'static str = "fate_components.psi.concat_locations";
}
impl Fold for ConcatLocations {
    type V = Vec<u64>;
    fn apply(&self, mut a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
        a.extend(b);
        a
    }
}

/// Host points seen more than once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Repeated;
impl Kernel for Repeated {
    const NAME: &'static str = "fate_components.psi.repeated";
}
impl Filter for Repeated {
    type K = Sign;
    type V = (u64, u32);
    fn keep(&self, _: &Sign, v: &(u64, u32)) -> bool {
        v.1 > 1
    }
}

/// Entries of `guest_second_sign` with a location outside the guest's data.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutsideBlocks {
    blocks: Blocks,
}
impl Kernel for OutsideBlocks {
    const NAME: &'static str = "fate_components.psi.outside_blocks";
}
impl Filter for OutsideBlocks {
    type K = Sign;
    type V = Vec<u64>;
    fn keep(&self, _: &Sign, ls: &Vec<u64>) -> bool {
        ls.iter().any(|l| !self.blocks.contains(*l))
    }
}

/// Join of the guest's and a host's double-signed ids: (guest locations, host location).
#[derive(Debug, Serialize, Deserialize)]
pub struct PairUp;
impl Kernel for PairUp {
    const NAME: &'static str = "fate_components.psi.pair_up";
}
impl Combine for PairUp {
    type A = Vec<u64>;
    type B = (u64, u32);
    type Out = (Vec<u64>, u64);
    fn apply(&self, g: &Vec<u64>, h: &(u64, u32)) -> (Vec<u64>, u64) {
        (g.clone(), h.0)
    }
}

/// Guest location -> [host location].
#[derive(Debug, Serialize, Deserialize)]
pub struct ByGuestLocation;
impl Kernel for ByGuestLocation {
    const NAME: &'static str = "fate_components.psi.by_guest_location";
}
impl FlatMap for ByGuestLocation {
    type K = Sign;
    type V = (Vec<u64>, u64);
    type K2 = u64;
    type V2 = Vec<u64>;
    fn apply(&self, _: &Sign, (g, h): &(Vec<u64>, u64), out: &mut Vec<(u64, Vec<u64>)>) {
        out.extend(g.iter().map(|gl| (*gl, vec![*h])));
    }
}

/// The host locations of one guest row so far, then the next host's.
#[derive(Debug, Serialize, Deserialize)]
pub struct Append;
impl Kernel for Append {
    const NAME: &'static str = "fate_components.psi.append";
}
impl Combine for Append {
    type A = Vec<u64>;
    type B = Vec<u64>;
    type Out = Vec<u64>;
    fn apply(&self, a: &Vec<u64>, b: &Vec<u64>) -> Vec<u64> {
        let mut v = a.clone();
        v.extend_from_slice(b);
        v
    }
}

/// Host locations of a guest location, with that location's sample id.
#[derive(Debug, Serialize, Deserialize)]
pub struct WithSampleId;
impl Kernel for WithSampleId {
    const NAME: &'static str = "fate_components.psi.with_sample_id";
}
impl Combine for WithSampleId {
    type A = Vec<u64>;
    type B = String;
    type Out = (String, Vec<u64>);
    fn apply(&self, hls: &Vec<u64>, sid: &String) -> (String, Vec<u64>) {
        (sid.clone(), hls.clone())
    }
}

/// Re-keys `location -> (sample id, x)` by the sample id.
#[derive(Debug, Serialize, Deserialize)]
pub struct BySampleId;
impl Kernel for BySampleId {
    const NAME: &'static str = "fate_components.psi.by_sample_id";
}
impl MapRow for BySampleId {
    type K = u64;
    type V = (String, Vec<u64>);
    type K2 = String;
    type V2 = Vec<u64>;
    fn apply(&self, _: &u64, (sid, hls): &(String, Vec<u64>)) -> (String, Vec<u64>) {
        (sid.clone(), hls.clone())
    }
}

/// Host `j`'s location.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostLocation {
    pub j: usize,
}
impl Kernel for HostLocation {
    const NAME: &'static str = "fate_components.psi.host_location";
}
impl MapValues for HostLocation {
    type In = Vec<u64>;
    type Out = u64;
    fn apply(&self, hls: &Vec<u64>) -> u64 {
        hls[self.j]
    }
}

/// The guest's intersecting rows.
#[derive(Debug, Serialize, Deserialize)]
pub struct IntersectRow;
impl Kernel for IntersectRow {
    const NAME: &'static str = "fate_components.psi.intersect_row";
}
impl Combine for IntersectRow {
    type A = Row;
    type B = Vec<u64>;
    type Out = Row;
    fn apply(&self, row: &Row, _: &Vec<u64>) -> Row {
        row.clone()
    }
}

/// Host: match id -> 1, summed by [`AddCount`].
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchIdOnce;
impl Kernel for MatchIdOnce {
    const NAME: &'static str = "fate_components.psi.match_id_once";
}
impl MapPartition for MatchIdOnce {
    type K = String;
    type V = Row;
    type K2 = String;
    type V2 = u32;
    fn apply(&self, _: usize, p: &[(String, Row)]) -> Vec<(String, u32)> {
        p.iter().map(|(_, r)| (r.match_id.clone(), 1u32)).collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AddCount;
impl Kernel for AddCount {
    const NAME: &'static str = "fate_components.psi.add_count";
}
impl Fold for AddCount {
    type V = u32;
    fn apply(&self, a: u32, b: u32) -> u32 {
        a + b
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MoreThanOnce;
impl Kernel for MoreThanOnce {
    const NAME: &'static str = "fate_components.psi.more_than_once";
}
impl Filter for MoreThanOnce {
    type K = String;
    type V = u32;
    fn keep(&self, _: &String, n: &u32) -> bool {
        *n > 1
    }
}

/// Host: indexer entries `guest sid -> host location` grouped by the location (several guest
/// rows may share a match id, so one host row can serve several guest sample ids), folded by
/// [`ConcatIds`].
#[derive(Debug, Serialize, Deserialize)]
pub struct GuestIdsByLocation;
impl Kernel for GuestIdsByLocation {
    const NAME: &'static str = "fate_components.psi.guest_ids_by_location";
}
impl MapPartition for GuestIdsByLocation {
    type K = String;
    type V = u64;
    type K2 = u64;
    type V2 = Vec<String>;
    fn apply(&self, _: usize, rows: &[(String, u64)]) -> Vec<(u64, Vec<String>)> {
        rows.iter()
            .map(|(sid, l)| (*l, vec![sid.clone()]))
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConcatIds;
impl Kernel for ConcatIds {
    const NAME: &'static str = "fate_components.psi.concat_ids";
}
impl Fold for ConcatIds {
    type V = Vec<String>;
    fn apply(&self, mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
        a.extend(b);
        a
    }
}

/// Host: (guest sids, host sid) of a location.
#[derive(Debug, Serialize, Deserialize)]
pub struct BothIds;
impl Kernel for BothIds {
    const NAME: &'static str = "fate_components.psi.both_ids";
}
impl Combine for BothIds {
    type A = Vec<String>;
    type B = String;
    type Out = (Vec<String>, String);
    fn apply(&self, guest: &Vec<String>, host: &String) -> (Vec<String>, String) {
        (guest.clone(), host.clone())
    }
}

/// Host: `host sid -> guest sids`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ByHostId;
impl Kernel for ByHostId {
    const NAME: &'static str = "fate_components.psi.by_host_id";
}
impl MapRow for ByHostId {
    type K = u64;
    type V = (Vec<String>, String);
    type K2 = String;
    type V2 = Vec<String>;
    fn apply(&self, _: &u64, (guest, host): &(Vec<String>, String)) -> (String, Vec<String>) {
        (host.clone(), guest.clone())
    }
}

/// Host: a row with the guest sample ids it serves.
#[derive(Debug, Serialize, Deserialize)]
pub struct RowForGuest;
impl Kernel for RowForGuest {
    const NAME: &'static str = "fate_components.psi.row_for_guest";
}
impl Combine for RowForGuest {
    type A = Row;
    type B = Vec<String>;
    type Out = (Vec<String>, Row);
    fn apply(&self, row: &Row, guest: &Vec<String>) -> (Vec<String>, Row) {
        (guest.clone(), row.clone())
    }
}

/// Host: the row once per guest sample id (FATE's `loc_with_sample_id_replacement`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ByGuestId;
impl Kernel for ByGuestId {
    const NAME: &'static str = "fate_components.psi.by_guest_id";
}
impl FlatMap for ByGuestId {
    type K = String;
    type V = (Vec<String>, Row);
    type K2 = String;
    type V2 = Row;
    fn apply(&self, _: &String, (guest, row): &(Vec<String>, Row), out: &mut Vec<(String, Row)>) {
        out.extend(guest.iter().map(|g| (g.clone(), row.clone())));
    }
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_partitions::<FirstSign>()?
        .map_partitions::<Locations>()?
        .filter::<BadBlock>()?
        .map_partitions::<SignHostPoints>()?
        .fold::<CountHostIds>()?
        .map_partitions::<SignGuestPoints>()?
        .fold::<ConcatLocations>()?
        .filter::<Repeated>()?
        .filter::<OutsideBlocks>()?
        .combine::<PairUp>()?
        .flat_map::<ByGuestLocation>()?
        .combine::<Append>()?
        .combine::<WithSampleId>()?
        .map::<BySampleId>()?
        .map_values::<HostLocation>()?
        .combine::<IntersectRow>()?
        .map_partitions::<MatchIdOnce>()?
        .fold::<AddCount>()?
        .filter::<MoreThanOnce>()?
        .map_partitions::<GuestIdsByLocation>()?
        .fold::<ConcatIds>()?
        .combine::<BothIds>()?
        .map::<ByHostId>()?
        .combine::<RowForGuest>()?
        .flat_map::<ByGuestId>()?;
    Ok(())
}

/// A fresh secret: 32 random bytes, the scalar `EcdhSecret::from_bytes` makes of them (as
/// `EcdhSecret::random`).
fn fresh_secret() -> Secret<[u8; 32]> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret(bytes)
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
        let input_count = df.count()?;
        let out = match ctx.role() {
            Role::Guest => guest_run(ctx, &df)?,
            Role::Host => host_run(ctx, &df)?,
            other => {
                return Err(ComponentError::Failed(format!(
                    "psi does not run as {other}"
                )));
            }
        };
        let n = out.count()?;
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
    let secret = fresh_secret();
    let blocks = Blocks::new(&df.table)?;
    let first = df.table.map_partitions(&FirstSign {
        secret: secret.clone(),
        blocks: blocks.clone(),
    });
    remote_table(fed, GUEST_FIRST_SIGN, TAG, &hosts, &first)?;

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
        let host_second = host_first.map_reduce_partitions(
            &SignHostPoints {
                secret: secret.clone(),
            },
            &CountHostIds,
        );
        let dups = host_second.filter(&Repeated).count()?;
        if dups > 0 {
            return Err(ComponentError::Data(format!(
                "duplicate match_id detect: {dups} match ids occur more than once in the data of host {}",
                host.party_id
            )));
        }
        let guest_second: Table<Sign, Vec<u64>> =
            get_table(fed, &ctx.computing, GUEST_SECOND_SIGN, TAG, host)?;
        let bad = guest_second
            .filter(&OutsideBlocks {
                blocks: blocks.clone(),
            })
            .count()?;
        if bad > 0 {
            return Err(ComponentError::Data(format!(
                "`{GUEST_SECOND_SIGN}` from {host} has {bad} entries pointing outside the guest's data"
            )));
        }
        let pairs: Table<u64, Vec<u64>> = guest_second
            .join(&host_second, &PairUp)
            .flat_map(&ByGuestLocation);
        let n_pairs = pairs.count()?;
        ctx.info(format!(
            "psi: {n_pairs} guest rows intersect with host {}",
            host.party_id
        ));
        if n_pairs == 0 && empty_with.is_none() {
            empty_with = Some(host.clone());
        }
        joined = Some(match joined {
            None => pairs,
            Some(acc) => acc.join(&pairs, &Append),
        });
    }
    // Guest sample id -> host locations, one per host in `hosts` order (every entry went
    // through one join per host). Every guest location was checked to be inside the data.
    let by_sid: Table<String, Vec<u64>> = match joined {
        Some(t) => {
            let locations = df.table.map_partitions(&Locations { blocks });
            t.join(&locations, &WithSampleId).map(&BySampleId)
        }
        None => ctx.computing.parallelize(Vec::new(), 1),
    };
    for (j, host) in hosts.iter().enumerate() {
        let indexer: Table<String, u64> = by_sid.map_values(&HostLocation { j });
        remote_table(fed, HOST_INDEXER, TAG, std::slice::from_ref(host), &indexer)?;
    }
    if by_sid.count()? == 0 {
        // Every host has read its (empty) indexer once it acknowledges; the release lets the
        // hosts fail only after every one has, so no party is merely canceled. Errors of the
        // handshake do not matter: the task fails with the message below either way.
        let _ = fed.get::<()>(EMPTY_ACK, TAG, &hosts);
        let _ = fed.remote(EMPTY_RELEASE, TAG, &hosts, &());
        let blame = empty_with.map(|h| vec![h]).unwrap_or(hosts);
        return Err(empty_error(&me, &blame));
    }
    let table = df.table.join(&by_sid, &IntersectRow);
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
    let counts: Table<String, u32> = df.table.map_reduce_partitions(&MatchIdOnce, &AddCount);
    let dups = counts.filter(&MoreThanOnce);
    let n_dups = dups.count()?;
    if n_dups > 0 {
        let examples: Vec<String> = dups
            .take(3)?
            .into_iter()
            .map(|(id, n)| format!("`{id}` ({n} times)"))
            .collect();
        return Err(ComponentError::Data(format!(
            "duplicate match_id detect in the data of host {}: {n_dups} match ids occur more than once, e.g. {}",
            ctx.local.party_id,
            examples.join(", ")
        )));
    }
    let secret = fresh_secret();
    let blocks = Blocks::new(&df.table)?;
    let first = df.table.map_partitions(&FirstSign {
        secret: secret.clone(),
        blocks: blocks.clone(),
    });
    remote_table(fed, HOST_FIRST_SIGN, TAG, guest_only, &first)?;

    let guest_first: Table<u64, Vec<Point>> =
        get_table(fed, &ctx.computing, GUEST_FIRST_SIGN, TAG, &guest)?;
    check_blocks(&guest_first, GUEST_FIRST_SIGN, &guest)?;
    fate_runtime::fault::point("psi.exchanged");
    // E_h(E_g(id)) -> every guest location with that id (duplicate guest ids allowed).
    let guest_second =
        guest_first.map_reduce_partitions(&SignGuestPoints { secret }, &ConcatLocations);
    remote_table(fed, GUEST_SECOND_SIGN, TAG, guest_only, &guest_second)?;

    let indexer: Table<String, u64> = get_table(fed, &ctx.computing, HOST_INDEXER, TAG, &guest)?;
    let n_indexed = indexer.count()?;
    if n_indexed == 0 {
        // See guest_run: acknowledge, wait for the release, then fail.
        let _ = fed.remote(EMPTY_ACK, TAG, guest_only, &());
        let _ = fed.get_one::<()>(EMPTY_RELEASE, TAG, &guest);
        return Err(empty_error(&guest, &ctx.parties_of(Role::Host)));
    }
    // loc_with_sample_id_replacement: the row at each location, keyed by the guest's sample id.
    // A location outside the data finds no row, so the counts differ.
    let locations = df.table.map_partitions(&Locations { blocks });
    let guests_of_host = indexer
        .map_reduce_partitions(&GuestIdsByLocation, &ConcatIds)
        .join(&locations, &BothIds)
        .map(&ByHostId);
    let table = df
        .table
        .join(&guests_of_host, &RowForGuest)
        .flat_map(&ByGuestId);
    let n = table.count()?;
    if n != n_indexed {
        return Err(ComponentError::Data(format!(
            "`{HOST_INDEXER}` from {guest} has {} entries pointing outside the data of host {}",
            n_indexed - n.min(n_indexed),
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

    fn all<K: Key, V: fate_computing::Value>(t: &Table<K, V>) -> Vec<(K, V)> {
        t.collect(usize::MAX).unwrap()
    }

    #[test]
    fn locations_resolve_within_blocks_and_refuse_the_rest() {
        let c = computing();
        let table = c.parallelize(rows(BLOCK_ROWS + 10), 1);
        let blocks = Blocks::new(&table).unwrap();
        assert_eq!(blocks.lens, vec![BLOCK_ROWS as u32, 10]);
        let located: std::collections::BTreeMap<u64, String> =
            all(&table.map_partitions(&Locations {
                blocks: blocks.clone(),
            }))
            .into_iter()
            .collect();
        assert_eq!(located.get(&loc(0, 0)).map(String::as_str), Some("s00000"));
        assert_eq!(
            located.get(&loc(1, 9)).cloned(),
            Some(format!("s{:05}", BLOCK_ROWS + 9))
        );
        assert!(blocks.contains(loc(1, 9)));
        // Past the end of a block, an unknown block, and a block id with high bits set.
        for bad in [loc(0, BLOCK_ROWS), loc(1, 10), loc(2, 0), u64::MAX] {
            assert!(!blocks.contains(bad), "{bad:#x}");
            assert!(!located.contains_key(&bad), "{bad:#x}");
        }
        assert_eq!(located.len(), BLOCK_ROWS + 10);
    }

    /// Equal points fold: this is how the guest detects duplicate host ids it only sees as points.
    #[test]
    fn second_sign_counts_equal_points() {
        let c = computing();
        let secret = fresh_secret();
        let e = EcdhSecret::from_bytes(secret.0);
        let p = e.encrypt_id(b"a");
        let q = e.encrypt_id(b"b");
        let t = c.parallelize(vec![(0u64, vec![p, q]), (1, vec![p])], 2);
        let signed = t.map_reduce_partitions(&SignHostPoints { secret }, &CountHostIds);
        let mut counts: Vec<u32> = all(&signed).into_iter().map(|(_, (_, n))| n).collect();
        counts.sort();
        assert_eq!(counts, [1, 2]);
    }

    #[test]
    fn kernels_holding_the_secret_do_not_show_it() {
        let secret = fresh_secret();
        let shown = format!(
            "{:?}",
            SignHostPoints {
                secret: secret.clone()
            }
        );
        assert!(shown.contains("Secret(..)"), "{shown}");
        assert!(!shown.contains(&format!("{:?}", secret.0)), "{shown}");
    }
}
