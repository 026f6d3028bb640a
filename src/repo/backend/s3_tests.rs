//! The S3 backend against small fake servers on loopback: how each kind
//! of failure reaches the failure classes, that retries happen, that no
//! message holds a credential, and that the synchronous backend works
//! from inside a tokio runtime. The contract itself is checked against a
//! real server (Garage) in tests/integration/s3.rs.

use super::*;
use crate::failure::FailureClass;
use crate::repo::RepoError;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const ACCESS_KEY: &str = "GKaccess0123456789";
const SECRET_KEY: &str = "secret-key-never-shown";

/// A server that answers every request with `status` and an XML `body`
/// (or, when `status` is empty, closes the connection without a word);
/// counts requests.
fn fake_server(status: &str, body: &str) -> (String, Arc<AtomicUsize>) {
    let response = if status.is_empty() {
        String::new()
    } else {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (endpoint, requests)
}

fn settings(endpoint: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.to_string(),
        bucket: "bucket".into(),
        region: "garage".into(),
        prefix: "some/prefix".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        credentials_from: "TEST_ACCESS_KEY and TEST_SECRET_KEY".into(),
    }
}

fn impatient() -> Patience {
    Patience {
        retries: 2,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(2),
    }
}

fn backend(endpoint: &str) -> S3Backend {
    S3Backend::new(settings(endpoint), impatient()).unwrap()
}

/// The class a repository reports for this backend error.
fn class(error: io::Error) -> FailureClass {
    RepoError::io("test")(error).class()
}

fn assert_no_credentials(message: &str) {
    assert!(!message.contains(SECRET_KEY), "{message}");
    assert!(!message.contains(ACCESS_KEY), "{message}");
}

#[test]
fn the_location_names_endpoint_bucket_and_prefix_and_no_credential() {
    let backend = backend("http://127.0.0.1:3900/");
    assert_eq!(
        backend.location(),
        "s3:http://127.0.0.1:3900/bucket/some/prefix"
    );
    let mut flat = settings("https://s3.example.com");
    flat.prefix = String::new();
    let flat = S3Backend::new(flat, impatient()).unwrap();
    assert_eq!(flat.location(), "s3:https://s3.example.com/bucket");
    assert_no_credentials(&format!("{:?}", settings("http://x")));
}

#[test]
fn server_errors_are_retried_then_transient() {
    let (endpoint, requests) = fake_server("503 Service Unavailable", "");
    let error = backend(&endpoint).stat(FileKind::Index, "abc").unwrap_err();
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "one attempt and two retries"
    );
    assert!(error.to_string().contains("3 attempts"), "{error}");
    assert_eq!(class(error), FailureClass::Transient);
}

#[test]
fn reset_connections_are_retried_then_transient() {
    let (endpoint, requests) = fake_server("", "");
    let error = backend(&endpoint)
        .save(FileKind::Snapshot, "abc", b"data")
        .unwrap_err();
    assert!(requests.load(Ordering::SeqCst) >= 3, "{error}");
    assert_eq!(class(error), FailureClass::Transient);
}

#[test]
fn a_server_that_cannot_be_reached_makes_the_repository_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let error = backend(&endpoint)
        .stat(FileKind::Config, "config")
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotConnected, "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("cannot reach {endpoint}")),
        "{error}"
    );
    assert_eq!(class(error), FailureClass::RepositoryUnavailable);
}

#[test]
fn refused_credentials_name_where_they_came_from_never_their_value() {
    let (endpoint, requests) = fake_server(
        "403 Forbidden",
        "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>\
         <Message>No such key: GKaccess0123456789</Message><Resource>/b</Resource></Error>",
    );
    let error = backend(&endpoint)
        .load(FileKind::Index, "abc", None)
        .unwrap_err();
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "a refusal is not retried"
    );
    assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("TEST_ACCESS_KEY and TEST_SECRET_KEY"),
        "{message}"
    );
    assert_no_credentials(&message);
    assert_eq!(class(error), FailureClass::RepositoryUnavailable);
}

#[test]
fn a_missing_bucket_says_so_and_makes_the_repository_unavailable() {
    let (endpoint, _) = fake_server(
        "404 Not Found",
        "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
         <Message>Bucket not found: bucket</Message><Resource>/b</Resource></Error>",
    );
    let error = backend(&endpoint).is_empty().unwrap_err();
    assert!(
        error.to_string().contains("bucket bucket does not exist"),
        "{error}"
    );
    assert_eq!(class(error), FailureClass::RepositoryUnavailable);
}

/// The engine calls repositories from threads of its tokio runtime:
/// blocking there must neither panic nor hang, and neither may dropping
/// the backend.
#[tokio::test(flavor = "current_thread")]
async fn works_from_inside_a_current_thread_runtime() {
    let (endpoint, _) = fake_server("404 Not Found", "");
    let backend = backend(&endpoint);
    let error = backend.stat(FileKind::Pack, "abcd").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_inside_a_multi_thread_runtime() {
    let (endpoint, _) = fake_server("404 Not Found", "");
    let backend = Arc::new(backend(&endpoint));
    let inside = backend.clone();
    let error = tokio::spawn(async move { inside.remove(FileKind::Lock, "abcd") })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    drop(backend);
}
