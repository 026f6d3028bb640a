# Protect a Docker volume in an encrypted local repository.
#
#   export LIFEBOAT_PASSPHRASE='a long passphrase kept in your password manager'
#   lifeboat plan      # what is due, and why
#   lifeboat apply     # back it up
#   lifeboat restore   # bring it back after `docker volume rm myapp_data`

repository "main" {
  path = "/var/backups/lifeboat" # a local directory (created on first apply)

  # The key is derived from this passphrase (argon2id); lifeboat reads the
  # environment variable and never prints or stores the value.
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

policy "default" {
  rpo = "24h" # a volume whose last snapshot is older than this is due

  retention {
    keep_last = 7 # snapshots kept per volume when old ones are forgotten
  }
}

volume "data" {
  name   = "myapp_data" # the Docker volume
  policy = policy.default
}
