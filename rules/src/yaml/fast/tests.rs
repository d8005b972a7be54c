//! The fast path against the full parser: whatever the fast path takes, it must make exactly
//! what the full parser makes, and whatever the full parser refuses, the fast path must leave
//! to it. Hand-made cases, documents generated from random values in random styles, and
//! random edits of those (most of them malformed).

use serde_json::{json, Map, Value};

use super::docs;
use crate::yaml::full_docs;
use hl_engine::RepoPath;

fn full(text: &str) -> Result<Vec<Value>, String> {
    let p = RepoPath::new("t.yaml").unwrap();
    full_docs(text, &p).map_err(|e| e.to_string())
}

/// Both parsers agree on `text`; whether the fast path took it.
fn agree(text: &str) -> bool {
    let slow = full(text);
    match docs(text) {
        Some(fast) => {
            assert_eq!(Ok(&fast), slow.as_ref(), "fast path differs on {text:?}");
            true
        }
        None => false,
    }
}

/// The fast path takes `text` and agrees.
fn taken(text: &str) -> Vec<Value> {
    assert!(agree(text), "fast path left to the full parser: {text:?}");
    docs(text).unwrap()
}

#[test]
fn takes_what_manifests_and_compose_files_hold() {
    let deployment = r#"# a comment
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # trailing comment
  namespace: "apps"
  labels: {app: web, tier: 'front'}
  annotations:
    example.com/checksum: "sha256:abc\u00e9\"x\""
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    spec:
      containers:
      - name: web
        image: ghcr.io/acme/web:v1.2.3@sha256:0123
        args: ["--port", "8080", --verbose]
        ports:
          - containerPort: 8080
            protocol: TCP
        env:
        - name: URL
          value: http://example.com/#frag
        - name: EMPTY
          value:
        resources: {}
        command:
          - /bin/sh
          - -c
          - |
            echo one
              indented two

            echo three
---
---
apiVersion: v1
kind: ConfigMap
data:
  folded: >-
    one two
    three

    four
  keep: |+
    kept

  strip: |-
    stripped
  ratio: 1.5
  octal: 0755
  negative: -12
  big: 18446744073709551615
  yes: yes
  empty: ""
  quote: 'it''s'
"#;
    let d = taken(deployment);
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["spec"]["replicas"], json!(3));
    assert_eq!(
        d[0]["spec"]["template"]["spec"]["containers"][0]["command"][2],
        json!("echo one\n  indented two\n\necho three\n")
    );
    assert_eq!(d[1]["data"]["folded"], json!("one two three\nfour"));
    let compose = "services:\n  app:\n    image: busybox\n    environment:\n      - TZ=${TZ}\n      - A=b\n    volumes:\n      - ./config/app.conf:/etc/app.conf:ro\n    labels:\n      traefik.http.routers.app.rule: Host(`app.example.com`)\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 30s\n";
    let c = taken(compose);
    assert_eq!(
        c[0]["services"]["app"]["labels"]["traefik.http.routers.app.rule"],
        json!("Host(`app.example.com`)")
    );
    assert_eq!(taken(""), Vec::<Value>::new());
    assert_eq!(taken("# only a comment\n---\n"), Vec::<Value>::new());
    assert_eq!(taken("a: ~\n---\n# empty\n"), vec![json!({"a": null})]);
    let anchors = "x-logging: &log\n  driver: json-file\nx-base: &base\n  restart: always\n  logging: *log\nservices:\n  a:\n    <<: *base\n    image: a\n    restart: \"no\"\n  b:\n    <<: [*base, {user: b}]\n  c:\n    x: &one 1\n    y: *one\n    z: &seq\n    - p\n    w: *seq\n";
    let d = taken(anchors);
    assert_eq!(
        d[0]["services"]["a"],
        json!({"image": "a", "restart": "no", "logging": {"driver": "json-file"}})
    );
    assert_eq!(
        d[0]["services"]["c"],
        json!({"x": 1, "y": 1, "z": ["p"], "w": ["p"]})
    );
    // Merge keys as serde_yaml_ng applies them: a merged mapping's own merge key is kept.
    taken("a: &a\n  k: 1\nb: &b\n  <<: *a\n  l: 2\nc:\n  <<: *b\n");
    assert!(
        !agree("a: &a 1\nb:\n  <<: *a\n"),
        "a scalar merged is an error there"
    );
    assert_eq!(taken("a: 1e999999\n"), vec![json!({"a": "1e999999"})]);
    // Windows line breaks, in block scalars too.
    assert_eq!(
        taken("a: 1\r\nb: |\r\n  x\r\n  y\r\n"),
        vec![json!({"a": 1, "b": "x\ny\n"})]
    );
}

