//! The architecture tidy test: the invariants ARCHITECTURE.md states, checked on every
//! `cargo test` against `cargo metadata --no-deps` and the crates' sources.
//!
//! Each check is a function over parsed metadata, lexed source lines or the document's text
//! that returns its violations, one message each. The first `#[test]`s run the checks on this
//! workspace; the ones in `mod broken` feed them doctored input (a dependency added to the
//! metadata, a line added to a source) to show that each check fails when its invariant breaks.
//!
//! What counts as release code: every file reachable through `mod` declarations from a crate's
//! lib and bin targets (bins that require a test feature excluded), minus comments and minus
//! items behind a test `#[cfg(..)]` (`test`, a test feature, or `all(..)`/`any(..)` of them).
//! `include!`d generated code is not read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The rules, as data. ARCHITECTURE.md's "Layers" table states the same table; the test checks
// that the two agree.

/// The layers, bottom to top. A normal (or build) dependency between workspace crates goes to a
/// strictly lower layer, so crates of one layer never depend on each other.
const LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["fate-types"]),
    (
        "core",
        &[
            "fate-crypto",
            "fate-computing",
            "fate-federation",
            "fate-store",
            "fate-dag",
            "fate-ml",
        ],
    ),
    (
        "backends",
        &[
            "fate-computing-spark",
            "fate-storage",
            "fate-federation-grpc",
            "fate-federation-rabbitmq",
            "fate-federation-pulsar",
        ],
    ),
    ("runtime", &["fate-runtime"]),
    ("components", &["fate-components"]),
    ("scheduler", &["fate-scheduler"]),
    ("api", &["fate-api"]),
    ("binary", &["fate"]),
];

/// Workspace tools outside the layers: they depend on no workspace crate, and none on them.
const TOOLS: &[&str] = &["tidy"];

/// Concrete backends: engines, stores and transports the binary chooses between.
const BACKENDS: &[&str] = &[
    "fate-computing-spark",
    "fate-storage",
    "fate-federation-grpc",
    "fate-federation-rabbitmq",
    "fate-federation-pulsar",
];

/// The one crate that wires concrete backends.
const WIRING: &str = "fate";

/// External libraries (a `*` suffix is a prefix) and the only crates with a normal dependency
/// on them: each backend, wire protocol or heavy library stays in the crate that owns it.
const OWNED_LIBS: &[(&str, &[&str])] = &[
    ("redb", &["fate-computing"]),
    ("sqlx", &["fate-store"]),
    ("opendal", &["fate-storage"]),
    ("opendal-*", &["fate-storage"]),
    ("parquet", &["fate-storage"]),
    ("tonic", &["fate-federation-grpc", "fate-computing-spark"]),
    ("tonic-*", &["fate-federation-grpc", "fate-computing-spark"]),
    ("prost", &["fate-federation-grpc", "fate-computing-spark"]),
    ("prost-*", &["fate-federation-grpc", "fate-computing-spark"]),
    ("arrow-*", &["fate-computing-spark"]),
    ("axum", &["fate-api", "fate"]),
    (
        "ureq",
        &["fate", "fate-federation-rabbitmq", "fate-federation-pulsar"],
    ),
    ("lapin", &["fate-federation-rabbitmq"]),
    ("amq-protocol*", &["fate-federation-rabbitmq"]),
    ("pulsar", &["fate-federation-pulsar"]),
    ("rug", &["fate-crypto"]),
    ("gmp-mpfr-sys", &["fate-crypto"]),
    ("anyhow", &["fate"]),
];

/// Crates that never touch the metadata store: the scheduler persists what they record.
const NO_METADATA_STORE: &[&str] = &["fate-runtime", "fate-components"];
const METADATA_STORE: &str = "fate-store";

/// Crates with no [`BACKEND_WORDS`] in their release code.
const BACKEND_FREE_SOURCES: &[&str] = &["fate-runtime", "fate-components"];

/// `std` modules components do not use: they open files only through `Ctx::files`.
const COMPONENTS: &str = "fate-components";
const COMPONENT_IO_PATHS: &[&str] = &["fs", "net", "process"];

/// Words that name an engine or a backend, matched case-insensitively in code (strings
/// included, comments not).
const BACKEND_WORDS: &[&str] = &["spark", "redb", "hdfs", "s3://", "encodedengine", "opendal"];

/// Crates with no IO and no async.
const PURE: &[&str] = &["fate-types", "fate-crypto", "fate-dag", "fate-ml"];

/// External crates a pure crate may not depend on (a `*` suffix is a prefix).
const IO_LIBS: &[&str] = &[
    "tokio",
    "tokio-*",
    "futures",
    "futures-*",
    "async-*",
    "mio",
    "libc",
    "rustix",
    "nix",
    "tempfile",
    "redb",
    "sqlx",
    "opendal",
    "reqwest",
    "ureq",
    "hyper",
    "tonic",
    "axum",
    "tower",
];

/// The only dependencies of `fate-types` (the vocabulary stays serde-level).
const TYPES_DEPS: &[&str] = &[
    "serde",
    "serde_json",
    "serde_yaml_ng",
    "thiserror",
    "chrono",
];

/// Paths and tokens that mean IO or async in a pure crate's release code.
const IO_PATHS: &[&str] = &["fs", "net", "io", "process", "env"];
const ASYNC_TOKENS: &[&str] = &["tokio", "async", "await"];

