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

impl DockerEngine {
    async fn run_exec(
        &self,
        container: &str,
        command: &[String],
    ) -> Result<ExecOutput, EngineError> {
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
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
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
                    ..StartExecOptions::default()
                }),
            )
            .await
            .map_err(not_found)?;
        let mut collected = Vec::new();
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(api("reading a command's output"))?;
                collected.extend_from_slice(&chunk.into_bytes());
                keep_tail(&mut collected);
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(api("inspecting a command run in a container"))?;
        let start = collected.len().saturating_sub(EXEC_OUTPUT_LIMIT);
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output: String::from_utf8_lossy(&collected[start..]).into_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Exec for DockerEngine {
    async fn exec(
        &self,
        container: &str,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<ExecOutput, EngineError> {
        // The API has no way to kill an exec: on timeout lifeboat stops
        // waiting, and the command may go on inside the container.
        match tokio::time::timeout(timeout, self.run_exec(container, command)).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::TimedOut {
                what: format!("{:?} in container {container}", command.join(" ")),
                timeout,
            }),
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
