//! Bad input: each is a clear error naming where it is, exit 1, and nothing written. Every case
//! runs twice: on a fresh copy (no `.hl/` and no cache may appear) and on an adopted copy
//! broken afterwards (`.hl/` and the cache keep their exact bytes, so neither `hl plan` nor
//! `hl state adopt` records anything from a repo it refused).

mod common;

use std::collections::BTreeSet;

use common::*;

/// The commands that must all refuse a broken repo.
const COMMANDS: [&[&str]; 3] = [&["plan"], &["plan", "--json"], &["state", "adopt"]];

/// Breaks a fresh and an adopted copy with `break_it`, runs every command on each, and checks
/// the refusal: exit 1, nothing on stdout, each of `expect` on stderr, nothing written.
/// Returns the stderr of `hl plan` for further checks.
#[track_caller]
fn refused(break_it: impl Fn(&Lab), expect: &[&str]) -> String {
    let fresh = Lab::fresh();
    break_it(&fresh);
    let stderr = refuse_all(&fresh, expect);
    assert!(
        fresh.written().is_empty(),
        "a refused run wrote {:?}",
        fresh.written().keys().collect::<Vec<_>>()
    );

    let adopted = Lab::adopted();
    let before = adopted.written();
    assert!(
        before.keys().any(|p| p.ends_with("state.json")),
        "adopt wrote the state"
    );
    break_it(&adopted);
    refuse_all(&adopted, expect);
    assert!(
        adopted.written() == before,
        "a refused run changed .hl/ or the cache"
    );
    stderr
}

#[track_caller]
fn refuse_all(lab: &Lab, expect: &[&str]) -> String {
    let mut first = None;
    for args in COMMANDS {
        let run = lab.hl(args);
        run.code(1);
        assert_eq!(run.stdout, "", "{args:?} printed to stdout");
        for e in expect {
            assert!(
                run.stderr.contains(e),
                "{args:?}: `{e}` not in stderr:\n{}",
                run.stderr
            );
        }
        assert!(
            !run.stderr.contains("this is a bug in hl"),
            "a user error is not an internal one:\n{}",
            run.stderr
        );
        first.get_or_insert(run.stderr);
    }
    first.expect("at least one command")
}

const MOSQUITTO_COMPOSE: &str = "services/mosquitto/docker-compose.yml";

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let broken = "    image: eclipse-mosquitto: 2.0.20\n";
    let text = Lab::fresh().read(MOSQUITTO_COMPOSE).replacen(
        "    image: eclipse-mosquitto:2.0.20\n",
        broken,
        1,
    );
    // The parser stops at the second `:` of the edited line.
    let (line, col) = line_col(&text, "eclipse-mosquitto: 2.0.20");
    let at = format!(
        "{MOSQUITTO_COMPOSE}:{line}:{}",
        col + "eclipse-mosquitto".len()
    );
    let stderr = refused(
        |lab| lab.write(MOSQUITTO_COMPOSE, &text),
        &["malformed YAML", &at],
    );
    // The offending line is shown.
    assert!(stderr.contains(broken.trim()), "{stderr}");
}

#[test]
fn unknown_dependency_names_it_with_did_you_mean() {
    let file = "services/zigbee2mqtt/service.yaml";
    let line = line_col(&Lab::fresh().read(file), "dependencies: [mosquitto]").0;
    let at = format!("{file}:{line}:");
    refused(
        |lab| lab.replace(file, "dependencies: [mosquitto]", "dependencies: [mosquito]"),
        &[
            "compose:zigbee2mqtt@CHELSTY-INFRA depends on unknown node `compose:mosquito@CHELSTY-INFRA`",
            "did you mean `compose:mosquitto@CHELSTY-INFRA`?",
            &at,
        ],
    );
}

/// mosquitto made to depend on zigbee2mqtt, which depends on mosquitto: the cycle is printed
/// as a path that comes back to where it started.
#[test]
fn dependency_cycle_is_printed() {
    let stderr = refused(
        |lab| {
            lab.replace(
                "services/mosquitto/service.yaml",
                "dependencies: []",
                "dependencies: [zigbee2mqtt]",
            )
        },
        &["dependency cycle: "],
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("dependency cycle: "))
        .expect("the cycle line");
    let path: Vec<&str> = line
        .split("dependency cycle: ")
        .nth(1)
        .unwrap()
        .trim()
        .split(" -> ")
        .collect();
    assert_eq!(path.len(), 3, "{line}");
    assert_eq!(path.first(), path.last(), "{line}");
    let nodes: BTreeSet<&str> = path.iter().copied().collect();
    assert_eq!(
        nodes,
        BTreeSet::from([
            "compose:mosquitto@CHELSTY-INFRA",
            "compose:zigbee2mqtt@CHELSTY-INFRA"
        ])
    );
}

/// An image (L1) that depends on a VM (L2).
#[test]
fn layer_inversion_is_refused() {
    refused(
        |lab| {
            lab.edit("inventory/images/debian-12.yaml", |t| {
                format!("{t}depends_on: [vm:CHELSTY-HA]\n")
            })
        },
        &[
            "layer inversion",
            "image:debian-12 (L1) depends on vm:CHELSTY-HA (L2)",
            "inventory/images/debian-12.yaml:",
        ],
    );
}

/// `debian-12.yaml` and `debian-12.yml` both declare `image:debian-12`.
#[test]
fn duplicate_image_recipe_is_refused() {
    refused(
        |lab| {
            lab.write(
                "inventory/images/debian-12.yml",
                &lab.read("inventory/images/debian-12.yaml"),
            )
        },
        &[
            "duplicate address image:debian-12",
            "inventory/images/debian-12.yaml",
            "inventory/images/debian-12.yml",
        ],
    );
}

