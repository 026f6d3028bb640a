# Production stack: database, uploads and the nginx config.
repository "primary" {
    path = "/var/backups/lifeboat"   # local disk
    encryption {
        passphrase_env = "LIFEBOAT_PASSPHRASE"
    }
}

policy "critical" {
    rpo = "1h"   # at most an hour of data lost
    rto = "15m"
    retention {
        keep_hourly = 24
        keep_daily = 30    # a month
    }
    copies = [
        repository.primary,
    ]
}

volume "pgdata" {
    name = "shop_pgdata"
    policy = policy.critical
    consistency = "stop" # stop the database around the copy
    service = service.db
}

service "db" {
    container = "shop-db-1"
    volumes = [volume.pgdata]
    verify = [
        "pg_isready",
        "-U", "postgres",
    ]
}
