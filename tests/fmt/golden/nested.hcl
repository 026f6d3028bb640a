repository "primary" {
  path = "/var/backups/lifeboat"
  encryption { passphrase_env = "LIFEBOAT_PASSPHRASE" }
}
repository "offsite" {
  s3 {
    endpoint = "http://127.0.0.1:3900"
    bucket   = "backups"
    region   = "garage"
  }
  encryption {
    passphrase_env = "LIFEBOAT_PASSPHRASE"
  }
}
policy "p" {
  retention { keep_last = 3 }
  retention {}
  retention {}
  retention {
  }
}
outer "a" "b" {
  middle {
    inner {
      deepest {
        value = 1
      }
    }
  }
}
