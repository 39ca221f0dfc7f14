//! Fuzzing of every parser of untrusted input: one target per parser, fed arbitrary bytes
//! and mutated copies (byte flips, truncation, splicing, inserted syntax tokens) of the seed
//! corpus in `host/fuzz/corpus/<target>/`. The property: no panic, no hang (each case runs
//! on a thread of its own and must end within [`HANG_LIMIT`]), errors are values; where
//! cheap, what parses prints back to the same value. `FAULTLINE_FUZZ_CASES` sets the cases
//! per target (default 256); see `docs/fuzzing.md`.

use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::ingest::Limits;
use crate::model::Labels;

/// How long one case may take before it counts as a hang (debug build, slow machine).
const HANG_LIMIT: Duration = Duration::from_secs(20);

/// Syntax that the parsers give meaning to, inserted by the mutator.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "`",
    "\\",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ":",
    "=",
    "!=",
    "=~",
    "!~",
    "|=",
    "|~",
    "{{",
    "}}",
    "$",
    ".",
    "-",
    "+",
    "0",
    "-1",
    "1e999",
    "NaN",
    "+Inf",
    "18446744073709551616",
    "9223372036854775807",
    "null",
    "true",
    "\u{ff}",
    "\u{10ffff}",
    "\u{0}",
    "\\u0000",
    "\\ud800",
    "#",
    "*",
    "{}",
    "[]",
    "\"\":",
    "end",
    "range",
    "if",
    "|",
];

/// Cases per target: `FAULTLINE_FUZZ_CASES`, default 256.
fn cases() -> u32 {
    std::env::var("FAULTLINE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The seed corpus of a target.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One edit of a seed.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Delete(Index, Index),
    Duplicate(Index, Index),
    Token(Index, Index),
    /// The start of this input up to one point, then another seed from another point.
    Splice(Index, Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Delete(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Token(a, b)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, s, b)| Mutation::Splice(a, s, b)),
    ]
}

impl Mutation {
    fn apply(&self, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        let len = input.len();
        match self {
            Mutation::Flip(i, b) if len > 0 => input[i.index(len)] ^= b,
            Mutation::Flip(..) => {}
            Mutation::Truncate(i) => input.truncate(at(i, len)),
            Mutation::Delete(a, b) | Mutation::Duplicate(a, b) => {
                let (x, y) = (at(a, len), at(b, len));
                let (x, y) = (x.min(y), x.max(y));
                if matches!(self, Mutation::Delete(..)) {
                    input.drain(x..y);
                } else {
                    let copy = input[x..y].to_vec();
                    input.splice(y..y, copy);
                }
            }
            Mutation::Token(i, t) => {
                let token = t.get(TOKENS).as_bytes();
                let p = at(i, len);
                input.splice(p..p, token.iter().copied());
            }
            Mutation::Splice(a, s, b) => {
                let other = s.get(seeds);
                input.truncate(at(a, len));
                input.extend_from_slice(&other[at(b, other.len())..]);
            }
        }
    }
}

/// Arbitrary bytes, or a seed of `target` with a few mutations.
fn input(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds = Arc::new(corpus(target));
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        4 => (any::<Index>(), vec(mutation(), 0..8)).prop_map(move |(i, ops)| {
            let mut b = i.get(&seeds).clone();
            for op in &ops {
                op.apply(&mut b, &seeds);
            }
            b
        }),
    ]
}