/// fate-crypto's secret key types: no serde impl or derive, so no wire encoding through serde.
const SECRET_TYPES: &[&str] = &["SecretKey", "EcdhSecret", "SecAggKeyPair"];
const CRYPTO: &str = "fate-crypto";

fn is_test_feature(name: &str) -> bool {
    name == "testing" || name.starts_with("test-") || name.starts_with("test_")
}

// ---------------------------------------------------------------------------------------------
// The workspace as the checks see it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

#[derive(Debug)]
struct Dep {
    name: String,
    kind: Kind,
    features: Vec<String>,
    /// A path dependency (workspace crates are).
    path: bool,
}

#[derive(Debug)]
struct Target {
    kind: Vec<String>,
    src_path: PathBuf,
    required_features: Vec<String>,
}

#[derive(Debug)]
struct Package {
    name: String,
    dir: PathBuf,
    deps: Vec<Dep>,
    features: BTreeMap<String, Vec<String>>,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Workspace {
    root: PathBuf,
    packages: Vec<Package>,
}

impl Workspace {
    fn names(&self) -> BTreeSet<&str> {
        self.packages.iter().map(|p| p.name.as_str()).collect()
    }

    /// Dependencies between workspace crates: (from, dep).
    fn internal_deps(&self) -> Vec<(&Package, &Dep)> {
        let names = self.names();
        let mut out = Vec::new();
        for p in &self.packages {
            for d in &p.deps {
                if d.path && names.contains(d.name.as_str()) {
                    out.push((p, d));
                }
            }
        }
        out
    }

    fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The workspace of `cargo metadata --format-version 1 --no-deps` output.
fn parse(meta: &Value) -> Workspace {
    let root = PathBuf::from(meta["workspace_root"].as_str().expect("workspace_root"));
    let packages = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| Dep {
                    name: d["name"].as_str().expect("dependency name").to_owned(),
                    kind: match d["kind"].as_str() {
                        None => Kind::Normal,
                        Some("dev") => Kind::Dev,
                        Some("build") => Kind::Build,
                        Some(other) => panic!("unknown dependency kind {other}"),
                    },
                    features: strings(&d["features"]),
                    path: d["path"].is_string(),
                })
                .collect();
            let features = p["features"]
                .as_object()
                .map(|f| f.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
                .unwrap_or_default();
            let targets = p["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| Target {
                    kind: strings(&t["kind"]),
                    src_path: PathBuf::from(t["src_path"].as_str().expect("src_path")),
                    required_features: strings(&t["required-features"]),
                })
                .collect();
            Package {
                name: p["name"].as_str().expect("package name").to_owned(),
                dir: manifest.parent().expect("manifest dir").to_owned(),
                deps,
                features,
                targets,
            }
        })
        .collect();
    Workspace { root, packages }
}

fn metadata() -> &'static Value {
    static META: OnceLock<Value> = OnceLock::new();
    META.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| panic!("running `{cargo} metadata`: {e}"));
        assert!(
            out.status.success(),
            "`{cargo} metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
    })
}

fn workspace() -> Workspace {
    parse(metadata())
}

fn matches(patterns: &[&str], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => *p == name,
    })
}

fn assert_none(violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{} architecture violation(s) (rules: crates/tidy/tests/tidy.rs, ARCHITECTURE.md):\n  {}",
        violations.len(),
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Layers.

fn layer_of(name: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, crates))| crates.contains(&name))
        .map(|(i, (layer, _))| (i, *layer))
}

