//! Lineage queries and pictures on a diamond pipeline (one input, two
//! branches, a merge) continued in a second session.

use std::process::{Command, Stdio};

use roar_tests::*;
use serde_json::Value;

fn ok(p: &Project, args: &[&str]) -> String {
    let out = p.roar(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// raw.csv → @1 → a.txt → {@2 → b1.txt, @3 (+ extra.txt) → b2.txt} → @4 →
/// merged.txt; then a new session: @1 merged.txt → final.txt.
fn diamond() -> Project {
    let p = Project::new();
    p.write("raw.csv", "1,2,3\n");
    p.write("extra.txt", "extra\n");
    for script in [
        "tr , ' ' < raw.csv > a.txt",
        "rev a.txt > b1.txt",
        "cat a.txt extra.txt > b2.txt",
        "cat b1.txt b2.txt > merged.txt",
    ] {
        p.run_ok(&["sh", "-c", script]);
    }
    p
}

fn uid(p: &Project, step: &str) -> String {
    p.json(&["show", step])["uid"].as_str().unwrap()[..8].to_string()
}

#[test]
fn lineage_inputs_and_diff_across_sessions() {
    let p = diamond();
    let steps: Vec<String> = ["@1", "@2", "@3", "@4"]
        .iter()
        .map(|s| uid(&p, s))
        .collect();
    let diff = ok(&p, &["diff", "@2", "@3"]);
    assert!(diff.contains("command:"), "{diff}");
    assert!(diff.contains("+ extra.txt"), "{diff}");
    assert!(
        !diff
            .lines()
            .any(|l| l.trim_start()[1..].starts_with(" a.txt")),
        "a.txt is the same input on both sides: {diff}"
    );
    let d = p.json(&["diff", "b1.txt", "b2.txt"]);
    assert_eq!(
        d["inputs"]["added"][0]["key"],
        p.file("extra.txt").to_str().unwrap()
    );
    assert_eq!(d["a"]["step"], 2);
    assert_eq!(d["b"]["step"], 3);
    let same = ok(&p, &["diff", "@2", "@2"]);
    assert!(same.contains("same provenance"), "{same}");

    let reset = ok(&p, &["reset"]);
    assert!(reset.starts_with("new session"), "{reset}");
    p.run_ok(&["sh", "-c", "sort merged.txt > final.txt"]);
    assert_eq!(
        p.json(&["log"]).as_array().unwrap().len(),
        1,
        "a new session"
    );

    let tree = ok(&p, &["lineage", "final.txt"]);
    for uid in &steps {
        assert!(tree.contains(uid.as_str()), "job {uid} missing:\n{tree}");
    }
    assert!(
        tree.contains("raw.csv") && tree.contains("(root input)"),
        "{tree}"
    );
    assert!(
        tree.contains("(shown above)"),
        "the diamond's shared step: {tree}"
    );
    let shallow = ok(&p, &["lineage", "final.txt", "--depth", "1"]);
    assert!(
        !shallow.contains("raw.csv") && shallow.contains("--depth"),
        "{shallow}"
    );

    let g = p.json(&["lineage", "final.txt"]);
    let jobs = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "job")
        .count();
    assert_eq!(jobs, 5);
    let names: Vec<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["path"].as_str())
        .collect();
    for f in [
        "raw.csv",
        "extra.txt",
        "a.txt",
        "b1.txt",
        "b2.txt",
        "merged.txt",
        "final.txt",
    ] {
        assert!(names.iter().any(|n| n.ends_with(f)), "{f} not in {names:?}");
    }

    let inputs: Vec<String> = p
        .json(&["inputs", "final.txt"])
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        inputs,
        [
            p.file("extra.txt").to_str().unwrap(),
            p.file("raw.csv").to_str().unwrap()
        ]
    );
    // merged.txt was produced by a job: not unsourced, though a root of @1.
    let unsourced = p.json(&["inputs", "@1", "--unsourced"]);
    assert_eq!(unsourced.as_array().unwrap().len(), 2, "{unsourced}");
    let human = ok(&p, &["inputs", "final.txt"]);
    assert_eq!(human.lines().count(), 2, "{human}");
}

