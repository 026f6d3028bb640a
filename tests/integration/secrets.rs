//! No output of any kind carries a secret: passphrases, and values of
//! variables marked `sensitive`, stay out of plans (human, JSON, Markdown,
//! saved), event streams, snapshot listings and diagnostics.

use crate::harness::Workspace;
use crate::support;

const SECRET: &str = "hunter2-s3cr3t-value";

#[test]
fn sensitive_values_and_passphrases_appear_in_no_output() {
    let volume = support::TestVolume::create("secrets");
    std::fs::write(volume.mountpoint().join("f"), b"content").unwrap();
    let ws = Workspace::with_volumes(&[("data", volume.name())]);
    // The service's container carries the secret in its environment too,
    // and runs (the dump runs in it: a shell given the secret in its
    // command, which it also echoes to stderr).
    let container = format!("lb-secrets-db-{}", std::process::id());
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
    let created = std::process::Command::new("docker")
        .args(["run", "-d", "--name", &container, "-e"])
        .arg(format!("PGPASSWORD={SECRET}"))
        .args(["lifeboat-test/busybox:1", "sh", "-c"])
        .arg("trap 'exit 0' TERM; sleep 3600 & wait")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let _container = support::RemoveContainer(container.clone());
    std::fs::write(
        ws.path().join("secrets.hcl"),
        format!(
            "variable \"db_password\" {{\n  type      = string\n  sensitive = true\n}}\n\n\
             service \"db\" {{\n  container = \"{container}\"\n  volumes   = [volume.data]\n}}\n\n\
             dump \"all\" {{\n  service = service.db\n  command = [\"sh\", \"-c\", \"echo rows; \
             echo $0 >&2\", \"--password=${{var.db_password}}\"]\n}}\n"
        ),
    )
    .unwrap();
    let var = format!("db_password={SECRET}");
    let plan_file = ws.path().join("out.plan");
    let plan_arg = plan_file.to_str().unwrap();
    let mut outputs = vec![
        ws.ok(&["validate", "--var", &var]).to_string(),
        ws.ok(&["validate", "--json", "--var", &var]).to_string(),
        ws.run(&["plan", "--var", &var]).to_string(),
        ws.ok(&["plan", "--json", "--var", &var]).to_string(),
        ws.run(&["plan", "--format", "markdown", "--var", &var])
            .to_string(),
        ws.run(&["plan", "--out", plan_arg, "--var", &var])
            .to_string(),
    ];
    outputs.push(std::fs::read_to_string(&plan_file).unwrap());
    outputs.push(ws.run(&["show", "--json", plan_arg]).to_string());
    let applied = ws.ok(&["apply", "--auto-approve", "--json", "--var", &var]);
    assert!(applied.stdout().contains("resource_finished"), "{applied}");
    outputs.push(applied.to_string());
    outputs.push(ws.run(&["snapshots", "--json"]).to_string());
    outputs.push(ws.run(&["graph"]).to_string());
    // A mistake next to the secret: the diagnostic must not echo its value.
    let bad = ws.run(&["plan", "--var", &format!("db_pasword={SECRET}")]);
    assert_eq!(bad.code(), 1, "{bad}");
    assert!(bad.to_string().contains("db_pasword"), "{bad}");
    outputs.push(bad.to_string());
    for output in &outputs {
        assert!(
            !output.contains(SECRET),
            "a sensitive value leaked:\n{output}"
        );
        assert!(
            !output.contains(&ws.passphrase),
            "the passphrase leaked:\n{output}"
        );
    }
}

/// Values computed from a sensitive one (through functions and templates),
/// and a value of the wrong type for a sensitive number, appear nowhere.
#[test]
fn values_derived_from_sensitive_ones_appear_in_no_output() {
    let ws = Workspace::with_volumes(&[]);
    std::fs::write(
        ws.path().join("derived.hcl"),
        "variable \"tok\" {\n  type      = string\n  sensitive = true\n}\n\n\
         locals {\n  shouted = upper(var.tok)\n}\n\n\
         volume \"a\" {\n  name   = \"${local.shouted}_data\"\n  policy = policy.default\n}\n\n\
         volume \"b\" {\n  name   = replace(var.tok, \"s3cr3t\", \"pub\")\n  policy = policy.default\n}\n",
    )
    .unwrap();
    let var = format!("tok={SECRET}");
    let leaks = [
        SECRET.to_string(),
        SECRET.to_uppercase(),
        SECRET.replace("s3cr3t", "pub"),
    ];
    let outputs = [
        ws.run(&["validate", "--var", &var]),
        ws.run(&["plan", "--var", &var]),
        ws.run(&["plan", "--json", "--var", &var]),
        ws.run(&["plan", "--format", "markdown", "--var", &var]),
    ];
    for output in &outputs {
        for leak in &leaks {
            assert!(
                !output.to_string().contains(leak.as_str()),
                "{leak} leaked:\n{output}"
            );
        }
    }
    assert!(
        outputs[1].to_string().contains("(sensitive)"),
        "{}",
        outputs[1]
    );
    // A sensitive number given a value that is not one.
    std::fs::write(
        ws.path().join("derived.hcl"),
        "variable \"port\" {\n  type      = number\n  sensitive = true\n}\n",
    )
    .unwrap();
    let bad = ws.run(&["validate", "--var", &format!("port=notanumber_{SECRET}")]);
    assert_eq!(bad.code(), 1, "{bad}");
    assert!(bad.to_string().contains("is not a number"), "{bad}");
    assert!(!bad.to_string().contains(SECRET), "{bad}");
}
