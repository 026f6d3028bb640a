repository "main" {
  path = local.repository_path
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

policy "standard" {
  rpo = local.rpo
  retention {
    keep_daily  = 7
    keep_weekly = 4
  }
}
