//! `hl check`: the L0 runway runs the checks the planned changes need, for real, and fails
//! when one fails.

mod common;

use common::Lab;
use std::os::unix::fs::PermissionsExt;

fn results(run: &common::Run) -> Vec<(String, bool)> {
    run.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_tool_the_change_needs_is_looked_up_on_path() {
    let lab = Lab::adopted();
    lab.replace(
        "inventory/images/debian-12.yaml",
        "size_gb: 32",
        "size_gb: 40",
    );
    let bin = lab.path("../bin");
    std::fs::create_dir_all(&bin).unwrap();
    let args = ["check", "--target", "image:debian-12", "--json"];

    let missing = lab.hl_env(&args, &[("PATH", bin.to_str().unwrap())]);
    missing.code(1);
    assert_eq!(
        results(&missing),
        vec![("check:tool/qemu-img".to_string(), false)]
    );
    assert!(missing.stdout.contains("not on PATH"), "{}", missing.stdout);

    let tool = bin.join("qemu-img");
    std::fs::write(&tool, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let found = lab.hl_env(&args, &[("PATH", bin.to_str().unwrap())]);
    found.code(0);
    assert_eq!(
        results(&found),
        vec![("check:tool/qemu-img".to_string(), true)]
    );
}

#[test]
fn a_required_variable_must_be_set() {
    let lab = Lab::adopted();
    lab.replace("hosts/KUBE-W-1/machine.yaml", "cores: 8", "cores: 6");
    let args = ["check", "--target", "check:env/PROXMOX_API_TOKEN", "--json"];
    let unset = lab.hl_env(&args, &[("PROXMOX_API_TOKEN", "")]);
    unset.code(1);
    assert_eq!(
        results(&unset),
        vec![("check:env/PROXMOX_API_TOKEN".to_string(), false)]
    );
    let set = lab.hl_env(&args, &[("PROXMOX_API_TOKEN", "root@pam!hl=x")]);
    set.code(0);
    assert!(
        !set.stdout.contains("root@pam"),
        "the value is never printed"
    );
}

#[test]
fn nothing_planned_nothing_to_check() {
    let lab = Lab::adopted();
    let run = lab.hl(&["check"]);
    run.code(0);
    assert!(
        run.stdout
            .starts_with("L0 runway: 0 checks for environment `home`"),
        "{}",
        run.stdout
    );
}
