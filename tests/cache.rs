//! The content-addressed cache through the CLI: `hl build` (cached, `--rebuild`, `--check`
//! naming the files that differ) and `hl gc` (frees what neither the state nor the plan
//! reaches, keeps the rest usable). Images build locally with qemu-img or a command.

#[path = "common/images.rs"]
mod images;

use std::fs;

use images::{ImageLab as Repo, BLANK};

const CLOCK: &str = "builder: command\ncommand: [sh, -c, 'date +%s%N > clock.img']\noutput: clock.img\ntools: [sh]\n";

#[test]
fn build_caches_rebuilds_and_checks_reproducibility() {
    let r = Repo::new(&[("blank", BLANK), ("clock", CLOCK)]);
    let (code, out, err) = r.hl(&["build", "image:blank"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("image:blank: built, output "), "{out}");
    let (_, out, _) = r.hl(&["build", "image:blank"]);
    assert!(out.starts_with("image:blank: cached, output "), "{out}");
    let (_, out, err) = r.hl(&["build", "image:blank", "--rebuild"]);
    assert!(
        out.starts_with("image:blank: built, output ") && err.contains("building"),
        "{out}{err}"
    );
    let (code, out, _) = r.hl(&["build", "image:blank", "--check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("reproducible: the rebuild and the cached output are the same"),
        "{out}"
    );

    let (code, out, _) = r.hl(&["build", "image:clock", "--check"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        "image:clock: NOT reproducible: 1 file differs:\n  clock.img: content differs\n"
    );
}

#[test]
fn gc_frees_what_nothing_reaches_and_keeps_the_rest() {
    let r = Repo::new(&[("blank", BLANK)]);
    assert_eq!(r.hl(&["apply", "--yes"]).0, 0);
    fs::write(
        r.root.join("inventory/images/blank.yaml"),
        BLANK.replace("size_gb: 1", "size_gb: 2"),
    )
    .unwrap();
    assert_eq!(r.hl(&["apply", "--yes"]).0, 0);
    let (code, out, _) = r.hl(&["gc"]);
    assert_eq!(code, 0);
    // The first image (its disk and manifest) and its action entry are unreachable now.
    assert!(out.starts_with("gc: removed 2 objects"), "{out}");
    assert!(out.contains("and 1 action entries"), "{out}");
    let (_, out, _) = r.hl(&["gc"]);
    assert!(
        out.starts_with("gc: removed 0 objects"),
        "a second gc frees nothing: {out}"
    );
    // What the state reaches is intact: the plan is a no-op and the image is still cached.
    assert_eq!(r.hl(&["plan"]).0, 0);
    let (_, out, _) = r.hl(&["build", "image:blank"]);
    assert!(out.starts_with("image:blank: cached"), "{out}");
}
