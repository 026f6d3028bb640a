//! A whole small stack comes back in order: images built FROM a local
//! Debian base (scripts/lib/ensure-docker.sh builds it with debootstrap),
//! a container using a volume with `consistency = "stop"` and a
//! bind-mounted config directory. Everything is backed up, removed, and
//! restored from the repository alone.

use crate::harness::Workspace;
use crate::images::{Images, build, docker, image_id};

const DEBIAN: &str = "lifeboat-test/debian:bookworm";

fn output(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_stack_removed_entirely_comes_back_in_order_with_the_same_images_and_configuration() {
    assert!(
        image_id(DEBIAN).is_some(),
        "{DEBIAN} is missing: run the tests with scripts/test.sh (ensure_debian_image)"
    );
    let tag = format!("{}", std::process::id());
    let base = format!("lifeboat-stack/base:{tag}");
    let app = format!("lifeboat-stack/app:{tag}");
    let container = format!("lifeboat-stack-app-{tag}");
    let volume = format!("lifeboat-stack-data-{tag}");
    let conf = tempfile::Builder::new()
        .prefix("lifeboat-stack-conf-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let _images = Images(vec![app.clone(), base.clone()]);
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", &self.0]);
            let _ = docker(&["volume", "rm", "-f", &self.1]);
        }
    }
    let _cleanup = Cleanup(container.clone(), volume.clone());

    build(&base, DEBIAN, "the stack's own base layer");
    build(&app, &base, "the app layer");
    let (base_id, app_id) = (image_id(&base).unwrap(), image_id(&app).unwrap());
    std::fs::write(conf.path().join("app.conf"), "workers = 4\n").unwrap();
    output(&["volume", "create", &volume]);
    output(&[
        "run",
        "-d",
        "--name",
        &container,
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "-e",
        "MODE=production",
        "--label",
        "tier=web",
        "-v",
        &format!("{volume}:/data"),
        "-v",
        &format!("{}:/etc/app", conf.path().display()),
        &app,
        "sleep",
        "infinity",
    ]);
    output(&[
        "exec",
        &container,
        "sh",
        "-c",
        "seq 1 20000 > /data/rows && echo ok > /data/state",
    ]);
    let rows = output(&["exec", &container, "md5sum", "/data/rows"]);

    let ws = Workspace::with_volumes(&[]);
    let spec = std::fs::read_to_string(ws.path().join("main.hcl")).unwrap();
    std::fs::write(
        ws.path().join("main.hcl"),
        format!(
            "{spec}\nimage \"base\" {{\n  ref = \"{base}\"\n}}\n\nimage \"app\" {{\n  ref = \"{app}\"\n}}\n\n\
             volume \"data\" {{\n  name        = \"{volume}\"\n  consistency = \"stop\"\n}}\n\n\
             bind \"conf\" {{\n  path = \"{}\"\n}}\n\n\
             service \"app\" {{\n  container = \"{container}\"\n  image     = image.app\n  \
             volumes   = [volume.data]\n  binds     = [bind.conf]\n}}\n",
            conf.path().display()
        ),
    )
    .unwrap();

    let applied = ws.ok(&["apply", "--auto-approve"]);
    assert!(
        applied.stdout().contains("Apply complete! 5 backed up"),
        "{applied}"
    );
    assert_eq!(
        output(&["inspect", "-f", "{{.State.Running}}", &container]),
        "true",
        "the stopped container runs again after the copy"
    );

    // The host loses everything the stack was.
    output(&["rm", "-f", &container]);
    output(&["volume", "rm", &volume]);
    output(&["rmi", &app, &base]);
    std::fs::remove_dir_all(conf.path()).unwrap();

    let restored = ws.ok(&["restore", "--auto-approve"]);
    let text = restored.stdout();
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} is not in the restore plan:\n{text}"))
    };
    let (b, a, v, c, s) = (
        position("< image.base"),
        position("< image.app"),
        position("< volume.data"),
        position("< bind.conf"),
        position("< service.app"),
    );
    assert!(
        b < a && a < v.min(c) && v.max(c) < s,
        "base → derived → volume and bind → service:\n{text}"
    );
    assert!(text.contains("Restore complete!"), "{restored}");

    assert_eq!(image_id(&base).as_deref(), Some(base_id.as_str()));
    assert_eq!(image_id(&app).as_deref(), Some(app_id.as_str()));
    assert_eq!(
        output(&["inspect", "-f", "{{.State.Running}}", &container]),
        "true"
    );
    assert_eq!(output(&["inspect", "-f", "{{.Image}}", &container]), app_id);
    let env = output(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &container,
    ]);
    assert!(env.lines().any(|l| l == "MODE=production"), "{env}");
    assert_eq!(
        output(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"tier\"}}",
            &container
        ]),
        "web"
    );
    assert_eq!(
        output(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            &container
        ]),
        "unless-stopped"
    );
    assert_eq!(output(&["exec", &container, "md5sum", "/data/rows"]), rows);
    assert_eq!(
        output(&["exec", &container, "cat", "/etc/app/app.conf"]),
        "workers = 4"
    );

    // Only the container is lost: what survived (images, the volume with
    // newer data, the directory) is left alone and the service comes back
    // on it.
    output(&["exec", &container, "sh", "-c", "echo newer > /data/state"]);
    output(&["rm", "-f", &container]);
    let partial = ws.ok(&["restore", "--auto-approve"]);
    assert!(
        partial.stdout().contains("left alone") && partial.stdout().contains("< service.app"),
        "{partial}"
    );
    assert_eq!(
        output(&["exec", &container, "cat", "/data/state"]),
        "newer",
        "the surviving volume was kept"
    );
}
