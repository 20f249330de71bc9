//! FATE 2.x `data_split` (fate-spec §4.7; `components/components/data_split.py`,
//! `ml/model_selection/data_split.py`): splits `input_data` into train, validate and test sets.
//!
//! Sizes: `train_size`, `validate_size`, `test_size` are fractions (a float in [0, 1]) or row
//! counts (an integer); all three null means 0.8 / 0.2 / 0.0; missing ones are completed as
//! FATE's `get_split_data_size` does and the sizes must add up to 1.0 (or the row count).
//! Fractions become counts with Python's `round(size · rows)` (ties to even), the test set
//! takes the rest.
//!
//! With `hetero_sync` (the default) only the guest samples: it draws the train set from its
//! rows, then the validate set from the rest, the rest is the test set (per label with
//! `stratified`: `round(label_rows / rows · size)` per label, the last label the remainder, as
//! FATE's `sample_per_label`), and sends each host the three lists of sample ids
//! (`train_data_sid`, `validate_data_sid`, `test_data_sid`; null for an empty set). A host
//! keeps its rows of each list; it receives nothing else. Without `hetero_sync` each party
//! splits its own rows the same way.
//!
//! Outputs `train_output_data`, `validate_output_data`, `test_output_data` (an empty set is not
//! written, as FATE) and the metric `summary` `{original_count, train_count, validate_count,
//! test_count, stratified}` (null counts for empty sets).
//!
//! Differences from FATE: the sample is drawn with ChaCha8 seeded by `random_state` (FATE uses
//! its dataframe's sampler), so the same seed gives other rows than FATE but always the same
//! rows here; without `random_state` the seed is random.

use crate::colstats::{get, typed};
use crate::{artifact, param};
use fate_computing::{ComputingError, Filter, Kernel, KernelRegistry, MapValues};
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub struct DataSplit;

/// Message names (FATE's transfer keys).
pub mod names {
    pub const TRAIN_SID: &str = "train_data_sid";
    pub const VALIDATE_SID: &str = "validate_data_sid";
    pub const TEST_SID: &str = "test_data_sid";
}

/// A set size: a fraction of the rows or a row count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Fraction(f64),
    Count(u64),
}

fn size(p: &Map<String, Value>, name: &str) -> Result<Option<Size>, ComponentError> {
    match get(p, name) {
        None => Ok(None),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(Size::Count(n.as_u64().unwrap_or(0)))),
        Some(Value::Number(n)) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if (0.0..=1.0).contains(&f) {
                Ok(Some(Size::Fraction(f)))
            } else {
                Err(ComponentError::param(
                    name,
                    format!("a fraction must be in [0, 1], got {f}"),
                ))
            }
        }
        Some(v) => Err(ComponentError::param(
            name,
            format!("must be a fraction in [0, 1] or a row count >= 0, got {v}"),
        )),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub train_size: Option<Size>,
    pub validate_size: Option<Size>,
    pub test_size: Option<Size>,
    pub stratified: bool,
    pub random_state: Option<u64>,
    pub hetero_sync: bool,
}

impl Params {
    pub fn from_map(p: &Map<String, Value>) -> Result<Self, ComponentError> {
        let mut params = Params {
            train_size: size(p, "train_size")?,
            validate_size: size(p, "validate_size")?,
            test_size: size(p, "test_size")?,
            stratified: typed(p, "stratified", "true or false")?.unwrap_or(false),
            random_state: typed(p, "random_state", "an integer >= 0")?,
            hetero_sync: typed(p, "hetero_sync", "true or false")?.unwrap_or(true),
        };
        if params.train_size.is_none()
            && params.validate_size.is_none()
            && params.test_size.is_none()
        {
            params.train_size = Some(Size::Fraction(0.8));
            params.validate_size = Some(Size::Fraction(0.2));
            params.test_size = Some(Size::Fraction(0.0));
        }
        // With fractions the sum can be checked before any row is read.
        if params.any_fraction() {
            params.counts(1)?;
        }
        Ok(params)
    }

    fn any_fraction(&self) -> bool {
        [self.train_size, self.validate_size, self.test_size]
            .iter()
            .any(|s| matches!(s, Some(Size::Fraction(_))))
    }

