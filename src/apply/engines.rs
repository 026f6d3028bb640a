//! The engines of a run, by the names resources use: the default one (the
//! local engine, honouring `DOCKER_HOST`) and each `engine` block. An
//! engine that cannot be reached is recorded as such, so only the
//! resources on it fail.

use super::ApplyError;
use crate::engine::{Connection, DockerEngine, Engine};
use crate::spec::DEFAULT_ENGINE;
use crate::spec::Spec;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Engine name → the connected engine, or why it could not be reached.
#[derive(Clone, Default)]
pub struct Engines {
    engines: BTreeMap<String, Result<Arc<dyn Engine>, String>>,
    /// How each was reached (none for engines given directly): recorded in
    /// the quiesce journal, so `recover` reaches them without the spec.
    connections: BTreeMap<String, Connection>,
}

impl Engines {
    /// Connects to each engine in `names` (names the spec does not declare
    /// other than the default are left out: the spec validated its references).
    pub async fn connect<'a>(spec: &Spec, names: impl IntoIterator<Item = &'a str>) -> Engines {
        let mut engines = BTreeMap::new();
        let mut connections = BTreeMap::new();
        for name in names {
            if engines.contains_key(name) {
                continue;
            }
            // An `engine "default"` block says how to reach the default engine.
            let connection = match spec.engines.iter().find(|e| e.name == name) {
                Some(declared) => Connection {
                    host: declared.host.clone(),
                    cert_path: declared.cert_path.clone(),
                    ssh_identity: declared.ssh_identity.clone(),
                },
                None if name == DEFAULT_ENGINE => Connection::default(),
                None => continue,
            };
            let connected = DockerEngine::connect(&connection)
                .await
                .map(|engine| Arc::new(engine) as Arc<dyn Engine>)
                .map_err(|e| e.to_string());
            engines.insert(name.to_string(), connected);
            connections.insert(name.to_string(), connection.effective());
        }
        Engines {
            engines,
            connections,
        }
    }

    /// Connects to the engine `connection` reaches, under `name`.
    pub async fn connect_to(name: &str, connection: &Connection) -> Engines {
        let connected = DockerEngine::connect(connection)
            .await
            .map(|engine| Arc::new(engine) as Arc<dyn Engine>)
            .map_err(|e| e.to_string());
        Engines {
            engines: BTreeMap::from([(name.to_string(), connected)]),
            connections: BTreeMap::from([(name.to_string(), connection.effective())]),
        }
    }

    /// How the engine called `name` was reached (with the environment's
    /// defaults filled in); `None` for engines given directly.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.get(name)
    }

    /// Engines given directly (tests: in-memory engines).
    pub fn from_engines(engines: impl IntoIterator<Item = (String, Arc<dyn Engine>)>) -> Engines {
        Engines {
            engines: engines.into_iter().map(|(n, e)| (n, Ok(e))).collect(),
            connections: BTreeMap::new(),
        }
    }

    /// The engine called `name`, or why it is not available.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn Engine>, ApplyError> {
        match self.engines.get(name) {
            Some(Ok(engine)) => Ok(engine),
            Some(Err(message)) => Err(ApplyError::EngineUnavailable {
                name: name.to_string(),
                message: message.clone(),
            }),
            None => Err(ApplyError::EngineUnavailable {
                name: name.to_string(),
                message: "not connected in this run".to_string(),
            }),
        }
    }

    /// The reachable engines, by name.
    pub fn connected(&self) -> impl Iterator<Item = (&str, &Arc<dyn Engine>)> {
        self.engines
            .iter()
            .filter_map(|(name, engine)| engine.as_ref().ok().map(|e| (name.as_str(), e)))
    }

    /// The first engine that could not be reached, when every one failed:
    /// then nothing can be planned, and the user needs that one message.
    pub fn all_unreachable(&self) -> Option<ApplyError> {
        if self.engines.is_empty() || self.connected().next().is_some() {
            return None;
        }
        self.engines
            .keys()
            .next()
            .and_then(|name| self.get(name).err())
    }
}