#[test]
fn leaves_what_it_does_not_know_to_the_full_parser() {
    let left = [
        "a: [*x]\n",
        "&x a: 1\n",
        "a: *undefined\n",
        "a: &x\n  b: *x\n",
        "a: &x 1\nb: {<<: *x}\n",
        "a: !!str 1\n",
        "a: plain\n  continued\n",
        "a: \"two\n  lines\"\n",
        "a: [1,\n  2]\n",
        "a:\tb\n",
        "a: b\rc\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\n...\n",
        "a: 1\na: 2\n",
        "? complex\n: key\n",
        "1: one\n",
        "true: yes\n",
        "a: |\n  no final line break",
        "a: |2\n   indented\n",
        "a: .inf\n",
        "a: 1\n  - b\n",
        "a: 99999999999999999999999\n",
        "just a scalar\n",
        "a: b: c\n",
        "a: \"\\N\"\n",
        "\u{feff}a: 1\n",
        "a: \u{85}\n",
        "key: {a: 1, }\n",
        "---x\n",
    ];
    for text in left {
        assert!(!agree(text), "taken: {text:?}");
    }
}

#[test]
fn malformed_yaml_is_always_left_to_the_full_parser() {
    let bad = [
        "a: [unclosed\n",
        "a: 'unclosed\n",
        "a:\n  b: 1\n c: 2\n",
        "- a\nb: 1\n",
        "a: - b\n",
        "a: @x\n",
        "a: `x`\n",
        "a: \"x\" y\n",
        "key: [a, , b]\n",
        "a: {b: {c: [d}}\n",
    ];
    for text in bad {
        assert!(full(text).is_err(), "the full parser takes {text:?}");
        assert!(!agree(text), "taken: {text:?}");
    }
}

/// A small deterministic generator (xorshift), so a failure names its seed.
struct Rng(u64, usize);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const WORDS: &[&str] = &[
    "app",
    "web",
    "nginx",
    "v1.2.3",
    "ghcr.io/acme/app:1.0",
    "${DOMAIN}",
    "true",
    "False",
    "null",
    "~",
    "yes",
    "0",
    "42",
    "-7",
    "0x1F",
    "0755",
    "1.5",
    "1e3",
    "-",
    "--flag",
    ".hidden",
    "a b c",
    "it's",
    "say \"hi\"",
    "a: b",
    "a #b",
    "#x",
    "[x]",
    "{y}",
    "key:",
    "x,y",
    "*star",
    "&amp",
    "!bang",
    "|pipe",
    ">gt",
    "%pct",
    "@at",
    "`tick`",
    "",
    " lead",
    "trail ",
    "1:30",
    "::1",
    "10.0.0.0/8",
    "caf\u{e9}",
    "tab\there",
    "back\\slash",
    "http://x/#frag",
    "-1.5e-3",
];

const KEYS: &[&str] = &[
    "name",
    "image",
    "app.kubernetes.io/name",
    "x-common",
    "a_b",
    "-dash",
    "k8s",
    "ports",
    "with space",
    "\"quoted\"",
    "'single'",
    "a[0]",
    "env",
    "data",
    "spec",
];

/// Keys the fast path leaves to the full parser (merge keys, keys that are not strings).
const RARE_KEYS: &[&str] = &["true", "1", "<<", "~"];

fn key_of(r: &mut Rng) -> String {
    let k = if r.below(40) == 0 {
        r.pick(RARE_KEYS)
    } else {
        r.pick(KEYS)
    };
    k.trim_matches(['"', '\'']).to_string()
}