/// The same service listed twice on one host would be two `compose:mosquitto@CHELSTY-INFRA`.
#[test]
fn service_listed_twice_on_a_host_is_refused() {
    refused(
        |lab| {
            lab.edit("hosts/CHELSTY-INFRA/services.yaml", |t| {
                format!("{t}  - mosquitto\n")
            })
        },
        &[
            "mosquitto is placed twice on CHELSTY-INFRA",
            "hosts/CHELSTY-INFRA/services.yaml",
        ],
    );
}

/// The error points at the second listing, the one to delete.
#[test]
fn service_listed_twice_points_at_the_duplicate() {
    let lab = Lab::fresh();
    lab.edit("hosts/CHELSTY-INFRA/services.yaml", |t| {
        format!("{t}  - mosquitto\n")
    });
    let line = lab
        .read("hosts/CHELSTY-INFRA/services.yaml")
        .lines()
        .count();
    let run = lab.hl(&["plan"]);
    run.code(1);
    let at = format!("hosts/CHELSTY-INFRA/services.yaml:{line}:");
    assert!(run.stderr.contains(&at), "`{at}` not in\n{}", run.stderr);
}

#[test]
fn bind_mount_escaping_the_repo_is_refused() {
    let text = Lab::fresh().read(MOSQUITTO_COMPOSE).replacen(
        "      - ./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro\n",
        "      - ../../../etc:/etc\n",
        1,
    );
    let line = line_col(&text, "../../../etc").0;
    let at = format!("{MOSQUITTO_COMPOSE}:{line}:");
    refused(
        |lab| lab.write(MOSQUITTO_COMPOSE, &text),
        &["`../../../etc`", "outside the repo", &at],
    );
}

#[test]
fn absolute_talos_patch_reference_is_refused() {
    let file = "cluster/talos/talconfig.yaml";
    let text =
        Lab::fresh()
            .read(file)
            .replacen("\"@./patches/kube-w-1.yaml\"", "\"@/etc/passwd\"", 1);
    let line = line_col(&text, "@/etc/passwd").0;
    let at = format!("{file}:{line}:");
    let stderr = refused(
        |lab| lab.write(file, &text),
        &["/etc/passwd", "absolute", &at],
    );
    assert!(
        !stderr.contains("root:"),
        "the file outside the repo was read: {stderr}"
    );
}

/// A bind-mounted file replaced by a symlink to a file outside the repo.
#[test]
fn symlink_out_of_the_repo_is_refused() {
    refused(
        |lab| {
            let conf = lab.path("services/mosquitto/mosquitto.conf");
            std::fs::remove_file(&conf).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", &conf).unwrap();
        },
        &[
            "services/mosquitto/mosquitto.conf",
            "symlink",
            "outside the repo",
        ],
    );
}

fn compose_password(lab: &Lab) {
    lab.replace(
        MOSQUITTO_COMPOSE,
        "      TZ: ${TZ:-Europe/London}\n",
        "      TZ: ${TZ:-Europe/London}\n      DB_PASSWORD: hunter2\n",
    );
}

#[test]
fn plaintext_secret_in_compose_is_refused() {
    let text = {
        let lab = Lab::fresh();
        compose_password(&lab);
        lab.read(MOSQUITTO_COMPOSE)
    };
    let line = line_col(&text, "DB_PASSWORD").0;
    let at = format!("{MOSQUITTO_COMPOSE}:{line}:");
    refused(compose_password, &["plaintext secret `DB_PASSWORD`", &at]);
}

/// The refusal must not print the secret it refuses: error output ends up in CI logs.
#[test]
fn plaintext_secret_in_compose_is_never_printed() {
    let lab = Lab::fresh();
    compose_password(&lab);
    for args in COMMANDS {
        let run = lab.hl(args);
        run.code(1);
        assert!(
            !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
            "{args:?}:\n{}",
            run.stderr
        );
    }
}

/// A plain `kind: Secret` with `stringData` in place of the SOPS-encrypted one of paperless:
/// refused, and its value never printed.
#[test]
fn plaintext_kubernetes_secret_is_refused_and_never_printed() {
    let app = "cluster/kubernetes/apps/paperless/app";
    let stderr = refused(
        |lab| {
            std::fs::remove_file(lab.path(&format!("{app}/secret.sops.yaml"))).unwrap();
            lab.write(
                &format!("{app}/secret.yaml"),
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: paperless-secret\n  namespace: paperless\n\
                 type: Opaque\nstringData:\n  PAPERLESS_ADMIN_USER: admin\n  PAPERLESS_ADMIN_PASSWORD: hunter2\n",
            );
            lab.replace(
                &format!("{app}/kustomization.yaml"),
                "./secret.sops.yaml",
                "./secret.yaml",
            );
        },
        &[&format!("{app}/secret.yaml")],
    );
    assert!(stderr.to_lowercase().contains("secret"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the secret value was printed:\n{stderr}"
    );
}

/// Plaintext Talos cluster secrets where talhelper expects a SOPS file.
#[test]
fn plaintext_talos_secrets_are_refused() {
    let stderr = refused(
        |lab| {
            std::fs::remove_file(lab.path("cluster/talos/talsecret.sops.yaml")).unwrap();
            lab.write(
                "cluster/talos/talsecret.yaml",
                "cluster:\n  id: c2VjcmV0\n  secret: hunter2hunter2\nsecrets:\n  bootstraptoken: abcdef.0123456789abcdef\n",
            );
        },
        &["plaintext Talos secrets in cluster/talos/talsecret.yaml"],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