    /// FATE's `get_split_data_size`: the (train, validate, test) row counts of `rows` rows.
    pub fn counts(&self, rows: u64) -> Result<(u64, u64, u64), ComponentError> {
        let fraction = self.any_fraction();
        let total = if fraction { 1.0 } else { rows as f64 };
        let v = |s: Option<Size>| {
            s.map(|s| match s {
                Size::Fraction(f) => f,
                Size::Count(c) => c as f64,
            })
        };
        let (mut train, mut validate, mut test) =
            (v(self.train_size), v(self.validate_size), v(self.test_size));
        match (train, validate, test) {
            (None, None, t) => {
                let t = t.unwrap_or(0.0);
                train = Some(total - t);
                validate = Some(0.0);
                test = Some(t);
            }
            (None, Some(va), t) => {
                let t = t.unwrap_or(0.0);
                train = Some(total - va - t);
                test = Some(t);
            }
            (Some(tr), None, None) => {
                test = Some(total - tr);
                validate = Some(0.0);
            }
            (Some(tr), Some(va), None) => test = Some(total - va - tr),
            (Some(tr), None, Some(t)) => validate = Some(total - t - tr),
            (Some(_), Some(_), Some(_)) => {}
        }
        let (tr, va, te) = (
            train.unwrap_or(0.0),
            validate.unwrap_or(0.0),
            test.unwrap_or(0.0),
        );
        if tr < 0.0 || va < 0.0 || te < 0.0 || ((tr + va + te) - total).abs() > 1e-6 {
            let unit = if fraction { "1.0" } else { "the data count" };
            return Err(ComponentError::param(
                "train_size",
                format!(
                    "train_size, validate_size and test_size ({tr}, {va}, {te}) must add up to {unit} ({total})"
                ),
            ));
        }
        if fraction {
            let train = (tr * rows as f64).round_ties_even() as u64;
            let validate =
                ((va * rows as f64).round_ties_even() as u64).min(rows - train.min(rows));
            Ok((train.min(rows), validate, rows - train.min(rows) - validate))
        } else {
            Ok((tr as u64, va as u64, te as u64))
        }
    }
}

/// A row's label only (what the guest samples on; the rows themselves stay in the table).
#[derive(Debug, Serialize, Deserialize)]
pub struct LabelOnly;
impl Kernel for LabelOnly {
    const NAME: &'static str = "fate_components.data_split.label_only";
}
impl MapValues for LabelOnly {
    type In = Row;
    type Out = Option<f64>;
    fn apply(&self, r: &Row) -> Option<f64> {
        r.label
    }
}

/// The rows whose sample id is in `ids` (sorted).
#[derive(Debug, Serialize, Deserialize)]
pub struct InIds {
    pub ids: Vec<String>,
}
impl Kernel for InIds {
    const NAME: &'static str = "fate_components.data_split.in_ids";
}
impl Filter for InIds {
    type K = String;
    type V = Row;
    fn keep(&self, k: &String, _: &Row) -> bool {
        self.ids.binary_search(k).is_ok()
    }
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_values::<LabelOnly>()?.filter::<InIds>()?;
    Ok(())
}

