//! [`Exec`] on Docker: an exec instance attached to stdout and stderr,
//! its output collected, its exit code inspected.

use super::{DockerEngine, api, is_not_found};
use crate::engine::{
    ByteStream, EXEC_OUTPUT_LIMIT, Engine, EngineError, Exec, ExecOutput, ExecStream, StderrWatch,
};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bytes::Bytes;
use futures_util::StreamExt;

/// Keeps the last [`EXEC_OUTPUT_LIMIT`] bytes (the end of a failing
/// command's output says why it failed).
fn keep_tail(buffer: &mut Vec<u8>) {
    if buffer.len() > EXEC_OUTPUT_LIMIT * 2 {
        buffer.drain(..buffer.len() - EXEC_OUTPUT_LIMIT);
    }
}

/// The line a wrapped command prints first: the pid (in the container)
/// of the process the command then runs as.
const PID_MARKER: &str = "lifeboat-exec-pid ";

/// `command` run by `/bin/sh`, which first prints its pid and then becomes
/// the command (`exec`): the engine starts each exec in a session of its
/// own, so that pid leads the process group of everything the command
/// starts, and a second exec can kill the group inside the container.
fn with_pid_report(command: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!("printf '{PID_MARKER}%s\\n' \"$$\"; exec \"$@\""),
        "lifeboat-exec".to_string(),
    ];
    wrapped.extend(command.iter().cloned());
    wrapped
}

/// What a command run by [`DockerEngine::run_exec`] printed, and its pid
/// once it said it (wrapped commands).
#[derive(Default)]
struct Collected {
    output: Vec<u8>,
    pid: Option<u32>,
    /// Stdout before the marker line is complete.
    head: Vec<u8>,
}

impl Collected {
    fn stdout(&mut self, bytes: &[u8], wrapped: bool) {
        if !wrapped || self.pid.is_some() {
            self.output.extend_from_slice(bytes);
            return;
        }
        self.head.extend_from_slice(bytes);
        let Some(end) = self.head.iter().position(|b| *b == b'\n') else {
            return;
        };
        let line = String::from_utf8_lossy(&self.head[..end]).into_owned();
        let rest = self.head.split_off(end + 1);
        match line
            .strip_prefix(PID_MARKER)
            .and_then(|p| p.trim().parse().ok())
        {
            Some(pid) => self.pid = Some(pid),
            // Not the wrapper speaking: keep it all as output.
            None => self.output.extend_from_slice(&self.head),
        }
        self.head.clear();
        self.output.extend_from_slice(&rest);
    }
}

impl DockerEngine {
    /// Runs `command` (under [`with_pid_report`] when `wrapped`) and
    /// collects its output into `collected` as it comes, so a caller that
    /// stops waiting still knows the pid.
    async fn run_exec(
        &self,
        container: &str,
        command: &[String],
        wrapped: bool,
        collected: &std::sync::Mutex<Collected>,
        exec_id: &std::sync::Mutex<Option<String>>,
    ) -> Result<i64, EngineError> {
        let run = if wrapped {
            with_pid_report(command)
        } else {
            command.to_vec()
        };
        let (id, started) = self.create_and_start(container, &run, false).await?;
        *exec_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(api("reading a command's output"))?;
                let mut collected = collected.lock().unwrap_or_else(|p| p.into_inner());
                match chunk {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        collected.stdout(&message, wrapped)
                    }
                    other => collected.output.extend_from_slice(&other.into_bytes()),
                }
                keep_tail(&mut collected.output);
            }
        }
        DockerEngine::exit_code(&self.docker, &id).await
    }

    /// Kills the process group `pid` leads inside `container` (and `pid`
    /// itself, for a shell whose `kill` takes no group), by a second exec.
    async fn kill_in_container(&self, container: &str, pid: u32) -> bool {
        let command = [
            "/bin/sh".to_string(),
            "-c".to_string(),
            "kill -9 -\"$1\" 2>/dev/null || kill -9 \"$1\"".to_string(),
            "lifeboat-kill".to_string(),
            pid.to_string(),
        ];
        let collected = std::sync::Mutex::new(Collected::default());
        let id = std::sync::Mutex::new(None);
        let killing = self.run_exec(container, &command, false, &collected, &id);
        matches!(tokio::time::timeout(KILL_TIMEOUT, killing).await, Ok(Ok(0)))
    }

    /// Runs `command` within `timeout`: its output, and whether it
    /// reported its pid; `Err(Err(killed))` when it timed out (after
    /// killing it, when it could).
    async fn exec_within(
        &self,
        container: &str,
        command: &[String],
        timeout: std::time::Duration,
        wrapped: bool,
    ) -> Result<(ExecOutput, bool), Result<EngineError, bool>> {
        let collected = std::sync::Mutex::new(Collected::default());
        let exec_id = std::sync::Mutex::new(None);
        let running = self.run_exec(container, command, wrapped, &collected, &exec_id);
        let finished = tokio::time::timeout(timeout, running).await;
        let collected = collected.into_inner().unwrap_or_else(|p| p.into_inner());
        let exec_id = exec_id.into_inner().unwrap_or_else(|p| p.into_inner());
        match finished {
            Ok(Ok(exit_code)) => {
                let mut output = collected.output;
                output.extend_from_slice(&collected.head);
                let output = ExecOutput {
                    exit_code,
                    output: tail_text(&output),
                };
                Ok((output, collected.pid.is_some()))
            }
            Ok(Err(error)) => Err(Ok(error)),
            Err(_) => {
                let mut killed = false;
                if let Some(pid) = collected.pid {
                    killed = self.kill_in_container(container, pid).await;
                }
                // On the engine's host its pid can be reached from here too.
                if let (Some(id), true) = (exec_id, self.is_local()) {
                    kill_exec(&self.docker, &id, true).await;
                    killed = true;
                }
                Err(Err(killed))
            }
        }
    }
}

