# The smallest useful spec: protect one Docker volume.
#
# No repository is declared, so lifeboat keeps snapshots in a local default
# repository under .lifeboat/ next to this file (the way Terraform keeps local
# state), with a generated passphrase in .lifeboat/passphrase. No policy is
# named, so the default applies: back up when the last snapshot is older than 24h.
volume "data" {
  name = "lifeboat-demo_data" # the Docker volume to protect
}
