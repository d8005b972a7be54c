//! The plan as a pull-request comment that reads well on Forgejo, Gitea and GitHub: a one-line
//! verdict, a table of counts per layer and action, destructive changes first under a warning,
//! then one collapsible `<details>` per node with its causes and the changed lines. Long plans
//! are cut to stay under a comment's size limit, saying how much was left out.
//!
//! Everything that comes from the repo (addresses, paths, parameter values, file contents) is
//! put in code spans, `<code>` (HTML-escaped) or fenced blocks whose fence is longer than any
//! run of backticks inside, so no file can close a block early or inject markup.

use std::fmt::Write as _;

use hl_engine::plan::FileChange;
use hl_engine::{Action, Cause, Layer, Plan, Step};
use serde_json::Value;

use super::{cause_line, visible, Diffs, Revisions};

/// GitHub's limit on a comment body, in characters; Forgejo and Gitea allow more. The budget
/// below is counted in bytes, which are never fewer than characters.
pub const COMMENT_LIMIT: usize = 65_536;
/// Room kept for the closing lines (what was left out, the runway checks).
const RESERVE: usize = 1_024;
/// The marker that lets a CI job find and update its own comment.
pub const MARKER: &str = "<!-- hl-plan -->";
/// Destructive changes listed by name in the warning; the rest are counted.
const WARN_LISTED: usize = 25;
/// Lines of one file's diff shown; the rest are counted.
const DIFF_LINES: usize = 80;
/// Characters of one diff line shown (a minified file is one long line).
const LINE_CHARS: usize = 240;
/// Characters of a parameter value shown.
const VALUE_CHARS: usize = 100;

/// The order of the per-node sections: destructive first.
const ORDER: [Action; 5] = [
    Action::Replace,
    Action::Delete,
    Action::Create,
    Action::Update,
    Action::NoOp,
];

/// Renders the comment.
pub fn markdown(plan: &Plan, revs: Option<&Revisions>, diffs: &Diffs<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let changes: Vec<&Step> = plan.steps.iter().filter(|s| s.action.is_change()).collect();
    let destructive: Vec<&Step> = changes.iter().copied().filter(|s| s.destructive).collect();
    let against = revs.map_or(String::new(), |r| {
        format!(
            " — {} against {}",
            code(&r.head_name()),
            code(&r.base_name())
        )
    });
    if changes.is_empty() {
        let _ = writeln!(out, "### hl plan: no changes{against}\n");
        let _ = writeln!(out, "Nothing in L0-L4 changes.\n");
    } else {
        let warn = match destructive.len() {
            0 => String::new(),
            n => format!(" ⚠️ {n} destructive"),
        };
        let _ = writeln!(out, "### hl plan: {}{warn}{against}\n", short_summary(plan));
    }
    if revs.is_some_and(|r| r.dirty) {
        let _ = writeln!(
            out,
            "_The work tree had uncommitted changes; they are planned as part of HEAD._\n"
        );
    }
    if !changes.is_empty() {
        table(&mut out, plan);
    }
    if !destructive.is_empty() {
        warning(&mut out, &destructive);
    }

    let mut shown: Vec<&Step> = Vec::new();
    for a in ORDER {
        shown.extend(plan.steps.iter().filter(|s| s.action == a && visible(s)));
    }
    let no_ops = shown.iter().filter(|s| s.action == Action::NoOp).count();
    if no_ops > 0 {
        let _ = writeln!(
            out,
            "_{no_ops} node{} had input changes that render to the same output: nothing to do._\n",
            plural(no_ops)
        );
    }
    // Every node is worth more to a reviewer than any node's diff: first as many nodes as fit
    // with their causes alone, then the changed lines of each, in order, while they fit.
    let room = (COMMENT_LIMIT - RESERVE).saturating_sub(out.len());
    let mut blocks: Vec<String> = Vec::new();
    let mut used = 0;
    for s in &shown {
        let bare = details(s, revs, None);
        if used + bare.len() > room {
            break;
        }
        used += bare.len();
        blocks.push(bare);
    }
    // In the order shown: destructive first.
    let mut left_out: Vec<(&'static str, usize)> = Vec::new();
    for s in &shown[blocks.len()..] {
        let word = action_word(s.action);
        match left_out.last_mut() {
            Some((w, n)) if *w == word => *n += 1,
            _ => left_out.push((word, 1)),
        }
    }
    let mut diffs_left_out = 0;
    for (s, block) in shown.iter().zip(blocks.iter_mut()) {
        let full = details(s, revs, Some(diffs));
        let extra = full.len() - block.len();
        if extra == 0 {
            continue;
        }
        if used + extra <= room {
            used += extra;
            *block = full;
        } else {
            diffs_left_out += 1;
        }
    }
    out.extend(blocks);
    let command = match revs {
        Some(r) => format!("hl plan --against {}", r.base),
        None => "hl plan".into(),
    };
    let fix = format!("run {} for all of it", code(&command));
    if !left_out.is_empty() {
        let total: usize = left_out.iter().map(|(_, n)| n).sum();
        let parts: Vec<String> = left_out.iter().map(|(a, n)| format!("{n} {a}")).collect();
        let _ = writeln!(
            out,
            "\n_… and {total} more node{} not shown ({}): the comment would pass its size limit; {fix}._",
            plural(total),
            parts.join(", ")
        );
    }
    if diffs_left_out > 0 {
        let _ = writeln!(
            out,
            "\n_The changed lines of {diffs_left_out} node{} are left out to keep the comment under its size limit; {fix}._",
            plural(diffs_left_out)
        );
    }
    let checks = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Check)
        .count();
    if checks > 0 {
        let _ = writeln!(
            out,
            "\n<sub>{checks} L0 runway check{} will run before apply (`hl check`).</sub>",
            plural(checks)
        );
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "to create",
        Action::Update => "to update",
        Action::Replace => "to replace",
        Action::Delete => "to delete",
        Action::NoOp => "no-op",
        Action::Check => "check",
    }
}