fn check_layers(ws: &Workspace) -> Vec<String> {
    let mut v = Vec::new();
    let names = ws.names();
    for name in &names {
        if layer_of(name).is_none() && !TOOLS.contains(name) {
            v.push(format!(
                "crate `{name}` is in no layer: add it to LAYERS in crates/tidy/tests/tidy.rs \
                 and to ARCHITECTURE.md's layer table"
            ));
        }
    }
    for name in LAYERS.iter().flat_map(|(_, c)| c.iter()).chain(TOOLS) {
        if !names.contains(name) {
            v.push(format!(
                "the layer table names `{name}`, which is no workspace crate"
            ));
        }
    }
    for (p, d) in ws.internal_deps() {
        if p.name == d.name {
            continue; // A dev-dependency on itself, for its own test feature.
        }
        let kind = match d.kind {
            Kind::Normal => "dependency",
            Kind::Build => "build-dependency",
            Kind::Dev => "dev-dependency",
        };
        if TOOLS.contains(&p.name.as_str()) || TOOLS.contains(&d.name.as_str()) {
            v.push(format!(
                "`{}` has a {kind} on `{}`: tools ({}) and the layered crates do not depend on \
                 each other",
                p.name,
                d.name,
                TOOLS.join(", ")
            ));
            continue;
        }
        let (Some((pl, pn)), Some((dl, dn))) = (layer_of(&p.name), layer_of(&d.name)) else {
            continue; // Reported above.
        };
        match d.kind {
            Kind::Normal | Kind::Build if dl >= pl => v.push(format!(
                "`{}` (layer {pl}, {pn}) has a {kind} on `{}` (layer {dl}, {dn}): a crate depends \
                 only on crates of lower layers",
                p.name, d.name
            )),
            Kind::Dev if dl > pl => v.push(format!(
                "`{}` (layer {pl}, {pn}) has a dev-dependency on `{}` (layer {dl}, {dn}): \
                 dev-dependencies never point upwards (a loop through them builds two copies of \
                 a crate's types)",
                p.name, d.name
            )),
            _ => {}
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// 2. Concrete backends.

fn check_backend_deps(ws: &Workspace) -> Vec<String> {
    let mut v = Vec::new();
    for (p, d) in ws.internal_deps() {
        if d.kind != Kind::Dev && BACKENDS.contains(&d.name.as_str()) && p.name != WIRING {
            v.push(format!(
                "`{}` depends on the concrete backend `{}`: only `{WIRING}` (the binary) wires \
                 backends",
                p.name, d.name
            ));
        }
    }
    for p in &ws.packages {
        for d in p.deps.iter().filter(|d| d.kind != Kind::Dev) {
            for (lib, owners) in OWNED_LIBS {
                if matches(&[lib], &d.name) && !owners.contains(&p.name.as_str()) {
                    v.push(format!(
                        "`{}` depends on `{}`: only {} may (it is their backend or library)",
                        p.name,
                        d.name,
                        owners
                            .iter()
                            .map(|o| format!("`{o}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if d.name == METADATA_STORE && NO_METADATA_STORE.contains(&p.name.as_str()) {
                v.push(format!(
                    "`{}` depends on `{METADATA_STORE}`: {} never touch the metadata store (the \
                     scheduler persists what they record)",
                    p.name,
                    NO_METADATA_STORE.join(", ")
                ));
            }
        }
    }
    v
}

/// Components do no file, network or process IO of their own.
fn check_component_io(files: &[SourceFile]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        for l in &f.lines {
            if let Some(m) = std_modules(&l.skel)
                .into_iter()
                .find(|m| COMPONENT_IO_PATHS.contains(m))
            {
                v.push(format!(
                    "{}:{}: `std::{m}` in a component: components open files only through \
                     `Ctx::files`: {}",
                    f.path.display(),
                    l.no,
                    l.code.trim()
                ));
            }
        }
    }
    v
}

fn check_backend_words(files: &[SourceFile]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        for l in &f.lines {
            let code = l.code.to_lowercase();
            for w in BACKEND_WORDS {
                if code.contains(w) {
                    v.push(format!(
                        "{}:{}: `{w}` names an engine or backend (components and the runtime see \
                         only `Computing`, `Federation` and `TableStore`): {}",
                        f.path.display(),
                        l.no,
                        l.code.trim()
                    ));
                }
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// 3. Test helpers.

fn check_test_features(ws: &Workspace) -> Vec<String> {
    let mut v = Vec::new();
    for p in &ws.packages {
        for d in &p.deps {
            if d.kind == Kind::Dev {
                continue;
            }
            for f in d.features.iter().filter(|f| is_test_feature(f)) {
                v.push(format!(
                    "`{}` enables `{}/{f}` from a normal dependency: test features are enabled \
                     only from dev-dependencies (or other test features)",
                    p.name, d.name
                ));
            }
        }
        for (feature, enables) in &p.features {
            if is_test_feature(feature) {
                continue;
            }
            for e in enables {
                let enabled = match e.split_once('/') {
                    Some((_, f)) => f,
                    None if e.starts_with("dep:") => continue,
                    None => e.as_str(),
                };
                if is_test_feature(enabled) {
                    v.push(format!(
                        "feature `{feature}` of `{}` enables `{e}`: test features are enabled \
                         only from dev-dependencies (or other test features)",
                        p.name
                    ));
                }
            }
        }
    }
    v
}

fn check_testing_modules(files: &[SourceFile]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        for l in &f.lines {
            if tokens(&l.skel).windows(2).any(|w| w == ["mod", "testing"]) {
                v.push(format!(
                    "{}:{}: `mod testing` is compiled into release code: put it behind \
                     #[cfg(feature = \"testing\")] or #[cfg(test)]",
                    f.path.display(),
                    l.no
                ));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// 4. No IO, no async.

fn check_pure_deps(ws: &Workspace) -> Vec<String> {
    let mut v = Vec::new();
    for name in PURE {
        let Some(p) = ws.package(name) else { continue };
        for d in p.deps.iter().filter(|d| d.kind != Kind::Dev) {
            if matches(IO_LIBS, &d.name) {
                v.push(format!(
                    "`{name}` depends on `{}`: {} do no IO and no async",
                    d.name,
                    PURE.join(", ")
                ));
            }
            if *name == "fate-types" && !TYPES_DEPS.contains(&d.name.as_str()) {
                v.push(format!(
                    "`fate-types` depends on `{}`: the vocabulary depends only on {}",
                    d.name,
                    TYPES_DEPS.join(", ")
                ));
            }
        }
    }
    v
}

/// The modules of `std` a line names: `std::fs::File` gives `fs`, `std::{fs, io::Read}` gives
/// `fs` and `io`.
fn std_modules(skel: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, _) in skel.match_indices("std") {
        let before = skel[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(rest) = skel[i + 3..].trim_start().strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                out.extend(tokens(part).into_iter().next());
            }
        } else {
            out.extend(tokens(rest).into_iter().next());
        }
    }
    out
}

fn check_pure_sources(files: &[SourceFile]) -> Vec<String> {
    let mut v = Vec::new();
    for f in files {
        for l in &f.lines {
            let io = std_modules(&l.skel).iter().any(|m| IO_PATHS.contains(m));
            let asy = tokens(&l.skel).iter().any(|w| ASYNC_TOKENS.contains(w));
            if io || asy {
                v.push(format!(
                    "{}:{}: {} in a crate with no IO and no async: {}",
                    f.path.display(),
                    l.no,
                    if io { "IO" } else { "async" },
                    l.code.trim()
                ));
            }
        }
    }
    v
}

fn check_secret_serde(files: &[SourceFile]) -> Vec<String> {
    let serde = |skel: &str| {
        tokens(skel)
            .iter()
            .any(|w| *w == "Serialize" || *w == "Deserialize")
    };
    let mut v = Vec::new();
    for f in files {
        for (i, l) in f.lines.iter().enumerate() {
            let t = tokens(&l.skel);
            let mut bad = serde(&l.skel)
                && t.windows(2)
                    .any(|w| w[0] == "for" && SECRET_TYPES.contains(&w[1]));
            if let Some(p) = t.iter().position(|w| *w == "struct" || *w == "enum")
                && t.get(p + 1).is_some_and(|n| SECRET_TYPES.contains(n))
            {
                // The attributes above the definition (comment lines are empty here).
                for a in f.lines[..i].iter().rev() {
                    let a = a.skel.trim();
                    if !(a.is_empty() || a.starts_with("#[")) {
                        break;
                    }
                    bad |= serde(a);
                }
            }
            if bad {
                v.push(format!(
                    "{}:{}: a secret key type with serde: secret keys have no wire encoding: {}",
                    f.path.display(),
                    l.no,
                    l.code.trim()
                ));
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// 5. ARCHITECTURE.md.

/// Every workspace crate has a `### \`name\`` heading in the code map, and every such heading
/// names a workspace crate.
fn check_code_map(names: &BTreeSet<&str>, doc: &str) -> Vec<String> {
    let mut v = Vec::new();
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    for n in names.difference(&headings) {
        v.push(format!(
            "ARCHITECTURE.md's code map has no \"### `{n}`\" section"
        ));
    }
    for h in headings.difference(names) {
        v.push(format!(
            "ARCHITECTURE.md has a section \"### `{h}`\" but no such crate exists"
        ));
    }
    v
}

/// The rows of the table under `## Layers`: (layer name, crates named in backticks).
fn doc_layers(doc: &str) -> Vec<(String, BTreeSet<String>)> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .unwrap_or("");
    section
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .skip(1) // The header.
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() >= 3)
        .filter(|cells| {
            !cells
                .iter()
                .all(|c| c.len() >= 3 && c.chars().all(|ch| "-:".contains(ch)))
        })
        .map(|cells| {
            let crates = cells[2]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (cells[1].to_owned(), crates)
        })
        .collect()
}

fn check_layer_table(doc: &str) -> Vec<String> {
    let want: Vec<(String, BTreeSet<String>)> = LAYERS
        .iter()
        .map(|(n, c)| (n.to_string(), c.iter().map(|s| s.to_string()).collect()))
        .chain([(
            "tools".to_owned(),
            TOOLS.iter().map(|s| s.to_string()).collect(),
        )])
        .collect();
    let have = doc_layers(doc);
    if have == want {
        return Vec::new();
    }
    let rows: Vec<String> = want
        .iter()
        .enumerate()
        .map(|(i, (n, c))| {
            let rank = if i < LAYERS.len() {
                i.to_string()
            } else {
                "-".to_owned()
            };
            let c: Vec<String> = c.iter().map(|c| format!("`{c}`")).collect();
            format!("| {rank} | {n} | {} |", c.join(", "))
        })
        .collect();
    vec![format!(
        "ARCHITECTURE.md's \"## Layers\" table differs from LAYERS in crates/tidy/tests/tidy.rs; \
         its rows, bottom to top, should be:\n    {}\n  found: {have:?}",
        rows.join("\n    ")
    )]
}

// ---------------------------------------------------------------------------------------------
// Sources: a small lexer (comments removed; literal contents blanked in `skel`), test-gated items
// removed, and the module tree walked from each crate's lib and bin targets.

#[derive(Debug)]
struct Line {
    no: usize,
    /// The line without comments.
    code: String,
    /// `code` with the contents of string and char literals blanked: for structure and tokens.
    skel: String,
}

#[derive(Debug)]
struct SourceFile {
    path: PathBuf,
    /// Release code only.
    lines: Vec<Line>,
}

/// Pushes `ch` to `code` and, blanked if `blank`, to `skel`: the two stay the same length in chars.
fn lit(code: &mut String, skel: &mut String, ch: char, blank: bool) {
    code.push(ch);
    skel.push(if blank { ' ' } else { ch });
}

fn lex(text: &str) -> Vec<Line> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Code,
        LineComment,
        Block(u32),
        Str,
        Raw(usize),
        Char,
    }
    let c: Vec<char> = text.chars().collect();
    let mut lines = Vec::new();
    let (mut code, mut skel) = (String::new(), String::new());
    let mut s = S::Code;
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '\n' {
            lines.push(Line {
                no: lines.len() + 1,
                code,
                skel,
            });
            (code, skel) = (String::new(), String::new());
            if s == S::LineComment {
                s = S::Code;
            }
            i += 1;
            continue;
        }
        match s {
            S::Code => {
                if ch == '/' && next == Some('/') {
                    s = S::LineComment;
                } else if ch == '/' && next == Some('*') {
                    s = S::Block(1);
                    i += 1;
                } else if ch == '"' {
                    lit(&mut code, &mut skel, ch, false);
                    s = S::Str;
                } else if ch == 'r'
                    && (i == 0
                        || !ident(c[i - 1])
                        || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
                    && matches!(next, Some('"') | Some('#'))
                {
                    let mut j = i + 1;
                    while c.get(j) == Some(&'#') {
                        j += 1;
                    }
                    if c.get(j) == Some(&'"') {
                        for &k in &c[i..=j] {
                            lit(&mut code, &mut skel, k, false);
                        }
                        s = S::Raw(j - i - 1);
                        i = j;
                    } else {
                        lit(&mut code, &mut skel, ch, false);
                    }
                } else if ch == '\'' {
                    if next == Some('\\') {
                        lit(&mut code, &mut skel, ch, false);
                        s = S::Char;
                    } else if c.get(i + 2) == Some(&'\'') && next != Some('\n') {
                        lit(&mut code, &mut skel, '\'', false);
                        lit(&mut code, &mut skel, c[i + 1], true);
                        lit(&mut code, &mut skel, '\'', false);
                        i += 2;
                    } else {
                        lit(&mut code, &mut skel, ch, false); // A lifetime or a label.
                    }
                } else {
                    lit(&mut code, &mut skel, ch, false);
                }
            }
            S::LineComment => {}
            S::Block(d) => {
                if ch == '/' && next == Some('*') {
                    s = S::Block(d + 1);
                    i += 1;
                } else if ch == '*' && next == Some('/') {
                    s = if d == 1 { S::Code } else { S::Block(d - 1) };
                    i += 1;
                }
            }
            S::Str | S::Char => {
                let close = if s == S::Str { '"' } else { '\'' };
                if ch == '\\' && next.is_some_and(|n| n != '\n') {
                    lit(&mut code, &mut skel, ch, true);
                    lit(&mut code, &mut skel, next.unwrap_or(' '), true);
                    i += 1;
                } else if ch == close {
                    lit(&mut code, &mut skel, ch, false);
                    s = S::Code;
                } else {
                    lit(&mut code, &mut skel, ch, true);
                }
            }
            S::Raw(n) => {
                if ch == '"' && (1..=n).all(|k| c.get(i + k) == Some(&'#')) {
                    for &k in &c[i..=i + n] {
                        lit(&mut code, &mut skel, k, false);
                    }
                    s = S::Code;
                    i += n;
                } else {
                    lit(&mut code, &mut skel, ch, true);
                }
            }
        }
        i += 1;
    }
    if !code.is_empty() || !skel.is_empty() {
        lines.push(Line {
            no: lines.len() + 1,
            code,
            skel,
        });
    }
    lines
}

fn tokens(s: &str) -> Vec<&str> {
    s.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
        .filter(|t| !t.is_empty())
        .collect()
}

/// Splits `a, b(c, d), e` at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

/// Whether code under `#[cfg(pred)]` is compiled only for tests.
fn test_only(pred: &str) -> bool {
    let pred = pred.trim();
    if pred == "test" {
        return true;
    }
    if let Some(f) = pred.strip_prefix("feature") {
        let f = f
            .trim_start()
            .trim_start_matches('=')
            .trim()
            .trim_matches('"');
        return is_test_feature(f);
    }
    let inner = |p: &str, name: &str| {
        p.strip_prefix(name)
            .map(str::trim_start)
            .and_then(|p| p.strip_prefix('('))
            .and_then(|p| p.strip_suffix(')'))
            .map(str::to_owned)
    };
    if let Some(args) = inner(pred, "all") {
        return split_top(&args).iter().any(|a| test_only(a));
    }
    if let Some(args) = inner(pred, "any") {
        let args = split_top(&args);
        return !args.is_empty() && args.iter().all(|a| test_only(a));
    }
    false
}

/// The predicate of a `#[cfg(..)]` (or `#![cfg(..)]`) at the start of `code`, and the char
/// offset just past the attribute.
fn cfg_attr(code: &str) -> Option<(String, usize)> {
    let t = code.trim_start();
    let rest = t
        .strip_prefix("#!")
        .or_else(|| t.strip_prefix('#'))?
        .trim_start();
    let rest = rest
        .strip_prefix('[')?
        .trim_start()
        .strip_prefix("cfg")?
        .trim_start();
    let body = rest.strip_prefix('(')?;
    let mut depth = 1;
    for (i, ch) in body.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let after = body[i + 1..].trim_start().strip_prefix(']')?;
                    let end = code.chars().count() - after.chars().count();
                    return Some((body[..i].to_owned(), end));
                }
            }
            _ => {}
        }
    }
    None
}

/// The release lines of one file (test-gated items removed) and the modules it declares
/// (`mod name;`) in them. `None` when the whole file is test-gated (`#![cfg(test)]`).
fn release_lines(text: &str) -> Option<(Vec<Line>, Vec<String>)> {
    let lines = lex(text);
    let mut keep = vec![true; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        let Some((pred, end)) = cfg_attr(&lines[i].code) else {
            i += 1;
            continue;
        };
        if !test_only(&pred) {
            i += 1;
            continue;
        }
        if lines[i].code.trim_start().starts_with("#!") {
            return None;
        }
        // The gated item runs from after the attribute to its closing brace, or its `;` or `,`.
        let (mut depth, mut j, mut col, mut done) = (0i32, i, end, false);
        while j < lines.len() && !done {
            for ch in lines[j].skel.chars().skip(col) {
                match ch {
                    '{' | '(' | '[' => depth += 1,
                    '}' | ')' | ']' => {
                        depth -= 1;
                        // A block closes the item; a close below zero is the enclosing one's.
                        done = (ch == '}' && depth == 0) || depth < 0;
                    }
                    // An item, statement, field or match arm ends here.
                    ';' | ',' if depth == 0 => done = true,
                    _ => {}
                }
                if done {
                    break;
                }
            }
            keep[j] = false;
            j += 1;
            col = 0;
        }
        i = j;
    }
    let mut mods = Vec::new();
    let kept: Vec<Line> = lines
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(l, _)| l)
        .collect();
    for l in &kept {
        let t = tokens(&l.skel);
        if let Some(p) = t.iter().position(|w| *w == "mod")
            && let Some(name) = t.get(p + 1)
            && l.skel.trim_end().ends_with(';')
            && !l.skel.contains('{')
        {
            mods.push((*name).to_owned());
        }
    }
    Some((kept, mods))
}

/// The release code of a package: every file reachable from its lib and bin targets.
fn release_code(p: &Package) -> (Vec<SourceFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<(PathBuf, bool)> = p
        .targets
        .iter()
        .filter(|t| {
            t.kind
                .iter()
                .any(|k| k == "lib" || k == "bin" || k == "proc-macro")
        })
        .filter(|t| !t.required_features.iter().any(|f| is_test_feature(f)))
        .map(|t| (t.src_path.clone(), true))
        .collect();
    while let Some((path, root)) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let Some((lines, mods)) = release_lines(&text) else {
            continue;
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new("")).to_owned();
        let dir = if root || stem == "mod" {
            dir
        } else {
            dir.join(stem)
        };
        for m in mods {
            let candidates = [dir.join(format!("{m}.rs")), dir.join(&m).join("mod.rs")];
            match candidates.iter().find(|c| c.is_file()) {
                Some(c) => todo.push((c.clone(), false)),
                None => errors.push(format!(
                    "{}: no file for `mod {m};` (looked for {})",
                    path.display(),
                    candidates[0].display()
                )),
            }
        }
        let rel = path.strip_prefix(p.dir.parent().and_then(Path::parent).unwrap_or(&p.dir));
        files.push(SourceFile {
            path: rel.unwrap_or(&path).to_owned(),
            lines,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, errors)
}

fn sources(ws: &Workspace, names: &[&str]) -> Vec<SourceFile> {
    let mut out = Vec::new();
    for name in names {
        let p = ws
            .package(name)
            .unwrap_or_else(|| panic!("no crate `{name}`"));
        let (files, errors) = release_code(p);
        assert_none(errors);
        out.extend(files);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The checks on this workspace.

#[test]
fn crate_dependencies_follow_the_layers() {
    assert_none(check_layers(&workspace()));
}

#[test]
fn only_the_binary_wires_concrete_backends() {
    let ws = workspace();
    let mut v = check_backend_deps(&ws);
    v.extend(check_backend_words(&sources(&ws, BACKEND_FREE_SOURCES)));
    v.extend(check_component_io(&sources(&ws, &[COMPONENTS])));
    assert_none(v);
}

#[test]
fn test_helpers_stay_out_of_release_code() {
    let ws = workspace();
    let mut v = check_test_features(&ws);
    let all: Vec<&str> = ws.names().into_iter().collect();
    v.extend(check_testing_modules(&sources(&ws, &all)));
    assert_none(v);
}

#[test]
fn pure_crates_do_no_io_and_no_async() {
    let ws = workspace();
    let mut v = check_pure_deps(&ws);
    v.extend(check_pure_sources(&sources(&ws, PURE)));
    assert_none(v);
}

#[test]
fn secret_keys_have_no_serde() {
    assert_none(check_secret_serde(&sources(&workspace(), &[CRYPTO])));
}

#[test]
fn architecture_md_maps_every_crate_and_states_the_layers() {
    let ws = workspace();
    let path = ws.root.join("ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = check_code_map(&ws.names(), &doc);
    v.extend(check_layer_table(&doc));
    assert_none(v);
}

// ---------------------------------------------------------------------------------------------
// Each check fails when its invariant breaks: the same functions on doctored input.

mod broken {
    use super::*;

    /// This workspace's metadata with `edit` applied to package `name`.
    fn doctored(name: &str, edit: impl FnOnce(&mut Value)) -> Workspace {
        let mut meta = metadata().clone();
        let p = meta["packages"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no crate `{name}`"));
        edit(p);
        parse(&meta)
    }

    fn dep(name: &str, kind: Option<&str>, features: &[&str]) -> Value {
        let workspace = metadata()["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name);
        serde_json::json!({
            "name": name, "source": null, "req": "*", "kind": kind, "rename": null,
            "optional": false, "uses_default_features": true, "features": features,
            "target": null, "registry": null,
            "path": if workspace { Value::from(format!("/crates/{name}")) } else { Value::Null },
        })
    }

    fn add_dep(name: &str, d: Value) -> Workspace {
        doctored(name, |p| p["dependencies"].as_array_mut().unwrap().push(d))
    }

    fn file(text: &str) -> Vec<SourceFile> {
        let (lines, _) = release_lines(text).expect("not test-gated");
        vec![SourceFile {
            path: "x.rs".into(),
            lines,
        }]
    }

    /// The violations `check` finds in `ws` and not in this workspace: so these tests still show
    /// what a doctoring adds while the real tree has a violation of its own.
    fn added(check: fn(&Workspace) -> Vec<String>, ws: &Workspace) -> Vec<String> {
        let base = check(&workspace());
        check(ws)
            .into_iter()
            .filter(|v| !base.contains(v))
            .collect()
    }

    fn one(v: Vec<String>, needles: &[&str]) {
        assert_eq!(v.len(), 1, "expected one violation, got {v:#?}");
        for n in needles {
            assert!(v[0].contains(n), "`{n}` not in {:?}", v[0]);
        }
    }

    #[test]
    fn a_dependency_upwards() {
        let ws = add_dep("fate-types", dep("fate-api", None, &[]));
        one(
            added(check_layers, &ws),
            &[
                "`fate-types` (layer 0",
                "`fate-api` (layer 6",
                "lower layers",
            ],
        );
        let ws = add_dep("fate-computing", dep("fate-federation", None, &[]));
        one(
            added(check_layers, &ws),
            &["`fate-computing`", "`fate-federation`", "lower layers"],
        );
    }

    #[test]
    fn a_dev_dependency_upwards() {
        let ws = add_dep("fate-runtime", dep("fate-scheduler", Some("dev"), &[]));
        one(
            added(check_layers, &ws),
            &["`fate-runtime`", "`fate-scheduler`", "never point upwards"],
        );
        // Downwards and on itself are fine.
        let ws = add_dep("fate-scheduler", dep("fate-runtime", Some("dev"), &[]));
        assert_eq!(added(check_layers, &ws), Vec::<String>::new());
    }

    #[test]
    fn a_crate_outside_the_table() {
        let ws = doctored("fate-dag", |p| p["name"] = "fate-extra".into());
        let v = added(check_layers, &ws);
        assert!(
            v.iter().any(|m| m.contains("`fate-extra` is in no layer")),
            "{v:#?}"
        );
        assert!(
            v.iter()
                .any(|m| m.contains("names `fate-dag`, which is no workspace")),
            "{v:#?}"
        );
    }

    #[test]
    fn a_tool_in_the_graph() {
        let ws = add_dep("fate", dep("tidy", None, &[]));
        one(added(check_layers, &ws), &["`fate`", "`tidy`", "tools"]);
    }

    #[test]
    fn a_library_wiring_a_backend() {
        let ws = add_dep("fate-scheduler", dep("fate-storage", None, &[]));
        one(
            added(check_backend_deps, &ws),
            &["`fate-scheduler`", "`fate-storage`", "only `fate`"],
        );
        let ws = add_dep("fate-components", dep("redb", None, &[]));
        one(
            added(check_backend_deps, &ws),
            &["`fate-components` depends on `redb`", "`fate-computing`"],
        );
        let ws = add_dep("fate-scheduler", dep("arrow-array", None, &[]));
        one(
            added(check_backend_deps, &ws),
            &["`fate-scheduler`", "`arrow-array`"],
        );
        let ws = add_dep("fate-store", dep("anyhow", None, &[]));
        one(
            added(check_backend_deps, &ws),
            &["`fate-store` depends on `anyhow`", "only `fate`"],
        );
        let ws = add_dep("fate-components", dep("fate-store", None, &[]));
        one(
            added(check_backend_deps, &ws),
            &["`fate-components`", "metadata store"],
        );
        // Dev-dependencies are free.
        let ws = add_dep("fate-components", dep("redb", Some("dev"), &[]));
        assert_eq!(added(check_backend_deps, &ws), Vec::<String>::new());
    }

    #[test]
    fn a_component_doing_its_own_io() {
        let src = "use std::fs;
fn f() { let _ = std::process::id(); }
use std::sync::Arc;
";
        let v = check_component_io(&file(src));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].starts_with("x.rs:1: `std::fs`"), "{}", v[0]);
        assert!(v[1].starts_with("x.rs:2: `std::process`"), "{}", v[1]);
    }

    #[test]
    fn a_component_naming_a_backend() {
        let src = "use fate_computing::EncodedEngine;\n\
                   // Spark may be named in a comment.\n\
                   /* and redb in a block comment */\n\
                   fn f() -> &'static str { \"s3://bucket\" }\n\
                   #[cfg(test)]\n\
                   mod tests {\n    fn g() { let _ = \"hdfs://nn\"; }\n}\n\
                   fn h() {}\n";
        let v = check_backend_words(&file(src));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].starts_with("x.rs:1: `encodedengine`"), "{}", v[0]);
        assert!(v[1].starts_with("x.rs:4: `s3://`"), "{}", v[1]);
    }

    #[test]
    fn a_testing_feature_from_a_normal_dependency() {
        let ws = doctored("fate-api", |p| {
            for d in p["dependencies"].as_array_mut().unwrap() {
                if d["name"] == "fate-computing" && d["kind"].is_null() {
                    d["features"] = serde_json::json!(["testing"]);
                }
            }
        });
        one(
            added(check_test_features, &ws),
            &["`fate-api`", "`fate-computing/testing`"],
        );
        let ws = doctored("fate-storage", |p| {
            p["features"]["default"] = serde_json::json!(["fate-computing/testing"]);
        });
        one(
            added(check_test_features, &ws),
            &["feature `default` of `fate-storage`"],
        );
        let ws = doctored("fate-computing", |p| {
            p["features"]["default"] = serde_json::json!(["testing"])
        });
        one(
            added(check_test_features, &ws),
            &["`default` of `fate-computing` enables `testing`"],
        );
        // From a dev-dependency and from another test feature it is fine.
        let ws = add_dep("fate-api", dep("fate-computing", Some("dev"), &["testing"]));
        let ws2 = doctored("fate-storage", |p| {
            p["features"]["testing"] = serde_json::json!(["fate-computing/testing"]);
        });
        assert_eq!(added(check_test_features, &ws), Vec::<String>::new());
        assert_eq!(added(check_test_features, &ws2), Vec::<String>::new());
    }

    #[test]
    fn an_ungated_testing_module() {
        let v = check_testing_modules(&file("pub mod engine;\npub mod testing;\n"));
        one(v, &["x.rs:2", "mod testing"]);
        let v = check_testing_modules(&file("pub(crate) mod testing {\n    pub fn f() {}\n}\n"));
        one(v, &["x.rs:1"]);
        for gate in [
            "#[cfg(feature = \"testing\")]",
            "#[cfg(test)]",
            "#[cfg(any(test, feature = \"testing\"))]",
            "#[cfg(all(unix, feature = \"test-executor\"))]",
        ] {
            let src = format!(
                "{gate}\n#[doc(hidden)]\npub mod testing {{\n    fn f() {{}}\n}}\nfn g() {{}}\n"
            );
            assert_eq!(
                check_testing_modules(&file(&src)),
                Vec::<String>::new(),
                "{gate}"
            );
            assert_eq!(
                file(&src)[0].lines.len(),
                1,
                "only `fn g` is release code: {gate}"
            );
        }
        for gate in [
            "#[cfg(not(test))]",
            "#[cfg(any(test, unix))]",
            "#[cfg(feature = \"spark\")]",
        ] {
            let src = format!("{gate}\npub mod testing;\n");
            one(check_testing_modules(&file(&src)), &["x.rs:2"]);
        }
    }

    #[test]
    fn io_in_a_pure_crate() {
        let ws = add_dep("fate-dag", dep("tokio", None, &[]));
        one(
            added(check_pure_deps, &ws),
            &["`fate-dag` depends on `tokio`"],
        );
        let ws = add_dep("fate-types", dep("rand", None, &[]));
        one(
            added(check_pure_deps, &ws),
            &["`fate-types` depends on `rand`", "depends only on serde"],
        );
        let src = "use std::fs::File;\nuse std::{collections::BTreeMap, net};\n\
                   async fn f() { g().await }\n\
                   // std::fs in a comment\nconst S: &str = \"std::io and tokio\";\n\
                   use std::collections::BTreeMap;\n";
        let v = check_pure_sources(&file(src));
        assert_eq!(v.len(), 3, "{v:#?}");
        assert!(v[0].starts_with("x.rs:1: IO"));
        assert!(v[1].starts_with("x.rs:2: IO"));
        assert!(v[2].starts_with("x.rs:3: async"));
    }

    #[test]
    fn a_secret_key_with_serde() {
        let src = "#[derive(Clone, serde::Serialize)]\n/// The key.\npub struct SecretKey {}\n\
                   impl<'de> Deserialize<'de> for EcdhSecret {}\n\
                   #[derive(Serialize)]\npub struct PublicKey {}\nimpl Serialize for PublicKey {}\n";
        let v = check_secret_serde(&file(src));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].starts_with("x.rs:3:"), "{}", v[0]);
        assert!(v[1].starts_with("x.rs:4:"), "{}", v[1]);
    }

    #[test]
    fn a_crate_missing_from_the_code_map() {
        let names: BTreeSet<&str> = ["fate-types", "fate-dag"].into();
        let doc = "## Code map\n\n### `fate-types`\ntext\n### `fate-gone`\n";
        let v = check_code_map(&names, doc);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("no \"### `fate-dag`\""));
        assert!(v[1].contains("`fate-gone`\" but no such crate"));
    }

    #[test]
    fn a_layer_table_that_differs() {
        let path = workspace().root.join("ARCHITECTURE.md");
        let doc = std::fs::read_to_string(path).unwrap();
        assert_eq!(check_layer_table(&doc), Vec::<String>::new());
        // fate-dag moved from the core layer to the runtime's.
        let moved: String = doc
            .lines()
            .map(|l| match l {
                l if l.starts_with("| 1 |") => l.replace(", `fate-dag`", ""),
                l if l.starts_with("| 3 |") => {
                    l.replace("`fate-runtime`", "`fate-runtime`, `fate-dag`")
                }
                l => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            doc_layers(&moved).len(),
            LAYERS.len() + 1,
            "the table parses"
        );
        one(
            check_layer_table(&moved),
            &["differs from LAYERS", "| 1 | core |"],
        );
    }

    #[test]
    fn the_lexer_keeps_strings_and_drops_comments() {
        let src = "let a = \"// not a comment\"; // a comment\n\
                   let b = r#\"raw \"quoted\" /* x */\"#; /* c1 /* nested */ c2 */ let c = 'x';\n\
                   fn f<'a>(s: &'a str) -> char { '\\'' }\n";
        let l = lex(src);
        assert_eq!(l[0].code.trim_end(), "let a = \"// not a comment\";");
        assert_eq!(
            l[0].skel.trim_end(),
            format!("let a = \"{}\";", " ".repeat(16))
        );
        assert_eq!(
            l[1].code,
            "let b = r#\"raw \"quoted\" /* x */\"#;  let c = 'x';"
        );
        assert!(!l[1].skel.contains("quoted"));
        assert_eq!(
            tokens(&l[2].skel),
            ["fn", "f", "a", "s", "a", "str", "char"]
        );
    }
}
