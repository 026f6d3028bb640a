# A single-service app: a wiki container with its data volume and its
# bind-mounted configuration, backed up hourly to a local disk.

repository "local" {
  path = "/var/backups/wiki"
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

policy "hourly" {
  rpo = "1h"
  rto = "15m"
  retention {
    keep_hourly = 24
    keep_daily  = 14
    keep_weekly = 8
  }
}

image "wiki" {
  ref = "wiki/app:3.2"
}

volume "uploads" {
  name        = "wiki_uploads"
  policy      = policy.hourly
  consistency = "pause" # pause the container during the copy
  service     = service.wiki
}

bind "config" {
  path   = "/srv/wiki/config"
  policy = policy.hourly
}

service "wiki" {
  container = "wiki-app-1"
  image     = image.wiki
  volumes   = [volume.uploads]
  binds     = [bind.config]
  verify    = ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
}