fn value(r: &mut Rng, depth: usize) -> Value {
    match if depth > 3 { r.below(4) } else { r.below(7) } {
        0 | 1 => Value::String(r.pick(WORDS).to_string()),
        2 => json!(r.below(100_000) as i64 - 50),
        3 => match r.below(4) {
            0 => Value::Null,
            1 => Value::Bool(r.below(2) == 0),
            2 => json!(r.below(1000) as f64 / 8.0),
            _ => Value::String(format!(
                "line one\n{}line two{}",
                ["", "  "][r.below(2)],
                ["", "\n", "\n\n"][r.below(3)]
            )),
        },
        4 | 5 => {
            let mut m = Map::new();
            for _ in 0..r.below(4) + 1 {
                m.insert(key_of(r), value(r, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
    }
}

/// A scalar written the way a person might: plain where that reads back as the same string,
/// else quoted one way or the other.
fn scalar(r: &mut Rng, v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain_ok = super::scalar::plain(s) == Some(Value::String(s.clone()))
                && !s.is_empty()
                && !s.starts_with([
                    ' ', '-', '#', '&', '*', '!', '|', '>', '%', '@', '`', '[', '{', '"', '\'',
                ])
                && !s.ends_with(' ')
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with(':')
                && !s.contains(['\n', '\t']);
            match r.below(3) {
                0 if plain_ok => s.clone(),
                1 if !s.contains('\n') => format!("'{}'", s.replace('\'', "''")),
                _ => serde_json::to_string(s).unwrap(),
            }
        }
        other => other.to_string(),
    }
}

fn emit(r: &mut Rng, v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let step = [2, 4][r.below(2)];
    match v {
        Value::Object(m) if !m.is_empty() => {
            if r.1 > 0 && r.below(8) == 0 {
                let a = r.below(r.1);
                out.push_str(&format!("{pad}<<: *a{a}\n"));
            }
            for (k, val) in m {
                if r.below(8) == 0 {
                    out.push_str(&format!("{pad}# note\n"));
                }
                let key = if k.contains([' ', '[']) || r.below(6) == 0 {
                    serde_json::to_string(k).unwrap()
                } else {
                    k.clone()
                };
                out.push_str(&format!("{pad}{key}:"));
                after_indicator(r, val, indent, step, true, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                after_indicator(r, item, indent, step, false, out);
            }
        }
        other => {
            out.push_str(&format!("{pad}{}\n", scalar(r, other)));
        }
    }
}

fn after_indicator(
    r: &mut Rng,
    v: &Value,
    indent: usize,
    step: usize,
    key: bool,
    out: &mut String,
) {
    // Anchors and aliases, numbered in the order they are written.
    if r.1 > 0 && r.below(12) == 0 {
        let a = r.below(r.1);
        out.push_str(&format!(" *a{a}\n"));
        return;
    }
    if r.below(8) == 0 {
        out.push_str(&format!(" &a{}", r.1));
        r.1 += 1;
        // after an anchor, a mapping starts on the next line
        if let Value::Object(m) = v {
            if !m.is_empty() {
                out.push('\n');
                emit(r, v, indent + step, out);
                return;
            }
        }
    }
    match v {
        Value::Object(m) if !m.is_empty() && r.below(4) > 0 => {
            if !key && r.below(2) == 0 {
                // compact: `- key: value` with the rest of the mapping under it
                let mut inner = String::new();
                emit(r, v, indent + 2, &mut inner);
                out.push(' ');
                out.push_str(inner.trim_start());
            } else {
                out.push('\n');
                emit(r, v, indent + step, out);
            }
        }
        Value::Array(a) if !a.is_empty() && r.below(4) > 0 => {
            out.push('\n');
            let nested = if key && r.below(2) == 0 {
                indent
            } else {
                indent + step
            };
            emit(r, v, nested, out);
        }
        Value::Object(_) | Value::Array(_) => {
            out.push(' ');
            out.push_str(&flow(r, v));
            out.push('\n');
        }
        Value::String(s) if s.contains('\n') && r.below(3) > 0 => {
            let chomp = if s.ends_with("\n\n") {
                "+"
            } else if s.ends_with('\n') {
                ""
            } else {
                "-"
            };
            out.push_str(&format!(" |{chomp}\n"));
            let pad = " ".repeat(indent + step);
            let body = s.strip_suffix('\n').unwrap_or(s);
            let body = if chomp == "+" {
                body.strip_suffix('\n').unwrap_or(body)
            } else {
                body
            };
            for line in body.split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&format!("{pad}{line}\n"));
                }
            }
            if chomp == "+" {
                out.push('\n');
            }
        }
        Value::Null if r.below(2) == 0 => out.push('\n'),
        other => {
            let comment = if r.below(6) == 0 { "  # why" } else { "" };
            out.push_str(&format!(" {}{comment}\n", scalar(r, other)));
        }
    }
}