/// Only the non-zero counts: "2 to update, 1 to replace".
fn short_summary(plan: &Plan) -> String {
    let c = plan.counts();
    let parts: Vec<String> = [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
    ]
    .iter()
    .filter_map(|a| {
        c.get(a)
            .filter(|n| **n > 0)
            .map(|n| format!("{n} to {}", a.word()))
    })
    .collect();
    parts.join(", ")
}

fn table(out: &mut String, plan: &Plan) {
    let _ = writeln!(
        out,
        "| layer | create | update | replace | delete |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for layer in Layer::ALL {
        let n = |a: Action| {
            plan.steps
                .iter()
                .filter(|s| s.layer == layer && s.action == a)
                .count()
        };
        let row = [
            n(Action::Create),
            n(Action::Update),
            n(Action::Replace),
            n(Action::Delete),
        ];
        if row.iter().all(|c| *c == 0) {
            continue;
        }
        let cells: Vec<String> = row
            .iter()
            .map(|c| match c {
                0 => "·".to_string(),
                c => c.to_string(),
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", layer.title(), cells.join(" | "));
    }
    out.push('\n');
}

/// The alert GitHub and recent Gitea and Forgejo draw as a warning box; older versions show a
/// plain quote, still readable. A long list is cut: the per-node sections name them all.
fn warning(out: &mut String, destructive: &[&Step]) {
    let n = destructive.len();
    let _ = writeln!(
        out,
        "> [!WARNING]\n> {n} destructive change{} (replace or delete) need{} explicit approval when applied:",
        plural(n),
        if n == 1 { "s" } else { "" }
    );
    for s in destructive.iter().take(WARN_LISTED) {
        let _ = writeln!(
            out,
            "> - **{}** {}",
            s.action.word(),
            code(&s.address.to_string())
        );
    }
    if n > WARN_LISTED {
        let _ = writeln!(out, "> - … and {} more", n - WARN_LISTED);
    }
    out.push('\n');
}

/// One node's collapsible section; with `diffs`, each changed file's lines too.
fn details(s: &Step, revs: Option<&Revisions>, diffs: Option<&Diffs<'_>>) -> String {
    let mut b = String::new();
    let sign = match s.action {
        Action::Create => "🟢 create",
        Action::Update => "🟡 update",
        Action::Replace => "🔴 replace",
        Action::Delete => "🔴 delete",
        Action::NoOp => "⚪ no-op",
        Action::Check => "check",
    };
    let extra = if s.will_build { " (will build)" } else { "" };
    let _ = writeln!(
        b,
        "<details><summary>{sign} <code>{}</code>{extra}</summary>\n",
        html(&s.address.to_string())
    );
    let renames = renames(&s.causes);
    for (i, c) in s.causes.iter().enumerate() {
        if let Some(&(from, to)) = renames.iter().find(|(f, t)| *f == i || *t == i) {
            // Said once, where the old path was; the content is the same, so no diff.
            if i == from {
                if let (Cause::File { path: old, .. }, Cause::File { path: new, .. }) =
                    (&s.causes[from], &s.causes[to])
                {
                    let _ = writeln!(
                        b,
                        "- file {} renamed to {}, content identical",
                        code(old.as_str()),
                        code(new.as_str())
                    );
                }
            }
            continue;
        }
        let _ = writeln!(b, "- {}", cause(c, revs));
        let Some(diffs) = diffs else { continue };
        if let Cause::File { path, old, new, .. } = c {
            if let Some(diff) = diffs.unified(path, *old, *new) {
                diff_block(&mut b, &diff);
            }
        }
    }
    if !b.ends_with("\n\n") {
        b.push('\n');
    }
    b.push_str("</details>\n");
    b
}

/// Pairs of (no longer an input, added) file causes with the same content: a renamed file,
/// whose diff would show its whole content twice.
fn renames(causes: &[Cause]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (to, c) in causes.iter().enumerate() {
        let Cause::File {
            change: FileChange::Added,
            new: Some(d),
            ..
        } = c
        else {
            continue;
        };
        let from = causes.iter().enumerate().position(|(i, c)| {
            matches!(c, Cause::File { change: FileChange::Removed, old: Some(o), .. } if o == d)
                && !out.iter().any(|(f, _)| *f == i)
        });
        if let Some(from) = from {
            out.push((from, to));
        }
    }
    out
}

/// A diff as a fenced block inside the cause's list item (indented two spaces), its fence
/// longer than any run of backticks in it.
fn diff_block(b: &mut String, diff: &str) {
    let fence = "`".repeat(longest_run(diff, '`').max(2) + 1);
    let lines: Vec<&str> = diff.lines().collect();
    let _ = writeln!(b, "\n  {fence}diff");
    for l in lines.iter().take(DIFF_LINES) {
        match l.char_indices().nth(LINE_CHARS) {
            Some((cut, _)) => {
                let _ = writeln!(b, "  {} …", &l[..cut]);
            }
            None => {
                let _ = writeln!(b, "  {l}");
            }
        }
    }
    if lines.len() > DIFF_LINES {
        let _ = writeln!(b, "  … {} more lines", lines.len() - DIFF_LINES);
    }
    let _ = writeln!(b, "  {fence}\n");
}

/// One cause, for a comment: what comes from the repo in code spans.
fn cause(c: &Cause, revs: Option<&Revisions>) -> String {
    match c {
        Cause::New => match revs {
            Some(r) => format!("new: not in {}", code(&r.base_name())),
            None => "new: not in the recorded state".into(),
        },
        Cause::Removed => match revs {
            Some(r) => format!(
                "removed: in {}, no longer in the repo",
                code(&r.base_name())
            ),
            None => "removed from the repo".into(),
        },
        Cause::File { path, change, .. } => format!(
            "file {} {}",
            code(path.as_str()),
            match change {
                FileChange::Modified => "changed",
                FileChange::Added => "added",
                FileChange::Removed => "no longer an input",
            }
        ),
        Cause::Param { key, old, new } => {
            format!("parameter {}: {} → {}", code(key), value(old), value(new))
        }
        Cause::Dependency { address, .. } => {
            format!(
                "dependency {} changed its output",
                code(&address.to_string())
            )
        }
        Cause::Placement { address, action } => format!(
            "runs on {}, which is {}",
            code(&address.to_string()),
            if *action == Action::Create {
                "created"
            } else {
                "replaced"
            }
        ),
        Cause::RuleVersion { old, new } => format!("rule version {old} → {new}"),
        Cause::ForcesReplacement { what } => {
            format!("{} cannot change in place: forces replacement", code(what))
        }
        other => text(&cause_line(other)),
    }
}

/// A parameter value: a plain string as itself, anything else (and a string that would not
/// read as one line) as JSON, cut to [`VALUE_CHARS`].
fn value(v: &Option<Value>) -> String {
    let s = match v {
        None => return "_(absent)_".into(),
        Some(Value::String(s)) if !s.trim().is_empty() && !s.contains(['\n', '\r']) => s.clone(),
        Some(v) => v.to_string(),
    };
    match s.char_indices().nth(VALUE_CHARS) {
        Some((cut, _)) => format!("{} …", code(&s[..cut])),
        None => code(&s),
    }
}

/// A code span that holds `s` verbatim, whatever backticks it contains (CommonMark: the fence
/// is a longer run of backticks, padded with a space when `s` starts or ends with one).
fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    let ticks = "`".repeat(longest_run(&s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Text for inside an HTML element.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Plain text in markdown: no character of it starts markup.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(
            ch,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '&' | '!'
        ) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hl_engine::{Address, Content, Digest, FileSet, RepoPath};

    fn step(addr: &str, action: Action, causes: Vec<Cause>) -> Step {
        let (kind, rest) = addr.split_once(':').expect("kind:name");
        let (name, host) = match rest.split_once('@') {
            Some((n, h)) => (n, Some(h)),
            None => (rest, None),
        };
        Step {
            address: Address::new(kind, name, host).expect("a valid address"),
            layer: Layer::L4,
            action,
            destructive: action.is_destructive(),
            will_build: false,
            causes,
            input: None,
            output: None,
            prior_input: None,
            prior_output: None,
        }
    }

    fn revs() -> Revisions {
        Revisions {
            base: "origin/main".into(),
            base_commit: "0123456789abcdef0123456789abcdef01234567".into(),
            head: "work tree".into(),
            head_commit: None,
            dirty: false,
        }
    }

    /// Two folders, base and head, with one file each side.
    struct Sides {
        _tmp: tempfile::TempDir,
        base: FileSet,
        head: FileSet,
    }

    fn sides(path: &str, old: &str, new: &str) -> Sides {
        let tmp = tempfile::tempdir().expect("temp dir");
        for (side, text) in [("base", old), ("head", new)] {
            let p = tmp.path().join(side).join(path);
            std::fs::create_dir_all(p.parent().expect("a folder")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        Sides {
            base: FileSet::new(&tmp.path().join("base")).expect("base"),
            head: FileSet::new(&tmp.path().join("head")).expect("head"),
            _tmp: tmp,
        }
    }

    fn file_cause(path: &str, old: &str, new: &str) -> Cause {
        Cause::File {
            path: RepoPath::new(path).expect("a repo path"),
            change: FileChange::Modified,
            old: Some(Digest::<Content>::of(old.as_bytes())),
            new: Some(Digest::<Content>::of(new.as_bytes())),
        }
    }

    #[test]
    fn code_spans_hold_any_text() {
        for (input, want) in [
            ("plain", "`plain`"),
            ("a`b", "``a`b``"),
            ("`x`", "`` `x` ``"),
            ("a ``` b", "````a ``` b````"),
            ("two\nlines", "`two lines`"),
            ("*not bold* <b>", "`*not bold* <b>`"),
        ] {
            assert_eq!(code(input), want, "{input:?}");
        }
    }

    #[test]
    fn values_are_code_cut_and_absent_is_said() {
        let cases: [(Option<Value>, &str); 5] = [
            (None, "_(absent)_"),
            (Some(Value::from(40)), "`40`"),
            (Some(Value::from("a|b")), "`a|b`"),
            (Some(Value::from("")), "`\"\"`"),
            (Some(Value::from("x\ny")), "`\"x\\ny\"`"),
        ];
        for (v, want) in cases {
            assert_eq!(value(&v), want, "{v:?}");
        }
        let long = value(&Some(Value::from("z".repeat(500))));
        assert_eq!(long, format!("`{}` …", "z".repeat(VALUE_CHARS)));
    }

    #[test]
    fn html_and_text_are_escaped() {
        assert_eq!(html("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(text("a_b *c* [d](e) <f>"), r"a\_b \*c\* \[d\](e) \<f\>");
    }

    /// A file that is no longer an input and one that is added, with the same content: one
    /// line saying it was renamed, no diff. Different content stays two causes with diffs.
    #[test]
    fn a_rename_is_one_line() {
        let file = |path: &str, change, old: Option<&str>, new: Option<&str>| Cause::File {
            path: RepoPath::new(path).expect("a repo path"),
            change,
            old: old.map(|t| Digest::<Content>::of(t.as_bytes())),
            new: new.map(|t| Digest::<Content>::of(t.as_bytes())),
        };
        let causes = vec![
            file("b.conf", FileChange::Added, None, Some("same")),
            file("c.conf", FileChange::Added, None, Some("other")),
            file("a.conf", FileChange::Removed, Some("same"), None),
        ];
        assert_eq!(renames(&causes), [(2, 0)]);
        let s = step("compose:x@H", Action::Update, causes);
        let md = details(&s, None, None);
        assert_eq!(
            md,
            "<details><summary>🟡 update <code>compose:x@H</code></summary>\n\n\
             - file `c.conf` added\n\
             - file `a.conf` renamed to `b.conf`, content identical\n\n\
             </details>\n"
        );
    }

    /// A file whose lines hold backtick fences cannot close the diff block early.
    #[test]
    fn a_diff_full_of_fences_stays_in_its_block() {
        let old = "intro\n```\n````\nend\n";
        let new = "intro\n```\n`````\nend\n";
        let s = sides("README.md", old, new);
        let diffs = Diffs::between(&s.base, &s.head);
        let plan = Plan {
            format_version: 1,
            steps: vec![step(
                "compose:docs@HOST",
                Action::Update,
                vec![file_cause("README.md", old, new)],
            )],
        };
        let md = markdown(&plan, Some(&revs()), &diffs);
        assert!(md.contains("\n  ``````diff\n"), "{md}");
        assert!(md.contains("\n  -````\n  +`````\n"), "{md}");
        assert!(md.contains("\n  ``````\n"), "{md}");
    }

    /// A plan far past the limit: the comment stays under 65,536 characters, shows the
    /// destructive steps first, and says how many nodes (per action) it left out.
    #[test]
    fn a_large_plan_is_cut_under_the_limit_with_a_count() {
        let old: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let new: String = (0..200).map(|i| format!("line {i} changed\n")).collect();
        let s = sides("services/big/compose.yaml", &old, &new);
        let diffs = Diffs::between(&s.base, &s.head);
        let mut steps = Vec::new();
        for i in 0..40 {
            steps.push(step(
                &format!("compose:gone-{i:03}@HOST"),
                Action::Delete,
                vec![Cause::Removed],
            ));
        }
        for i in 0..1_000 {
            steps.push(step(
                &format!("compose:svc-{i:04}@HOST"),
                Action::Update,
                vec![
                    file_cause("services/big/compose.yaml", &old, &new),
                    Cause::Param {
                        key: "image".into(),
                        old: Some(Value::from("nginx:1.26")),
                        new: Some(Value::from("nginx:1.27")),
                    },
                ],
            ));
        }
        let plan = Plan {
            format_version: 1,
            steps,
        };
        let md = markdown(&plan, Some(&revs()), &diffs);
        let chars = md.chars().count();
        assert!(chars < COMMENT_LIMIT, "{chars} characters");
        assert!(
            md.starts_with(
                "<!-- hl-plan -->\n### hl plan: 1000 to update, 40 to delete ⚠️ 40 destructive — `the work tree` against `origin/main (0123456)`\n"
            ),
            "{}",
            &md[..300]
        );
        assert!(
            md.contains("| L4 runtime | · | 1000 | · | 40 |"),
            "the table counts all"
        );
        assert!(md.contains("> - **delete** `compose:gone-024@HOST`\n> - … and 15 more\n"));
        let sections = md.matches("<details>").count();
        let shown_deletes = md.matches("🔴 delete").count();
        assert_eq!(shown_deletes, 40, "every destructive step is shown, first");
        let shown_updates = sections - shown_deletes;
        assert!(
            shown_updates > 10,
            "a useful part of the plan is shown: {shown_updates}"
        );
        let want = format!(
            "_… and {n} more node{s} not shown ({n} to update): the comment would pass its size limit; run `hl plan --against origin/main` for all of it._",
            n = 1_000 - shown_updates,
            s = plural(1_000 - shown_updates)
        );
        assert!(md.contains(&want), "{}", &md[md.len() - 600..]);
        // The closing lines are whole: the last section is closed.
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count()
        );
    }

    /// One node whose diff alone is past the limit is still listed, with its causes, and the
    /// comment says its changed lines were left out.
    #[test]
    fn a_huge_diff_is_dropped_before_its_node() {
        let old = "x\n".repeat(10);
        let new = format!("{}\n", "y".repeat(200)).repeat(70_000 / 200);
        let s = sides("big.txt", &old, &new);
        let diffs = Diffs::between(&s.base, &s.head);
        let mut plan = Plan {
            format_version: 1,
            steps: Vec::new(),
        };
        for i in 0..100 {
            plan.steps.push(step(
                &format!("compose:s{i}@H"),
                Action::Update,
                vec![file_cause("big.txt", &old, &new)],
            ));
        }
        let md = markdown(&plan, None, &diffs);
        assert!(md.len() < COMMENT_LIMIT, "{} bytes", md.len());
        assert!(md.contains("<code>compose:s0@H</code>"));
        assert!(
            md.contains(" more lines\n"),
            "the first diffs are shown, cut to {DIFF_LINES} lines"
        );
        assert!(md.contains("are left out to keep the comment under its size limit"));
    }
}