/// How long the exec that kills a timed-out command may take.
const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[async_trait::async_trait]
impl Exec for DockerEngine {
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, EngineError> {
        // The API has no way to kill an exec: the command runs under a
        // shell that reports its pid, and on timeout a second exec kills
        // its process group inside the container.
        let started = std::time::Instant::now();
        let timed_out = |killed: bool| {
            let what = format!("{:?} in container {container}", command.join(" "));
            EngineError::TimedOut {
                what: if killed {
                    format!("{what} (killed)")
                } else {
                    format!(
                        "{what} (and could not be killed there: it may still run; the image \
                         needs /bin/sh for lifeboat to end it)"
                    )
                },
                timeout,
            }
        };
        match self.exec_within(container, command, timeout, true).await {
            // The wrapper never ran: the image has no /bin/sh. The command
            // runs as it is, and can be killed only on the engine's host.
            Ok((output, false)) if no_shell(&output) => {
                let left = timeout.saturating_sub(started.elapsed());
                match self.exec_within(container, command, left, false).await {
                    Ok((output, _)) => Ok(output),
                    Err(Ok(error)) => Err(error),
                    Err(Err(killed)) => Err(timed_out(killed)),
                }
            }
            Ok((output, _)) => Ok(output),
            Err(Ok(error)) => Err(error),
            Err(Err(killed)) => Err(timed_out(killed)),
        }
    }

    async fn exec_stdout(
        &self,
        container: &str,
        command: &[String],
        on_stderr: StderrWatch,
    ) -> Result<ExecStream, EngineError> {
        exec_stdout(self, container, command, on_stderr).await
    }

    async fn exec_stdin(
        &self,
        container: &str,
        command: &[String],
        stdin: ByteStream,
    ) -> Result<ExecOutput, EngineError> {
        exec_stdin(self, container, command, stdin).await
    }
}

/// Chunks of a streamed stdout in flight between the engine and the
/// repository: the bound that keeps memory flat whatever the dump's size.
const STDOUT_CHUNKS: usize = 8;

/// Whether a wrapped command's run says the container has no `/bin/sh`
/// (the engine could not start it: exit code 126 or 127, no pid reported).
fn no_shell(output: &ExecOutput) -> bool {
    (output.exit_code == 126 || output.exit_code == 127) && output.output.contains("/bin/sh")
}

/// Kills an exec whose stream was dropped before its end. The API of
/// 1.41 cannot kill an exec, so this reaches its process on the engine's
/// host when lifeboat runs there; elsewhere the closed connection ends the
/// command on its next write (SIGPIPE).
async fn kill_exec(docker: &bollard::Docker, id: &str, local: bool) {
    let Ok(inspected) = docker.inspect_exec(id).await else {
        return;
    };
    if let (true, Some(true), Some(pid)) = (local, inspected.running, inspected.pid)
        && let Ok(pid) = i32::try_from(pid)
        && pid > 1
    {
        // The engine starts each exec in its own session (its pid leads its
        // process group): killing the group ends what a shell started too.
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Forgets a streaming exec once it ended (or was killed).
struct Tracked {
    execs: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    id: String,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl DockerEngine {
    fn track(&self, id: &str) -> Tracked {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        Tracked {
            execs: self.execs.clone(),
            id: id.to_string(),
        }
    }

    /// Kills this process's streaming execs still running (on SIGINT/SIGTERM).
    pub(super) async fn kill_own_execs(&self) {
        let ids: Vec<String> = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for id in ids {
            kill_exec(&self.docker, &id, self.is_local()).await;
        }
    }

    async fn create_and_start(
        &self,
        container: &str,
        command: &[String],
        stdin: bool,
    ) -> Result<(String, StartExecResults), EngineError> {
        let not_found = |error: bollard::errors::Error| {
            if is_not_found(&error) {
                EngineError::ContainerNotFound(container.to_string())
            } else {
                api("running a command in a container")(error)
            }
        };
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(command.to_vec()),
                    ..CreateExecOptions::default()
                },
            )
            .await
            .map_err(not_found)?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    ..StartExecOptions::default()
                }),
            )
            .await
            .map_err(not_found)?;
        Ok((created.id, started))
    }

    async fn exit_code(docker: &bollard::Docker, id: &str) -> Result<i64, EngineError> {
        let inspected = docker
            .inspect_exec(id)
            .await
            .map_err(api("inspecting a command run in a container"))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }
}

