//! [`Exec`] on Docker: an exec instance attached to stdout and stderr,
//! its output collected, its exit code inspected.

use super::{DockerEngine, api, is_not_found};
use crate::engine::{EXEC_OUTPUT_LIMIT, EngineError, Exec, ExecOutput};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
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
}
