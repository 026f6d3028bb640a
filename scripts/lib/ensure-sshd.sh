# Sourced by scripts/test.sh: an SFTP server for the SFTP repository tests.
# Debian's openssh-server on loopback (127.0.0.1:2222, internal-sftp), with
# its own host key and one client key, never the machine's ssh setup.
# Writes what the tests need to /var/lib/lifeboat-sshd/env as KEY=value
# lines (host, port, user, identity file, known_hosts file).

LIFEBOAT_SSHD_DIR=/var/lib/lifeboat-sshd
LIFEBOAT_SSHD_PORT=2222

# start_sshd DIR PORT: an sshd serving SFTP to root with DIR's client key, its
# pid in DIR/sshd.pid, its facts in DIR/env. Keys are made once per DIR.
start_sshd() {
  local dir=$1 port=$2
  mkdir -p "$dir" /run/sshd
  chmod 700 "$dir"
  [ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  [ -f "$dir/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
  /usr/sbin/sshd -f /dev/null -p "$port" -o ListenAddress=127.0.0.1 \
    -o HostKey="$dir/host_key" -o AuthorizedKeysFile="$dir/authorized_keys" \
    -o PidFile="$dir/sshd.pid" -o StrictModes=no -o PermitRootLogin=prohibit-password \
    -o PasswordAuthentication=no -o MaxSessions=64 -o MaxStartups=64 \
    -o Subsystem="sftp internal-sftp"
  cat >"$dir/env" <<EOF
LIFEBOAT_TEST_SFTP_HOST=127.0.0.1
LIFEBOAT_TEST_SFTP_PORT=$port
LIFEBOAT_TEST_SFTP_USER=root
LIFEBOAT_TEST_SFTP_IDENTITY=$dir/client_key
LIFEBOAT_TEST_SFTP_KNOWN_HOSTS=$dir/known_hosts
EOF
  local _
  for _ in $(seq 1 50); do
    if ssh -q -p "$port" -i "$dir/client_key" -o BatchMode=yes \
      -o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes \
      root@127.0.0.1 true 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "sshd on 127.0.0.1:$port did not answer" >&2
  return 1
}

ensure_sshd() {
  command -v /usr/sbin/sshd >/dev/null 2>&1 || ensure_packages openssh-server
  command -v ssh >/dev/null 2>&1 || ensure_packages openssh-client
  if [ -f "$LIFEBOAT_SSHD_DIR/sshd.pid" ] && kill -0 "$(cat "$LIFEBOAT_SSHD_DIR/sshd.pid")" 2>/dev/null; then
    return 0
  fi
  echo "== starting sshd for SFTP (127.0.0.1:$LIFEBOAT_SSHD_PORT)"
  start_sshd "$LIFEBOAT_SSHD_DIR" "$LIFEBOAT_SSHD_PORT"
}