fn flow(r: &mut Rng, v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap(), flow(r, v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(|v| flow(r, v)).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) if s.contains('\n') => serde_json::to_string(s).unwrap(),
        other => scalar(r, other),
    }
}

fn generated(seed: u64) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, 0);
    let mut out = String::new();
    for n in 0..r.below(3) + 1 {
        if n > 0 || r.below(3) == 0 {
            out.push_str("---\n");
        }
        let mut root = Map::new();
        for _ in 0..r.below(5) + 1 {
            root.insert(key_of(&mut r), value(&mut r, 0));
        }
        emit(&mut r, &Value::Object(root), 0, &mut out);
    }
    out
}

#[test]
fn random_documents_parse_alike() {
    let (mut seen, mut fast) = (0, 0);
    for seed in 0..3000 {
        let text = generated(seed);
        // The same document with Windows line breaks.
        assert_eq!(
            agree(&text.replace('\n', "\r\n")),
            docs(&text).is_some(),
            "{text:?} with CRLF"
        );
        seen += 1;
        if std::env::var("SHOW").is_ok() && docs(&text).is_none() && seen < 40 {
            eprintln!("=== {seed}\n{text}");
        }
        if agree(&text) {
            fast += 1;
        }
    }
    // Most of what the generator writes is in the fast path's reach; the rest (merge keys,
    // non-string keys, duplicate keys, tabs) is left to the full parser.
    eprintln!("{fast} of {seen} taken");
    assert!(fast * 3 > seen, "only {fast} of {seen} taken");
}

#[test]
fn random_edits_parse_alike_or_are_left_alone() {
    const EDITS: &[&str] = &[
        " ", "  ", "\n", ":", ": ", "-", "- ", "#", " #", "'", "\"", "|", ">", "[", "]", "{", "}",
        ",", "&a ", "*a", "!", "?", "\t", "\\", "---\n", "x", "1", "<<: ", "\n  ", "|-\n  ", "\r",
        "\r\n",
    ];
    let mut r = Rng(0x5eed, 0);
    let mut taken_edits = 0;
    // HL_FUZZ_ROUNDS=200000 for a longer search than the suite's.
    let rounds = std::env::var("HL_FUZZ_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    for seed in 0..rounds {
        let mut text = generated(seed).into_bytes();
        for _ in 0..r.below(3) + 1 {
            let at = r.below(text.len() + 1);
            match r.below(3) {
                0 if at < text.len() => {
                    text.remove(at);
                }
                _ => {
                    let e = r.pick(EDITS).as_bytes();
                    text.splice(at..at, e.iter().copied());
                }
            }
        }
        if let Ok(text) = String::from_utf8(text) {
            let text = if seed % 2 == 1 {
                text.replace('\n', "\r\n")
            } else {
                text
            };
            if agree(&text) {
                taken_edits += 1;
            }
        }
    }
    eprintln!("{taken_edits} edited documents taken");
    assert!(
        taken_edits > 300,
        "only {taken_edits} edited documents taken"
    );
}

/// Every YAML file of the sample homelab and of the test fixtures, and of the tree that
/// `HL_YAML_TREE` names when set (a homelab repo of yours, a generated one).
#[test]
fn the_repos_own_yaml_parses_alike() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut walk = ignore::WalkBuilder::new(&root);
    if let Some(extra) = std::env::var_os("HL_YAML_TREE") {
        walk.add(extra);
    }
    let mut taken_files = 0;
    for entry in walk.build().flatten() {
        let p = entry.path();
        let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !yaml || p.components().any(|c| c.as_os_str() == "target") {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(p) {
            if agree(&text) {
                taken_files += 1;
            } else if std::env::var_os("SHOW").is_some() {
                eprintln!("left: {}", p.display());
            }
        }
    }
    eprintln!("{taken_files} files taken");
    assert!(taken_files > 50, "only {taken_files} files taken");
}
