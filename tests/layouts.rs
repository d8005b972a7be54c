//! Repos laid out otherwise than the sample: where things live is configuration, and a layer
//! that is absent is reported, never a crash.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn plan(root: &Path, cache: &Path) -> (i32, Value, String) {
    let out = Command::cargo_bin("hl")
        .unwrap()
        .args(["-C", root.to_str().unwrap(), "plan", "--json"])
        .env("HL_CACHE_DIR", cache)
        .env_remove("HL_ENV")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hl state adopt`, which must succeed.
fn adopt(root: &Path, cache: &Path) {
    Command::cargo_bin("hl")
        .unwrap()
        .args(["-C", root.to_str().unwrap(), "state", "adopt"])
        .env("HL_CACHE_DIR", cache)
        .assert()
        .success();
}

/// `hl plan --json --stats`: the plan without its stats, and the nodes a patch of the last
/// plan evaluated again (`None`: not patched).
fn plan_stats(root: &Path, cache: &Path) -> (Value, Option<u64>) {
    let out = Command::cargo_bin("hl")
        .unwrap()
        .args(["-C", root.to_str().unwrap(), "plan", "--json", "--stats"])
        .env("HL_CACHE_DIR", cache)
        .env_remove("HL_ENV")
        .output()
        .unwrap();
    let mut json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stats = json.as_object_mut().unwrap().remove("stats").unwrap();
    (json, stats["plan_patched"].as_u64())
}

/// A plan after an edit of `rel` is patched from the last one, and is the plan made whole.
fn patched_is_whole(root: &Path, cache: &Path, rel: &str, edit: impl FnOnce(&str) -> String) {
    let text = fs::read_to_string(root.join(rel)).unwrap();
    write(root, rel, &edit(&text));
    let (patched, n) = plan_stats(root, cache);
    assert!(n.is_some(), "{rel}: not patched");
    fs::remove_file(root.join(".hl/planmemo")).unwrap();
    let (whole, n) = plan_stats(root, cache);
    assert_eq!(n, None);
    assert_eq!(patched, whole, "{rel}");
}

fn changes(plan: &Value) -> Vec<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "check")
        .map(|s| {
            format!(
                "{} {}",
                s["action"].as_str().unwrap(),
                s["address"].as_str().unwrap()
            )
        })
        .collect()
}

/// A compose-per-host repo (`<HOST>/<stack>/compose.yaml`, an `hl.yaml` at the root, no
/// inventory folder, no images, no Talos, no Kubernetes) plans its stacks and notes the rest.
#[test]
fn compose_per_host_repo_plans_its_stacks() {
    let repo = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(
        r,
        "hl.yaml",
        "environment: lab\nlayout:\n  stacks: \"{host}/{stack}/compose.yaml\"\nnodes:\n  nas: {address: nas.lan}\n  pi: {address: pi.lan, tags: [arm]}\n",
    );
    write(
        r,
        "nas/immich/compose.yaml",
        "x-common: &common\n  restart: unless-stopped\nservices:\n  server:\n    <<: *common\n    image: ghcr.io/immich-app/immich-server:v1.119.0\n    volumes:\n      - ./hwaccel.yml:/hw.yml:ro\n      - /mnt/photos:/photos\n",
    );
    write(r, "nas/immich/hwaccel.yml", "driver: vaapi\n");
    write(
        r,
        "nas/jellyfin/compose.yaml",
        "services:\n  jellyfin:\n    image: jellyfin/jellyfin:10.10.3\n",
    );
    write(
        r,
        "pi/adguard/compose.yaml",
        "services:\n  adguard:\n    image: adguard/adguardhome:v0.107.54\n",
    );
    write(r, "pi/adguard/AdGuardHome.yaml.j2", "users: {{ users }}\n");
    write(
        r,
        "docs/notes/compose.yaml",
        "not: [a stack: its folder is not a host\n",
    );

    let (code, json, stderr) = plan(r, cache.path());
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        changes(&json),
        vec![
            "create compose:adguard@pi",
            "create compose:immich@nas",
            "create compose:jellyfin@nas"
        ]
    );
    let notes = json["notes"].to_string();
    for layer in ["Talos", "Kubernetes", "image recipes"] {
        assert!(notes.contains(layer), "no note about {layer}: {notes}");
    }

    // The bind-mounted file is an input: editing it updates that stack only.
    adopt(r, cache.path());
    write(r, "nas/immich/hwaccel.yml", "driver: nvenc\n");
    let (code, json, _) = plan(r, cache.path());
    assert_eq!(code, 2);
    assert_eq!(changes(&json), vec!["update compose:immich@nas"]);

    // Edited back: the plan is patched from the last one, and is the one made whole.
    patched_is_whole(r, cache.path(), "nas/immich/hwaccel.yml", |_| {
        "driver: vaapi\n".into()
    });
    let (json, _) = plan_stats(r, cache.path());
    assert!(changes(&json).is_empty(), "{json}");
}

/// A Flux+Talos "home-ops" repo: the Flux tree at `kubernetes/`, namespaces set by the folder's
/// kustomization, `${VAR}` substitutions, a SOPS secret, a `.j2` template, no talconfig and no
/// compose. Where things live comes from `hl.yaml`; the absent layers are notes.
#[test]
fn home_ops_flux_repo_plans_one_node_per_kustomization() {
    let repo = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = repo.path();
    write(
        r,
        "hl.yaml",
        "layout:\n  kubernetes: kubernetes\n  talos: talos\n",
    );
    let ks = |name: &str, path: &str, deps: &[&str]| {
        let mut s = format!(
            "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  interval: 1h\n  path: {path}\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n    namespace: flux-system\n  postBuild:\n    substituteFrom:\n      - kind: Secret\n        name: cluster-secrets\n"
        );
        if !deps.is_empty() {
            s.push_str("  dependsOn:\n");
            for d in deps {
                s.push_str(&format!("    - name: {d}\n      namespace: flux-system\n"));
            }
        }
        s
    };
    write(
        r,
        "kubernetes/flux/cluster/ks.yaml",
        &ks("cluster-apps", "./kubernetes/apps", &[]).replace(
            "  name: cluster-apps\n",
            "  name: cluster-apps\n  namespace: flux-system\n",
        ),
    );
    write(
        r,
        "kubernetes/apps/kustomization.yaml",
        "resources:\n  - ./media\n",
    );
    write(
        r,
        "kubernetes/apps/media/kustomization.yaml",
        "namespace: media\nresources:\n  - ./jellyfin/ks.yaml\n  - ./sonarr/ks.yaml\n",
    );
    write(
        r,
        "kubernetes/apps/media/jellyfin/ks.yaml",
        &ks("jellyfin", "./kubernetes/apps/media/jellyfin/app", &[]),
    );
    write(
        r,
        "kubernetes/apps/media/sonarr/ks.yaml",
        &ks(
            "sonarr",
            "./kubernetes/apps/media/sonarr/app",
            &["jellyfin"],
        )
        .replace("namespace: flux-system\n", "namespace: media\n"),
    );
    write(r, "kubernetes/apps/media/jellyfin/app/helmrelease.yaml", "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: jellyfin\nspec:\n  values: &v\n    ingress:\n      host: jellyfin.${SECRET_DOMAIN}\n");
    write(r, "kubernetes/apps/media/jellyfin/app/secret.sops.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: jellyfin\nstringData:\n  API_KEY: ENC[AES256_GCM,data:abc=,iv:x,tag:y,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:z]\n  version: 3.9.1\n");
    write(
        r,
        "kubernetes/apps/media/jellyfin/app/config.xml.j2",
        "<x>{{ value }}</x>\n",
    );
    write(
        r,
        "kubernetes/apps/media/sonarr/app/helmrelease.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: sonarr\n",
    );

    let (code, json, stderr) = plan(r, cache.path());
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        changes(&json),
        vec![
            "create k8s:flux-system/cluster-apps",
            "create k8s:media/jellyfin",
            "create k8s:media/sonarr"
        ]
    );
    let notes = json["notes"].to_string();
    assert!(
        notes.contains("Talos") && notes.contains("compose"),
        "{notes}"
    );

    // Adopted and planned; then a value of a HelmRelease edited: the plan is patched, and is
    // the one made whole.
    adopt(r, cache.path());
    plan(r, cache.path());
    patched_is_whole(
        r,
        cache.path(),
        "kubernetes/apps/media/jellyfin/app/helmrelease.yaml",
        |t| t.replace("jellyfin.${SECRET_DOMAIN}", "tv.${SECRET_DOMAIN}"),
    );
    let (json, _) = plan_stats(r, cache.path());
    assert_eq!(changes(&json), vec!["update k8s:media/jellyfin"]);
}
