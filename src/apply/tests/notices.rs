//! The notifications of a run on the memory engine: the receivers that
//! want it are told how it ended, and one that is down is a warning of the
//! run (its events, its report, its record), never a failure.

use super::*;
use crate::spec::{NotifyEvent, NotifySpec, NotifyTarget, UrlSource};
use std::io::{Read, Write};

/// A webhook block for `url`, sent `on`.
fn webhook(name: &str, url: String, on: &[NotifyEvent]) -> NotifySpec {
    NotifySpec {
        name: name.to_string(),
        target: NotifyTarget::Webhook(UrlSource::Written(url)),
        on: on.to_vec(),
        timeout: std::time::Duration::from_secs(2),
        span: Span::default(),
    }
}

/// Answers 200 to the requests of `listener`, sending each request's
/// bytes (headers and body) to the returned channel.
fn receive(listener: std::net::TcpListener) -> std::sync::mpsc::Receiver<String> {
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // One request a connection: read until the body is complete.
            while let Ok(n) = stream.read(&mut chunk) {
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if n == 0 || body.len() >= length {
                    let _ = sent.send(text);
                    break;
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    received
}

/// A receiver that is up (its `http://HOST:PORT` and what it receives)
/// and the URL `/hook` of one that is down.
fn receivers() -> (String, std::sync::mpsc::Receiver<String>, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = format!("http://{}", listener.local_addr().unwrap());
    let requests = receive(listener);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/hook", closed.local_addr().unwrap());
    (up, requests, down)
}

/// The JSON body of the next request `requests` got, a POST to `/hook`.
fn posted_to_hook(requests: &std::sync::mpsc::Receiver<String>) -> serde_json::Value {
    let request = requests
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert!(request.starts_with("POST /hook "), "{request}");
    serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_told_and_a_receiver_that_is_down_is_a_warning_in_its_record() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let (up, requests, down) = receivers();
    let up = format!("{up}/hook");
    let mut spec = spec(&["data", "gone"]);
    spec.notifications = vec![
        webhook("ops", up, &[NotifyEvent::Failure]),
        webhook("quiet", down.clone(), &[NotifyEvent::Success]),
        webhook("chat", down, &[NotifyEvent::Failure]),
    ];
    let plan = world.backup_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert_eq!((report.succeeded(), report.failed()), (1, 1), "{report:?}");

    let body = posted_to_hook(&requests);
    assert_eq!(body["event"], "failure");
    assert_eq!(body["resources"][0]["address"], "volume.gone");
    assert_eq!(body["resources"][0]["class"], "refused");

    // `quiet` wants successes only: it is not sent a failure.
    let told: Vec<(String, bool)> = world
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Notified { delivery } => {
                Some((delivery.notify.clone(), delivery.error.is_none()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        [("ops".to_string(), true), ("chat".to_string(), false)]
    );
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(report.warnings[0].starts_with("notify.chat (127.0.0.1:"));
    assert_eq!(
        report.errors,
        Vec::<String>::new(),
        "a warning, not an error"
    );
    let repository = world.repositories[0].repository.as_ref().unwrap();
    let (runs, _) = repository.runs().unwrap();
    assert_eq!(runs[0].record.warnings, report.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_is_told_as_a_restore_to_webhooks_and_never_pings_a_backup_check() {
    let mut world = World::new(&["main"]);
    world.engine.add_volume("app_data", &[("a.txt", b"alpha")]);
    let (up, requests, down) = receivers();
    let mut spec = spec(&["data"]);
    let plan = world.backup_plan(&spec).await;
    assert!(world.apply(&spec, &plan).await.is_complete());
    spec.notifications = vec![
        webhook("ops", format!("{up}/hook"), &[NotifyEvent::Success]),
        NotifySpec {
            target: NotifyTarget::Healthchecks(UrlSource::Written(format!("{up}/ping"))),
            ..webhook("uptime", String::new(), &[])
        },
        webhook("chat", down, &[NotifyEvent::Success]),
    ];
    world.engine.remove_volume("app_data").await.unwrap();
    let plan = world.restore_plan(&spec).await;
    let report = world.apply(&spec, &plan).await;
    assert!(report.is_complete(), "{report:?}");

    let body = posted_to_hook(&requests);
    assert_eq!(body["event"], "success");
    assert_eq!(body["kind"], "restore");
    assert_eq!(body["resources"][0]["address"], "volume.data");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("restore done, 1 resource restored"),
        "{body}"
    );
    assert!(
        requests
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "the healthchecks check watches backups: not pinged"
    );
    // The receiver that is down: a warning of the restore, not a failure.
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(report.warnings[0].starts_with("notify.chat (127.0.0.1:"));
    assert!(report.errors.is_empty());
}