/// [`input`] as text (invalid UTF-8 replaced), for parsers that take `&str`.
fn text(target: &str) -> impl Strategy<Value = String> + use<> {
    input(target).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Runs `check` on [`cases`] inputs from `strategy`, each on a thread of its own: a panic,
/// a failed assertion or a case that outlives [`HANG_LIMIT`] fails the target, and proptest
/// shrinks the input.
fn fuzz<S>(strategy: S, check: impl Fn(S::Value) + Send + Sync + 'static)
where
    S: Strategy,
    S::Value: Send + 'static,
{
    let check = Arc::new(check);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        let (tx, rx) = mpsc::channel();
        let check = check.clone();
        let worker = std::thread::spawn(move || {
            check(value);
            let _ = tx.send(());
        });
        match rx.recv_timeout(HANG_LIMIT) {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
                "no answer within {HANG_LIMIT:?}"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let payload = worker.join().expect_err("the case ended without an answer");
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(format!("panicked: {message}")))
            }
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Limits small enough that mutated inputs reach them.
fn limits() -> Limits {
    Limits {
        max_body_bytes: 64 << 10,
        max_decompressed_bytes: 256 << 10,
        max_labels_per_series: 8,
        max_label_name_bytes: 32,
        max_label_value_bytes: 64,
        max_line_bytes: 256,
    }
}

/// A seed input or its snappy-compressed form: mutations of the decompressed protobuf reach
/// the protobuf decoder, mutations of the compressed bytes the snappy decoder.
fn snappy_input(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds = corpus(target)
        .into_iter()
        .filter_map(|s| snap::raw::Decoder::new().decompress_vec(&s).ok())
        .collect::<Vec<_>>();
    let seeds = Arc::new(seeds);
    prop_oneof![
        input(target),
        (any::<Index>(), vec(mutation(), 0..8)).prop_map(move |(i, ops)| {
            let mut b = i.get(&seeds).clone();
            for op in &ops {
                op.apply(&mut b, &seeds);
            }
            snap::raw::Encoder::new().compress_vec(&b).unwrap()
        }),
    ]
}

#[test]
fn exposition() {
    use crate::ingest::exposition::{grouping_labels, parse_push};
    let headers = (any::<bool>(), any::<bool>());
    fuzz((input("exposition"), headers), |(body, (gzip, push))| {
        let _ = crate::ingest::exposition::parse_text(&body, 0, &[], &limits());
        let path = format!("/metrics/job/{}", String::from_utf8_lossy(&body));
        let _ = grouping_labels(&path);
        if push {
            let encoding = gzip.then_some("gzip");
            let _ = parse_push(Some("text/plain"), encoding, &body, &path, 0, &limits());
        }
    });
}

#[test]
fn remote_write() {
    fuzz(snappy_input("remote_write"), |body| {
        use crate::ingest::{remote_write::decode, unsnappy};
        let _ = unsnappy(&body, &limits()).map(|raw| decode(&raw, &limits()).map(drop));
    });
}

#[test]
fn loki() {
    use crate::ingest::loki;
    fuzz((input("loki"), snappy_input("loki")), |(json, proto)| {
        let _ = loki::decode_json(&json, &limits());
        let _ = loki::decode_protobuf(&proto, &limits());
        let _ = loki::parse_selector(&String::from_utf8_lossy(&json));
    });
}

#[test]
fn ndjson() {
    fuzz(input("ndjson"), |body| {
        let _ = crate::ingest::ndjson::parse(&body, 0, &limits());
    });
}

#[test]
fn elasticsearch() {
    use crate::ingest::elasticsearch::{ElasticsearchConfig, Mapping, check_index_name, parse};
    let mapping = Mapping::new(&ElasticsearchConfig::default()).unwrap();
    fuzz(input("elasticsearch"), move |body| {
        let mut n = 0;
        let mut new_id = || {
            n += 1;
            n.to_string()
        };
        let _ = parse(&body, Some("app"), &mapping, 0, &mut new_id, &limits());
        let _ = parse(&body, None, &mapping, 0, &mut new_id, &limits());
        let _ = check_index_name(&String::from_utf8_lossy(&body));
    });
}

#[test]
fn alerts() {
    use crate::ingest::alerts::{parse_postable, parse_webhook};
    fuzz(input("alerts"), |body| {
        let _ = parse_postable(&body, &limits());
        let _ = parse_webhook(&body, &limits());
        let query = String::from_utf8_lossy(&body);
        let _ = crate::server::alertmanager::alerts::AlertsQuery::parse(Some(&query));
    });
}

#[test]
fn silences() {
    fuzz(input("silences"), |body| {
        if let Ok(spec) = crate::server::alertmanager::silences::parse_postable(&body) {
            let _ = crate::dispatch::silences::check(&spec);
        }
    });
}

#[test]
fn rules() {
    use crate::db::Db;
    use crate::rules::{Defaults, LoadContext};
    use crate::runtime::Runtime;
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| Runtime::with_data_dir(None).unwrap());
    fuzz(text("rules"), move |file| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fuzz.toml"), file).unwrap();
        let db = Db::in_memory().unwrap();
        let cx = LoadContext {
            runtime,
            db: &db,
            plugin_dirs: &[],
            defaults: &Defaults::default(),
            io: None,
            http: crate::runtime::http_client(),
            connections: None,
        };
        let _ = crate::rules::load::load_dir(dir.path(), &cx);
    });
}

#[test]
fn selector() {
    use crate::rules::selector::{LogSelector, Selector};
    fuzz(text("selector"), |s| {
        if let Ok(sel) = Selector::parse(&s) {
            assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel);
        }
        if let Ok(sel) = LogSelector::parse(&s) {
            assert_eq!(LogSelector::parse(&sel.to_string()).unwrap(), sel);
        }
    });
}

#[test]
fn template() {
    use crate::rules::template::{Template, TemplateContext};
    let labels = Labels::from_pairs([("instance", "web1"), ("job", "node")]);
    let external = Labels::from_pairs([("cluster", "eu")]);
    fuzz((text("template"), any::<f64>()), move |(src, value)| {
        if let Ok(t) = Template::parse(&src) {
            let _ = t.render(&TemplateContext {
                labels: &labels,
                value: Some(value),
                external_labels: Some(&external),
            });
        }
    });
}

#[test]
fn matcher() {
    use crate::model::matcher::{parse_matcher, parse_matchers};
    fuzz(text("matcher"), |s| {
        let _ = parse_matcher(&s);
        if let Ok(list) = parse_matchers(&s) {
            // Display writes PromQL's form: it quotes names that are not Prometheus label
            // names (`:a`) and escapes control characters, which Alertmanager 0.25's syntax
            // does not read back; the rest must round-trip.
            let plain = |m: &crate::model::matcher::Matcher| {
                crate::model::is_label_name(m.name())
                    && m.value().chars().all(|c| c == '\n' || !c.is_control())
            };
            for m in list.into_iter().filter(plain) {
                let again = parse_matcher(&m.to_string()).unwrap();
                assert_eq!(
                    (again.name(), again.op(), again.value()),
                    (m.name(), m.op(), m.value())
                );
            }
        }
    });
}

#[test]
fn units() {
    use crate::model::units::{ByteSize, format_duration, parse_duration};
    fuzz(text("units"), |s| {
        if let Ok(d) = parse_duration(s.trim()) {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        let _ = s.parse::<ByteSize>();
    });
}
