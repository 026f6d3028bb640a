volume "data" {
name = "app_data"
policy = policy.daily
consistency="stop"
service        = service.db
}

policy "daily" {
  rpo = "24h"
  rto = "1h"

  # a comment line ends a run of attributes
  copies = [repository.primary]
  retention {
    keep_last = 7
      keep_daily = 30
    keep_within="3d"
  }
  long_attribute_name = "after the block"
  x = 1
}

locals {
  short = 1
  a_much_longer_name = {
    inside = true
    and_this = false
  }
  after = 2
  list = [1, 2, 3]
  object = { a = 1, bb = 2 }
  naïve = "unicode key"
  e = "é"
  keys = {
    "quoted key" = 1
    b = 2
    "ünïcödé" = 3
  }
}
