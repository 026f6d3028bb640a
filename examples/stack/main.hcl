# A multi-service shop: PostgreSQL with a logical dump, an API built on a
# shared base image, nginx with bind-mounted config. Two repositories give
# 3-2-1: a local disk and a NAS mounted at /mnt/nas.

repository "primary" {
  path = "/var/backups/shop"
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}

repository "nas" {
  path = "/mnt/nas/lifeboat/shop"
  encryption { passphrase_env = "LIFEBOAT_NAS_PASSPHRASE" }
}

policy "critical" {
  rpo = "1h"
  rto = "15m"
  retention {
    keep_hourly  = 24
    keep_daily   = 30
    keep_weekly  = 8
    keep_monthly = 12
  }
  copies = [repository.primary, repository.nas]
}

policy "images" {
  rpo = "168h"
  retention { keep_last = 3 }
  copies = [repository.primary]
}

image "base" {
  ref    = "shop/base:1.4"
  policy = policy.images
}

image "api" {
  ref    = "shop/api:2.3" # built FROM shop/base: restored after it
  policy = policy.images
}

image "pg" {
  ref    = "shop/postgres:16"
  policy = policy.images
}

volume "pgdata" {
  name        = "shop_pgdata"
  policy      = policy.critical
  consistency = "stop" # stop service.db during the copy
  service     = service.db
}

bind "nginx_conf" {
  path   = "/srv/shop/nginx"
  policy = policy.critical
}

# The load stops at the first error (ON_ERROR_STOP); the server's own
# superuser exists already, so its CREATE ROLE is left out of it.
dump "orders" {
  service         = service.db
  command         = ["pg_dumpall", "-U", "postgres"]
  restore_command = ["sh", "-c", "sed '/^CREATE ROLE postgres;$/d' | exec psql -v ON_ERROR_STOP=1 -U postgres -d postgres"]
  policy          = policy.critical
}

service "db" {
  container = "shop-db-1"
  image     = image.pg
  volumes   = [volume.pgdata]
  verify    = ["pg_isready", "-U", "postgres"]
}

service "api" {
  container  = "shop-api-1"
  image      = image.api
  depends_on = [service.db]
}

service "web" {
  container  = "shop-web-1"
  binds      = [bind.nginx_conf]
  depends_on = [service.api]
}