/// Draws `n` of `pool` (without replacement); the rest stays in `pool`.
fn draw(
    pool: &mut Vec<(String, Option<f64>)>,
    n: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<(String, Option<f64>)> {
    pool.shuffle(rng);
    let n = n.min(pool.len());
    let rest = pool.split_off(n);
    std::mem::replace(pool, rest)
}

/// FATE's `sample_per_label`: per label (sorted) `round(label_rows / rows · n)`, the last
/// label the remainder.
fn draw_stratified(
    pool: &mut Vec<(String, Option<f64>)>,
    n: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<Vec<(String, Option<f64>)>, ComponentError> {
    let mut labels: Vec<f64> = Vec::new();
    for (id, l) in pool.iter() {
        let l = l.ok_or_else(|| {
            ComponentError::Data(format!("stratified: sample `{id}` has no label"))
        })?;
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels.sort_by(f64::total_cmp);
    let total = pool.len();
    let mut out = Vec::new();
    let mut rest = Vec::new();
    let all = std::mem::take(pool);
    for (i, label) in labels.iter().enumerate() {
        let mut of_label: Vec<_> = all
            .iter()
            .filter(|(_, l)| *l == Some(*label))
            .cloned()
            .collect();
        let want = if i + 1 == labels.len() {
            n.saturating_sub(out.len())
        } else {
            ((of_label.len() as f64 / total as f64) * n as f64).round_ties_even() as usize
        };
        out.extend(draw(&mut of_label, want, rng));
        rest.extend(of_label);
    }
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    *pool = rest;
    Ok(out)
}

/// The guest's (or an unsynced party's) split of `df`: sorted sample ids per set.
fn split_ids(df: &DataFrame, params: &Params) -> Result<[Vec<String>; 3], ComponentError> {
    let mut pool = df
        .table
        .map_values(&LabelOnly)
        .collect(crate::limits::COLLECT_ROWS)?;
    let (train_n, validate_n, _) = params.counts(pool.len() as u64)?;
    let mut rng = match params.random_state {
        Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
        None => rand_chacha::ChaCha8Rng::from_entropy(),
    };
    let mut sets = [Vec::new(), Vec::new(), Vec::new()];
    for (i, n) in [train_n, validate_n].into_iter().enumerate() {
        let drawn = if params.stratified {
            draw_stratified(&mut pool, n as usize, &mut rng)?
        } else {
            draw(&mut pool, n as usize, &mut rng)
        };
        pool.sort_by(|a, b| a.0.cmp(&b.0));
        sets[i] = drawn.into_iter().map(|(id, _)| id).collect();
        sets[i].sort();
    }
    sets[2] = pool.into_iter().map(|(id, _)| id).collect();
    Ok(sets)
}

impl Component for DataSplit {
    fn spec(&self) -> ComponentSpec {
        let gh = [Role::Guest, Role::Host];
        ComponentSpec {
            name: "data_split".into(),
            legacy_modules: vec!["HeteroDataSplit".into(), "HomoDataSplit".into()],
            description: "splits input_data into train, validate and test sets (guest decides, hosts follow by sample id)".into(),
            roles: gh.to_vec(),
            params: vec![
                param("train_size", false, None, "train set: fraction in [0, 1] or row count"),
                param("validate_size", false, None, "validate set: fraction in [0, 1] or row count"),
                param("test_size", false, None, "test set: fraction in [0, 1] or row count"),
                param("stratified", false, Some(json!(false)), "sample per label"),
                param("random_state", false, None, "seed of the sample (integer >= 0)"),
                param("hetero_sync", false, Some(json!(true)), "guest decides the sample ids and sends them to the hosts"),
            ],
            inputs: vec![artifact("input_data", ArtifactKind::Data, false, &gh)],
            outputs: vec![
                artifact("train_output_data", ArtifactKind::Data, true, &gh),
                artifact("validate_output_data", ArtifactKind::Data, true, &gh),
                artifact("test_output_data", ArtifactKind::Data, true, &gh),
            ],
        }
    }

    /// Parsed at plan time by the function its run uses: a bad value is refused at submit,
    /// naming the field.
    fn check_params(
        &self,
        _stage: &str,
        _role: Role,
        params: &Map<String, Value>,
    ) -> Result<(), ComponentError> {
        Params::from_map(params).map(drop)
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let params = Params::from_map(&ctx.params)?;
        let hosts = ctx.parties_of(Role::Host);
        if params.hetero_sync && (hosts.is_empty() || ctx.parties_of(Role::Guest).is_empty()) {
            return Err(ComponentError::param(
                "hetero_sync",
                "a synced split needs a guest and a host; set hetero_sync false for a local split",
            ));
        }
        let df = ctx.input_data("input_data")?;
        let original = df.count()?;
        let keys = [names::TRAIN_SID, names::VALIDATE_SID, names::TEST_SID];
        let sets: [Vec<String>; 3] = if !params.hetero_sync || ctx.role() == Role::Guest {
            let sets = split_ids(&df, &params)?;
            if params.hetero_sync {
                for (key, ids) in keys.iter().zip(&sets) {
                    let msg: Option<&Vec<String>> = (!ids.is_empty()).then_some(ids);
                    ctx.federation.remote(key, "train", &hosts, &msg)?;
                }
            }
            sets
        } else {
            let guest = ctx.guest()?;
            let mut sets: [Vec<String>; 3] = Default::default();
            let mut total = 0usize;
            for (i, key) in keys.iter().enumerate() {
                let ids: Option<Vec<String>> = ctx.federation.get_one(key, "train", &guest)?;
                let mut ids = ids.unwrap_or_default();
                total += ids.len();
                if total > original {
                    return Err(ComponentError::Failed(format!(
                        "guest {guest} sent {total} sample ids, more than this party's {original} rows"
                    )));
                }
                ids.sort();
                ids.dedup();
                sets[i] = ids;
            }
            let mut all: Vec<&String> = sets.iter().flatten().collect();
            all.sort();
            if all.windows(2).any(|w| w[0] == w[1]) {
                return Err(ComponentError::Failed(format!(
                    "guest {guest} sent a sample id in more than one set"
                )));
            }
            sets
        };
        let mut counts = [Value::Null, Value::Null, Value::Null];
        let out_keys = [
            "train_output_data",
            "validate_output_data",
            "test_output_data",
        ];
        for (i, ids) in sets.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let part = DataFrame {
                schema: df.schema.clone(),
                table: df.table.filter(&InIds { ids }),
            };
            let n = part.count()?;
            if n == 0 {
                continue;
            }
            counts[i] = json!(n);
            ctx.output_data(out_keys[i], &part)?;
        }
        let [train, validate, test] = counts;
        ctx.metric(
            "summary",
            "data_split",
            json!({
                "original_count": original,
                "train_count": train,
                "validate_count": validate,
                "test_count": test,
                "stratified": params.stratified,
            }),
        );
        Ok(())
    }
}
