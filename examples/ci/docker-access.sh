#!/bin/sh
# Gives the CI runner what it needs to reach the Docker engine named by
# DOCKER_HOST, from the pipeline's secrets (README.md says how to make them):
#   ssh://user@host    DOCKER_SSH_KEY (a private key the engine's host
#                      accepts for that user) and DOCKER_SSH_KNOWN_HOSTS (the
#                      host's line of known_hosts: its key, checked)
#   tcp://host:2376    DOCKER_TLS_CA, DOCKER_TLS_CERT, DOCKER_TLS_KEY (PEM
#                      text), written to DOCKER_CERT_PATH for DOCKER_TLS_VERIFY
# Both pipelines run it before lifeboat plans or applies.
set -eu
case "${DOCKER_HOST:-}" in
  ssh://*)
    mkdir -p "$HOME/.ssh"
    chmod 700 "$HOME/.ssh"
    (umask 077 && printf '%s\n' "$DOCKER_SSH_KEY" >"$HOME/.ssh/id_ed25519")
    printf '%s\n' "$DOCKER_SSH_KNOWN_HOSTS" >>"$HOME/.ssh/known_hosts"
    ;;
  tcp://*)
    : "${DOCKER_CERT_PATH:?set DOCKER_CERT_PATH (where the TLS files go) with DOCKER_TLS_VERIFY=1}"
    mkdir -p "$DOCKER_CERT_PATH"
    (
      umask 077
      printf '%s\n' "$DOCKER_TLS_CA" >"$DOCKER_CERT_PATH/ca.pem"
      printf '%s\n' "$DOCKER_TLS_CERT" >"$DOCKER_CERT_PATH/cert.pem"
      printf '%s\n' "$DOCKER_TLS_KEY" >"$DOCKER_CERT_PATH/key.pem"
    )
    ;;
  *)
    echo "DOCKER_HOST is '${DOCKER_HOST:-}': set it to ssh://user@host or tcp://host:2376 (see README.md)" >&2
    exit 1
    ;;
esac
