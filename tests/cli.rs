//! The other commands on the sample homelab: `hl why`, `hl graph`, `hl show`, and the guards
//! every command runs first (the environment, the repo root).

mod common;

use common::*;

/// `hl why` on a service whose bind-mounted config changed: the file and the changed line.
#[test]
fn why_shows_the_changed_line_of_a_bind_mounted_file() {
    let lab = Lab::adopted();
    lab.replace(
        "services/mosquitto/mosquitto.conf",
        "max_queued_messages 5000\n",
        "max_queued_messages 10000\n",
    );
    let run = lab.hl(&["why", "compose:mosquitto@CHELSTY-INFRA"]);
    run.code(0);
    let out = &run.stdout;
    assert!(
        out.starts_with("compose:mosquitto@CHELSTY-INFRA: update"),
        "{out}"
    );
    assert!(
        out.contains("because file services/mosquitto/mosquitto.conf changed"),
        "{out}"
    );
    assert!(
        out.contains("+++ b/services/mosquitto/mosquitto.conf"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines.contains(&"-max_queued_messages 5000"), "{out}");
    assert!(lines.contains(&"+max_queued_messages 10000"), "{out}");
}

/// `hl why` on a service placed on a VM whose image recipe changed: the chain goes through the
/// VM to the image and the recipe parameter that moved, each level indented under the last.
#[test]
fn why_traces_a_placed_service_through_its_vm_to_the_image() {
    let lab = Lab::adopted();
    lab.replace(
        "inventory/images/debian-12.yaml",
        "\nsize_gb: 32 ",
        "\nsize_gb: 40 ",
    );
    let run = lab.hl(&["why", "compose:homeassistant@CHELSTY-HA"]);
    run.code(0);
    let out = &run.stdout;
    let find = |needle: &str| -> (usize, usize) {
        let (i, line) = out
            .lines()
            .enumerate()
            .find(|(_, l)| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with `{needle}` in\n{out}"));
        (i, line.len() - line.trim_start().len())
    };
    let (svc, svc_pad) = find("compose:homeassistant@CHELSTY-HA: update");
    let (vm, vm_pad) = find("vm:CHELSTY-HA: replace");
    let (image, image_pad) = find("image:debian-12: update");
    let (param, param_pad) = find("because parameter size_gb: 32 -> 40");
    assert!(svc < vm && vm < image && image < param, "{out}");
    assert!(
        svc_pad < vm_pad && vm_pad < image_pad && image_pad < param_pad,
        "{out}"
    );
    assert!(out.contains("(will build)"), "{out}");
}

/// `hl why` on a node that did not change says so, and a typo gets a did-you-mean.
#[test]
fn why_on_unchanged_node_and_on_a_typo() {
    let lab = Lab::adopted();
    let run = lab.hl(&["why", "vm:CHELSTY-HA"]);
    run.code(0);
    assert_eq!(
        run.stdout,
        "vm:CHELSTY-HA: no-op\n  nothing changed: its input hash is the one recorded\n"
    );
    let run = lab.hl(&["why", "vm:CHELSTY-HAA"]);
    run.code(1);
    assert!(
        run.stderr.contains("no node `vm:CHELSTY-HAA`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `vm:CHELSTY-HA`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn graph_dot_has_the_image_to_vm_edge() {
    let lab = Lab::fresh();
    let run = lab.hl(&["graph", "--format", "dot"]);
    run.code(0);
    assert!(run.stdout.starts_with("digraph hl {"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("\"image:debian-12\" -> \"vm:CHELSTY-HA\" [label=\"input\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "\"vm:CHELSTY-HA\" -> \"compose:homeassistant@CHELSTY-HA\" [label=\"placement\""
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn graph_mermaid_has_the_image_to_vm_edge() {
    let lab = Lab::fresh();
    let run = lab.hl(&["graph", "--format", "mermaid"]);
    run.code(0);
    let out = &run.stdout;
    assert!(out.starts_with("flowchart LR\n"), "{out}");
    let id = |addr: &str| -> String {
        let label = format!("[\"{addr}\"]");
        let line = out
            .lines()
            .find(|l| l.trim_end().ends_with(&label))
            .unwrap_or_else(|| panic!("no {addr} in\n{out}"));
        line.trim().trim_end_matches(&label).to_string()
    };
    let edge = format!(
        "{} -->|input| {}",
        id("image:debian-12"),
        id("vm:CHELSTY-HA")
    );
    assert!(
        out.lines().any(|l| l.trim() == edge),
        "no `{edge}` in\n{out}"
    );
}

/// `hl graph --target` keeps the selection and what it depends on.
#[test]
fn graph_target_keeps_the_dependencies() {
    let lab = Lab::fresh();
    let run = lab.hl(&["graph", "--no-checks", "--target", "vm:CHELSTY-HA"]);
    run.code(0);
    assert!(
        run.stdout
            .contains("\"image:debian-12\" -> \"vm:CHELSTY-HA\""),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("compose:"),
        "dependents are not dependencies: {}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("check:"),
        "--no-checks: {}",
        run.stdout
    );
}

#[test]
fn show_names_layer_and_dependencies() {
    let lab = Lab::fresh();
    let run = lab.hl(&["show", "vm:CHELSTY-HA"]);
    run.code(0);
    let out = &run.stdout;
    let fields = |key: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|w| w.first().map(String::as_str) == Some(key))
            .unwrap_or_else(|| panic!("no `{key}` line in\n{out}"))
    };
    assert_eq!(fields("kind"), ["kind", "vm"]);
    assert_eq!(fields("layer"), ["layer", "L2"]);
    assert_eq!(
        fields("declared"),
        ["declared", "hosts/CHELSTY-HA/machine.yaml"]
    );
    let deps = out
        .split("  depends on\n")
        .nth(1)
        .expect("a `depends on` section");
    let deps: Vec<&str> = deps
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect();
    assert!(deps.contains(&"image:debian-12  (input)"), "{deps:?}");

    let json = lab.hl(&["show", "--json", "vm:CHELSTY-HA"]);
    json.code(0);
    let v = json.json();
    assert_eq!(v["layer"], "L2");
    assert_eq!(v["kind"], "vm");
    assert!(
        v["dependencies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"address": "image:debian-12", "edge": "input"})),
        "{v:#}"
    );
    assert!(
        v["dependents"].as_array().unwrap().contains(
            &serde_json::json!({"address": "compose:homeassistant@CHELSTY-HA", "edge": "placement"})
        ),
        "{v:#}"
    );
    assert_eq!(
        v["recorded"],
        serde_json::Value::Null,
        "nothing adopted yet"
    );
    assert_eq!(v["plan"], "create");
}

/// `HL_ENV` naming another environment than the inventory's: refused before anything is
/// written, naming both.
#[test]
fn wrong_environment_is_refused_and_nothing_written() {
    let lab = Lab::fresh();
    for args in [
        &["plan"][..],
        &["plan", "--json"],
        &["state", "adopt"],
        &["check"],
    ] {
        let run = lab.hl_env(args, &[("HL_ENV", "prod")]);
        run.code(1);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.contains("`prod`") && run.stderr.contains("`home`"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(
        lab.written().is_empty(),
        "{:?}",
        lab.written().keys().collect::<Vec<_>>()
    );

    // The right one is fine.
    let run = lab.hl_env(&["plan"], &[("HL_ENV", "home")]);
    run.code(2);
}

/// Run outside a homelab repo: a clear error, exit 1, nothing written.
#[test]
fn outside_a_repo_is_a_clear_error() {
    let lab = Lab::fresh();
    for dir in ["inventory", "hosts", "services", "cluster"] {
        std::fs::remove_dir_all(lab.path(dir)).unwrap();
    }
    let run = lab.hl(&["plan"]);
    run.code(1);
    assert!(
        run.stderr.contains("is not inside a homelab repo"),
        "{}",
        run.stderr
    );
    assert!(lab.written().is_empty());
}