/// Why a streamed command was killed: its reader went away.
fn abandoned() -> EngineError {
    EngineError::Api {
        context: "running a command in a container".into(),
        message: "its output was no longer read (interrupted), so it was killed".into(),
    }
}

fn tail_text(buffer: &[u8]) -> String {
    let start = buffer.len().saturating_sub(EXEC_OUTPUT_LIMIT);
    String::from_utf8_lossy(&buffer[start..]).into_owned()
}

pub(super) async fn exec_stdout(
    engine: &DockerEngine,
    container: &str,
    command: &[String],
    mut on_stderr: StderrWatch,
) -> Result<ExecStream, EngineError> {
    let (id, started) = engine.create_and_start(container, command, false).await?;
    let StartExecResults::Attached { mut output, .. } = started else {
        return Err(api("running a command in a container")(
            bollard::errors::Error::DockerStreamError {
                error: "the engine did not attach to the command's output".into(),
            },
        ));
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(STDOUT_CHUNKS);
    let (done, finished) = tokio::sync::oneshot::channel();
    let docker = engine.docker.clone();
    let local = engine.is_local();
    let tracked = engine.track(&id);
    tokio::spawn(async move {
        let _tracked = tracked;
        let mut stderr = Vec::new();
        loop {
            // A dropped reader (an interrupted run) kills the command even
            // while it writes nothing.
            let chunk = tokio::select! {
                chunk = output.next() => chunk,
                _ = sender.closed() => {
                    drop(output);
                    kill_exec(&docker, &id, local).await;
                    let _ = done.send(Err(abandoned()));
                    return;
                }
            };
            let Some(chunk) = chunk else {
                break;
            };
            match chunk {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    if sender.send(Ok(message)).await.is_err() {
                        drop(output);
                        kill_exec(&docker, &id, local).await;
                        let _ = done.send(Err(abandoned()));
                        return;
                    }
                }
                Ok(LogOutput::StdErr { message }) => {
                    on_stderr(&message);
                    stderr.extend_from_slice(&message);
                    keep_tail(&mut stderr);
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(error) => {
                    let message = format!("reading a command's output: {error}");
                    let _ = sender
                        .send(Err(std::io::Error::other(message.clone())))
                        .await;
                    let _ = done.send(Err(EngineError::Api {
                        context: "reading a command's output".into(),
                        message: error.to_string(),
                    }));
                    kill_exec(&docker, &id, local).await;
                    return;
                }
            }
        }
        drop(sender);
        let result = DockerEngine::exit_code(&docker, &id)
            .await
            .map(|exit_code| ExecOutput {
                exit_code,
                output: tail_text(&stderr),
            });
        let _ = done.send(result);
    });
    let stdout = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(ExecStream {
        stdout: Box::pin(stdout),
        finished: Box::pin(async move {
            finished.await.unwrap_or_else(|_| {
                Err(EngineError::Api {
                    context: "running a command in a container".into(),
                    message: "the command's output stopped before it exited".into(),
                })
            })
        }),
    })
}

pub(super) async fn exec_stdin(
    engine: &DockerEngine,
    container: &str,
    command: &[String],
    mut stdin: ByteStream,
) -> Result<ExecOutput, EngineError> {
    use tokio::io::AsyncWriteExt;
    let (id, started) = engine.create_and_start(container, command, true).await?;
    let _tracked = engine.track(&id);
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        return Err(api("running a command in a container")(
            bollard::errors::Error::DockerStreamError {
                error: "the engine did not attach to the command's input".into(),
            },
        ));
    };
    let feeding = async move {
        while let Some(chunk) = stdin.next().await {
            let chunk = chunk?;
            if input.write_all(&chunk).await.is_err() {
                // The command stopped reading (it exited): its exit code says why.
                return Ok(());
            }
        }
        // End of input: the command sees EOF once the write side closes.
        let _ = input.shutdown().await;
        Ok::<(), std::io::Error>(())
    };
    let reading = async move {
        let mut collected = Vec::new();
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(api("reading a command's output"))?;
            collected.extend_from_slice(&chunk.into_bytes());
            keep_tail(&mut collected);
        }
        Ok::<Vec<u8>, EngineError>(collected)
    };
    let (fed, collected) = tokio::join!(feeding, reading);
    if let Err(error) = fed {
        kill_exec(&engine.docker, &id, engine.is_local()).await;
        return Err(EngineError::Api {
            context: "feeding a command's input".into(),
            message: error.to_string(),
        });
    }
    let collected = collected?;
    Ok(ExecOutput {
        exit_code: DockerEngine::exit_code(&engine.docker, &id).await?,
        output: tail_text(&collected),
    })
}