#[test]
fn pictures_in_every_format() {
    let p = diamond();
    let labels = ["@1 sh -c", "@2 sh -c", "@3 sh -c", "@4 sh -c"];

    let dot = ok(&p, &["dag", "--format", "dot"]);
    assert!(
        dot.starts_with("digraph roar {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    let nodes = dot.lines().filter(|l| l.contains("[shape=")).count();
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(
        dot.lines().filter(|l| l.contains("shape=box")).count(),
        4,
        "{dot}"
    );
    for e in &edges {
        let ids: Vec<&str> = e.trim().trim_end_matches(';').split(" -> ").collect();
        assert_eq!(ids.len(), 2);
        for id in ids {
            assert!(
                dot.contains(&format!("  {id} [shape=")),
                "edge to undeclared node {id}"
            );
        }
    }
    // 4 jobs, 6 files (raw, extra, a, b1, b2, merged), 10 reads and writes.
    assert_eq!((nodes, edges.len()), (10, 10), "{dot}");
    if have("dot") {
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    let mermaid = ok(&p, &["dag", "--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart LR\n"));
    for l in labels {
        assert!(mermaid.contains(l), "{l}: {mermaid}");
    }

    let svg = ok(&p, &["dag", "--format", "svg"]);
    let check = "import sys, xml.etree.ElementTree as ET\n\
        root = ET.fromstring(sys.stdin.read())\n\
        ns = '{http://www.w3.org/2000/svg}'\n\
        assert root.tag == ns + 'svg', root.tag\n\
        print('\\n'.join(t.text for t in root.iter(ns + 'text')))\n";
    let mut child = Command::new("python3")
        .args(["-c", check])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(svg.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "SVG is not well-formed XML:\n{svg}");
    let texts = text(&out.stdout);
    for l in labels {
        assert!(texts.contains(l), "{l} not drawn: {texts}");
    }
    assert!(texts.contains("merged.txt"));
    let lineage_svg = ok(&p, &["lineage", "merged.txt", "--format", "svg"]);
    assert!(lineage_svg.contains("<svg") && lineage_svg.contains("@4 sh -c"));

    let json: Value = p.json(&["dag", "--format", "json"]);
    assert_eq!(json["jobs"].as_array().unwrap().len(), 4);
    let bad = p.roar(&["dag", "--format", "png"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn pop_builds_and_hygiene() {
    let p = diamond();
    // Not on a terminal and no -y: refused, nothing removed.
    let out = p.roar(&["pop"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("-y"));
    assert_eq!(p.json(&["log"]).as_array().unwrap().len(), 4);
    assert!(ok(&p, &["pop", "-y"]).starts_with("removed @4"));
    assert_eq!(p.json(&["log"]).as_array().unwrap().len(), 3);

    p.run_ok(&["sh", "-c", "true"]);
    let out = p
        .command(&["build", "-q", "sh", "-c", "echo built > tool.bin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dag = ok(&p, &["dag"]);
    assert!(dag.starts_with("build steps:\n  @5 sh -c"), "{dag}");

    // Escape sequences in names never reach the terminal.
    let evil = "evil\x1b[31mname\x07.txt";
    p.run_ok(&["sh", "-c", &format!("cat raw.csv > '{evil}'")]);
    for args in [&["show", "@6"][..], &["lineage", evil], &["dag"]] {
        let shown = ok(&p, args);
        assert!(
            !shown.contains('\x1b') && !shown.contains('\x07'),
            "{args:?}: {shown:?}"
        );
    }
    let many: String = (0..30).map(|i| format!("echo {i} > f{i}.out; ")).collect();
    p.run_ok(&["sh", "-c", &many]);
    let shown = ok(&p, &["show", "@7"]);
    assert!(shown.contains("… 10 more, -v for all"), "{shown}");
    assert!(ok(&p, &["show", "-v", "@7"]).contains("f9.out"));
}
